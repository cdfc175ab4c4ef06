"""Frame contrast: how much the target's uncertainty about each frame depends on where in time it sees it.

An example attack written for docs/SUBMITTING.md (submit it with
`vidsme submit docs/examples/frame_contrast_attack.py --results runs/demo/benchmark`).

Idea, after Vid-SME (Li, Yu, Wang, "Vid-SME: Membership Inference Attacks against Large Video
Understanding Models", arXiv 2506.03179, 2025, Sec. 4): a model fine-tuned on a video has seen its
frames in their natural order, so its predictions over the video positions should change more
when the same frames arrive in reverse order than they do for a video it never saw. Vid-SME
compares Sharma-Mittal entropies position by position; this example instead aligns by frame
content and uses plain Shannon entropy:

    H_nat(t) = mean Shannon entropy of the next-token distribution over frame t's positions,
               natural frame order;
    H_rev(t) = the same for frame t in the reversed pass (where frame t sits in slot n-1-t);
    score    = (1/n) * sum_t |H_nat(t) - H_rev(t)|      over the n sampled frames.

Direction: higher score = member (more order-sensitive). That is a hypothesis, not a result:
the leaderboard orients scores by it, so an AUC below 0.5 says the hypothesis is wrong for
that target. Inputs: `natural.entropy`, `reversed.entropy` and `frame_slot`, on the video slice.
"""
from __future__ import annotations

import torch

from vidsme.attack import AttackInputs, Direction, register_attack


def frame_means(values: torch.Tensor, slots: torch.Tensor, valid: torch.Tensor, n_slots: int) -> torch.Tensor:
    """[N, n_slots] mean of `values` over the positions of each frame slot (NaN for an empty slot)."""
    index = slots.clamp(min=0)
    weights = valid.to(torch.float64)
    total = torch.zeros(values.shape[0], n_slots, dtype=torch.float64)
    count = torch.zeros(values.shape[0], n_slots, dtype=torch.float64)
    total.scatter_add_(1, index, torch.where(valid, values.to(torch.float64), 0.0))
    count.scatter_add_(1, index, weights)
    return total / count


@register_attack(
    "frame_contrast",
    direction=Direction.HIGHER,
    needs=("natural.entropy", "reversed.entropy", "frame_slot"),
    slices=("video",),
    family="frame_contrast",
    citation="docs/SUBMITTING.md example, after Li, Yu, Wang, Vid-SME, arXiv 2506.03179 (2025), Sec. 4",
)
def frame_contrast(inputs: AttackInputs) -> torch.Tensor:
    """Mean over frames of |H(natural) - H(reversed)|, the entropies of each frame's positions, frame-aligned."""
    slots = inputs.frame_slot
    valid = inputs.mask & (slots >= 0)
    n_frames = torch.where(valid, slots, -1).max(dim=1).values + 1  # [N] frames per sample
    width = int(n_frames.max())
    natural = frame_means(inputs.tokens("natural.entropy"), slots, valid, width)
    reversed_ = frame_means(inputs.tokens("reversed.entropy"), slots, valid, width)
    frame = torch.arange(width).expand(len(n_frames), width)
    in_video = frame < n_frames.unsqueeze(1)
    # frame t of the natural pass is frame slot n-1-t of the reversed pass
    partner = torch.where(in_video, n_frames.unsqueeze(1) - 1 - frame, 0)
    contrast = (natural - reversed_.gather(1, partner)).abs()
    return torch.where(in_video, contrast, 0.0).sum(dim=1) / n_frames
