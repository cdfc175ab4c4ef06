"""Resumable training checkpoints without pickle: safetensors for tensors, JSON for the rest.

A checkpoint is a folder `step-<N>/` holding
  model.safetensors            the trainable parameters (rank 0; ZeRO-1/2 only: under ZeRO-3
                               no rank holds them whole, and the partitions below are the weights)
  optim-rank<r>.safetensors/.json   each rank's DeepSpeed ZeRO optimizer partition (ZeRO-3: its
                               fp32 master partition of every trainable parameter + Adam state)
  state.json/.safetensors      scheduler, engine counters, data position, losses so far, trained
                               sample ids, config hash, world size, ZeRO stage, trainable
                               parameter names and full shapes
  rng.safetensors              every rank's torch (and CUDA) RNG state
  COMPLETE                     written last: a folder without it (killed mid-save) is ignored
Every rank writes its own optim-rank<r> file; rank 0 writes the rest. Nothing is written by
DeepSpeed's `engine.save_checkpoint` (torch pickles): the state dicts DeepSpeed's optimizers
return are flattened generically: tensors go to safetensors under their JSON path,
everything else must be plain JSON (numbers, strings, lists, dicts, None) — anything else
is an error naming its path, so nothing is ever silently dropped. Two documented
exceptions, both DeepSpeed objects: the loss scaler (constant in fp32/bf16 training; a
ZeRO-3 load gets the live one back) and param_slice_mappings (an index for DeepSpeed's
"universal" checkpoints, rebuilt from the live model).
"""
from __future__ import annotations

import enum
import json
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vidsme.errors import ModelFileError, VidsmeError
from vidsme.model_files import check_safetensors, first_line, read_json_file

COMPLETE = "COMPLETE"
# DeepSpeed's LossScaler object only changes with fp16 dynamic loss scaling, which vidsme
# does not use (fp32 on CPU, bf16 on GPU): loading keeps the live one. param_slice_mappings
# serves DeepSpeed's universal-checkpoint conversion only and is rebuilt at initialisation.
_DROPPED_KEYS = ("loss_scaler", "param_slice_mappings")


def flatten(obj: object, path: str, tensors: dict[str, torch.Tensor]) -> object:
    """A JSON skeleton of `obj` with tensors replaced by {"__tensor__": key} (stored in `tensors`)."""
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, enum.Enum):  # e.g. ZeroStageEnum: only its value matters on load
        return flatten(obj.value, path, tensors)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuples (DeepSpeed fragment addresses)
        return {"__tuple__": [flatten(v, f"{path}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten(v, f"{path}[{i}]", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten(v, f"{path}[{i}]", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        keys = list(obj)
        if all(isinstance(k, str) for k in keys):
            return {k: flatten(v, f"{path}.{k}", tensors) for k, v in obj.items() if k not in _DROPPED_KEYS}
        if all(isinstance(k, int) for k in keys):  # torch optimizer state is keyed by parameter index
            return {"__intdict__": [[k, flatten(v, f"{path}[{k}]", tensors)] for k, v in obj.items()]}
        raise VidsmeError(f"checkpoint: {path} has keys of mixed or unsupported types")
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise VidsmeError(f"checkpoint: {path} holds a {type(obj).__name__}, which cannot be saved without pickle")


def unflatten(obj: object, tensors: dict[str, torch.Tensor]) -> object:
    """Inverse of `flatten`."""
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(unflatten(v, tensors) for v in obj["__tuple__"])
        if "__intdict__" in obj:
            return {int(k): unflatten(v, tensors) for k, v in obj["__intdict__"]}
        return {k: unflatten(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unflatten(v, tensors) for v in obj]
    return obj


def save_state(stem: Path, state: object) -> None:
    """`stem`.json + `stem`.safetensors."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = flatten(state, stem.name, tensors)
    save_file(tensors, str(stem.with_suffix(".safetensors")))
    stem.with_suffix(".json").write_text(json.dumps(skeleton), encoding="utf-8")


def _fix(folder: Path) -> str:
    return f"delete {folder} and rerun the same command (training starts again from step 0)"


def _load_tensors(path: Path, fix: str) -> dict[str, torch.Tensor]:
    """A checkpoint's safetensors file, header checked first; ModelFileError naming it if damaged."""
    check_safetensors(path, fix)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ModelFileError(path, f"cannot be read ({first_line(err)})", fix) from None


def load_state(stem: Path) -> object:
    """Inverse of `save_state`; a missing or damaged file is a ModelFileError naming it."""
    fix = _fix(stem.parent)
    tensors = _load_tensors(stem.with_suffix(".safetensors"), fix)
    skeleton = read_json_file(stem.with_suffix(".json"), fix)
    try:
        return unflatten(skeleton, tensors)
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(stem.with_suffix(".json"), f"does not match {stem.name}.safetensors "
                                                        f"({type(err).__name__}: {first_line(err)})", fix) from None


def _zero_stage(engine) -> int:
    return int(engine.zero_optimization_stage())


def _trainable_shapes(engine) -> list[list]:
    """[name, full shape] of every trainable parameter in module order (ZeRO-3's `ds_shape`, not the shard's)."""
    return [[n, list(getattr(p, "ds_shape", p.shape))] for n, p in engine.module.named_parameters() if p.requires_grad]


def _gathered_rng(device) -> dict[str, torch.Tensor]:
    """Every rank's RNG states, gathered for rank 0 to write in one file ("torch-rank<r>", "cuda-rank<r>";
    "torch" is rank 0's, the name checkpoints from before per-rank RNG used)."""
    local = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        local["cuda"] = torch.cuda.get_rng_state()
    out: dict[str, torch.Tensor] = {}
    for key, state in local.items():  # fixed-size byte tensors, so a plain all_gather does (no pickled objects)
        parts = [torch.empty_like(state, device=device) for _ in range(torch.distributed.get_world_size())]
        torch.distributed.all_gather(parts, state.to(device))
        out.update({f"{key}-rank{r}": part.cpu() for r, part in enumerate(parts)})
    out["torch"] = out["torch-rank0"].clone()
    return out


def save_checkpoint(root: Path, engine, progress: dict, rank: int, world: int) -> Path:
    """Write `root/step-<N>/` (all ranks take part); returns the folder.

    ZeRO-1/2: rank 0 writes the trainable parameters (every rank holds them whole) and each
    rank its optimizer partition. ZeRO-3: no rank holds whole parameters, so there is no
    model.safetensors; each rank's optim-rank<r> file holds its fp32 master partitions
    (`fp32_flat_groups`, the weights the bf16/fp32 model is rebuilt from) with its Adam state.
    """
    folder = Path(root) / f"step-{progress['steps_done']:06d}"
    if rank == 0:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    torch.distributed.barrier()
    stage = _zero_stage(engine)
    save_state(folder / f"optim-rank{rank}", engine.optimizer.state_dict())
    rng = _gathered_rng(engine.device)
    if rank == 0:
        if stage < 3:
            params = {n: p.detach().cpu().contiguous() for n, p in engine.module.named_parameters() if p.requires_grad}
            save_file(params, str(folder / "model.safetensors"))
        save_file(rng, str(folder / "rng.safetensors"))
        state = dict(progress, world_size=world, zero_stage=stage, trainable=_trainable_shapes(engine),
                     scheduler=engine.lr_scheduler.state_dict(), global_steps=engine.global_steps,
                     global_samples=engine.global_samples, micro_steps=engine.micro_steps)
        save_state(folder / "state", state)
    torch.distributed.barrier()
    if rank == 0:
        (folder / COMPLETE).write_text("ok\n")
        for old in sorted(Path(root).glob("step-*"))[:-1]:  # keep the newest complete one only
            shutil.rmtree(old, ignore_errors=True)
    torch.distributed.barrier()
    return folder


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint under `root`, if any."""
    done = sorted(p for p in Path(root).glob("step-*") if (p / COMPLETE).is_file())
    return done[-1] if done else None


def _all_ranks_read(ok: bool, device) -> bool:
    """Whether every rank read its files: all ranks apply a checkpoint or none does (a rank that
    applied one alone would wait forever in the next collective for the rank that gave up)."""
    flag = torch.tensor([1 if ok else 0], device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag.item())


def _read_checkpoint(folder: Path, world: int, config_hash: str, rank: int, fix: str) -> tuple:
    """(state, trainable parameters, RNG states, optimizer states) of a checkpoint, every file checked."""
    state = load_state(folder / "state")
    if not isinstance(state, dict) or not {"config_hash", "world_size", "scheduler"} <= state.keys():
        raise ModelFileError(folder / "state.json", "lacks config_hash, world_size or scheduler", fix)
    if state["config_hash"] != config_hash:
        raise VidsmeError(f"checkpoint {folder} was written by a different config; delete it or restore the config")
    if state["world_size"] != world:
        raise VidsmeError(f"checkpoint {folder} was written by {state['world_size']} processes; resume with the "
                          f"same number (now {world})")
    if state.get("zero_stage", 2) not in (0, 1, 2, 3):
        raise ModelFileError(folder / "state.json", f"has zero_stage {state['zero_stage']!r}, not 0-3", fix)
    zero3 = state.get("zero_stage", 2) == 3  # checkpoints from before ZeRO-3 support were ZeRO-1/2
    params = {} if zero3 else _load_tensors(folder / "model.safetensors", fix)
    rng = _load_tensors(folder / "rng.safetensors", fix)
    if "torch" not in rng:
        raise ModelFileError(folder / "rng.safetensors", "holds no torch RNG state", fix)
    if not zero3:
        return state, params, rng, [load_state(folder / f"optim-rank{r}") for r in range(world)]
    for r in range(world):  # headers only: another rank reads (and fully checks) its own
        check_safetensors(folder / f"optim-rank{r}.safetensors", fix)
        read_json_file(folder / f"optim-rank{r}.json", fix)
    return state, params, rng, [load_state(folder / f"optim-rank{r}") if r == rank else None for r in range(world)]


def load_checkpoint(folder: Path, engine, world: int, config_hash: str) -> dict:
    """Restore model, optimizer, scheduler, counters and RNG; returns the saved progress.

    Every file is read (and so checked) on every rank before anything is applied to the engine.
    ZeRO-1/2: each rank reads all ranks' optimizer files (DeepSpeed merges them). ZeRO-3: each
    rank reads its own partition file and checks the others' headers (a rank's file is 1/world
    of the fp32 weights plus Adam state: reading all of them would multiply the I/O by world).
    """
    fix = _fix(folder)
    distributed = torch.distributed.is_initialized()
    rank = torch.distributed.get_rank() if distributed else 0
    problem: Exception | None = None
    try:
        state, params, rng, optim_states = _read_checkpoint(folder, world, config_hash, rank, fix)
    except Exception as err:  # re-raised below, once the other ranks know this one gave up
        problem = err
    if distributed and not _all_ranks_read(problem is None, getattr(engine, "device", "cpu")) and problem is None:
        problem = VidsmeError(f"checkpoint {folder}: another process could not read its files (its error names the "
                              f"file); {fix}")
    if problem is not None:
        raise problem
    stage, saved_stage = _zero_stage(engine), state.get("zero_stage", 2)
    if (saved_stage == 3) != (stage == 3):
        raise VidsmeError(f"checkpoint {folder} was written under ZeRO stage {saved_stage}, this run uses stage "
                          f"{stage}: set engine.deepspeed back to the config it was written with, or {fix}")
    if "trainable" in state and state["trainable"] != _trainable_shapes(engine):
        raise VidsmeError(f"checkpoint {folder} holds other trainable parameters than this model (were the strategy, "
                          f"LoRA settings or base changed?); {fix}")
    named = dict(engine.module.named_parameters())
    missing = sorted(set(params) ^ {n for n, p in named.items() if p.requires_grad}) if stage < 3 else []
    if missing:
        raise VidsmeError(f"checkpoint {folder} does not match the model's trainable parameters: {missing[:5]}; {fix}")
    try:  # files that parse but whose contents do not fit this model/optimizer/scheduler
        if stage == 3:
            _load_zero3(engine, optim_states, rank)
        else:
            with torch.no_grad():
                for name, value in params.items():
                    named[name].copy_(value)
            if stage in (1, 2):
                engine.optimizer.load_state_dict(optim_states, load_optimizer_states=True,
                                                 load_from_fp32_weights=True)
            else:
                engine.optimizer.load_state_dict(optim_states[rank])
        engine.lr_scheduler.load_state_dict(state["scheduler"])
        engine.global_steps, engine.global_samples = state["global_steps"], state["global_samples"]
        engine.micro_steps = state["micro_steps"]
        torch.set_rng_state(rng.get(f"torch-rank{rank}", rng["torch"]))
        if torch.cuda.is_available() and f"cuda-rank{rank}" in rng:
            torch.cuda.set_rng_state(rng[f"cuda-rank{rank}"])
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
        raise ModelFileError(folder, f"does not fit this run's model or optimizer ({type(err).__name__}: "
                                     f"{first_line(err)})", fix) from None
    return state


def _load_zero3(engine, optim_states: list, rank: int) -> None:
    """Apply this rank's ZeRO-3 partition the way DeepSpeed's own `engine.load_checkpoint` does:
    every parameter partitioned first, the fp32 master partitions and Adam state copied in (the
    bf16/fp32 working shards are rebuilt from them), persistent parameters gathered again after."""
    own = dict(optim_states[rank])
    own["loss_scaler"] = engine.optimizer.loss_scaler  # not saved (see _DROPPED_KEYS): keep the live one
    engine.optimizer.checkpoint_event_prologue()
    engine.optimizer.load_state_dict([own if r == rank else None for r in range(len(optim_states))],
                                     load_optimizer_states=True, load_from_fp32_weights=True)
    engine.optimizer.checkpoint_event_epilogue()
