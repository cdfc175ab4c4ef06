"""Typed config of `vidsme benchmark SUITE_CONFIG` (YAML + key=value overrides)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vidsme.attack.calibration import DEFAULT_SIGNALS


@dataclass(frozen=True)
class SuiteTarget:
    """One target model of the suite and the split it is attacked on."""

    name: str  # row label in results and on the leaderboard (unique within the suite)
    path: Path  # the target's Hugging Face model directory (target.json next to it when vidsme trained it)
    split: str  # data_splits/<split>: its members and non-members are scored
    video_root: Path | None = None  # folder of the manifest's videos; None: the split card's own (synthetic splits)
    reference: Path | None = None  # reference (base) model for calibration attacks; None: the card's base, if any
    template: str | None = None  # prompt template for this target; None: the suite's
    # shadow sets of this target (`vidsme train shadows`): at most one online and one offline; their calibrated
    # attacks (LiRA, RMIA over every signal in `calibration_signals`) join the leaderboard as methods
    shadows: list[Path] = field(default_factory=list)
    population: str | None = None  # RMIA's population split (in no training set, not evaluated); None: the offline set's pool
    population_video_root: Path | None = None  # the population's videos; None: its split card's own


@dataclass(frozen=True)
class SuiteConfig:
    """A benchmark suite: targets x frame counts x slices x every registered attack."""

    name: str  # suite name, recorded in results
    output_dir: Path  # results.json, scores/, plots/ and the leaderboard go here
    targets: list[SuiteTarget]
    cache_dir: Path = Path("runs/cache")  # feature cache and video-statistics cache
    frame_counts: list[int] = field(default_factory=lambda: [4, 8, 16])  # the frame-count sweep
    template: str = "default"  # prompt template (vidsme.prompts.TEMPLATES): "reference" is the paper's QA prompt
    slices: list[str] = field(default_factory=lambda: ["video", "instruction", "answer"])
    beta1: float = 1.0  # Vid-SME: q = 1 + beta1 * (max k1 - k1) / (max k1 - min k1)
    beta2: float = 0.1  # Vid-SME: r = 1 + beta2 * (k3 - min k3) / (max k3 - min k3)
    reference_view: bool = True  # also run the reference model (calibration attacks need it)
    attacks: list[str] = field(default_factory=list)  # attack names to run; empty: every registered attack
    batch_size: int = 8  # rows per forward (each row is 2 inputs: natural + reversed frames)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # auto: bfloat16 on GPU, float32 on CPU
    max_text_tokens: int = 1024  # prompt budget besides the video tokens; a longer sample is an error, never cut
    allow_exclusions: bool = False  # skip rows whose video cannot be decoded (listed in results.json) instead of stopping
    allow_repeated_frames: bool = False  # accept frame counts above the split's longest video (each frame repeats)
    blind_baseline: bool = True  # the split's model-free baseline row, next to the attacks
    n_bootstrap: int = 1000  # bootstrap replicates for every CI (whole videos resampled, stratified by label)
    primary_metric: str = "tpr@1%fpr"  # ranking metric where the test partition resolves it, else AUC (docs/LEADERBOARD.md)
    min_false_positives: int = 10  # TPR@x FPR is reported only with >= this / x non-members (10 false positives)
    seed: int = 0  # bootstrap and blind-baseline seed
    plots: bool = True  # ROC curves, score and q/r histograms (at the largest frame count)
    plot_every_frame_count: bool = False  # plots for every frame count of the sweep (about 1 s per figure)
    stats_workers: int | None = None  # processes for video statistics (None: one per core)
    # signals (attack names) the shadow calibrations go through, on every slice they apply to
    calibration_signals: list[str] = field(default_factory=lambda: list(DEFAULT_SIGNALS))
    calibrations: list[str] = field(default_factory=list)  # calibration names (vidsme attacks --calibrations); empty: all
    # the video-tied check (benchmark/video_tied.py): answer-loss AUC with own vs deranged videos, one more forward
    # per row at one frame count (None: the sweep's largest)
    video_tied: bool = True
    video_tied_frames: int | None = None
    shadow_models_per_pass: int = 0  # shadow models held in memory at once during extraction (0: all of a set)
