"""The one training loop: base pretraining and target fine-tuning, through DeepSpeed.

One process on CPU, several CPU processes (gloo) in tests, GPUs and nodes through the
usual launchers (`deepspeed`, `torchrun`, `accelerate launch`): the loop reads RANK /
WORLD_SIZE from the environment and drives `deepspeed.initialize` directly (accelerate
counts a single process on CPU-only machines, so it cannot drive the CPU tests).

Data order is a seeded permutation per epoch; each optimizer step consumes the next
micro_batch x world x grad_accum samples of it, each rank a fixed slice — so the set and
order of samples trained on is a function of (seed, samples), recorded in the card.
"""
from __future__ import annotations

import functools
import math
import os
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from vidsme.errors import VidsmeError
from vidsme.train.data import VideoTextDataset, collate
from vidsme.train.families import MODULE_GROUPS, module_groups


@dataclass
class LoopResult:
    """What the loop did, for the card."""

    steps: int
    epochs: int
    trained_ids: list[str]  # in the order they were consumed (all ranks)
    losses: list[float]  # mean train loss per optimizer step
    seconds: float


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _skip_cpu_shared_memory_op() -> None:
    """Keep DeepSpeed's CPU backend from JIT-compiling its shared-memory all-reduce (deepspeed_shm_comm).

    It only speeds up all-reduce between CPU processes of one machine, which gloo does too, and its first
    build compiles C++ for ~35 s (measured on this 2-core machine, a fresh TORCH_EXTENSIONS_DIR): a tenth of
    `make demo` on a fresh machine. DeepSpeed asks `deepspeed.ops.__compatible_ops__` before building it
    (deepspeed/comm/torch.py, build_shm_op), and that dict is probed once and kept, so marking the op
    incompatible there is enough.
    """
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def init_distributed() -> tuple[int, int]:
    """Start torch.distributed through DeepSpeed (gloo on CPU); returns (rank, world size)."""
    import deepspeed

    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if "RANK" not in os.environ:  # a plain `python` / `vidsme` run: a world of one
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(_free_port()))
    if not torch.distributed.is_initialized():
        if not torch.cuda.is_available():
            _skip_cpu_shared_memory_op()
        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def set_trainable(model, trainable_groups: Sequence[str]) -> dict[str, dict[str, int]]:
    """requires_grad on exactly the named module groups; parameter counts per group."""
    counts: dict[str, dict[str, int]] = {}
    for group, params in module_groups(model).items():
        on = group in trainable_groups
        for _, p in params:
            p.requires_grad_(on)
        total = sum(p.numel() for _, p in params)
        counts[group] = {"total": total, "trainable": total if on else 0}
    return counts


def apply_lora(model, settings, train_projector: bool):
    """Wrap with peft LoRA on the language model's linear layers matched by the regex."""
    from peft import LoraConfig, get_peft_model

    pattern = re.compile(settings.target_regex)
    targets = [name for name, module in model.named_modules()
               if isinstance(module, torch.nn.Linear) and pattern.fullmatch(name)]
    if not targets:
        raise VidsmeError(f"LoRA target regex {settings.target_regex!r} matches no linear layer of the model")
    set_trainable(model, ["projector"] if train_projector else [])
    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=targets, bias="none")
    peft_model = get_peft_model(model, config)
    if train_projector:  # get_peft_model freezes everything but the adapters
        for _, p in module_groups(model)["projector"]:
            p.requires_grad_(True)
    return peft_model


def trainable_counts(model) -> dict[str, dict[str, int]]:
    """Trainable / total parameters per module group (LoRA adapters count as 'lora')."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    counts = {g: {"total": 0, "trainable": 0} for g in (*MODULE_GROUPS, "lora")}
    for group, params in module_groups(base).items():
        params = [(n, p) for n, p in params if "lora_" not in n]  # adapters are counted apart
        counts[group]["total"] = sum(p.numel() for _, p in params)
        counts[group]["trainable"] = sum(p.numel() for _, p in params if p.requires_grad)
    lora = [p for n, p in model.named_parameters() if "lora_" in n]
    counts["lora"] = {"total": sum(p.numel() for p in lora), "trainable": sum(p.numel() for p in lora if p.requires_grad)}
    return counts


def make_dataset(rows: Sequence[dict], processor, model_config, data_cfg) -> VideoTextDataset:
    """Dataset with the model family's video inputs; a sample's max length is its video's
    token count + data_cfg.max_text_tokens.

    Every video must exist before training starts: a missing one is an error naming its
    samples, not a failure hours into a run (decoding errors still abort with the sample id).
    """
    missing = [r["id"] for r in rows if not (Path(data_cfg.video_root) / r["video"]).is_file()]
    if missing:
        raise VidsmeError(f"{len(missing)} sample(s) have no video under {data_cfg.video_root} "
                          f"(e.g. {', '.join(missing[:5])}); check data.video_root or run `vidsme splits verify`")
    return VideoTextDataset(
        rows, data_cfg.video_root, processor, model_config, template=data_cfg.template, n_frames=data_cfg.n_frames,
        max_text_tokens=data_cfg.max_text_tokens, cache_frames=data_cfg.cache_frames,
    )


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The seeded permutation of sample indices for one epoch."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


_OPENING_STREAM = 10**6  # the opening's epochs are seeded apart from the main epochs' (epoch numbers never get there)


@dataclass(frozen=True)
class DataOrder:
    """Which samples each optimizer step consumes: a pure function of (seed, step), so a resumed run continues the
    same order. An optional opening (its first `opening_steps` steps) draws from `opening` only, its own seeded
    epochs; then seeded epochs over every sample. A partial last window of an epoch is dropped."""

    n: int
    per_step: int
    seed: int
    total_steps: int
    opening: tuple[int, ...] = ()
    opening_steps: int = 0

    @property
    def steps_per_epoch(self) -> int:
        return self.n // self.per_step

    def epoch(self, global_step: int) -> int:
        """The main epoch a step belongs to (-1 during the opening)."""
        return -1 if global_step < self.opening_steps else (global_step - self.opening_steps) // self.steps_per_epoch

    def window(self, global_step: int) -> list[int]:
        """Sample indices of optimizer step `global_step` (all ranks, all micro batches)."""
        if global_step < self.opening_steps:
            epoch, step = divmod(global_step, len(self.opening) // self.per_step)
            order = _order(len(self.opening), self.seed, _OPENING_STREAM + epoch)
            return [self.opening[i] for i in order[step * self.per_step : (step + 1) * self.per_step]]
        epoch, step = divmod(global_step - self.opening_steps, self.steps_per_epoch)
        return list(_order(self.n, self.seed, epoch)[step * self.per_step : (step + 1) * self.per_step])


@functools.lru_cache(maxsize=4)
def _order(n: int, seed: int, epoch: int) -> tuple[int, ...]:
    return tuple(epoch_order(n, seed, epoch))


def data_order(n: int, optim, world: int, seed: int, opening: Sequence[int] = (), opening_steps: int = 0) -> DataOrder:
    """The run's DataOrder: `optim.max_steps` steps in all when set (the opening included), else the opening then
    `optim.epochs` epochs. Errors name what to change when there is not one step of data."""
    per_step = optim.micro_batch_size * world * optim.grad_accum
    if n // per_step == 0:
        raise VidsmeError(f"{n} samples is fewer than one optimizer step ({per_step} samples): lower "
                          "optim.micro_batch_size or optim.grad_accum, or use fewer processes")
    opening_steps = max(opening_steps, 0)
    if opening_steps > 0 and len(opening) // per_step == 0:
        raise VidsmeError(f"the opening's {len(opening)} samples are fewer than one optimizer step ({per_step} "
                          "samples): check opening.kinds against the pool's rows")
    if optim.max_steps > 0 and optim.max_steps < opening_steps:
        raise VidsmeError(f"optim.max_steps {optim.max_steps} is less than the opening's {opening_steps} steps")
    total = optim.max_steps if optim.max_steps > 0 else opening_steps + n // per_step * optim.epochs
    return DataOrder(n=n, per_step=per_step, seed=seed, total_steps=total, opening=tuple(opening),
                     opening_steps=opening_steps)


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """The learning rate of optimizer step `step` relative to optim.lr: linear warmup over `warmup_steps`, then
    constant, or a cosine from 1 at step 0 to 0 at `total_steps`."""
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    if schedule == "cosine":
        return warm * 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))
    if schedule != "constant":
        raise VidsmeError(f"unknown optim.schedule {schedule!r}; known: constant, cosine")
    return warm


def ds_config(engine_cfg, optim, world: int) -> dict:
    """DeepSpeed config: the JSON file's ZeRO settings + batch sizes and precision from ours."""
    import json

    path = Path(engine_cfg.deepspeed)
    if not path.is_file():
        raise VidsmeError(f"DeepSpeed config {path} does not exist (configs/deepspeed/ has zero2.json, zero3.json)")
    config = json.loads(path.read_text())
    config.update(
        train_micro_batch_size_per_gpu=optim.micro_batch_size,
        gradient_accumulation_steps=optim.grad_accum,
        train_batch_size=optim.micro_batch_size * optim.grad_accum * world,
        gradient_clipping=optim.grad_clip,
        steps_per_print=10**9,
    )
    config["bf16"] = {"enabled": engine_cfg.precision == "bf16"}
    return config


def run_training(model, dataset: VideoTextDataset, optim, engine_cfg, *, seed: int, pad_token_id: int,
                 desc: str, checkpoint_dir: Path | None = None, config_hash: str = "",
                 progress_bar: bool = True, opening: Sequence[int] = (), opening_steps: int = 0
                 ) -> tuple[torch.nn.Module, LoopResult]:
    """Train `model` (trainable flags already set) on `dataset`; returns (trained module, result).

    `opening` / `opening_steps`: the first steps draw only those sample indices (see DataOrder), under the same
    optimizer and learning-rate schedule as the rest.

    With `checkpoint_dir`, a checkpoint is written every `engine_cfg.save_every_steps` optimizer
    steps (0: at the end of each epoch; -1: never) and the newest complete one is resumed
    from, continuing the same data order — the loss curve equals an uninterrupted run's.
    Under ZeRO-3 the returned module holds each rank's shards only: see `gather_full_weights`.
    """
    import deepspeed

    from vidsme.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint

    rank, world = init_distributed()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise VidsmeError("no trainable parameters: check the strategy and module groups")
    optimizer = torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay)
    plan = data_order(len(dataset), optim, world, seed, opening, opening_steps)
    total_steps = plan.total_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total_steps, optim.warmup_steps, optim.schedule))
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler,
                                           config=ds_config(engine_cfg, optim, world))
    device = engine.device
    progress = {"steps_done": 0, "trained_ids": [], "losses": [], "config_hash": config_hash}
    if checkpoint_dir is not None and engine_cfg.save_every_steps >= 0:
        found = latest_checkpoint(checkpoint_dir)
        if found is not None:
            saved = load_checkpoint(found, engine, world, config_hash)
            progress = {k: saved[k] for k in progress}
            if rank == 0:
                print(f"resuming from {found} (step {progress['steps_done']} of {total_steps})")
    every = engine_cfg.save_every_steps or plan.steps_per_epoch
    start = time.perf_counter()
    bar = tqdm(total=total_steps, initial=progress["steps_done"], desc=desc, unit="step",
               disable=rank != 0 or not progress_bar)
    for global_step in range(progress["steps_done"], total_steps):
        window = plan.window(global_step)
        progress["trained_ids"] += [dataset.rows[i]["id"] for i in window]
        step_loss = 0.0
        for micro in range(optim.grad_accum):
            lo = (micro * world + rank) * optim.micro_batch_size
            batch = collate([dataset[i] for i in window[lo : lo + optim.micro_batch_size]], pad_token_id)
            inputs = {k: v.to(device) for k, v in batch.items() if k != "ids"}
            if engine_cfg.precision == "bf16":
                inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(torch.bfloat16)
            loss = engine(**inputs).loss
            engine.backward(loss)
            engine.step()
            step_loss += float(loss.detach()) / optim.grad_accum
        mean = torch.tensor([step_loss], device=device)
        torch.distributed.all_reduce(mean)
        progress["losses"].append(float(mean) / world)
        progress["steps_done"] = global_step + 1
        bar.update(1)
        bar.set_postfix(epoch=plan.epoch(global_step), loss=f"{progress['losses'][-1]:.4f}")
        done = progress["steps_done"]
        if checkpoint_dir is not None and engine_cfg.save_every_steps >= 0 and (done % every == 0) and done < total_steps:
            save_checkpoint(checkpoint_dir, engine, progress, rank, world)
    bar.close()
    losses = progress["losses"]
    if not all(math.isfinite(x) for x in losses):
        raise VidsmeError(f"training diverged (non-finite loss at step {next(i for i, x in enumerate(losses) if not math.isfinite(x))})")
    epochs = plan.epoch(total_steps - 1) + 1 if total_steps > plan.opening_steps else 0
    result = LoopResult(steps=total_steps, epochs=epochs, trained_ids=progress["trained_ids"], losses=losses,
                        seconds=time.perf_counter() - start)
    return engine.module, result


def is_partitioned(model: torch.nn.Module) -> bool:
    """Whether ZeRO-3 holds `model`'s weights as per-rank shards (DeepSpeed tags them with `ds_id`)."""
    return any(hasattr(p, "ds_id") for p in model.parameters())


def gather_full_weights(partitioned: torch.nn.Module, plain: torch.nn.Module | None, rank: int) -> None:
    """Copy the full weights of a ZeRO-3-partitioned module into `plain` on rank 0.

    Every rank must call it (each weight is all-gathered); `plain` is an unpartitioned module of
    the same architecture on rank 0 and None elsewhere. One module's weights are whole at a time
    (DeepSpeed's own consolidation works the same way), so no rank ever holds the whole model
    twice. Buffers are not partitioned by ZeRO-3 and are copied as they are.
    """
    import deepspeed

    targets = dict(plain.named_parameters(remove_duplicate=False)) if rank == 0 else {}
    filled: set[str] = set()
    for prefix, module in partitioned.named_modules():
        named = list(module.named_parameters(recurse=False))
        if not named:
            continue
        # modifier_rank=0: DeepSpeed frees the gathered copies on exit only when one is given
        with deepspeed.zero.GatheredParameters([p for _, p in named], modifier_rank=0), torch.no_grad():
            if rank == 0:
                for name, param in named:
                    key = f"{prefix}.{name}" if prefix else name
                    if key not in targets:
                        raise VidsmeError(f"cannot gather ZeRO-3 weight {key!r}: the rebuilt model has no such "
                                          "parameter (its architecture differs from the trained one)")
                    targets[key].copy_(param.detach())
                    filled.add(key)
    if rank == 0:
        unfilled = sorted(set(targets) - filled)
        if unfilled:
            raise VidsmeError(f"gathering ZeRO-3 weights left {len(unfilled)} parameter(s) of the rebuilt model "
                              f"unset (e.g. {unfilled[0]})")
        buffers = dict(plain.named_buffers())
        with torch.no_grad():
            for key, buf in partitioned.named_buffers():
                buffers[key].copy_(buf)


@torch.inference_mode()
def per_sample_loss(model, dataset: VideoTextDataset, pad_token_id: int, batch_size: int = 8) -> list[float]:
    """Mean answer-token loss of every sample (same inputs as training, no grad)."""
    model.eval()
    out = []
    device = next(model.parameters()).device
    for lo in range(0, len(dataset), batch_size):
        batch = collate([dataset[i] for i in range(lo, min(lo + batch_size, len(dataset)))], pad_token_id)
        inputs = {k: v.to(device) for k, v in batch.items() if k not in ("ids", "labels")}
        logits = model(**inputs).logits.float()
        labels = batch["labels"].to(device)
        shift_logits, shift_labels = logits[:, :-1], labels[:, 1:]
        token_loss = torch.nn.functional.cross_entropy(
            shift_logits.transpose(1, 2), shift_labels, ignore_index=-100, reduction="none")
        counted = (shift_labels != -100).sum(1).clamp(min=1)
        out += (token_loss.sum(1) / counted).tolist()
    model.train()
    return out
