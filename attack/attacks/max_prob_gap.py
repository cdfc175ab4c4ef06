"""Max probability gap: how far the top next-token prediction stands above the runner-up.

Li et al., "Membership Inference Attacks against Large Vision-Language Models"
(VL-MIA), NeurIPS 2024, baseline attacks, also in the Vid-SME reference's baseline
list (Li, Yu, Wang, arXiv 2506.03179, 2025). At each position gap = log p_(1) - log p_(2)
(the two largest probabilities); the score is its mean over the slice. A model is more
decisive on data it was trained on, so a HIGHER score means member.
"""
from __future__ import annotations

import torch

from vidsme.attack.aggregate import masked_mean
from vidsme.direction import Direction
from vidsme.attack.inputs import AttackInputs
from vidsme.attack.registry import register_attack

CITATION = (
    "Li et al. Membership Inference Attacks against Large Vision-Language Models (VL-MIA), NeurIPS 2024, "
    "baselines (max probability gap); as in the Vid-SME reference baseline list"
)
GAP = "natural.max_prob_gap"


@register_attack(
    "max_prob_gap",
    direction=Direction.HIGHER,
    needs=(GAP,),
    citation=CITATION,
    family="max_prob_gap",
)
def max_prob_gap(inputs: AttackInputs) -> torch.Tensor:
    """Mean over the slice of log p_(1) - log p_(2), the gap between the two top predictions."""
    return masked_mean(inputs.tokens(GAP), inputs.mask)
