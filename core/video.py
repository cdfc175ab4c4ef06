"""Video files: writing mp4s (synthetic data, tests) and reading sampled frames.

Frames are uint8 RGB arrays [n, H, W, 3] everywhere in vidsme.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_mp4(path: str | Path, frames: np.ndarray, fps: int = 8, crf: int = 18) -> Path:
    """Encode uint8 RGB frames [n, H, W, 3] as an H.264 mp4 (yuv420p), deterministically.

    One encoder thread and fixed x264 settings: the same frames give the same bytes
    (the synthetic datasets' checksums rely on it). H and W must be even (yuv420p).
    """
    import av  # imported here: only writers need it

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be uint8 [n>0, H, W, 3], got {frames.dtype} {frames.shape}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"H and W must be even for yuv420p, got {height}x{width}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.thread_count = 1
        stream.options = {"crf": str(crf), "preset": "medium", "tune": "zerolatency"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
