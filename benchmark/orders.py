"""Vid-SME orders for an evaluated split: per-video (k1, k3) -> (q, r) over the split's videos.

The pool is every distinct video of the split, members and non-members together, as in
the reference (its q, r are min-max normalised over the whole evaluated set). A row gets
its video's orders. Statistics come from vidsme.video_stats (cached by checksum+config).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidsme.attack.vid_sme_orders import VidSmeOrders, orders_from_stats
from vidsme.video_stats import StatsConfig, VideoStats, compute_video_stats


@dataclass(frozen=True)
class SplitOrders:
    """Orders per video of a split, and what they were computed from."""

    videos: tuple[str, ...]  # manifest video paths, sorted
    stats: tuple[VideoStats, ...]
    orders: VidSmeOrders

    def for_rows(self, rows: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
        """(q, r) float64 arrays aligned with `rows`."""
        index = {v: i for i, v in enumerate(self.videos)}
        at = np.array([index[r["video"]] for r in rows])
        return self.orders.q[at], self.orders.r[at]

    def sha256(self) -> str:
        """The (video, q, r) table hashed: feature caches are keyed by it (pool, exclusions, betas, stats config)."""
        from vidsme.provenance import ids_sha256

        return ids_sha256([f"{v}\t{q!r}\t{r!r}" for v, q, r in zip(self.videos, self.orders.q.tolist(),
                                                                   self.orders.r.tolist())])


def split_orders(rows: Sequence[dict], video_root: Path, *, n_frames: int = 16, beta1: float = 1.0,
                 beta2: float = 0.1, cache_dir: Path | None = None, workers: int | None = None,
                 progress: bool = True) -> SplitOrders:
    """Compute k1/k3 for every distinct video of `rows`, then (q, r) over that pool."""
    videos = tuple(sorted({r["video"] for r in rows}))
    stats = compute_video_stats([Path(video_root) / v for v in videos], StatsConfig(n_frames=n_frames),
                                cache_dir=cache_dir, workers=workers, progress=progress)
    orders = orders_from_stats([s.k1 for s in stats], [s.k3 for s in stats], list(videos), beta1=beta1, beta2=beta2)
    return SplitOrders(videos=videos, stats=tuple(stats), orders=orders)
