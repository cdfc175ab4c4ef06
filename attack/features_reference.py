"""Slow, obviously-correct per-token features in float64: ground truth for tests and perf.

Written independently of vidsme.attack.features: each feature by its textbook
definition, one position at a time, in the style of the Vid-SME reference loop (but
without its clamps and epsilons). Never used for real evaluations: it costs about 5 ms
per token at a 32k vocabulary (perf/bench_features.py times a faithful copy of the
reference loop separately, for the speed comparison).
"""
from __future__ import annotations

import math

import torch


def sharma_mittal_direct(p: torch.Tensor, q: float, r: float) -> float:
    """Textbook SME_{q,r}(p) with its exact limit forms (p float64, sums to 1)."""
    p = p[p > 0]
    shannon = float(-(p * p.log()).sum())
    if q == 1.0 and r == 1.0:
        return shannon
    if q == 1.0:
        return math.expm1((1 - r) * shannon) / (1 - r)
    sum_q = float((p**q).sum())
    if r == 1.0:
        return math.log(sum_q) / (1 - q)
    return (sum_q ** ((1 - r) / (1 - q)) - 1) / (1 - r)


def features_one_position(logits_row: torch.Tensor, target: int | None, q: float | None, r: float | None) -> dict:
    """All token features of one position, float64, by their definitions."""
    x = logits_row.to(torch.float64)
    logp = torch.log_softmax(x, -1)
    p = logp.exp()
    y = int(torch.argmax(x)) if target is None else target
    p_y = float(p[y])
    others = torch.cat([p[:y], p[y + 1 :]])
    srt = torch.sort(logp, descending=True).values
    nz = p > 0
    mu = float((p[nz] * logp[nz]).sum())
    var = float((p[nz] * (logp[nz] - mu) ** 2).sum())
    out = {
        "target_logprob": float(logp[y]),
        "entropy": -mu,
        "renyi_05": 2 * math.log(float(p.sqrt().sum())),
        "renyi_2": -math.log(float((p * p).sum())),
        "renyi_inf": -float(logp.max()),
        "modified_entropy": -(1 - p_y) * float(logp[y]) - float((others * torch.log1p(-others)).sum()),
        "modified_renyi_05": -2.0
        * ((1 - p_y) * math.sqrt(p_y) - (1 - p_y) + float((others * (1 - others).sqrt()).sum()) - float(others.sum())),
        "modified_renyi_2": -1.0
        * ((1 - p_y) * p_y - (1 - p_y) + float((others * (1 - others)).sum()) - float(others.sum())),
        "max_prob_gap": float(srt[0] - srt[1]),
        "mink_pp_z": 0.0 if var == 0 else (float(logp[y]) - mu) / math.sqrt(var),
    }
    if q is not None:
        out["sharma_mittal"] = sharma_mittal_direct(p, q, r)
    return out
