"""Min-K% Prob: the mean log-likelihood of the slice's K% least likely tokens.

Shi, Ajith, Xia, Huang, Liu, Blevins, Chen, Zettlemoyer, "Detecting Pretraining Data
from Large Language Models", ICLR 2024, Sec. 3 (Min-K% Prob = (1/|min-K%|) sum over
the K% lowest-probability tokens of log p(x_i | x_<i)). A non-member tends to contain
a few outlier tokens with very low probability; a member does not, so a HIGHER score
(higher log-likelihood even on the worst tokens) means member. The Vid-SME reference
negates this and ranks lower-is-member, which orders samples the same way.

K% keeps max(1, floor(n * K / 100)) of the slice's n positions (see aggregate.py), so
K = 0 is the single least likely token and K = 100 is the mean log-likelihood.
"""
from __future__ import annotations

from functools import partial

import torch

from vidsme.attack.aggregate import K_PERCENTS, masked_k_mean
from vidsme.direction import Direction
from vidsme.attack.inputs import AttackInputs
from vidsme.attack.registry import register_attack

CITATION = "Shi et al. Detecting Pretraining Data from Large Language Models, ICLR 2024, Sec. 3 (Min-K% Prob)"
TARGET = "natural.target_logprob"


def min_k_prob(inputs: AttackInputs, k: int) -> torch.Tensor:
    """Mean of the K% lowest log p_y over the slice (float64 [N])."""
    return masked_k_mean(inputs.tokens(TARGET), inputs.mask, k, largest=False)


for k in K_PERCENTS:
    register_attack(
        f"min_k_prob_k{k}",
        direction=Direction.HIGHER,
        needs=(TARGET,),
        citation=CITATION,
        family="min_k_prob",
        summary=f"mean log p_y of the {k}% least likely tokens",
    )(partial(min_k_prob, k=k))
