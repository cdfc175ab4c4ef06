"""Vid-SME's adaptive orders: per-video (q, r) from motion and brightness statistics.

Li, Yu, Wang, "Vid-SME: Membership Inference Attacks against Large Video Understanding
Models" (arXiv 2506.03179), Sec. 4. Over the evaluated pool of videos, with k1 the mean
variance of dense optical flow and k3 the std of mean grey level:

    q = 1 + beta1 * (max k1 - k1) / (max k1 - min k1)      (more motion -> q nearer 1)
    r = 1 + beta2 * (k3 - min k3) / (max k3 - min k3)      (more flicker -> larger r)

The reference z-scores k1 and k3 first; min-max normalisation makes that a no-op, so we
skip it. A video's orders depend on the whole pool: results must say which pool.

Degenerate pools (one video, or every video with the same statistic): the normalised
term is 0/0. We define it as 0 — no video is more dynamic than the pool — so that
order is 1 for every video (q = 1: Shannon-based; r = 1: Renyi-based). The reference
divides by zero and produces NaN there.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vidsme.errors import VidsmeError


@dataclass(frozen=True)
class VidSmeOrders:
    """Per-video Sharma-Mittal orders and how they were obtained."""

    q: np.ndarray  # [N] float64 in [1, 1 + beta1]
    r: np.ndarray  # [N] float64 in [1, 1 + beta2]
    beta1: float
    beta2: float
    q_degenerate: bool  # every k1 equal: q fixed to 1
    r_degenerate: bool  # every k3 equal: r fixed to 1


def _normalised(values: np.ndarray) -> tuple[np.ndarray, bool]:
    lo, hi = float(values.min()), float(values.max())
    if hi == lo:
        return np.zeros_like(values), True
    return (values - lo) / (hi - lo), False


def orders_from_stats(
    k1: Sequence[float] | np.ndarray,
    k3: Sequence[float] | np.ndarray,
    sample_ids: Sequence[str],
    beta1: float = 1.0,
    beta2: float = 0.1,
) -> VidSmeOrders:
    """Map per-video (k1 motion, k3 brightness) statistics to (q, r) over the pool.

    Raises VidsmeError naming the video when a statistic is NaN, infinite or negative
    (both are variances/standard deviations), or when lengths disagree.
    """
    k1 = np.asarray(k1, dtype=np.float64).reshape(-1)
    k3 = np.asarray(k3, dtype=np.float64).reshape(-1)
    if not (len(k1) == len(k3) == len(sample_ids)):
        raise VidsmeError(f"got {len(k1)} k1, {len(k3)} k3 values for {len(sample_ids)} videos")
    if len(k1) == 0:
        raise VidsmeError("cannot compute Vid-SME orders for an empty pool")
    for name, values in (("k1 (optical-flow variance)", k1), ("k3 (brightness std)", k3)):
        bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
        if bad.size:
            ids = ", ".join(f"{sample_ids[i]}={values[i]}" for i in bad[:5])
            raise VidsmeError(
                f"{name} is not a finite non-negative number for {bad.size} video(s): {ids}; "
                "recompute the video statistics for them"
            )
    if beta1 < 0 or beta2 < 0:
        raise VidsmeError(f"beta1 and beta2 must be >= 0 (got {beta1}, {beta2}): q and r must stay >= 1")
    n1, q_deg = _normalised(k1)
    n3, r_deg = _normalised(k3)
    return VidSmeOrders(
        q=1.0 + beta1 * (1.0 - n1) if not q_deg else np.ones_like(k1),
        r=1.0 + beta2 * n3,
        beta1=float(beta1),
        beta2=float(beta2),
        q_degenerate=q_deg,
        r_degenerate=r_deg,
    )
