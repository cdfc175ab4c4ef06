"""What produced a result: code version, library versions, hashes of inputs."""
from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

_LIBRARIES = ("torch", "transformers", "tokenizers", "peft", "deepspeed", "accelerate", "numpy", "decord", "av")


def git_commit(start: Path | None = None) -> str | None:
    """HEAD of the repository holding this package (None outside a git checkout)."""
    where = start or Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that change numbers, plus Python's."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def sha256_file(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes, streamed in 1 MiB blocks (the one file hash of the project)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_sha256(folder: Path, patterns: tuple[str, ...] = ("*.json", "*.safetensors", "*.txt", "*.model")) -> str:
    """sha256 over the (relative name, content) of a model folder's files, in sorted order."""
    digest = hashlib.sha256()
    files = sorted({p for pattern in patterns for p in Path(folder).rglob(pattern) if p.is_file()})
    for path in files:
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def ids_sha256(ids: list[str]) -> str:
    """sha256 of an ordered list of sample ids (newline-joined)."""
    return hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()


def module_sources_sha256(*modules) -> dict[str, str]:
    """"<folder>/<file>" -> sha256 (first 16 hex digits) of each module's source: a measurement names the
    code it timed, which a working tree may hold uncommitted."""
    return {Path(m.__file__).parent.name + "/" + Path(m.__file__).name:
            hashlib.sha256(Path(m.__file__).read_bytes()).hexdigest()[:16] for m in modules}


def run_provenance(device: str, sources: dict[str, str] | None = None) -> dict:
    """Where and how a measurement ran: machine, threads, device, commit, command, time (perf scripts)."""
    import torch  # only here: the rest of this module must stay importable without it

    dev = torch.device(device)
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        "git_commit": git_commit(),
        "source_sha256": sources or {},
        "command": [sys.executable, *sys.argv],
        "utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
