"""Typed configs of `vidsme train base` and `vidsme train target` (YAML + key=value overrides)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vidsme.train.tiny_model import TinyVullmConfig

# LoRA goes on the language model's linear layers only: vision tower and projector never
# get adapters (their parameter names do not match).
LANGUAGE_LINEAR_REGEX = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"


@dataclass(frozen=True)
class DataConfig:
    """Which samples, how they are shown to the model."""

    split: str  # data_splits/<split>; fine-tuning uses its members only, pretraining a pool
    video_root: Path = Path("runs/videos")  # folder the manifest's video paths are relative to
    n_frames: int = 16  # frames per video, sampled with linspace(0, N-1, n)
    template: str = "default"  # prompt template (vidsme.prompts.TEMPLATES)
    max_text_tokens: int = 256  # prompt budget besides the video tokens; longer samples are an error
    heldout_nonmembers: int = 32  # non-members scored (never trained on) for the card's loss gap
    cache_frames: bool = True  # keep processed frames in memory across epochs (turn off for big data)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warmup, then a constant or cosine-decaying learning rate."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: Literal["constant", "cosine"] = "constant"  # after warmup: lr kept, or decayed to 0 at the last step
    epochs: int = 3
    max_steps: int = 0  # > 0: exactly this many optimizer steps (epochs is then ignored; seeded epochs keep cycling)
    micro_batch_size: int = 4  # per process
    grad_accum: int = 1
    grad_clip: float = 1.0


@dataclass(frozen=True)
class LoraSettings:
    """peft LoRA on the language model's linear layers (strategy: lora)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_regex: str = LANGUAGE_LINEAR_REGEX


@dataclass(frozen=True)
class EngineConfig:
    """DeepSpeed engine settings."""

    deepspeed: Path = Path("configs/deepspeed/zero2.json")  # ZeRO config (batch sizes filled in from optim)
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16 on GPU; CPU runs fp32
    save_every_steps: int = 0  # resumable checkpoint every N optimizer steps (0: each epoch end; -1: never)


@dataclass(frozen=True)
class TargetConfig:
    """A target model: a base fine-tuned on a split's members with one strategy.

    strategy: full = language model + projector (vision tower only if train_vision_tower);
    lora = LoRA adapters on the language model (projector only if train_projector);
    projector = the projector alone.
    """

    name: str
    base: Path  # Hugging Face model dir (a tiny base from `vidsme train base`, or a real checkpoint)
    output_dir: Path
    strategy: Literal["full", "lora", "projector"]
    data: DataConfig
    optim: OptimConfig = field(default_factory=OptimConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    engine: EngineConfig = field(default_factory=EngineConfig)
    train_vision_tower: bool = False
    train_projector: bool | None = None  # None: the strategy's default (full: yes, lora: no)
    seed: int = 0


@dataclass(frozen=True)
class ProbeConfig:
    """Where the base's video reading is measured after pretraining (train/video_reading.py): held-out
    multiple-choice rows with their own, a swapped and a blank video."""

    split: str | None = "synth-probe"  # a pool of held-out scenes (never pretrained on); None: not measured
    video_root: Path | None = None  # folder of its videos (None: data.video_root)
    max_videos: int = 100  # every row of the pool's first videos (each scored once per candidate and condition)
    n_bootstrap: int = 1000  # replicates (over videos) of the swapped-minus-own loss CI
    seed: int = 0  # of the swap and the bootstrap


@dataclass(frozen=True)
class TowerStageConfig:
    """An optional first stage of `vidsme train base`: the vision tower pretrained alone, per patch, on what the
    synthetic scenes show (train/perception_tower.py), before the language model learns to read it."""

    steps: int = 0  # optimizer steps (0: no tower stage; the tower trains end to end with the LM, or stays fixed)
    videos: int = 600  # the pool's first videos, every frame of each
    batch_frames: int = 64  # frames per step
    lr: float = 2.0e-3
    heldout_videos: int = 50  # of the probe pool, where the card's readout accuracy is measured (0: none)
    freeze: bool = True  # the tower keeps the stage's weights while projector and LM learn
    init_projector: bool = True  # the projector's first layer starts as the stage's readout head


@dataclass(frozen=True)
class OpeningConfig:
    """An optional opening of base pretraining: its first `steps` optimizer steps draw only the pool's rows of some
    perception kinds (ids ending in -<kind>: background, colour, shape, count, direction, order), then every row.

    Why: a language model that must learn all kinds at once answers from the text; one that first learns an
    easy kind (colour) learns to read the video tokens, and the later kinds use that (docs/TARGETS.md, issue 27).
    """

    steps: int = 0  # 0: no opening
    kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class BaseConfig:
    """The tiny base model: built from a config, pretrained on a pool with everything trainable."""

    name: str
    output_dir: Path
    data: DataConfig
    model: TinyVullmConfig = field(default_factory=TinyVullmConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    tower: TowerStageConfig = field(default_factory=TowerStageConfig)
    opening: OpeningConfig = field(default_factory=OpeningConfig)
    train_vision_tower: bool = True  # False: the tower keeps its initialisation (a fixed encoder); projector and LM learn
    seed: int = 0
