"""Typed config of `vidsme study video-signal CONFIG` (YAML + key=value overrides + --size presets).

A study is a grid of cells. A cell is a target model (a base architecture pretrained on a
synthetic pool, fine-tuned with a strategy for some epochs on one content variant of a
split) evaluated by the benchmark at several frame counts. The YAML gives a `center` cell
(every setting) and a list of `cells`, each naming only what it changes (`overrides`, in
`key=value` form over the center): one factor at a time, then combinations.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vidsme.config import ConfigError, config_from_dict, config_to_dict, load_config, parse_override
from vidsme.names import did_you_mean
from vidsme.train.tiny_model import TinyVullmConfig

CELL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class StudyBase:
    """One base architecture and its pretraining on the synth-pretrain pool (cells naming the same
    base share one model)."""

    model: TinyVullmConfig = field(default_factory=lambda: TinyVullmConfig(image_size=48))  # LM width/depth, frames
    epochs: int = 3  # pretraining epochs over the pool
    lr: float = 2e-3  # AdamW learning rate (linear warmup, then constant)
    micro_batch_size: int = 8  # samples per optimizer step
    warmup_steps: int = 10  # linear warmup steps
    n_frames: int = 8  # frames per video during pretraining

    @property
    def video_tokens_per_frame(self) -> int:
        """Video tokens per frame of this base (image_size / patch_size patches per side, pooled 2x2)."""
        return self.model.video_tokens_per_frame


@dataclass(frozen=True)
class CellSettings:
    """Every setting of one trained cell; the cell's cache key hashes it with the study's data and
    evaluation settings."""

    base: str = "small"  # a key of the study's `bases`
    strategy: Literal["full", "lora", "projector"] = "full"  # what fine-tuning trains (train/recipes.py)
    train_vision_tower: bool = False  # with strategy full: the SigLIP tower is trained too
    epochs: int = 12  # fine-tuning epochs over the members
    lr: float = 1e-3  # fine-tuning learning rate (AdamW, constant)
    micro_batch_size: int = 8  # samples per optimizer step
    lora_r: int = 8  # LoRA rank (strategy lora); alpha = 2 r
    content: Literal["temporal", "static"] = "temporal"  # questions whose answer reversal changes / keeps
    train_frames: int = 8  # frames per video during fine-tuning (the answer-slice loss AUC is read at this count)
    seed: int = 0  # fine-tuning seed (data order)


@dataclass(frozen=True)
class CellSpec:
    """One cell of the grid: a name, the factor it varies, its level, and what differs from `center`."""

    name: str  # the results file is <output_dir>/<name>.json (letters, digits, '.', '-', '_')
    factor: str  # the factor it varies: center, capacity, strategy, epochs, content, combined, ...
    level: str  # its level in words (table row, figure legend), e.g. "512 x 8"
    overrides: list[str] = field(default_factory=list)  # key=value over `center`, e.g. [strategy=lora, lr=2e-3]


@dataclass(frozen=True)
class StudyConfig:
    """The video-signal study (docs/FINDINGS.md): a grid of targets, each trained and benchmarked."""

    name: str  # recorded in every cell's results
    output_dir: Path  # <cell>.json per cell, table.md, figure.png: small, committed beside docs/FINDINGS.md
    work_dir: Path  # splits, videos, models, feature caches, benchmark outputs (large, never committed)
    bases: dict[str, StudyBase]  # base architectures by name (cells refer to them by `base`)
    center: CellSettings  # the strong cell every factor varies around
    cells: list[CellSpec]  # the grid, in table order
    split_videos: int = 120  # videos per content split, drawn i.i.d. half members (each half then dev/test)
    pretrain_videos: int = 240  # videos of the bases' pretraining pool (synth-pretrain, 2 rows each)
    data_seed: int = 0  # seeds the generator, the member draw and the dev/test partition
    frame_counts: list[int] = field(default_factory=lambda: [4, 8, 16])  # evaluation frame counts
    n_bootstrap: int = 1000  # bootstrap replicates of every CI (whole videos resampled)
    reference_view: bool = False  # also run the base (the reference calibration attack; +50% extraction)
    batch_size: int = 8  # rows per evaluation forward
    heldout_probe: int = 1000  # member and non-member rows probed for the loss gap (at most the split's)
    max_text_tokens: int = 192  # prompt budget besides the video tokens (training)
    deepspeed: Path = Path("configs/deepspeed/zero2.json")  # ZeRO config of every training run
    # shadow models per cell (online: each on a random half of the cell's split; LiRA and RMIA over the study's
    # video-slice signals, RMIA against the split's population pool); 0: reference-free attacks only
    shadows: int = 0
    only: list[str] = field(default_factory=list)  # run only these cells (empty: all); the report lists all done
    sizes: dict[str, list[str]] = field(default_factory=dict)  # named presets of overrides: --size NAME

    def cell(self, spec: CellSpec, where: str = "the study config") -> CellSettings:
        """The full settings of `spec`: `center` with its overrides (errors name the cell and the key)."""
        data = config_to_dict(self.center)
        for text in spec.overrides:
            parts, value = parse_override(text)
            node = data
            for part in parts[:-1]:
                node = node.setdefault(part, {}) if isinstance(node, dict) else node
            node[parts[-1]] = value
        settings = config_from_dict(CellSettings, data, where=f"{where}: cells entry {spec.name!r} (overrides)")
        if settings.base not in self.bases:
            raise ConfigError(f"{where}: cell {spec.name!r} uses base {settings.base!r}, which `bases` does not "
                              f"define.{did_you_mean(settings.base, self.bases)} Bases: {', '.join(self.bases)}")
        return settings

    def selected(self) -> list[CellSpec]:
        """The cells this run computes (`only`, else all), in grid order."""
        if not self.only:
            return list(self.cells)
        return [c for c in self.cells if c.name in self.only]


def check_study(cfg: StudyConfig, where: str) -> None:
    """Validate the grid before any work: names, bases, resolvable cells, `only`, sizes."""
    if not cfg.cells:
        raise ConfigError(f"{where}: `cells` is empty; list at least one cell (e.g. {{name: center, factor: center, "
                          "level: center}})")
    names = [c.name for c in cfg.cells]
    bad = [n for n in names if not CELL_NAME.match(n)]
    if bad:
        raise ConfigError(f"{where}: cell names become file names; use letters, digits, '.', '-', '_': {bad}")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{where}: cell names must be unique, repeated: {dupes}")
    unknown = [n for n in cfg.only if n not in names]
    if unknown:
        raise ConfigError(f"{where}: `only` names unknown cell(s) {unknown}.{did_you_mean(unknown[0], names)} "
                          f"Cells: {', '.join(names)}")
    if cfg.center.base not in cfg.bases:
        raise ConfigError(f"{where}: center.base {cfg.center.base!r} is not one of `bases`."
                          f"{did_you_mean(cfg.center.base, cfg.bases)} Bases: {', '.join(cfg.bases)}")
    for spec in cfg.cells:
        cfg.cell(spec, where)
    if cfg.split_videos < 8 or cfg.pretrain_videos < 2:
        raise ConfigError(f"{where}: split_videos must be >= 8 (dev and test each need members and non-members) and "
                          f"pretrain_videos >= 2; got {cfg.split_videos}, {cfg.pretrain_videos}")
    if cfg.shadows == 1 or cfg.shadows < 0:
        raise ConfigError(f"{where}: shadows must be 0 (none) or >= 2 (every video IN for half of them), got "
                          f"{cfg.shadows}; LiRA online needs >= 4")
    if not cfg.frame_counts or len(set(cfg.frame_counts)) != len(cfg.frame_counts) or min(cfg.frame_counts) < 1:
        raise ConfigError(f"{where}: frame_counts must be distinct positive integers, got {cfg.frame_counts}")


def load_study(path: Path, overrides: list[str] | tuple[str, ...] = (), size: str | None = None) -> StudyConfig:
    """The study config of YAML `path`, with the `sizes[size]` preset (if given) and then `overrides` applied."""
    overrides = list(overrides)
    where = str(path)
    if size is not None:
        plain = load_config(StudyConfig, path)
        if size not in plain.sizes:
            known = ", ".join(plain.sizes) or "none"
            raise ConfigError(f"{where}: no size preset {size!r} in `sizes`.{did_you_mean(size, plain.sizes)} "
                              f"Presets: {known}")
        overrides = [*plain.sizes[size], *overrides]
        where = f"{path} (--size {size})"
    cfg = load_config(StudyConfig, path, overrides)
    check_study(cfg, where)
    return cfg


__all__ = ["CellSettings", "CellSpec", "StudyBase", "StudyConfig", "check_study", "load_study"]
