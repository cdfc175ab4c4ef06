"""Checks on model directories, training checkpoints and feature-cache shards, made before a
loader reads them: a damaged file becomes one line naming it and the fix, never a traceback
from inside safetensors, transformers or tokenizers.

The checks read headers and small JSON files only (a safetensors file's 8-byte length and JSON
header; its size from the file system), so they cost milliseconds even for 7B checkpoints. A
weight file damaged inside its data bytes (right size, wrong numbers) cannot be told apart
without hashing it, which loading does not do.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from vidsme.errors import DamagedFileError, ModelFileError

SAFETENSORS_HEADER_LIMIT = 100_000_000  # safetensors' own cap on the header length
_DTYPE_BYTES = {"F64": 8, "I64": 8, "U64": 8, "C64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2,
                "I16": 2, "U16": 2, "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model")
"""Any one of these lets AutoProcessor build a tokenizer."""


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first non-empty line of an exception's message, shortened, so errors stay one line."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = lines[0] if lines else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_json_file(path: Path, fix: str, error: type[DamagedFileError] = ModelFileError) -> object:
    """Parse a JSON file; raises `error` naming the file, the position of the fault and `fix`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(path, "is missing", fix) from None
    except OSError as err:
        raise error(path, f"cannot be read ({first_line(err)})", fix) from None
    if not data.strip():
        raise error(path, "is empty", fix)
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise error(path, "is not UTF-8 text (overwritten with binary data?)", fix) from None
    except json.JSONDecodeError as err:
        raise error(path, f"is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}; truncated or "
                          "edited?)", fix) from None


def check_safetensors(path: Path, fix: str, error: type[DamagedFileError] = ModelFileError) -> dict[str, dict]:
    """Check a safetensors file's header against its size (no tensor data is read).

    Returns the header's tensor entries (name -> dtype, shape, data_offsets). Raises `error`
    naming the file when it is missing, too short, not safetensors, or truncated/extended.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else -1
            raw = fh.read(length) if 0 < length <= min(size - 8, SAFETENSORS_HEADER_LIMIT) else b""
    except FileNotFoundError:
        raise error(path, "is missing", fix) from None
    except OSError as err:
        raise error(path, f"cannot be read ({first_line(err)})", fix) from None
    if size < 8:
        raise error(path, f"is {size} bytes long, too short for a safetensors file (truncated?)", fix)
    if not raw:
        raise error(path, f"is not a safetensors file or is truncated (its header claims {length} bytes, the file "
                          f"has {size})", fix)
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("not an object")
        tensors = {name: entry for name, entry in header.items() if name != "__metadata__"}
        end = 0
        for name, entry in tensors.items():
            begin, stop = (int(v) for v in entry["data_offsets"])
            shape = [int(d) for d in entry["shape"]]
            itemsize = _DTYPE_BYTES.get(entry["dtype"])
            if stop < begin or (itemsize is not None and stop - begin != math.prod(shape) * itemsize):
                raise ValueError(f"tensor {name!r} has offsets that do not fit its shape")
            end = max(end, stop)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise error(path, f"has an unreadable safetensors header ({first_line(err)}); the file is damaged",
                    fix) from None
    expected = 8 + length + end
    if size != expected:
        what = "truncated" if size < expected else "longer than its header says (overwritten or appended to?)"
        raise error(path, f"is {what}: {size} bytes, its header describes {expected}", fix)
    return tensors


def _card_name(card: Path) -> str | None:
    """The run name a training card records, if the card can be read (only used in hints)."""
    try:
        name = json.loads(card.read_text(encoding="utf-8")).get("name")
    except (OSError, ValueError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def model_fix(path: Path, setting: str) -> str:
    """What to do about a damaged file in model directory `path`, by the card training left there.

    `setting` names where the directory was given (e.g. "the target config's `base`").
    """
    path = Path(path)
    for card, command in (("target.json", "vidsme train target CONFIG"), ("base.json", "vidsme train base CONFIG")):
        if (path / card).is_file():
            name = _card_name(path / card)
            run = f" (its {card} names the run {name!r})" if name else ""
            return (f"retrain it with `{command}`{run}, restore the file from a backup, or point {setting} at "
                    "the right directory")
    return f"restore the file (copy or download the checkpoint again), or point {setting} at the right directory"


def check_model_dir(path: Path, fix: str) -> None:
    """Check a Hugging Face model directory's files before from_pretrained reads them.

    Every top-level JSON file parses, config.json is an object, the weights are there (every
    shard a model.safetensors.index.json lists), every *.safetensors header matches its file's
    size, and a tokenizer file exists. Raises ModelFileError naming the first bad file and `fix`.
    """
    path = Path(path)
    if not path.is_dir():
        raise ModelFileError(path, "is not a directory", fix)
    files = {p.name: p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")}
    if "config.json" not in files:
        raise ModelFileError(path, "is not a Hugging Face model directory (no config.json)", fix)
    parsed = {name: read_json_file(p, fix) for name, p in sorted(files.items()) if name.endswith(".json")}
    if not isinstance(parsed["config.json"], dict):
        raise ModelFileError(files["config.json"], "is not a JSON object", fix)
    index = parsed.get("model.safetensors.index.json")
    if index is not None:
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise ModelFileError(files["model.safetensors.index.json"], "has no valid weight_map", fix)
        missing = sorted({v for v in weight_map.values() if v not in files})
        if missing:
            more = f" (and {len(missing) - 1} more shard(s))" if len(missing) > 1 else ""
            raise ModelFileError(path / missing[0], f"is missing{more}; model.safetensors.index.json lists it", fix)
    shards = sorted(name for name in files if name.endswith(".safetensors"))
    if not shards and not any(name.endswith(".bin") for name in files):
        raise ModelFileError(path / "model.safetensors", "is missing (the directory holds no weights file)", fix)
    for name in shards:
        check_safetensors(files[name], fix)
    if not any(name in files for name in TOKENIZER_FILES):
        raise ModelFileError(path / "tokenizer.json", "is missing (the directory holds no tokenizer file)", fix)


def load_pretrained(path: Path, *, dtype, fix: str):
    """(model, processor) from a local model directory, its files checked first (check_model_dir).

    Whatever the loaders still refuse, and weights the checkpoint lacks or holds at another shape
    than config.json says (transformers would initialise them at random and only log it), is a
    ModelFileError naming the directory or weights file and `fix`.
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = Path(path)
    check_model_dir(path, fix)
    try:
        model, info = AutoModelForImageTextToText.from_pretrained(
            path, local_files_only=True, dtype=dtype, output_loading_info=True, ignore_mismatched_sizes=True)
        processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001 — the files passed the checks; name what the loader refused
        raise ModelFileError(path, f"cannot be loaded ({type(err).__name__}: {first_line(err)})", fix) from None
    weights = path / "model.safetensors" if (path / "model.safetensors").is_file() else path
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        raise ModelFileError(weights, f"lacks {len(missing)} weight(s) that config.json needs (e.g. {missing[0]}); "
                                      "loading would initialise them at random", fix)
    mismatched = sorted(str(m[0]) if isinstance(m, (tuple, list)) else str(m)
                        for m in info.get("mismatched_keys") or ())
    if mismatched:
        raise ModelFileError(weights, f"holds {len(mismatched)} weight(s) at another shape than config.json says "
                                      f"(e.g. {mismatched[0]}); loading would initialise them at random", fix)
    return model, processor


# ----------------------------------------------------------------------------- without loading weights
def skeleton_config(model_dir: Path):
    """The transformers config of a model directory (or a config.json file), nothing else read."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model_dir, local_files_only=True)


def skeleton(model_dir: Path):
    """The model a directory's config.json (or a config.json file itself) describes, built on the meta
    device (no weights read)."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    with torch.device("meta"):
        return AutoModelForImageTextToText.from_config(config)


def count(n: float) -> str:
    """29056 -> "29.1K", 7.6e9 -> "7.60B"."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(int(n))


def shape_mismatches(model, model_dir: Path) -> tuple[int, list[str]]:
    """(weights compared, differences) between the skeleton's parameters and the safetensors headers.

    Compared as multisets of shapes: transformers renames checkpoint weights on load (and
    saves them under older names), so names do not line up, but every parameter must find a
    stored tensor of its shape. A checkpoint holding extra tensors (buffers) is not an error.
    """
    from collections import Counter

    expected = Counter(tuple(p.shape) for _, p in model.named_parameters())
    found: Counter = Counter()
    for shard in sorted(Path(model_dir).glob("*.safetensors")):
        found.update(tuple(entry["shape"]) for entry in check_safetensors(shard, "").values())
    lacking = expected - found
    return sum(expected.values()), [f"{n} parameter(s) of shape {list(shape)} have no stored tensor of that shape"
                                    for shape, n in sorted(lacking.items())]
