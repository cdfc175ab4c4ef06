"""Reference-model calibration: the target's log-likelihood minus the base model's.

Carlini et al., "Extracting Training Data from Large Language Models", USENIX Security
2021, Sec. 5.2 (comparing to another model: the ratio of log-perplexities of the target
and a reference model), and Watson, Guo, Cormode, Sablayrolles, "On the Importance of
Difficulty Calibration in Membership Inference Attacks", ICLR 2022, Sec. 3 (calibrated
score = target score - reference score). Score = mean log p_y under the target minus
mean log p_y under the reference model, over the slice. The reference is the base model
the target was fine-tuned from; it shares the tokenizer, so positions align one to one.
The reference removes how easy a sample is in general, leaving what fine-tuning added:
a HIGHER score means member.
"""
from __future__ import annotations

import torch

from vidsme.attack.aggregate import masked_mean
from vidsme.direction import Direction
from vidsme.attack.inputs import AttackInputs
from vidsme.attack.registry import register_attack

CITATION = (
    "Carlini et al. Extracting Training Data from Large Language Models, USENIX Security 2021, Sec. 5.2 "
    "(reference model); Watson et al. On the Importance of Difficulty Calibration in Membership Inference "
    "Attacks, ICLR 2022, Sec. 3"
)
TARGET, REFERENCE = "natural.target_logprob", "reference.target_logprob"


@register_attack(
    "ref_calibration",
    direction=Direction.HIGHER,
    needs=(TARGET, REFERENCE),
    citation=CITATION,
    family="reference",
)
def ref_calibration(inputs: AttackInputs) -> torch.Tensor:
    """Mean log p_y under the target minus mean log p_y under the reference model, over the slice."""
    # Same positions in both passes (shared tokenizer), so the means share a denominator.
    diff = inputs.tokens(TARGET).to(torch.float64) - inputs.tokens(REFERENCE).to(torch.float64)
    return masked_mean(diff, inputs.mask)
