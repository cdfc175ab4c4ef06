"""Thin recipes: `vidsme train base` and `vidsme train target`. The library does the work.

A target directory is a normal Hugging Face model directory (LoRA adapters merged) plus
`target.json`, the card that every benchmark result points to by its sha256.
"""
from __future__ import annotations

import json
import shutil
import statistics
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


def _load_base(path: Path, fix: str | None = None):
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


def _up_to_date(out: Path, card_name: str, cfg) -> bool:
    """A finished run of exactly this config is already there (rerunning reuses it)."""
    from vidsme.model_files import check_model_dir

    card = Path(out) / card_name
    if not card.is_file() or not (Path(out) / "config.json").is_file():
        return False
    try:
        recorded = json.loads(card.read_text(encoding="utf-8")).get("config_hash")
    except (OSError, ValueError, AttributeError):  # a damaged card: this run rewrites it
        print(f"{card}: unreadable, training again")
        return False
    if recorded != config_hash(cfg):
        return False
    try:  # same config, but a damaged model file must be rebuilt, not reused (cheap: headers only)
        check_model_dir(Path(out), "")
    except ModelFileError as err:
        print(f"{err.path}: {err.problem}; training again")
        return False
    return True


def pretrain_base(cfg: BaseConfig, *, progress: bool = True) -> Path:
    """Build the tiny VULLM from its config and pretrain it on a pool, everything trainable (`progress`: a step bar)."""
    from vidsme.train.tiny_model import build_tiny_vullm, tokenizer_corpus

    if _up_to_date(cfg.output_dir, BASE_CARD_FILE, cfg):
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
    if rank == 0:
        build_tiny_vullm(cfg.model, tokenizer_corpus(rows), init_dir, overwrite=True)  # deterministic: a resume rebuilds it identically
    torch.distributed.barrier()
    model, processor = _load_base(init_dir, fix="rerun `vidsme train base CONFIG`, which rebuilds it")
    set_trainable(model, ("vision_tower", "projector", "language_model"))
    dataset = make_dataset(rows, processor, model.config, cfg.data)
    trained, result = run_training(model, dataset, cfg.optim, cfg.engine, seed=cfg.seed,
                                   pad_token_id=processor.tokenizer.pad_token_id, desc=f"pretrain {cfg.name}",
                                   checkpoint_dir=out / "checkpoints", config_hash=config_hash(cfg),
                                   progress_bar=progress)
    trained = _unpartitioned(trained, rank, lambda: _load_base(init_dir)[0])
    if rank == 0:
        _save(trained, processor, out)
        shutil.rmtree(init_dir, ignore_errors=True)
        shutil.rmtree(out / "checkpoints", ignore_errors=True)  # finished: the model replaces them
        write_json_atomic(out / BASE_CARD_FILE, {
            "name": cfg.name, "kind": "base", "config": config_to_dict(cfg), "config_hash": config_hash(cfg),
            "pool": {"name": split.name, "version": split.card.version,
                     "manifest_sha256": split.card.manifest_sha256},
            "steps": result.steps, "epochs": result.epochs, "trained_ids_sha256": ids_sha256(result.trained_ids),
            "final_train_loss": result.losses[-1], "train_seconds": round(result.seconds, 2),
            "vidsme": __version__, "git_commit": git_commit(), "libraries": library_versions(),
        })
    torch.distributed.barrier()
    return out


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


def finetune_target(cfg: TargetConfig, *, progress: bool = True) -> Path:
    """Fine-tune `cfg.base` on the split's members with `cfg.strategy`; write model + card (`progress`: a step bar)."""
    if _up_to_date(cfg.output_dir, CARD_FILE, cfg):
        print(f"{cfg.output_dir}: up to date (same config), not retrained")
        return Path(cfg.output_dir)
    _seed_everything(cfg.seed)
    rank, world = init_distributed()
    split, members, nonmembers = _split_rows(cfg.data.split)
    if split.is_pool or not members:
        raise VidsmeError(f"split {split.name!r} has no members to fine-tune on")
    model, processor = _load_base(cfg.base)
    train_projector = cfg.train_projector if cfg.train_projector is not None else cfg.strategy == "full"
    model = apply_strategy(model, cfg)
    counts = trainable_counts(model)
    dataset = make_dataset(members, processor, model.config, cfg.data)
    out = Path(cfg.output_dir)
    trained, result = run_training(model, dataset, cfg.optim, cfg.engine, seed=cfg.seed,
                                   pad_token_id=processor.tokenizer.pad_token_id, desc=f"train {cfg.name}",
                                   checkpoint_dir=out / "checkpoints", config_hash=config_hash(cfg),
                                   progress_bar=progress)
    leaked = set(result.trained_ids) & {r["id"] for r in nonmembers}
    if leaked:  # cannot happen by construction; checked because every result depends on it
        raise VidsmeError(f"non-member ids entered training: {sorted(leaked)[:5]}")

    def rebuild():
        plain = _load_base(cfg.base)[0]
        return apply_lora(plain, cfg.lora, train_projector) if cfg.strategy == "lora" else plain

    trained = _unpartitioned(trained, rank, rebuild)
    if rank == 0:
        final = trained.merge_and_unload() if cfg.strategy == "lora" else trained
        heldout = make_dataset(nonmembers[: cfg.data.heldout_nonmembers], processor, final.config, cfg.data)
        member_probe = make_dataset(members[: cfg.data.heldout_nonmembers], processor, final.config, cfg.data)
        pad = processor.tokenizer.pad_token_id
        member_loss = statistics.fmean(per_sample_loss(final, member_probe, pad))
        heldout_loss = statistics.fmean(per_sample_loss(final, heldout, pad)) if len(heldout) else None
        _save(final, processor, out)
        shutil.rmtree(out / "checkpoints", ignore_errors=True)  # finished: the model replaces them
        write_json_atomic(out / CARD_FILE, {
            "name": cfg.name,
            "kind": "target",
            "base": {"path": str(cfg.base), "sha256": tree_sha256(Path(cfg.base))},
            "strategy": cfg.strategy,
            "trainable_parameters": counts,
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
            "loss_members_probe": member_loss,
            "loss_heldout_nonmembers": heldout_loss,
            "n_heldout_nonmembers": len(heldout),
            "generalisation_gap": None if heldout_loss is None else heldout_loss - member_loss,
            "train_seconds": round(result.seconds, 2),
            "config": config_to_dict(cfg),
            "config_hash": config_hash(cfg),
            "vidsme": __version__,
            "git_commit": git_commit(),
            "libraries": library_versions(),
        })
    torch.distributed.barrier()
    return out
