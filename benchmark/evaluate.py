"""Scoring cached features: every registered attack, every slice, at QA-row and video level,
on the dev and on the test partition.

No model runs here: the inputs are the feature cache's SampleFeatures. An attack whose
inputs the cache lacks is reported as skipped, with the reason and the command that
extracts them; an attack that fails (NaN scores, wrong shape) stops the run naming it,
because a missing leaderboard row must never look like a result.

Levels: "row" (a QA row is a sample) and "video" (a video's score is the mean of its
rows'). Where every video has exactly one row the two are the same numbers and are
evaluated once, as level "row=video". Every bootstrap resamples whole videos (rows of
one video are not independent), stratified by label, so any two evaluations on the same
partition — whatever their level — see the same resamples and can be compared paired.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch

from vidsme.attack.inputs import AttackInputs
from vidsme.metrics import DEFAULT_MIN_FALSE_POSITIVES, Evaluation, evaluate_scores
from vidsme.attack.registry import AttackSpec
from vidsme.benchmark.cache import SampleFeatures
from vidsme.data_splits.partition import PARTITIONS

LEVELS: tuple[str, ...] = ("row", "video")
ROW_IS_VIDEO = "row=video"  # one row per video: the row and video levels coincide
ALL_LEVELS: tuple[str, ...] = (*LEVELS, ROW_IS_VIDEO)


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


@dataclass(frozen=True)
class LevelView:
    """The samples of one level: ids, videos (the bootstrap clusters), labels, sides."""

    level: str
    ids: list[str]
    videos: list[str]
    labels: np.ndarray  # 1 = member
    partitions: np.ndarray  # "dev" | "test" per sample


@dataclass(frozen=True)
class EvalSet:
    """A target's evaluated rows (manifest order), their videos, labels and dev/test sides."""

    ids: list[str]
    videos: list[str]
    labels: np.ndarray  # 1 = member, per row
    partitions: list[str]  # "dev" | "test", per row (by its video)

    @cached_property
    def _grouped(self) -> tuple[list[str], np.ndarray]:
        return group_by_video(self.videos)

    @property
    def video_order(self) -> list[str]:
        """Distinct videos, sorted (the order of video-level scores)."""
        return self._grouped[0]

    @property
    def video_index(self) -> np.ndarray:
        """Each row's index into video_order."""
        return self._grouped[1]

    @cached_property
    def video_labels(self) -> np.ndarray:
        """Each video's label, in video_order."""
        return np.asarray(self.labels)[np.unique(self.video_index, return_index=True)[1]]

    @cached_property
    def sides(self) -> tuple[str, ...]:
        """The partitions present, in PARTITIONS order (("test",) for a test-only split)."""
        present = set(self.partitions)
        return tuple(p for p in PARTITIONS if p in present)

    @cached_property
    def levels(self) -> tuple[str, ...]:
        """("row=video",) when every video has exactly one row, else ("row", "video")."""
        return (ROW_IS_VIDEO,) if len(self.video_order) == len(self.ids) else LEVELS

    @cached_property
    def views(self) -> dict[str, LevelView]:
        """One LevelView per level of this set."""
        first = np.unique(self.video_index, return_index=True)[1]  # each video's first row
        parts = np.asarray(self.partitions)
        out = {}
        for level in self.levels:
            if level == "video":
                out[level] = LevelView(level, list(self.video_order), list(self.video_order),
                                       np.asarray(self.labels)[first], parts[first])
            else:
                out[level] = LevelView(level, list(self.ids), list(self.videos), np.asarray(self.labels), parts)
        return out

    def at_level(self, row_scores: np.ndarray, level: str) -> np.ndarray:
        """Row scores at `level`: as they are, or each video's mean (video_order)."""
        if level == "video":
            return _video_means(row_scores, self.video_index, len(self.video_order))
        return row_scores


@dataclass
class SliceResult:
    """Every attack's raw scores and evaluations on one slice, at each level and partition."""

    slice: str
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # attack -> row scores
    level_scores: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # (attack, level) -> scores
    evaluations: dict[tuple[str, str, str], Evaluation] = field(default_factory=dict)  # (attack, level, partition)
    skipped: dict[str, str] = field(default_factory=dict)  # attack -> reason


def evaluate_level_scores(scores: np.ndarray, view: LevelView, partition: str, *, direction: str, attack: str,
                          n_bootstrap: int, seed: int,
                          min_false_positives: int = DEFAULT_MIN_FALSE_POSITIVES) -> Evaluation:
    """The pinned metrics of level scores on one partition, resampling whole videos."""
    mask = view.partitions == partition
    ids = [i for i, keep in zip(view.ids, mask) if keep]
    clusters = [v for v, keep in zip(view.videos, mask) if keep]
    return evaluate_scores(np.asarray(scores)[mask], view.labels[mask], direction=direction, attack=attack,
                           sample_ids=ids, n_bootstrap=n_bootstrap, seed=seed, clusters=clusters,
                           min_false_positives=min_false_positives)


def evaluate_slice(inputs: AttackInputs, attacks: Sequence[AttackSpec], samples: EvalSet, *, n_bootstrap: int,
                   seed: int, extract_hint: str, workers: int | None = None,
                   min_false_positives: int = DEFAULT_MIN_FALSE_POSITIVES) -> SliceResult:
    """Score `attacks` on one slice (rows in `inputs` order = `samples` order) and evaluate each at
    every level of `samples` on each partition (dev, test).

    Scoring runs in order; the evaluations (bootstrap CIs, pure numpy, which releases the
    GIL) run on `workers` threads. Each evaluation seeds its own generator, so the numbers
    do not depend on the thread count.
    """
    result = SliceResult(inputs.slice)
    jobs = []
    for spec in attacks:
        if not spec.applies_to(inputs.slice):
            continue
        missing = [k for k in spec.needs if k not in inputs.available()]
        if missing:
            result.skipped[spec.name] = f"needs {', '.join(missing)}, which the cache lacks; {extract_hint}"
            continue
        scores = spec.score(inputs)
        result.scores[spec.name] = scores
        for level, view in samples.views.items():
            level_scores = samples.at_level(scores, level)
            result.level_scores[(spec.name, level)] = level_scores
            jobs += [((spec.name, level, part), level_scores, view, spec.direction.value) for part in samples.sides]

    def run(job):
        key, scores, view, direction = job
        return key, evaluate_level_scores(scores, view, key[2], direction=direction, attack=key[0],
                                          n_bootstrap=n_bootstrap, seed=seed,
                                          min_false_positives=min_false_positives)

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for key, evaluation in pool.map(run, jobs):  # map keeps the submission order
            result.evaluations[key] = evaluation
    return result
