"""Resumable training checkpoints without pickle: safetensors for tensors, JSON for the rest.

A checkpoint is a folder `step-<N>/` holding
  model.safetensors            the trainable parameters (rank 0)
  optim-rank<r>.safetensors/.json   each rank's DeepSpeed ZeRO optimizer partition
  state.json                   scheduler, engine counters, data position, losses so far,
                               trained sample ids, config hash, world size
  rng.safetensors              torch's RNG state
  COMPLETE                     written last: a folder without it (killed mid-save) is ignored
State dicts are flattened generically: tensors go to safetensors under their JSON path,
everything else must be plain JSON (numbers, strings, lists, dicts, None) — anything else
is an error naming its path, so nothing is ever silently dropped. Two documented
exceptions, both DeepSpeed objects the resume path never reads: the loss scaler (constant
in fp32/bf16 training) and param_slice_mappings (an index for DeepSpeed's "universal"
checkpoints, rebuilt from the live model).
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


def save_checkpoint(root: Path, engine, progress: dict, rank: int, world: int) -> Path:
    """Write `root/step-<N>/` (all ranks take part); returns the folder."""
    if _zero_stage(engine) == 3:
        raise VidsmeError("resumable checkpoints are not supported with ZeRO-3 yet; use zero2.json, or set "
                          "engine.save_every_steps=-1 to train without checkpoints")
    folder = Path(root) / f"step-{progress['steps_done']:06d}"
    if rank == 0:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    torch.distributed.barrier()
    save_state(folder / f"optim-rank{rank}", engine.optimizer.state_dict())
    if rank == 0:
        params = {n: p.detach().cpu().contiguous() for n, p in engine.module.named_parameters() if p.requires_grad}
        save_file(params, str(folder / "model.safetensors"))
        save_file({"torch": torch.get_rng_state()}, str(folder / "rng.safetensors"))
        state = dict(progress, world_size=world, scheduler=engine.lr_scheduler.state_dict(),
                     global_steps=engine.global_steps, global_samples=engine.global_samples,
                     micro_steps=engine.micro_steps)
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


def load_checkpoint(folder: Path, engine, world: int, config_hash: str) -> dict:
    """Restore model, optimizer, scheduler, counters and RNG; returns the saved progress."""
    fix = _fix(folder)
    state = load_state(folder / "state")
    if not isinstance(state, dict) or not {"config_hash", "world_size", "scheduler"} <= state.keys():
        raise ModelFileError(folder / "state.json", "lacks config_hash, world_size or scheduler", fix)
    if state["config_hash"] != config_hash:
        raise VidsmeError(f"checkpoint {folder} was written by a different config; delete it or restore the config")
    if state["world_size"] != world:
        raise VidsmeError(f"checkpoint {folder} was written by {state['world_size']} processes; resume with the "
                          f"same number (now {world})")
    params = _load_tensors(folder / "model.safetensors", fix)
    rng = _load_tensors(folder / "rng.safetensors", fix)
    if "torch" not in rng:
        raise ModelFileError(folder / "rng.safetensors", "holds no torch RNG state", fix)
    # every file is read (and so checked) before anything is applied to the engine
    optim_states = [load_state(folder / f"optim-rank{r}") for r in range(world)]
    named = dict(engine.module.named_parameters())
    missing = sorted(set(params) ^ {n for n, p in named.items() if p.requires_grad})
    if missing:
        raise VidsmeError(f"checkpoint {folder} does not match the model's trainable parameters: {missing[:5]}; {fix}")
    try:  # files that parse but whose contents do not fit this model/optimizer/scheduler
        with torch.no_grad():
            for name, value in params.items():
                named[name].copy_(value)
        if _zero_stage(engine) in (1, 2):
            engine.optimizer.load_state_dict(optim_states, load_optimizer_states=True, load_from_fp32_weights=True)
        else:
            engine.optimizer.load_state_dict(optim_states[torch.distributed.get_rank()])
        engine.lr_scheduler.load_state_dict(state["scheduler"])
        engine.global_steps, engine.global_samples = state["global_steps"], state["global_samples"]
        engine.micro_steps = state["micro_steps"]
        torch.set_rng_state(rng["torch"])
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
        raise ModelFileError(folder, f"does not fit this run's model or optimizer ({type(err).__name__}: "
                                     f"{first_line(err)})", fix) from None
    return state
