"""Per-video motion and brightness statistics (k1, k3) that Vid-SME maps to its orders.

Li, Yu, Wang, "Vid-SME" (arXiv 2506.03179), Sec. 4 and the reference code. For the n
frames sampled at np.linspace(0, N-1, n, dtype=int) (n = 16 in the paper), converted
to grey with cv2.COLOR_RGB2GRAY:

    k1 = mean over consecutive pairs of np.var(Farneback flow [H, W, 2])   (0.0 for one frame)
    k3 = np.std over frames of np.mean(grey frame)                         (population std)

computed with the reference's dtypes (np.var of the float32 flow is a float32), so the
values are the reference's bit for bit on the same decoded frames. Two properties of the
reference definition worth knowing: np.var pools the x and y flow components, so a
uniform pan (u, v) alone gives ((u - v) / 2)**2, not 0; and Farneback returns a tiny
non-zero flow (variance ~1e-5 at 64x64) even for two identical textured frames.
`vidsme.attack.vid_sme_orders.orders_from_stats` turns them into (q, r) over a pool.

Fast mode (`StatsConfig(downscale=32)`) shrinks each grey frame so its longer side is
at most `downscale` pixels before flow and brightness; it changes the values (not just
their precision), so it has its own cache key. perf/bench_video_stats.py measures how
well it preserves the ranking of videos, which is all the orders depend on.

`compute_video_stats` caches one small JSON file per (file sha256, config key):
a value is reused only when the file's content and every config field match.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import vidsme
from vidsme import errors as _errors
from vidsme.errors import VideoError, VideoNotFoundError, VidsmeError
from vidsme.provenance import sha256_file

# Bump when the definition of k1/k3 (or how frames are prepared) changes: every cache
# entry written under the old definition then stops matching.
STATS_VERSION = 1

_CACHE_FORMAT = "vidsme.video_stats"


@dataclass(frozen=True)
class FlowParams:
    """cv2.calcOpticalFlowFarneback parameters; the defaults are the reference's."""

    pyr_scale: float = 0.5
    levels: int = 3
    winsize: int = 15
    iterations: int = 3
    poly_n: int = 5
    poly_sigma: float = 1.2
    flags: int = 0

    def as_dict(self) -> dict[str, float | int]:
        # canonical types, so FlowParams(pyr_scale=1) and (pyr_scale=1.0) hash alike
        return {
            "pyr_scale": float(self.pyr_scale),
            "levels": int(self.levels),
            "winsize": int(self.winsize),
            "iterations": int(self.iterations),
            "poly_n": int(self.poly_n),
            "poly_sigma": float(self.poly_sigma),
            "flags": int(self.flags),
        }


@dataclass(frozen=True)
class StatsConfig:
    """Everything that decides a video's (k1, k3), besides the file's bytes.

    n_frames:  frames sampled per video (16 in the paper).
    flow:      Farneback parameters.
    downscale: fast mode; None = exact (reference). Otherwise grey frames are resized
               (cv2.INTER_AREA) so the longer side is at most this many pixels.
    """

    n_frames: int = 16
    flow: FlowParams = field(default_factory=FlowParams)
    downscale: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.n_frames, bool) or not isinstance(self.n_frames, (int, np.integer)) or self.n_frames < 1:
            raise VidsmeError(f"StatsConfig.n_frames must be an integer >= 1, got {self.n_frames!r}")
        if self.downscale is not None and (
            isinstance(self.downscale, bool) or not isinstance(self.downscale, (int, np.integer)) or self.downscale < 1
        ):
            raise VidsmeError(f"StatsConfig.downscale must be None (exact) or an integer >= 1, got {self.downscale!r}")
        if not isinstance(self.flow, FlowParams):
            raise VidsmeError(f"StatsConfig.flow must be a FlowParams, got {type(self.flow).__name__}")

    def as_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (also what the cache files record and compare)."""
        return {
            "n_frames": int(self.n_frames),
            "flow": self.flow.as_dict(),
            "downscale": None if self.downscale is None else int(self.downscale),
        }

    def key(self) -> str:
        """Stable 16-hex-digit hash of every field and STATS_VERSION (same across runs/machines)."""
        blob = json.dumps({"stats_version": STATS_VERSION, **self.as_dict()}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class VideoStats:
    """One video's statistics: k1 motion (mean flow variance), k3 brightness std."""

    path: str
    sha256: str
    k1: float
    k3: float
    config_key: str


# ----------------------------------------------------------------------------- the statistics
def motion_brightness(
    frames: np.ndarray, flow: FlowParams = FlowParams(), downscale: int | None = None  # noqa: B008 (frozen)
) -> tuple[float, float]:
    """(k1, k3) of uint8 RGB frames [n, H, W, 3], as the Vid-SME reference computes them.

    k1 = mean of np.var(flow) over consecutive frame pairs (0.0 for a single frame);
    k3 = np.std of the per-frame mean grey level. `downscale` (fast mode) resizes each
    grey frame so its longer side is at most that many pixels first.
    """
    import cv2  # lazily: importing vidsme.video_stats stays cheap

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise VidsmeError(f"frames must be uint8 RGB [n>0, H, W, 3], got {frames.dtype} {frames.shape}")
    greys = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
    if downscale is not None:
        greys = [_shrink(g, downscale) for g in greys]

    p = flow
    flow_vars = []
    for prev, nxt in zip(greys[:-1], greys[1:]):
        f = cv2.calcOpticalFlowFarneback(
            prev, nxt, None,
            pyr_scale=p.pyr_scale, levels=p.levels, winsize=p.winsize, iterations=p.iterations,
            poly_n=p.poly_n, poly_sigma=p.poly_sigma, flags=p.flags,
        )
        flow_vars.append(np.var(f))  # float32, over both components and every pixel, as the reference
    k1 = float(np.mean(flow_vars)) if flow_vars else 0.0  # one frame: no motion to measure
    k3 = float(np.std([np.mean(g) for g in greys]))  # ddof=0, as the reference
    return k1, k3


def _shrink(grey: np.ndarray, downscale: int) -> np.ndarray:
    """Resize so the longer side is <= downscale (never enlarges). Grey first: 3x less to resize."""
    import cv2

    h, w = grey.shape
    if max(h, w) <= downscale:
        return grey
    scale = downscale / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # cv2 wants (width, height)
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA)  # area: averages, no aliasing


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes, read in 1 MiB blocks.

    A missing path (or a directory) raises VideoNotFoundError naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise VideoNotFoundError(path, "no such file" if not path.exists() else "not a regular file",
                                 "Check the path; a video is never replaced by another")
    return sha256_file(path)


# ----------------------------------------------------------------------------- cache
def _cache_file(cache_dir: Path, sha256: str, key: str) -> Path:
    return cache_dir / sha256[:2] / f"{sha256}-{key}.json"


def _read_cache(cache_dir: Path, sha256: str, config: StatsConfig) -> tuple[float, float] | None:
    """The cached (k1, k3), or None when absent, unreadable, corrupt or for anything else."""
    file = _cache_file(cache_dir, sha256, config.key())
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None  # absent or corrupt: recompute (and overwrite), never trust
    # the file name is only an index: the content must confirm file and full config
    if not (
        isinstance(record, dict)
        and record.get("format") == _CACHE_FORMAT
        and record.get("stats_version") == STATS_VERSION
        and record.get("sha256") == sha256
        and record.get("config_key") == config.key()
        and record.get("config") == config.as_dict()
    ):
        return None
    k1, k3 = record.get("k1"), record.get("k3")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
               for v in (k1, k3)):
        return None
    return float(k1), float(k3)


def _write_cache(cache_dir: Path, stats: VideoStats, config: StatsConfig) -> None:
    import cv2

    record = {
        "format": _CACHE_FORMAT,
        "stats_version": STATS_VERSION,
        "sha256": stats.sha256,
        "config_key": stats.config_key,
        "config": config.as_dict(),
        "k1": stats.k1,  # json writes repr(float): reads back bit-identical
        "k3": stats.k3,
        "path": stats.path,  # provenance only: a cache hit is by content, wherever the file is
        "versions": {"vidsme": vidsme.__version__, "opencv": cv2.__version__, "numpy": np.__version__},
    }
    file = _cache_file(cache_dir, stats.sha256, stats.config_key)
    file.parent.mkdir(parents=True, exist_ok=True)
    # temp file in the same folder + os.replace: readers (other processes included) see
    # the old file or the whole new one, never half a file
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh, indent=1, sort_keys=True)
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------- one video
def _check_finite(path: str, k1: float, k3: float) -> None:
    if not (math.isfinite(k1) and math.isfinite(k3)):
        raise VidsmeError(
            f"{path}: video statistics are not finite (k1={k1}, k3={k3}); the decoded frames are "
            "probably broken - check the file (it is not skipped or replaced)"
        )


def _stats_one(path: str, sha256: str, config: StatsConfig) -> VideoStats:
    from vidsme.video import read_frames

    frames = read_frames(path, config.n_frames)
    k1, k3 = motion_brightness(frames, config.flow, config.downscale)
    _check_finite(path, k1, k3)
    # the cache is keyed by the checksum taken before reading: make sure that is the
    # content we analysed (a file rewritten meanwhile must not poison the cache)
    if file_sha256(path) != sha256:
        raise VidsmeError(f"{path}: the file changed while its statistics were computed; run again")
    return VideoStats(path=path, sha256=sha256, k1=k1, k3=k3, config_key=config.key())


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would oversubscribe


def _worker(path: str, sha256: str, config: StatsConfig) -> VideoStats | dict[str, str]:
    """Pool task. VidsmeErrors come back as plain data: VideoError's __init__(path, problem,
    fix) does not survive pickling (unpickling calls it with the message only)."""
    try:
        return _stats_one(path, sha256, config)
    except VidsmeError as exc:
        return {"error_class": type(exc).__name__, "message": str(exc), "path": getattr(exc, "path", path)}


def _rebuild_error(record: dict[str, str]) -> VidsmeError:
    cls = getattr(_errors, record["error_class"], None)
    if not (isinstance(cls, type) and issubclass(cls, VidsmeError)):
        cls = VidsmeError
    exc = cls.__new__(cls, record["message"])  # skips VideoError.__init__; args = (message,)
    if issubclass(cls, VideoError):
        exc.path = record["path"]
    return exc


# ----------------------------------------------------------------------------- many videos
def compute_video_stats(
    paths: Sequence[str | Path],
    config: StatsConfig = StatsConfig(),  # noqa: B008 (frozen dataclass: a safe default)
    *,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> list[VideoStats]:
    """(k1, k3) for every video, in input order.

    cache_dir: reuse/write one JSON per (file sha256, config.key()); None = no cache.
    workers:   processes for the uncached videos (default min(os.cpu_count(), #uncached));
               1 runs inline, without a pool.
    Fails fast: the first video that cannot be read raises its VideoError (naming the
    path) and the remaining work is cancelled; no video is ever skipped or replaced.
    Videos computed before the failure stay cached. With a pool the first failure
    *observed* is raised (the order workers finish in); with workers=1 the first in input order.

    The pool uses the "spawn" start method, so, as with any multiprocessing on
    macOS/Windows, a script calling this must do so under `if __name__ == "__main__":`
    (workers import the main module); workers=1 has no such requirement.
    """
    from tqdm import tqdm

    if isinstance(paths, (str, Path)):
        raise VidsmeError("compute_video_stats takes a sequence of paths, not a single path")
    if workers is not None and workers < 1:
        raise VidsmeError(f"workers must be >= 1 (or None for one per core), got {workers}")
    paths = [str(p) for p in paths]
    key = config.key()
    cache = Path(cache_dir) if cache_dir is not None else None
    results: list[VideoStats | None] = [None] * len(paths)

    with tqdm(total=len(paths), disable=not progress, desc="video stats", unit="video") as bar:
        todo: list[tuple[int, str]] = []  # (index, sha256) still to compute
        for i, path in enumerate(paths):
            sha = file_sha256(path)  # a missing file fails here, in input order
            hit = _read_cache(cache, sha, config) if cache is not None else None
            if hit is not None:
                results[i] = VideoStats(path=path, sha256=sha, k1=hit[0], k3=hit[1], config_key=key)
                bar.update(1)
            else:
                todo.append((i, sha))

        def done(i: int, stats: VideoStats) -> None:
            results[i] = stats
            if cache is not None:
                _write_cache(cache, stats, config)
            bar.update(1)

        n_workers = min(os.cpu_count() or 1, len(todo)) if workers is None else min(workers, len(todo))
        if n_workers <= 1:
            for i, sha in todo:
                done(i, _stats_one(paths[i], sha, config))
        elif todo:
            _run_pool(paths, todo, config, n_workers, done)

    return results  # type: ignore[return-value]  (every slot is filled or we raised)


def _run_pool(paths: list[str], todo: list[tuple[int, str]], config: StatsConfig, n_workers: int, done) -> None:
    import multiprocessing

    # spawn, not fork: forking a process whose OpenCV/decoder threads may hold locks can deadlock
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx, initializer=_worker_init) as pool:
        pending = {pool.submit(_worker, paths[i], sha, config): i for i, sha in todo}
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    i = pending.pop(fut)
                    out = fut.result()  # an unexpected (non-vidsme) exception propagates here
                    if isinstance(out, dict):
                        raise _rebuild_error(out)
                    done(i, out)
        except BaseException:
            for fut in pending:
                fut.cancel()  # fail fast: queued videos are not started
            raise


__all__ = [
    "STATS_VERSION",
    "FlowParams",
    "StatsConfig",
    "VideoStats",
    "compute_video_stats",
    "file_sha256",
    "motion_brightness",
]
