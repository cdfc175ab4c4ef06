"""Swap tests: give every row another row's video, to see whether a number reads the video at all.

If a score does not move when each row's video is replaced by another's, the score is not about
the video. The swap is a derangement of the *videos* (every row of a video gets the same other
video), drawn with a fixed seed within groups — within each label, so members keep member videos
and non-members non-member ones, and only the video-to-text pairing changes.
"""
from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence

import numpy as np

from vidsme.errors import VidsmeError


def derangement(videos: Sequence[str], groups: Sequence[Hashable] | None = None, *, seed: int = 0) -> dict[str, str]:
    """video -> the video its rows get instead: a permutation of the distinct `videos` within each group
    (`groups[i]` is the group of `videos[i]`; None: one group) that maps no video to itself.

    Deterministic in (the set of videos per group, seed): each group's videos are sorted, shuffled by a
    generator seeded from the seed and the group, and shifted by one place along that order (a cycle, so
    no fixed point). A group with a single video has no derangement: an error naming it."""
    groups = [None] * len(videos) if groups is None else list(groups)
    if len(groups) != len(videos):
        raise VidsmeError(f"derangement: {len(videos)} videos but {len(groups)} groups")
    members: dict[Hashable, set[str]] = {}
    for video, group in zip(videos, groups):
        members.setdefault(group, set()).add(video)
    for video in {v for v, g in zip(videos, groups) if sum(v in m for m in members.values()) > 1}:
        raise VidsmeError(f"derangement: video {video!r} is in two groups (its rows disagree); a swap within "
                          "groups needs one group per video")
    out: dict[str, str] = {}
    for group, names in members.items():
        if len(names) < 2:
            raise VidsmeError(f"derangement: group {group!r} has one video ({next(iter(names))!r}); no other video "
                              "to swap it with")
        digest = hashlib.sha256(f"vidsme.swaps\x1f{seed}\x1f{group!r}".encode()).digest()
        order = sorted(names)
        np.random.default_rng(int.from_bytes(digest[:16], "little")).shuffle(order)
        out.update({v: order[(i + 1) % len(order)] for i, v in enumerate(order)})
    return out


__all__ = ["derangement"]
