"""Modified entropy and modified Renyi entropy: uncertainty scores that use the true label.

* `modified_entropy`: Song, Mittal, "Systematic Evaluation of Privacy Risks of Machine
  Learning Models", USENIX Security 2021, Sec. 3 (metric-based attacks), Eq. for Mentr:
  Mentr(p, y) = -(1 - p_y) log p_y - sum_{v != y} p_v log(1 - p_v), averaged over the
  slice's positions.
* `modified_renyi_a0.5`, `modified_renyi_a2`: Li et al., "Membership Inference Attacks
  against Large Vision-Language Models" (VL-MIA), NeurIPS 2024, Sec. 4 (ModRenyi),
  the alpha = 0.5 and alpha = 2 generalisations of Mentr (formulas in features.py),
  averaged over the slice.

Unlike plain entropy these are small only when the model is confident *and right*
(p_y near 1), so a LOWER score means member.
"""
from __future__ import annotations

from functools import partial

import torch

from vidsme.attack.aggregate import masked_mean
from vidsme.direction import Direction
from vidsme.attack.inputs import AttackInputs
from vidsme.attack.registry import register_attack

SONG_MITTAL = (
    "Song, Mittal. Systematic Evaluation of Privacy Risks of Machine Learning Models, "
    "USENIX Security 2021, Sec. 3 (Mentr)"
)
VL_MIA = (
    "Li et al. Membership Inference Attacks against Large Vision-Language Models (VL-MIA), "
    "NeurIPS 2024, Sec. 4 (ModRenyi)"
)

# attack name -> (per-position feature, citation, summary)
VARIANTS: dict[str, tuple[str, str, str]] = {
    "modified_entropy": ("natural.modified_entropy", SONG_MITTAL, "mean modified entropy (Mentr) over the slice"),
    "modified_renyi_a0.5": ("natural.modified_renyi_05", VL_MIA, "mean modified Renyi entropy, alpha = 0.5"),
    "modified_renyi_a2": ("natural.modified_renyi_2", VL_MIA, "mean modified Renyi entropy, alpha = 2"),
}


def mean_feature(inputs: AttackInputs, feature: str) -> torch.Tensor:
    """Mean of a per-position (modified) entropy over the slice (float64 [N])."""
    return masked_mean(inputs.tokens(feature), inputs.mask)


for name, (feature, citation, summary) in VARIANTS.items():
    register_attack(
        name,
        direction=Direction.LOWER,
        needs=(feature,),
        citation=citation,
        family="modified_entropy",
        summary=summary,
    )(partial(mean_feature, feature=feature))
