"""LOSS attack: the mean negative log-likelihood of the slice's tokens.

Yeom, Giacomelli, Fredrikson, Jha, "Privacy Risk in Machine Learning: Analyzing the
Connection to Overfitting", IEEE CSF 2018, Sec. 3 (the membership adversary that
thresholds the model's loss on the sample). Score = mean over the slice's positions of -log p_y (natural frame order).
A model fits its training data better, so a LOWER score means member.

Perplexity is exp(loss), a strictly increasing transform of the same number: it ranks
samples identically and gives the same AUC/TPR, so this one attack covers both.
On the video slice y is the argmax (no real next token exists), so there the score
is the mean of -log p_max.
"""
from __future__ import annotations

import torch

from vidsme.attack.aggregate import masked_mean
from vidsme.direction import Direction
from vidsme.attack.inputs import AttackInputs
from vidsme.attack.registry import register_attack

CITATION = "Yeom, Giacomelli, Fredrikson, Jha. Privacy Risk in Machine Learning, IEEE CSF 2018, Sec. 3 (loss threshold)"
TARGET = "natural.target_logprob"


@register_attack(
    "loss",
    direction=Direction.LOWER,
    needs=(TARGET,),
    citation=CITATION,
    family="loss",
    summary="mean -log p_y over the slice (perplexity = exp(loss) ranks identically)",
)
def loss(inputs: AttackInputs) -> torch.Tensor:
    """Mean negative log-likelihood of the slice's target tokens (float64 [N])."""
    return -masked_mean(inputs.tokens(TARGET), inputs.mask)
