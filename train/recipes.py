"""Thin recipes: `vidsme train base` and `vidsme train target`. The library does the work.

A target directory is a normal Hugging Face model directory (LoRA adapters merged) plus
`target.json`, the card that every benchmark result points to by its sha256.
"""
from __future__ import annotations

import copy
import json
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from vidsme import __version__
from vidsme.atomic import write_json_atomic
from vidsme.config import config_hash, config_to_dict
from vidsme.data_splits.registry import load_split
from vidsme.errors import ModelFileError, VidsmeError
from vidsme.provenance import git_commit, ids_sha256, library_versions, tree_sha256
from vidsme.train.config import BaseConfig, TargetConfig
from vidsme.train.loop import (
    LoopResult,
    apply_lora,
    gather_full_weights,
    init_distributed,
    is_partitioned,
    make_dataset,
    per_sample_loss,
    run_training,
    set_trainable,
    trainable_counts,
)

CARD_FILE = "target.json"
BASE_CARD_FILE = "base.json"


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_base(path: Path, fix: str | None = None):
    """(model, processor) of a base directory, its files checked first; `fix` overrides the hint
    a damaged file gets (default: retrain or restore it, or fix the target config's `base`)."""
    from vidsme.model_files import load_pretrained, model_fix

    if not (Path(path) / "config.json").is_file():
        raise VidsmeError(f"base model {path} is not a Hugging Face model directory (no config.json); "
                          "build the tiny base with `vidsme train base CONFIG` or point `base` at a checkpoint")
    fix = fix or model_fix(Path(path), "the target config's `base` (or override it: base=DIR)")
    return load_pretrained(Path(path), dtype=torch.float32, fix=fix)


def _split_rows(split_name: str) -> tuple[object, list[dict], list[dict]]:
    split = load_split(split_name)
    rows = split.rows()
    members = [r for r in rows if r["label"] == "member"]
    nonmembers = [r for r in rows if r["label"] == "nonmember"]
    return split, members, nonmembers


def _save(model, processor, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)


def _unpartitioned(trained, rank: int, rebuild):
    """The trained model whole on rank 0 (None elsewhere under ZeRO-3), ready to evaluate and save.

    ZeRO-1/2 modules are whole on every rank and returned as they are. Under ZeRO-3 each rank
    holds 1/world of every weight: `rebuild()` makes a plain model of the same architecture on
    rank 0 (the base reloaded, LoRA applied again) and every rank takes part in gathering the
    trained weights into it, so the usual save writes full weights (no shards to consolidate).
    """
    if not is_partitioned(trained):
        return trained
    plain = None
    if rank == 0:
        first = next(trained.parameters())  # the trained dtype (bf16 on GPU) and the device its shards live on
        plain = rebuild().to(device=first.ds_tensor.device, dtype=first.dtype)
    gather_full_weights(trained, plain, rank)
    return plain


def _up_to_date(out: Path, card_name: str, cfg, inputs: dict[str, object] | None = None) -> bool:
    """A finished run of exactly this config, on the same inputs, is already there (rerunning reuses it).
    `inputs`: card key -> the value the card must record (the pool's or split's manifest sha256, the base's card
    sha256): a pool rebuilt with other rows, or a base retrained, trains again."""
    from vidsme.model_files import check_model_dir

    card = Path(out) / card_name
    if not card.is_file() or not (Path(out) / "config.json").is_file():
        return False
    try:
        data = json.loads(card.read_text(encoding="utf-8"))
        recorded = data.get("config_hash")
        seen = {key: _dotted(data, key) for key in inputs or {}}
    except (OSError, ValueError, AttributeError):  # a damaged card: this run rewrites it
        print(f"{card}: unreadable, training again")
        return False
    if recorded != config_hash(cfg):
        return False
    changed = [key for key, value in (inputs or {}).items() if seen[key] != value]
    if changed:
        print(f"{out}: same config, but its {', '.join(changed)} changed; training again")
        return False
    try:  # same config, but a damaged model file must be rebuilt, not reused (cheap: headers only)
        check_model_dir(Path(out), "")
    except ModelFileError as err:
        print(f"{err.path}: {err.problem}; training again")
        return False
    return True


def _dotted(data: dict, key: str) -> object:
    for part in key.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _card_sha256(folder: Path) -> str | None:
    """sha256 of a model folder's vidsme card (base.json or target.json), None for a checkpoint without one."""
    from vidsme.provenance import sha256_file

    for name in (BASE_CARD_FILE, CARD_FILE):
        if (Path(folder) / name).is_file():
            return sha256_file(Path(folder) / name)
    return None


def pretrain_base(cfg: BaseConfig, *, progress: bool = True) -> Path:
    """Build the tiny VULLM from its config and pretrain it on a pool, everything trainable (`progress`: a step bar)."""
    from vidsme.train.tiny_model import build_tiny_vullm, tokenizer_corpus

    pool_sha = load_split(cfg.data.split).card.manifest_sha256
    if _up_to_date(cfg.output_dir, BASE_CARD_FILE, cfg, {"pool.manifest_sha256": pool_sha}):
        print(f"{cfg.output_dir}: up to date (same config), not retrained")
        return Path(cfg.output_dir)
    _seed_everything(cfg.seed)
    rank, _ = init_distributed()
    split = load_split(cfg.data.split)
    if not split.is_pool:
        raise VidsmeError(f"base pretraining uses a pool (e.g. synth-pretrain), not the split {split.name!r}: "
                          "its members and non-members must stay unseen by the base")
    rows = split.rows()
    out = Path(cfg.output_dir)
    init_dir = out / "init"
    tower_stage = None
    if rank == 0:
        build_tiny_vullm(cfg.model, tokenizer_corpus(rows), init_dir, overwrite=True)  # deterministic: a resume rebuilds it identically
        if cfg.tower.steps > 0:
            tower_stage = pretrain_tower(cfg, init_dir)
    torch.distributed.barrier()
    model, processor = load_base(init_dir, fix="rerun `vidsme train base CONFIG`, which rebuilds it")
    set_trainable(model, base_trainable_groups(cfg))
    dataset = make_dataset(rows, processor, model.config, cfg.data)
    trained, result = run_training(model, dataset, cfg.optim, cfg.engine, seed=cfg.seed,
                                   pad_token_id=processor.tokenizer.pad_token_id, desc=f"pretrain {cfg.name}",
                                   checkpoint_dir=out / "checkpoints", config_hash=config_hash(cfg),
                                   progress_bar=progress, opening=opening_rows(rows, cfg.opening.kinds, split.name),
                                   opening_steps=cfg.opening.steps)
    trained = _unpartitioned(trained, rank, lambda: load_base(init_dir)[0])
    if rank == 0:
        reading = measure_base_reading(cfg, trained, processor, progress=progress)
        _save(trained, processor, out)
        shutil.rmtree(init_dir, ignore_errors=True)
        shutil.rmtree(out / "checkpoints", ignore_errors=True)  # finished: the model replaces them
        write_json_atomic(out / BASE_CARD_FILE, {
            "name": cfg.name, "kind": "base", "config": config_to_dict(cfg), "config_hash": config_hash(cfg),
            "pool": {"name": split.name, "version": split.card.version,
                     "manifest_sha256": split.card.manifest_sha256},
            "steps": result.steps, "epochs": result.epochs, "trained_ids_sha256": ids_sha256(result.trained_ids),
            "final_train_loss": result.losses[-1], "train_seconds": round(result.seconds, 2),
            "video_reading": reading, "tower_stage": tower_stage,
            "vidsme": __version__, "git_commit": git_commit(), "libraries": library_versions(),
        })
    torch.distributed.barrier()
    return out


def base_trainable_groups(cfg: BaseConfig) -> tuple[str, ...]:
    """What the LM stage of base pretraining trains: projector and LM, and the tower unless it is a fixed encoder
    (train_vision_tower: false) or the tower stage froze it."""
    tower_too = cfg.train_vision_tower and not (cfg.tower.steps > 0 and cfg.tower.freeze)
    return ("vision_tower", "projector", "language_model") if tower_too else ("projector", "language_model")


def opening_rows(rows: list[dict], kinds: tuple[str, ...], pool: str) -> list[int]:
    """Indices of the pool rows the opening draws from: perception rows of `kinds` (ids ending in -<kind>)."""
    from vidsme.data_splits.synthetic import PERCEPTION_KINDS

    unknown = [k for k in kinds if k not in PERCEPTION_KINDS]
    if unknown:
        raise VidsmeError(f"opening.kinds: unknown perception kind(s) {', '.join(unknown)}; known: "
                          f"{', '.join(PERCEPTION_KINDS)}")
    chosen = [i for i, r in enumerate(rows) if r["id"].rsplit("-", 1)[-1] in kinds]
    if kinds and not chosen:
        raise VidsmeError(f"opening.kinds {', '.join(kinds)}: pool {pool} has no such perception rows (a pool built "
                          "with perception questions, e.g. synth-pretrain, has them)")
    return chosen


def pretrain_tower(cfg: BaseConfig, init_dir: Path) -> dict:
    """The tower stage (cfg.tower, train/perception_tower.py) on the freshly built model in `init_dir`, saved back
    there; returns its record for the base card (steps, losses, seconds, held-out readout accuracy)."""
    from vidsme.train import perception_tower as pt

    model, processor = load_base(init_dir)
    start = time.perf_counter()
    size, patch = model.config.vision_config.image_size, model.config.vision_config.patch_size
    frames = pt.pool_frames(cfg.data.split, cfg.tower.videos, cfg.data.video_root, processor, size, patch)
    head, losses = pt.train_tower(model, frames, cfg.tower, cfg.seed)
    record = {"steps": cfg.tower.steps, "frames": len(frames.pixels), "first_loss": losses[0],
              "final_loss": losses[-1], "seconds": round(time.perf_counter() - start, 2), "heldout": None}
    if cfg.tower.heldout_videos > 0 and cfg.probe.split is not None:
        heldout = pt.pool_frames(cfg.probe.split, cfg.tower.heldout_videos, Path(cfg.probe.video_root or
                                 cfg.data.video_root), processor, size, patch)
        record["heldout"] = {"pool": cfg.probe.split, **pt.readout_accuracy(model.model.vision_tower, head, heldout)}
        print(f"tower stage: held-out readout {record['heldout']}")
    if cfg.tower.init_projector:
        pt.init_projector_from_head(model, head)
    model.save_pretrained(init_dir)
    return record


def measure_base_reading(cfg: BaseConfig, model, processor, *, progress: bool = True) -> dict | None:
    """The base's video reading on its probe pool (cfg.probe), printed and returned for the base card; None when
    the config measures none (probe.split: null)."""
    from vidsme.train.video_reading import ReadingSettings, format_video_reading, measure_video_reading

    probe = cfg.probe
    if probe.split is None:
        return None
    split = load_split(probe.split)
    video_root = Path(probe.video_root or cfg.data.video_root)
    rows = [r for r in split.rows() if r.get("candidates")]
    first = list(dict.fromkeys(r["video"] for r in rows))[: probe.max_videos]
    keep = set(first)
    rows = [r for r in rows if r["video"] in keep]
    missing = [r["id"] for r in rows if not (video_root / r["video"]).is_file()]
    if missing:
        raise VidsmeError(f"probe pool {probe.split}: {len(missing)} video(s) missing under {video_root} (e.g. "
                          f"{missing[0]}); build it with `vidsme splits build {probe.split} --video-root {video_root}`, "
                          "or set probe.split=null to skip the measurement")
    settings = ReadingSettings(n_frames=cfg.data.n_frames, template=cfg.data.template,
                               max_text_tokens=cfg.data.max_text_tokens, seed=probe.seed, n_bootstrap=probe.n_bootstrap)
    result = measure_video_reading(model, processor, rows, video_root, settings, progress=progress)
    result["probe"] = {"split": split.name, "manifest_sha256": split.card.manifest_sha256}
    print(format_video_reading(result))
    return result


def train_or_reuse(cfg: BaseConfig | TargetConfig, *, progress: bool = True) -> bool:
    """Run the recipe of `cfg` (base pretraining or target fine-tuning); True when it trained, False when
    it reused an up-to-date model (only training rewrites the card)."""
    recipe, card_file = (pretrain_base, BASE_CARD_FILE) if isinstance(cfg, BaseConfig) else (finetune_target, CARD_FILE)
    card = Path(cfg.output_dir) / card_file
    before = card.read_bytes() if card.is_file() else None
    recipe(cfg, progress=progress)
    return before is None or before != card.read_bytes()


def apply_strategy(model: torch.nn.Module, cfg: TargetConfig) -> torch.nn.Module:
    """Make trainable what `cfg.strategy` trains; returns the model to train (a peft wrapper for lora).

    full = language model (+ projector unless train_projector=false, + vision tower with
    train_vision_tower); lora = adapters on the language model's linears (+ projector with
    train_projector=true; train_vision_tower is not used); projector = the projector alone.
    The dry run applies it to a weightless skeleton, so its counts are training's own.
    """
    train_projector = cfg.train_projector if cfg.train_projector is not None else cfg.strategy == "full"
    if cfg.strategy == "lora":
        return apply_lora(model, cfg.lora, train_projector)
    groups = {"full": ["language_model"], "projector": ["projector"]}[cfg.strategy]
    groups += (["projector"] if train_projector and "projector" not in groups else [])
    groups += (["vision_tower"] if cfg.train_vision_tower else [])
    set_trainable(model, groups)
    return model


@dataclass
class Finetuned:
    """What one fine-tuning run did, for its card (the model is already saved)."""

    counts: dict  # trainable / total parameters per module group
    result: LoopResult
    probe_trained_loss: float  # mean loss of the probe of trained rows
    probe_heldout_loss: float | None  # mean loss of the probe of rows never trained on (None: no such rows)
    n_probe_heldout: int


def finetune_model(cfg: TargetConfig, train_set, probe_trained, probe_heldout, out: Path, *, seed: int,
                   config_key: str, base: tuple | None = None, progress: bool = True, desc: str | None = None
                   ) -> Finetuned | None:
    """Fine-tune the base of `cfg` with `cfg.strategy` on `train_set` (a dataset of rows) and save it to
    `out`; returns what happened on rank 0 (None on other ranks).

    `probe_trained` / `probe_heldout`: datasets whose mean loss the card records (the generalisation gap).
    `config_key` identifies the run for its resumable checkpoints under out/checkpoints. `base`: the
    (model, processor) of cfg.base already loaded (a copy is trained: shadow models load the base once
    per process); None loads it. Everything random is seeded by `seed` before the strategy is applied.
    """
    _seed_everything(seed)
    rank, _ = init_distributed()

    def load():
        return (copy.deepcopy(base[0]), base[1]) if base is not None else load_base(cfg.base)

    model, processor = load()
    train_projector = cfg.train_projector if cfg.train_projector is not None else cfg.strategy == "full"
    model = apply_strategy(model, cfg)
    counts = trainable_counts(model)
    trained, result = run_training(model, train_set, cfg.optim, cfg.engine, seed=seed,
                                   pad_token_id=processor.tokenizer.pad_token_id, desc=desc or f"train {cfg.name}",
                                   checkpoint_dir=out / "checkpoints", config_hash=config_key, progress_bar=progress)

    def rebuild():
        plain = load()[0]
        return apply_lora(plain, cfg.lora, train_projector) if cfg.strategy == "lora" else plain

    trained = _unpartitioned(trained, rank, rebuild)
    if rank != 0:
        return None
    final = trained.merge_and_unload() if cfg.strategy == "lora" else trained
    pad = processor.tokenizer.pad_token_id
    trained_loss = statistics.fmean(per_sample_loss(final, probe_trained, pad))
    heldout_loss = statistics.fmean(per_sample_loss(final, probe_heldout, pad)) if len(probe_heldout) else None
    _save(final, processor, out)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # finished: the model replaces them
    return Finetuned(counts=counts, result=result, probe_trained_loss=trained_loss, probe_heldout_loss=heldout_loss,
                     n_probe_heldout=len(probe_heldout))


def finetune_target(cfg: TargetConfig, *, progress: bool = True) -> Path:
    """Fine-tune `cfg.base` on the split's members with `cfg.strategy`; write model + card (`progress`: a step bar)."""
    inputs = {"split.manifest_sha256": load_split(cfg.data.split).card.manifest_sha256,
              "base.card_sha256": _card_sha256(cfg.base)}
    if _up_to_date(cfg.output_dir, CARD_FILE, cfg, inputs):
        print(f"{cfg.output_dir}: up to date (same config, split and base), not retrained")
        return Path(cfg.output_dir)
    rank, world = init_distributed()
    split, members, nonmembers = _split_rows(cfg.data.split)
    if split.is_pool or not members:
        raise VidsmeError(f"split {split.name!r} has no members to fine-tune on")
    base = load_base(cfg.base)
    model_config, processor = base[0].config, base[1]
    out = Path(cfg.output_dir)
    done = finetune_model(
        cfg, make_dataset(members, processor, model_config, cfg.data),
        make_dataset(members[: cfg.data.heldout_nonmembers], processor, model_config, cfg.data),
        make_dataset(nonmembers[: cfg.data.heldout_nonmembers], processor, model_config, cfg.data),
        out, seed=cfg.seed, config_key=config_hash(cfg), base=base, progress=progress)
    if rank == 0:
        result = done.result
        leaked = set(result.trained_ids) & {r["id"] for r in nonmembers}
        if leaked:  # cannot happen by construction; checked because every result depends on it
            raise VidsmeError(f"non-member ids entered training: {sorted(leaked)[:5]}")
        heldout_loss = done.probe_heldout_loss
        write_json_atomic(out / CARD_FILE, {
            "name": cfg.name,
            "kind": "target",
            "base": {"path": str(cfg.base), "sha256": tree_sha256(Path(cfg.base)),
                     "card_sha256": inputs["base.card_sha256"]},
            "strategy": cfg.strategy,
            "trainable_parameters": done.counts,
            "split": {"name": split.name, "version": split.card.version,
                      "manifest_sha256": split.card.manifest_sha256},
            "trained_ids_sha256": ids_sha256(result.trained_ids),
            "n_trained_samples": len(set(result.trained_ids)),
            "epochs": result.epochs,
            "steps": result.steps,
            "world_size": world,
            "seed": cfg.seed,
            "final_train_loss": result.losses[-1],
            "train_loss_per_step": result.losses,
            "loss_members_probe": done.probe_trained_loss,
            "loss_heldout_nonmembers": heldout_loss,
            "n_heldout_nonmembers": done.n_probe_heldout,
            "generalisation_gap": None if heldout_loss is None else heldout_loss - done.probe_trained_loss,
            "train_seconds": round(result.seconds, 2),
            "config": config_to_dict(cfg),
            "config_hash": config_hash(cfg),
            "vidsme": __version__,
            "git_commit": git_commit(),
            "libraries": library_versions(),
        })
    torch.distributed.barrier()
    return out
