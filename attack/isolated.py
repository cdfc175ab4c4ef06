"""The process that runs a submitted attack inside the sandbox, and the files and messages it exchanges.

`vidsme submit` (vidsme.benchmark.submissions.sandbox) starts this module as
`python -I -B -m vidsme.attack.isolated --source FILE --about FILE --inputs DIR ...` in a sandbox
that sees the Python environment, vidsme's `vidsme/` and `attack/` code, a copy of the submitted
file and DIR (its inputs), all read-only, a private /tmp, and nothing else: no network, no
split manifests, no results, no caches, no home.

It lowers its own resource limits and loads its seccomp filter first (attack/syscall_filter.py;
before any submitted code runs, so neither can be undone), says "ready" with what the filter
denies, imports the file, reports what it registered, then scores the inputs the parent
writes for it. The parent never imports the file; it trusts nothing this process says after
"ready" (the submitted code shares the process and could write to the pipe) and validates every
message again. It times the calls itself, from the messages' arrival.

With --no-sandbox the same module runs as a plain child process (`--inputs` a host folder,
`--module` to import a module path by name): the attack still never touches the process that
records the results.

Messages are JSON objects, one per line:

  child -> parent (on the stdout it was started with; the submitted code's own prints go to stderr)
    {"event": "ready", "protocol": 3, "seccomp": [denied system calls], "seccomp_problem": null | why}
    {"event": "declared", "attacks": [AttackSpec.describe(), ...], "calibrations": [CalibrationSpec.describe(), ...]}
    {"event": "refused", "check": ..., "why": ...}         the file failed to import or register
    {"event": "scored", "call": k, "copy": c, "scores": base64 of little-endian float64}
    {"event": "failed", "call": k, "copy": c, "kind": "invalid" | "raised", "text": ..., "last_line": ...}
  parent -> child (stdin)
    {"cmd": "score", "calls": [{"call": k, "attack": name, "input": stem}, ...]}
    {"cmd": "calibrate", "calls": [{"call": k, "calibration": name, "input": stem}, ...]}
    {"cmd": "exit"}

Inputs of one call (copy c of one slice's features): `<stem>-<c>.safetensors` (mask, token.<key>,
sequence.<key>, frame_slot: only the inputs the attack declared) and `<stem>-<c>.json` (slice,
sample ids, texts). The rows of each copy are shuffled independently and the sample ids are
opaque ("s004711"), drawn afresh per copy, so nothing an attack receives names a sample of a
public split. A calibration's call reads arrays only (`write_calibration_inputs`: the signal
under the target and the shadows, inclusion bits, the population's; rows shuffled per copy, no
ids at all). No pickle anywhere.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

PROTOCOL = 3  # 3: calibrations declared and called
USER_MODULES = "vidsme_user_attacks."  # the package name load_attack_source gives .py files
SANDBOX_INPUTS = "/vidsme/in"  # where the input folder appears inside the sandbox
SOURCE_DIR = "source"  # the copy of the submitted file: <inputs>/source/<its name>
COPIES = 2  # every call runs twice, on two independently shuffled copies (determinism check)
ID_DIGITS = 6


class Refusal(Exception):
    """A failed check found while importing the submitted file."""

    def __init__(self, check: str, why: str) -> None:
        self.check, self.why = check, why
        super().__init__(why)


def last_line(err: BaseException) -> str:
    """The last line of a traceback: 'ValueError: bad thing'."""
    lines = traceback.format_exception_only(type(err), err)
    return lines[-1].strip() if lines else type(err).__name__


def classify_import_error(err: BaseException, source: str, file: Path | None = None,
                          shown: str | None = None) -> tuple[str, str]:
    """(check, why) for an exception raised while importing a submitted attack source.

    `source` is the source as the submitter gave it; `file` the path it was imported from when
    that differs (the sandbox's copy), written as `shown` in the message.
    """
    from vidsme.attack import registry
    from vidsme.attack.inputs import SLICES
    from vidsme.errors import MissingFeatureError, VidsmeError

    cause = err.__cause__ if isinstance(err, VidsmeError) and err.__cause__ is not None else err
    message = str(cause)
    if isinstance(cause, VidsmeError) and "registered twice" in message:
        clash = re.match(r"attack name (.+?) is registered twice: by (\S+) and by", message)
        if clash:
            return "name", f"attack name {clash[1]} is already registered by {clash[2]}; rename yours"
        return "name", message
    if isinstance(cause, MissingFeatureError):
        return "features", message
    frames = traceback.extract_tb(cause.__traceback__)
    here = Path(registry.__file__).resolve()
    if any(f.name in ("register_attack", "decorate") and Path(f.filename).resolve() == here for f in frames):
        return "declaration", (f"register_attack rejected the declaration: {last_line(cause)} (direction must be "
                               f"'higher' or 'lower', slices among {', '.join(SLICES)})")
    where = ""
    if isinstance(cause, SyntaxError) and cause.lineno:
        where = f" (line {cause.lineno})"
    else:
        if file is not None:
            mine = [f for f in frames if f.filename == str(file)]
        else:
            mine = [f for f in frames if Path(f.filename).name == Path(source).name or source in f.filename]
        if mine:
            name = shown if (file is not None and shown is not None) else mine[-1].filename
            where = f" ({name}, line {mine[-1].lineno})"
    if isinstance(cause, ModuleNotFoundError) and cause.name and (source + ".").startswith(cause.name + "."):
        where += (f"; {source!r} is not a file, not an installed entry point of group {registry.ENTRY_POINT_GROUP!r}, "
                  "and not an importable module")
    why = f"importing {source!r} raised {last_line(cause)}{where}"
    if file is not None and shown is not None:
        why = why.replace(str(file), shown)
    return "import", why


# ----------------------------------------------------------------------------- the input files
def opaque_ids(n: int, rng) -> list[str]:
    """n distinct ids like "s004711", drawn at random (a numpy Generator): they say nothing about a sample."""
    width = max(ID_DIGITS, len(str(4 * n)))
    numbers = rng.choice(10 ** width, size=n, replace=False)
    return [f"s{int(k):0{width}d}" for k in numbers]


def write_inputs(inputs, needs: Sequence[str], order: Sequence[int], ids: Sequence[str], stem: Path) -> None:
    """Write the rows `order` of `inputs` (an AttackInputs), only the keys in `needs` (plus the mask),
    under the opaque `ids`: `<stem>.safetensors` + `<stem>.json`."""
    import torch
    from safetensors.torch import save_file

    from vidsme.attack.inputs import FRAME_SLOT, TEXT

    index = torch.as_tensor(list(order), dtype=torch.long)
    tensors = {"mask": inputs.mask.index_select(0, index).contiguous()}
    token = [k for k in needs if k in inputs.token]
    sequence = [k for k in needs if k in inputs.sequence]
    for key in token:
        tensors[f"token.{key}"] = inputs.token[key].index_select(0, index).contiguous()
    for key in sequence:
        tensors[f"sequence.{key}"] = inputs.sequence[key].index_select(0, index).contiguous()
    if FRAME_SLOT in needs and inputs.frame_slot is not None:
        tensors["frame_slot"] = inputs.frame_slot.index_select(0, index).contiguous()
    texts = [inputs.texts[i] for i in order] if TEXT in needs and inputs.texts is not None else None
    save_file(tensors, str(stem) + ".safetensors")
    meta = {"slice": inputs.slice, "sample_ids": list(ids), "token": token, "sequence": sequence, "texts": texts}
    Path(str(stem) + ".json").write_text(json.dumps(meta), encoding="utf-8")


def read_inputs(stem: Path):
    """The AttackInputs written by `write_inputs` (fresh tensors on every read)."""
    from safetensors.torch import load_file

    from vidsme.attack.inputs import AttackInputs

    meta = json.loads(Path(str(stem) + ".json").read_text(encoding="utf-8"))
    tensors = load_file(str(stem) + ".safetensors")
    texts = meta.get("texts")
    return AttackInputs(slice=meta["slice"], sample_ids=tuple(meta["sample_ids"]), mask=tensors["mask"],
                        token={k: tensors[f"token.{k}"] for k in meta["token"]},
                        sequence={k: tensors[f"sequence.{k}"] for k in meta["sequence"]},
                        texts=None if texts is None else tuple(texts), frame_slot=tensors.get("frame_slot"))


_CALIBRATION_ARRAYS = ("target", "shadows", "inclusion", "population_target", "population_shadows",
                       "population_inclusion")


def write_calibration_inputs(inputs, order: Sequence[int], population_order: Sequence[int] | None, stem: Path) -> None:
    """Write a CalibrationInputs with its samples in `order` (and its population in `population_order`):
    `<stem>.safetensors` (the arrays; inclusion as uint8) + `<stem>.json` (signal, setting)."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    tensors = {}
    for key in _CALIBRATION_ARRAYS:
        value = getattr(inputs, key)
        if value is None:
            continue
        rows = order if not key.startswith("population") else population_order
        array = np.ascontiguousarray(np.asarray(value)[np.asarray(rows, dtype=np.int64)])
        tensors[key] = torch.from_numpy(array.astype(np.uint8) if array.dtype == bool else array.astype(np.float64))
    save_file(tensors, str(stem) + ".safetensors")
    Path(str(stem) + ".json").write_text(json.dumps({"signal": inputs.signal, "setting": inputs.setting}),
                                         encoding="utf-8")


def read_calibration_inputs(stem: Path):
    """The CalibrationInputs written by `write_calibration_inputs` (fresh arrays on every read)."""
    from safetensors.torch import load_file

    from vidsme.attack.calibration import CalibrationInputs

    meta = json.loads(Path(str(stem) + ".json").read_text(encoding="utf-8"))
    tensors = load_file(str(stem) + ".safetensors")
    arrays = {k: (v.numpy().astype(bool) if "inclusion" in k else v.numpy()) for k, v in tensors.items()}
    return CalibrationInputs(signal=str(meta["signal"]), setting=str(meta["setting"]), **arrays)


def encode_scores(scores) -> str:
    """float64 little-endian bytes, base64: exact, NaN and inf included."""
    import numpy as np

    return base64.b64encode(np.ascontiguousarray(scores, dtype="<f8").tobytes()).decode("ascii")


def decode_scores(text: str):
    """The array `encode_scores` wrote; ValueError when it is not one."""
    import numpy as np

    raw = base64.b64decode(text.encode("ascii"), validate=True)
    if len(raw) % 8:
        raise ValueError(f"{len(raw)} bytes is not a whole number of float64 scores")
    return np.frombuffer(raw, dtype="<f8").astype(np.float64)


# ----------------------------------------------------------------------------- inside the sandbox
def _limit(which: int, value: int | None) -> None:
    import resource

    if value is None:
        return
    soft, hard = resource.getrlimit(which)
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(which, (value, value))


def apply_limits(memory: int | None, cpu: int | None, processes: int | None, file_size: int | None) -> None:
    """Lower this process's limits, soft and hard (no capability is left to raise them again)."""
    import resource

    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_AS, memory)
    _limit(resource.RLIMIT_NPROC, processes)
    _limit(resource.RLIMIT_FSIZE, file_size)
    if cpu is not None:  # SIGXCPU at the soft limit names the cause; SIGKILL a little later if it is caught
        soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
        top = cpu + 5 if hard == resource.RLIM_INFINITY else min(cpu + 5, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (min(cpu, top), top))


def load_submission(path: Path | None, label: str, shown: str | None = None,
                    module: str | None = None) -> tuple[list, list]:
    """Import the submitted file as load_attack_source does (built-ins registered first, installed plugins
    not: they are not part of the sandbox), or, without a sandbox, the `module` by name; the AttackSpecs
    and the CalibrationSpecs it registered. Raises Refusal.

    `label` is the source as given, `shown` the file's path outside the sandbox (messages use both).
    """
    import importlib
    import importlib.util

    from vidsme.attack import calibration, registry

    registry.load_builtins_only()  # plugins live outside the sandbox; the parent checks names against them
    calibration.list_calibrations()  # the built-in calibrations, before the snapshot
    before = registry.registry_snapshot()
    calibrations_before = calibration.registry_snapshot()
    try:
        if module is not None:
            importlib.import_module(module)
        else:
            module_name = f"{USER_MODULES}{path.stem}_{abs(hash(path.resolve()))}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise Refusal("import", f"cannot import {label!r} as a Python file")
            loaded = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = loaded
            spec.loader.exec_module(loaded)
    except Refusal:
        raise
    except Exception as err:  # whatever the submitted code raises is the submitter's to see
        check, why = classify_import_error(err, label, path, shown)
        if isinstance(err, ImportError) and check == "import":
            why += ("; in the sandbox only the submitted file and the packages of vidsme's Python environment "
                    "can be imported")
        raise Refusal(check, why) from err
    specs = [s for n, s in registry.registry_snapshot().items() if before.get(n) is not s]
    calibrations = [s for n, s in calibration.registry_snapshot().items() if calibrations_before.get(n) is not s]
    if not specs and not calibrations:
        raise Refusal("import", f"{label!r} imported but registered no attack and no calibration; decorate a scoring "
                                "function with @register_attack(...) from vidsme.attack, or a calibration with "
                                "@register_calibration(...) from vidsme.attack.calibration")
    return specs, calibrations


def _clip(text: str, limit: int = 2000) -> str:
    text = " ".join(text.split())  # one line
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _serve(args: argparse.Namespace, send, commands, filtered: tuple[list[str], str | None]) -> int:
    import numpy as np  # noqa: F401  (imported before the submission, like torch)
    import torch  # noqa: F401

    import vidsme.attack  # noqa: F401
    from vidsme.errors import InvalidScoresError

    send({"event": "ready", "protocol": PROTOCOL, "seccomp": filtered[0], "seccomp_problem": filtered[1]})
    me = os.getpid()
    try:
        about = json.loads(Path(args.about).read_text(encoding="utf-8"))
        specs, calibrations = load_submission(Path(args.source) if args.source else None, about["label"], about["shown"],
                                              args.module)
    except Refusal as refusal:
        send({"event": "refused", "check": refusal.check, "why": _clip(refusal.why)})
        return 0
    finally:
        if os.getpid() != me:  # a process the submitted code forked never speaks for it
            os._exit(0)
    send({"event": "declared", "attacks": [s.describe() for s in specs],
          "calibrations": [c.describe() for c in calibrations]})
    by_name = {s.name: s for s in specs}
    calibration_by_name = {c.name: c for c in calibrations}
    inputs_dir = Path(args.inputs)
    for line in commands:
        command = json.loads(line)
        if command.get("cmd") not in ("score", "calibrate"):
            break
        calibrate = command["cmd"] == "calibrate"
        for call in command["calls"]:
            spec = calibration_by_name[call["calibration"]] if calibrate else by_name[call["attack"]]
            failed = False
            for copy in range(COPIES):
                stem = inputs_dir / f"{call['input']}-{copy}"
                try:
                    if calibrate:  # its inputs are checked as the benchmark's own are (CalibrationInputs)
                        scores = spec.calibrate(read_calibration_inputs(stem))
                    else:
                        scores = spec.score(read_inputs(stem))
                except BaseException as err:  # noqa: BLE001 - SystemExit from an attack is a failure too
                    kind = "invalid" if isinstance(err, InvalidScoresError) else "raised"
                    send({"event": "failed", "call": call["call"], "copy": copy, "kind": kind,
                          "text": _clip(str(err)), "last_line": _clip(last_line(err))})
                    failed = True
                    break
                finally:
                    if os.getpid() != me:
                        os._exit(0)
                send({"event": "scored", "call": call["call"], "copy": copy, "scores": encode_scores(scores)})
            if failed:  # the parent refuses at the first failure; nothing after it counts
                break
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point inside the sandbox (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m vidsme.attack.isolated")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--source", help="the copy of the submitted file")
    source.add_argument("--module", help="without a sandbox: a module path to import by name")
    # a file, not words: the command line is visible in /proc to everything in the sandbox
    parser.add_argument("--about", required=True, help="JSON file: {label: the source as the submitter gave it, "
                        "shown: the file's path outside the sandbox} (for messages)")
    parser.add_argument("--inputs", default=SANDBOX_INPUTS, help="folder the parent writes the inputs to")
    parser.add_argument("--memory", type=int, default=None, help="RLIMIT_AS, bytes")
    parser.add_argument("--cpu", type=int, default=None, help="RLIMIT_CPU, seconds")
    parser.add_argument("--processes", type=int, default=None, help="RLIMIT_NPROC")
    parser.add_argument("--file-size", type=int, default=None, help="RLIMIT_FSIZE, bytes")
    parser.add_argument("--threads-only", action="store_true",
                        help="deny new processes (threads stay allowed): the parent cannot count their CPU time")
    args = parser.parse_args(argv)
    from vidsme.attack.syscall_filter import install_filter

    apply_limits(args.memory, args.cpu, args.processes, args.file_size)
    filtered = install_filter(threads_only=args.threads_only)
    # the protocol keeps the original stdin/stdout; the submitted code gets /dev/null and stderr
    control = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    commands = os.fdopen(os.dup(0), "r", encoding="utf-8")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)

    def send(message: dict) -> None:
        control.write(json.dumps(message, allow_nan=False) + "\n")
        control.flush()

    code = _serve(args, send, commands, filtered)
    control.flush()
    return code


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # skip the interpreter's teardown (torch's alone takes ~0.5 s): nothing is left to write
