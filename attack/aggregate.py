"""Masked per-sample reductions of [N, T] token features, vectorized over samples.

K% conventions follow the Vid-SME reference: the number of tokens kept is
max(1, floor(n * K / 100)) for a slice of n positions, so K = 0 means the single most
extreme token. We floor with integer arithmetic; the reference multiplies by a float
ratio, which can land one token lower when n * ratio falls just below an integer.
"""
from __future__ import annotations

import torch

K_PERCENTS: tuple[int, ...] = (0, 5, 10, 30, 60, 90, 100)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of each row over its masked-in positions (float64 [N])."""
    v = torch.where(mask, values.to(torch.float64), 0.0)
    return v.sum(1) / mask.sum(1)


def k_count(lengths: torch.Tensor, percent: int) -> torch.Tensor:
    """Tokens kept for K%: max(1, floor(lengths * percent / 100)), exactly."""
    if not 0 <= percent <= 100:
        raise ValueError(f"K must be a percentage in [0, 100], got {percent}")
    return torch.clamp((lengths * percent) // 100, min=1)


def masked_k_mean(values: torch.Tensor, mask: torch.Tensor, percent: int, *, largest: bool) -> torch.Tensor:
    """Mean of each row's K% largest (or smallest) masked-in values (float64 [N])."""
    fill = float("-inf") if largest else float("inf")
    v = torch.where(mask, values.to(torch.float64), fill)
    ordered = torch.sort(v, dim=1, descending=largest).values
    k = k_count(mask.sum(1), percent)
    # Masked-out fills sort last, so the first k entries are real values.
    kept = torch.arange(v.shape[1], device=v.device) < k.unsqueeze(1)
    result = torch.where(kept, ordered, 0.0).sum(1) / k
    # A NaN at a real position must surface (metrics name the sample), whatever the sort did with it.
    has_nan = (torch.isnan(v) & mask).any(1)
    return torch.where(has_nan, float("nan"), result)
