"""Scoring cached features: every registered attack, every slice, at QA-row and video level.

No model runs here: the inputs are the feature cache's SampleFeatures. An attack whose
inputs the cache lacks is reported as skipped, with the reason and the command that
extracts them; an attack that fails (NaN scores, wrong shape) stops the run naming it,
because a missing leaderboard row must never look like a result.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from vidsme.attack.inputs import AttackInputs
from vidsme.attack.metrics import Evaluation, evaluate_scores
from vidsme.attack.registry import AttackSpec
from vidsme.benchmark.cache import SampleFeatures

LEVELS: tuple[str, ...] = ("row", "video")


def slice_inputs(samples: Sequence[SampleFeatures], slice_name: str) -> AttackInputs:
    """AttackInputs of one slice: per-sample features padded to the longest (NaN, mask False)."""
    lengths = [len(next(iter(s.token[slice_name].values()))) for s in samples]
    n, width = len(samples), max(lengths)
    mask = torch.arange(width).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    token = {}
    for key in samples[0].token[slice_name]:
        values = torch.full((n, width), float("nan"), dtype=torch.float32)
        for i, s in enumerate(samples):
            values[i, : lengths[i]] = s.token[slice_name][key]
        token[key] = values
    sequence = {}
    for key in samples[0].sequence.get(slice_name, {}):
        sequence[key] = torch.tensor([s.sequence[slice_name][key] for s in samples], dtype=torch.float64)
    frame_slot = None
    texts = None
    if slice_name == "video":
        frame_slot = torch.full((n, width), -1, dtype=torch.long)
        for i, s in enumerate(samples):
            frame_slot[i, : lengths[i]] = torch.tensor(s.frame_slot, dtype=torch.long)
    else:
        texts = [s.texts[slice_name] for s in samples]
    return AttackInputs(slice=slice_name, sample_ids=tuple(s.sample_id for s in samples), mask=mask, token=token,
                        sequence=sequence, texts=texts, frame_slot=frame_slot)


def group_by_video(videos: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """The distinct videos in sorted order, and each row's index among them."""
    order = sorted(set(videos))
    at = {v: i for i, v in enumerate(order)}
    return order, np.array([at[v] for v in videos])


def _video_means(scores: np.ndarray, index: np.ndarray, n_videos: int) -> np.ndarray:
    return np.bincount(index, weights=scores, minlength=n_videos) / np.bincount(index, minlength=n_videos)


def video_scores(scores: np.ndarray, videos: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Mean score of each video's rows; videos in sorted order."""
    order, index = group_by_video(videos)
    return order, _video_means(scores, index, len(order))


@dataclass
class SliceResult:
    """Every attack's raw scores and evaluations on one slice, at both levels."""

    slice: str
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # attack -> row scores
    video_scores: dict[str, np.ndarray] = field(default_factory=dict)  # attack -> per-video scores
    evaluations: dict[tuple[str, str], Evaluation] = field(default_factory=dict)  # (attack, level) -> metrics
    skipped: dict[str, str] = field(default_factory=dict)  # attack -> reason


def evaluate_slice(inputs: AttackInputs, attacks: Sequence[AttackSpec], labels: np.ndarray, videos: Sequence[str],
                   *, n_bootstrap: int, seed: int, extract_hint: str, workers: int | None = None) -> SliceResult:
    """Score and evaluate `attacks` on one slice (rows in `inputs` order; labels 1 = member).

    Scoring runs in order; the evaluations (bootstrap CIs, pure numpy, which releases the
    GIL) run on `workers` threads. Each evaluation seeds its own generator, so the numbers
    do not depend on the thread count.
    """
    result = SliceResult(inputs.slice)
    video_order, index = group_by_video(videos)
    video_label = np.asarray(labels)[np.unique(index, return_index=True)[1]]  # each video's first row's label
    video_ids = [f"video:{v}" for v in video_order]
    jobs = []
    for spec in attacks:
        if not spec.applies_to(inputs.slice):
            continue
        missing = [k for k in spec.needs if k not in inputs.available()]
        if missing:
            result.skipped[spec.name] = f"needs {', '.join(missing)}, which the cache lacks; {extract_hint}"
            continue
        scores = spec.score(inputs)
        per_video = _video_means(scores, index, len(video_order))
        result.scores[spec.name] = scores
        result.video_scores[spec.name] = per_video
        jobs.append(((spec.name, "row"), scores, labels, spec.direction, inputs.sample_ids))
        jobs.append(((spec.name, "video"), per_video, video_label, spec.direction, video_ids))

    def run(job):
        key, scores, y, direction, ids = job
        return key, evaluate_scores(scores, y, direction=direction, attack=key[0], sample_ids=ids,
                                    n_bootstrap=n_bootstrap, seed=seed)

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for key, evaluation in pool.map(run, jobs):  # map keeps the submission order
            result.evaluations[key] = evaluation
    return result
