"""Atomic file writes: a reader sees the old file or the whole new one, never a part.

The temp file lives in the same folder (os.replace is atomic only within a filesystem) and
carries the writer's pid, so two processes writing the same file do not share a temp file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file + os.replace; the temp file never outlives a failure."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """UTF-8 text, written as bytes so the file is identical on every platform."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, data: object, *, indent: int | None = 2) -> None:
    """`data` as JSON (with a final newline when indented)."""
    write_text_atomic(path, json.dumps(data, indent=indent) + ("\n" if indent is not None else ""))
