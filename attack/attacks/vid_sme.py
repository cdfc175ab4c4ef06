"""Vid-SME: Sharma-Mittal entropy difference between natural and reversed frame order.

Li, Yu, Wang, "Vid-SME: Membership Inference Attacks against Large Video Understanding
Models", arXiv 2506.03179 (2025), Sec. 4 (Eq. for SME_{q,r} and the membership score).
On the video slice (target = argmax, no real token exists there) each position gets
SME_{q,r} under the natural and under the reversed frame order, with the video's own
adaptive (q, r) (see vidsme.attack.vid_sme_orders). The per-position difference
natural - reversed is aggregated (max, min, mean, Max-K%, Min-K%); the "sequence"
score is the SME of the slice's mean next-token distribution, natural - reversed.
As in the reference, a lower score means member.

Two alignments of the difference:
* position-aligned (reference): position i of the natural pass against position i of
  the reversed pass (which holds frame n-1-t where the natural pass holds frame t);
* frame-aligned (`vid_sme_frame_*`): the token at offset j of frame t in the natural
  pass against offset j of the same frame t in the reversed pass.
"""
from __future__ import annotations

from functools import partial

import torch

from vidsme.attack.aggregate import K_PERCENTS, masked_k_mean, masked_mean
from vidsme.direction import Direction
from vidsme.attack.inputs import AttackInputs
from vidsme.attack.registry import register_attack
from vidsme.errors import VidsmeError

CITATION = "Li, Yu, Wang. Vid-SME, arXiv 2506.03179 (2025), Sec. 4"
NATURAL, REVERSED = "natural.sharma_mittal", "reversed.sharma_mittal"


def frame_partner(frame_slot: torch.Tensor, mask: torch.Tensor, sample_ids: tuple[str, ...]) -> torch.Tensor:
    """[N, T] index into the reversed pass of the position holding the same frame content.

    The distinct frame slots of a sample, in order, are its frame groups (one frame for
    LLaVA families; a temporal patch of two frames, slots 0, 2, 4, ..., for Qwen2-VL).
    In the reversed input, group k of n shows the content of group n-1-k; offset j within
    a group is kept. Positions outside any frame (slot -1) keep their own position.
    """
    partner = torch.arange(frame_slot.shape[1]).expand_as(frame_slot).clone()
    for row in range(frame_slot.shape[0]):  # per sample, per frame: never per token
        slots = torch.where(mask[row], frame_slot[row], -1)
        groups = sorted(set(slots[slots >= 0].tolist()))
        if not groups:
            raise VidsmeError(f"sample {sample_ids[row]!r}: no frame positions in the video slice")
        members = [(slots == g).nonzero().flatten() for g in groups]
        n = len(groups)
        for k, here in enumerate(members):
            there = members[n - 1 - k]
            if here.numel() != there.numel():
                raise VidsmeError(
                    f"sample {sample_ids[row]!r}: frames {groups[k]} and {groups[n - 1 - k]} have "
                    f"{here.numel()} and {there.numel()} tokens; frame alignment needs equally sized frames"
                )
            partner[row, here] = there
    return partner


def sme_difference(inputs: AttackInputs, aligned_by: str) -> torch.Tensor:
    """Per-position SME(natural) - SME(reversed) [N, T], position- or frame-aligned."""
    natural = inputs.tokens(NATURAL)
    reversed_ = inputs.tokens(REVERSED)
    if aligned_by == "frame":
        partner = frame_partner(inputs.frame_slot, inputs.mask, inputs.sample_ids)
        reversed_ = torch.gather(reversed_, 1, partner)
    return natural.to(torch.float64) - reversed_.to(torch.float64)


def _aggregate(inputs: AttackInputs, aligned_by: str, how: str, k: int = 0) -> torch.Tensor:
    """Vid-SME score: an aggregate of the natural - reversed SME difference."""
    diff = sme_difference(inputs, aligned_by)
    if how == "mean":
        return masked_mean(diff, inputs.mask)
    return masked_k_mean(diff, inputs.mask, k, largest=(how == "max"))


def _summary(how: str, k: int, aligned_by: str) -> str:
    what = how if k == 0 else f"{how.capitalize()}-{k}% mean"
    return f"{what} over positions of SME(natural) - SME(reversed), {aligned_by}-aligned"


# suffix -> (aggregate, K); "max"/"min" are the reference's Max/Min_vetp, equal to K = 0.
VARIANTS: dict[str, tuple[str, int]] = {"max": ("max", 0), "min": ("min", 0), "mean": ("mean", 0)}
VARIANTS.update({f"{how}_k{k}": (how, k) for k in K_PERCENTS for how in ("max", "min")})

for aligned_by, prefix in (("position", "vid_sme"), ("frame", "vid_sme_frame")):
    needs = (NATURAL, REVERSED) + (("frame_slot",) if aligned_by == "frame" else ())
    for suffix, (how, k) in VARIANTS.items():
        register_attack(
            f"{prefix}_{suffix}",
            direction=Direction.LOWER,
            needs=needs,
            slices=("video",),
            citation=CITATION,
            family="vid_sme",
            summary=_summary(how, k, aligned_by),
        )(partial(_aggregate, aligned_by=aligned_by, how=how, k=k))


@register_attack(
    "vid_sme_sequence",
    direction=Direction.LOWER,
    needs=("natural.sequence_sharma_mittal", "reversed.sequence_sharma_mittal"),
    slices=("video",),
    citation=CITATION,
    family="vid_sme",
)
def vid_sme_sequence(inputs: AttackInputs) -> torch.Tensor:
    """SME of the slice's mean next-token distribution, natural - reversed."""
    return inputs.per_sample("natural.sequence_sharma_mittal") - inputs.per_sample("reversed.sequence_sharma_mittal")
