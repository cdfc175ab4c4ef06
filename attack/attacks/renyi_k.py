"""MaxRenyi-K% and MinRenyi-K%: the mean Renyi entropy of the K% most (least) uncertain positions.

Li, Wang, Zhang, Wang, Tang, Wang, "Membership Inference Attacks against Large
Vision-Language Models" (VL-MIA), NeurIPS 2024, Sec. 4 (MaxRenyi-K%): at each
position the Renyi entropy H_alpha(p) = log(sum p^alpha) / (1 - alpha) of the
next-token distribution, for alpha in {0.5, 1 (Shannon), 2, inf (-log max p)}; the
score is the mean of the K% largest (Max) or smallest (Min) entropies over the slice.
A model is more confident on data it was trained on, so a LOWER score means member,
as in the reference.

K% keeps max(1, floor(n * K / 100)) of the slice's n positions (see aggregate.py), so
K = 0 is the single max (min) entropy and K = 100 the mean entropy (Max and Min agree).
"""
from __future__ import annotations

from functools import partial

import torch

from vidsme.attack.aggregate import K_PERCENTS, masked_k_mean
from vidsme.direction import Direction
from vidsme.attack.inputs import AttackInputs
from vidsme.attack.registry import register_attack

CITATION = (
    "Li et al. Membership Inference Attacks against Large Vision-Language Models (VL-MIA), "
    "NeurIPS 2024, Sec. 4 (MaxRenyi-K%)"
)
# Renyi order (as written in attack names) -> the per-position feature holding H_alpha.
ALPHA_FEATURES: dict[str, str] = {
    "0.5": "natural.renyi_05",
    "1": "natural.entropy",
    "2": "natural.renyi_2",
    "inf": "natural.renyi_inf",
}


def renyi_k(inputs: AttackInputs, feature: str, k: int, largest: bool) -> torch.Tensor:
    """Mean of the K% largest (largest=True) or smallest Renyi entropies over the slice (float64 [N])."""
    return masked_k_mean(inputs.tokens(feature), inputs.mask, k, largest=largest)


for alpha, feature in ALPHA_FEATURES.items():
    for k in K_PERCENTS:
        for how, largest in (("max", True), ("min", False)):
            register_attack(
                f"{how}_k_renyi_a{alpha}_k{k}",
                direction=Direction.LOWER,
                needs=(feature,),
                citation=CITATION,
                family="renyi",
                summary=f"mean of the {k}% {'largest' if largest else 'smallest'} Renyi entropies, alpha = {alpha}",
            )(partial(renyi_k, feature=feature, k=k, largest=largest))
