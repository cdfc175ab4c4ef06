"""Min-K%++: Min-K% on the target log-probability standardised within its distribution.

Zhang, Sun, Ding, Ma, Wang, Yang, Jia, "Min-K%++: Improved Baseline for Detecting
Pre-Training Data from Large Language Models", ICLR 2025 (arXiv 2404.02936), Sec. 3
(the equation for z): at each position z = (log p_y - mu) / sigma, with mu and sigma^2 the mean and
variance of log p(.) under p(.) itself (feature `mink_pp_z`, see features.py); the score
is the mean of the K% lowest z. Training drives the target toward a local maximum of
the likelihood, i.e. well above the distribution's mean log-probability, so a HIGHER
score means member.

K% keeps max(1, floor(n * K / 100)) of the slice's n positions (see aggregate.py).
"""
from __future__ import annotations

from functools import partial

import torch

from vidsme.attack.aggregate import K_PERCENTS, masked_k_mean
from vidsme.direction import Direction
from vidsme.attack.inputs import AttackInputs
from vidsme.attack.registry import register_attack

CITATION = (
    "Zhang et al. Min-K%++: Improved Baseline for Detecting Pre-Training Data from Large Language Models, "
    "ICLR 2025 (arXiv 2404.02936), Sec. 3: z = (log p_y - mu) / sigma"
)
Z = "natural.mink_pp_z"


def min_k_pp(inputs: AttackInputs, k: int) -> torch.Tensor:
    """Mean of the K% lowest standardised log-probabilities z over the slice (float64 [N])."""
    return masked_k_mean(inputs.tokens(Z), inputs.mask, k, largest=False)


for k in K_PERCENTS:
    register_attack(
        f"min_k_pp_k{k}",
        direction=Direction.HIGHER,
        needs=(Z,),
        citation=CITATION,
        family="min_k_plus_plus",
        summary=f"mean of the {k}% lowest z = (log p_y - mu) / sigma",
    )(partial(min_k_pp, k=k))
