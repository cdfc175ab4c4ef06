"""zlib ratio: the loss calibrated by the text's zlib compression entropy.

Carlini, Tramer, Wallace, Jagielski, Herbert-Voss, Lee, Roberts, Brown, Song, Erlingsson,
Oprea, Raffel, "Extracting Training Data from Large Language Models", USENIX Security
2021, Sec. 5.2 ("zlib": the ratio of the model's (log-)perplexity to the zlib entropy of
the text). Score = loss / zlib, where loss is the mean -log p_y over the slice (natural
frame order) and zlib = len(zlib.compress(text.encode("utf-8"))) in bytes. Text that is
intrinsically easy (repetitive, hence compressible) is discounted; a LOWER score means
member.

Only defined on the text slices (instruction, answer): the video slice has no text.
"""
from __future__ import annotations

import zlib

import torch

from vidsme.attack.aggregate import masked_mean
from vidsme.direction import Direction
from vidsme.attack.inputs import TEXT, AttackInputs
from vidsme.attack.registry import register_attack
from vidsme.errors import MissingFeatureError, VidsmeError

CITATION = "Carlini et al. Extracting Training Data from Large Language Models, USENIX Security 2021, Sec. 5.2 (zlib)"
TARGET = "natural.target_logprob"


def zlib_entropy(inputs: AttackInputs) -> torch.Tensor:
    """zlib-compressed length in bytes of each sample's slice text (float64 [N]).

    Raises VidsmeError naming the sample when a text is empty: zlib still emits a few
    header bytes for "", a denominator that measures nothing about the text.
    """
    if inputs.texts is None:
        raise MissingFeatureError(f"zlib needs the text of slice {inputs.slice!r}, which the inputs lack")
    sizes = []
    for sample_id, text in zip(inputs.sample_ids, inputs.texts):  # compression is per string
        if not text:
            raise VidsmeError(
                f"sample {sample_id!r} has an empty {inputs.slice} text: its zlib entropy is not meaningful; "
                "check the slice boundaries or drop the sample"
            )
        sizes.append(len(zlib.compress(text.encode("utf-8"))))
    return torch.tensor(sizes, dtype=torch.float64, device=inputs.mask.device)


@register_attack(
    "zlib",
    direction=Direction.LOWER,
    needs=(TARGET, TEXT),
    slices=("instruction", "answer"),
    citation=CITATION,
    family="zlib",
)
def zlib_ratio(inputs: AttackInputs) -> torch.Tensor:
    """Mean -log p_y over the slice divided by the zlib-compressed length of its text in bytes."""
    loss = -masked_mean(inputs.tokens(TARGET), inputs.mask)
    return loss / zlib_entropy(inputs)
