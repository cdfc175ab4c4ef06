"""Pinned evaluation metrics for membership-inference scores, with bootstrap CIs.

Definitions (every attack is reported by exactly these):

* Labels: 1/True = member (positive class), 0/False = non-member. Raw scores are
  first oriented with `Direction.orient`, so that higher = more likely a member.
* ROC: the points (FPR, TPR) at every distinct threshold, tied scores forming one
  point (sklearn `roc_curve(drop_intermediate=False)`), from (0, 0) to (1, 1).
* AUC: trapezoidal area under that ROC; equals the Mann-Whitney probability
  P(member score > non-member score) with ties counted 1/2.
* Balanced accuracy: max over ROC points of 1 - (FPR + FNR) / 2, FNR = 1 - TPR.
* TPR@x FPR: the highest TPR among ROC points with FPR <= x (inclusive), for
  x in `fpr_levels` (default 0.1%, 1%, 5%). It is reported only when the sample has
  at least `min_false_positives / x` non-members (default 10 false positives at that
  rate: 1,000 non-members for 1%, 10,000 for 0.1%, 200 for 5%); below that the value
  is None with the reason ("needs ≥ 1000 non-members (has 100)"): one or two false
  positives decide it, and no CI can repair that.
* NaN scores raise `InvalidScoresError` naming the attack and sample ids.
  +inf / -inf are clipped to the largest / smallest finite score of the vector
  (as the Vid-SME reference code does) and counted on the raw, un-oriented scores.
* Confidence intervals: stratified bootstrap (members resampled among members,
  non-members among non-members), `n_bootstrap` replicates, percentile interval at
  `confidence`, `np.random.default_rng(seed)`. With `clusters` (e.g. each QA row's
  video) whole clusters are resampled, since rows of one video are not independent;
  without, each sample is its own cluster. Point estimates use the data itself.
* Pairing: the resamples depend only on (seed, n_bootstrap, the sorted member and
  non-member cluster labels), never on the scores, so two attacks evaluated on the
  same samples — or one at row level and one at video level of the same videos — see
  the same resamples, and `paired_difference` of their replicates is a paired bootstrap.

How: scores are sorted once and tied scores grouped; a replicate is then only a
vector of per-group member / non-member counts, and all metrics of a block of
replicates come from cumulative counts over the descending thresholds, exactly in
integers until one final division.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vidsme.direction import Direction
from vidsme.errors import InvalidScoresError

DEFAULT_FPR_LEVELS: tuple[float, ...] = (0.001, 0.01, 0.05)
# A TPR at FPR x rests on x * n_nonmembers false positives: ask for at least this many.
DEFAULT_MIN_FALSE_POSITIVES = 10
# Working memory per block of bootstrap replicates (~12 int64/float64 arrays of
# replicates x samples are alive at once).
_BLOCK_BYTES = 200_000_000
_IDS_SHOWN = 5


@dataclass(frozen=True)
class MetricValue:
    """A point estimate with its bootstrap percentile interval; all None (with `reason`)
    when the sample cannot resolve the metric."""

    value: float | None
    ci_low: float | None
    ci_high: float | None
    reason: str | None = None

    @property
    def resolved(self) -> bool:
        return self.value is not None

    def to_dict(self) -> dict:
        out = {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high}
        if self.reason is not None:
            out["reason"] = self.reason
        return out


def unresolved(reason: str) -> MetricValue:
    """A metric the sample size cannot resolve: no value, no interval, the reason."""
    return MetricValue(None, None, None, reason)


@dataclass(frozen=True)
class Evaluation:
    """All pinned metrics of one attack's scores on one member/non-member split."""

    attack: str
    direction: str  # "higher" | "lower"
    n_members: int
    n_nonmembers: int
    auc: MetricValue
    balanced_accuracy: MetricValue
    tpr_at_fpr: dict[float, MetricValue]  # keys are the FPR levels; unresolvable ones carry a reason
    n_posinf_clipped: int
    n_neginf_clipped: int
    n_bootstrap: int
    seed: int
    confidence: float
    n_clusters: tuple[int, int] | None = None  # (member, non-member) clusters resampled; None: samples

    def to_dict(self) -> dict:
        """JSON-serialisable form; TPR keys read "tpr@0.1%fpr", "tpr@1%fpr", ..."""
        out: dict = {
            "attack": self.attack,
            "direction": self.direction,
            "n_members": self.n_members,
            "n_nonmembers": self.n_nonmembers,
            "auc": self.auc.to_dict(),
            "balanced_accuracy": self.balanced_accuracy.to_dict(),
        }
        for level, metric in self.tpr_at_fpr.items():
            out[tpr_key(level)] = metric.to_dict()
        out.update(
            n_posinf_clipped=self.n_posinf_clipped,
            n_neginf_clipped=self.n_neginf_clipped,
            n_bootstrap=self.n_bootstrap,
            seed=self.seed,
            confidence=self.confidence,
        )
        if self.n_clusters is not None:
            out["bootstrap_clusters"] = {"member": self.n_clusters[0], "nonmember": self.n_clusters[1]}
        return out


def tpr_key(level: float) -> str:
    """0.001 -> "tpr@0.1%fpr" (the report / JSON name of a TPR@FPR metric)."""
    return f"tpr@{level * 100:g}%fpr"


def min_nonmembers(level: float, min_false_positives: int = DEFAULT_MIN_FALSE_POSITIVES) -> int:
    """Fewest non-members that resolve TPR at FPR `level`: min_false_positives / level, rounded up."""
    if level <= 0:
        return math.inf if min_false_positives > 0 else 0  # type: ignore[return-value]
    # round first: 10 / 0.01 is 1000.0000000000001 in floating point on some paths
    return int(math.ceil(round(min_false_positives / level, 9)))


def resolution_reason(level: float, n_nonmembers: int,
                      min_false_positives: int = DEFAULT_MIN_FALSE_POSITIVES) -> str | None:
    """Why TPR@`level` FPR cannot be reported on `n_nonmembers` non-members, or None if it can."""
    need = min_nonmembers(level, min_false_positives)
    if n_nonmembers >= need:
        return None
    return f"needs ≥ {need} non-members (has {n_nonmembers})"


# ----------------------------------------------------------------------------- ROC
def _group_ties(member_scores: np.ndarray) -> tuple[np.ndarray, int]:
    """Group index per sample, 0 = highest distinct score, and the group count."""
    distinct, inverse = np.unique(member_scores, return_inverse=True)
    return len(distinct) - 1 - inverse.reshape(-1), len(distinct)


def roc_points(member_scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) of the ROC of already oriented scores, from (0, 0) to (1, 1).

    One point per distinct score (ties are one point); no points dropped.
    """
    scores = np.asarray(member_scores, dtype=np.float64)
    is_member = np.asarray(labels).astype(bool)
    groups, n_groups = _group_ties(scores)
    tp = np.cumsum(np.bincount(groups[is_member], minlength=n_groups))
    fp = np.cumsum(np.bincount(groups[~is_member], minlength=n_groups))
    fpr = np.concatenate([[0.0], fp / max(int(fp[-1]), 1)])
    tpr = np.concatenate([[0.0], tp / max(int(tp[-1]), 1)])
    return fpr, tpr


def auc_from_roc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Trapezoidal area under the ROC points (fpr non-decreasing)."""
    fpr, tpr = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2)


def balanced_accuracy_from_roc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """max over ROC points of 1 - (FPR + FNR) / 2."""
    fpr, tpr = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
    return float(np.max(1 - (fpr + (1 - tpr)) / 2))


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, level: float) -> float:
    """Highest TPR among ROC points with FPR <= level (inclusive)."""
    fpr, tpr = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
    ok = fpr <= level
    return float(tpr[ok].max()) if ok.any() else 0.0


# ------------------------------------------------------- all replicates at once
def _max_false_positives(n_neg: np.ndarray, level: float) -> np.ndarray:
    """Per replicate, the largest count k with k / N <= level in floating point (the
    comparison tpr_at_fpr makes on roc_points), for integer N = n_neg."""
    k = np.floor(level * n_neg).astype(np.int64)
    k = np.where((k + 1) / n_neg <= level, k + 1, k)  # floor(level * N) can be one off either way
    return np.where(k / n_neg > level, k - 1, k)


def _replicate_metrics(
    pos: np.ndarray, neg: np.ndarray, levels: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(auc [R], balanced accuracy [R], tpr [R, L]) from per-group counts [R, G].

    pos / neg are member / non-member counts per tie group (group 0 = highest
    score) of R replicates; each row's sums are that replicate's class sizes (they
    vary between replicates when clusters are resampled). Sums stay integer so the
    result does not depend on summation order.
    """
    pos, neg = np.asarray(pos, dtype=np.int64), np.asarray(neg, dtype=np.int64)
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    n_pos, n_neg = tp[:, -1], fp[:, -1]
    pairs = 2 * n_pos * n_neg
    # Trapezoid per group: dFP * (TP_before + TP_after) / 2, scaled by 1/(P N).
    auc = np.sum(neg * (2 * tp - pos), axis=1) / pairs
    # 1 - (FPR + 1 - TPR)/2 = 1/2 + (TP N - FP P) / (2 P N); the (0, 0) point gives 1/2.
    ba = 0.5 + np.maximum(np.max(tp * n_neg[:, None] - fp * n_pos[:, None], axis=1), 0) / pairs
    rows = np.arange(len(pos))
    tpr = np.empty((len(pos), len(levels)))
    for j, level in enumerate(levels):
        # FP/N <= level is FP <= the largest such count: compare integers, no FPR [R, G].
        max_fp = _max_false_positives(n_neg, level)
        # fp is non-decreasing, so it holds on a prefix of thresholds and TP is largest
        # at its end; k = 0 means only the (0, 0) point.
        k = np.count_nonzero(fp <= max_fp[:, None], axis=1)
        tpr[:, j] = np.where(k > 0, tp[rows, np.maximum(k - 1, 0)], 0) / n_pos
    return auc, ba, tpr


def _multiplicities(u: np.ndarray, n: int) -> np.ndarray:
    """[R, n] how often each of n items is drawn in each of R resamples (draw = floor(u * n))."""
    idx = np.minimum((u * n).astype(np.intp), n - 1)
    flat = idx + (np.arange(len(u)) * n)[:, None]
    return np.bincount(flat.ravel(), minlength=len(u) * n).reshape(len(u), n)


def _resampled_counts(mult: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Per-group counts [R, G] of R resamples with replacement of `groups`, from the
    resamples' multiplicities [R, n] (they do not depend on the scores, so every attack
    evaluated on the same samples shares them)."""
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    counts = np.zeros((len(mult), n_groups), dtype=np.int64)
    counts[:, sorted_groups[starts]] = np.add.reduceat(mult[:, order], starts, axis=1)
    return counts


@functools.lru_cache(maxsize=8)
def _draws(seed: int, n_bootstrap: int, n_mem: int, n_non: int, block: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Per block, the member and non-member cluster multiplicities of the stratified resamples.

    Uniform doubles (exactly one generator step each) are drawn replicate by replicate,
    so the draws do not depend on the block size. Cached: evaluating many attacks on one
    sample set draws once (the arrays are read-only).
    """
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, n_bootstrap, block):
        u = rng.random((min(block, n_bootstrap - start), n_mem + n_non))
        mem, non = _multiplicities(u[:, :n_mem], n_mem), _multiplicities(u[:, n_mem:], n_non)
        mem.flags.writeable = non.flags.writeable = False
        out.append((mem, non))
    return tuple(out)


@dataclass(frozen=True)
class _Clusters:
    """Samples -> resampling clusters: per class, each sample's index among that class's
    sorted cluster labels, and those labels (what pairing is checked on)."""

    member_index: np.ndarray  # [n members] index into member_labels
    nonmember_index: np.ndarray
    member_labels: tuple
    nonmember_labels: tuple


def _clusters_of(clusters: Sequence | np.ndarray | None, is_member: np.ndarray, attack: str) -> _Clusters:
    if clusters is None:  # each sample its own cluster, in sample order
        n_mem, n_non = int(is_member.sum()), int((~is_member).sum())
        return _Clusters(np.arange(n_mem), np.arange(n_non), tuple(np.flatnonzero(is_member).tolist()),
                         tuple(np.flatnonzero(~is_member).tolist()))
    labels = np.asarray(clusters)
    if labels.shape != is_member.shape:
        raise InvalidScoresError(f"attack {attack!r}: {len(is_member)} scores but clusters of shape {labels.shape}")
    mem_labels, mem_index = np.unique(labels[is_member], return_inverse=True)
    non_labels, non_index = np.unique(labels[~is_member], return_inverse=True)
    shared = np.intersect1d(mem_labels, non_labels)
    if len(shared):
        raise InvalidScoresError(f"attack {attack!r}: cluster {shared[0]!r} holds both members and non-members; "
                                 "a cluster (a video) must be on one side")
    return _Clusters(mem_index.reshape(-1), non_index.reshape(-1), tuple(mem_labels.tolist()),
                     tuple(non_labels.tolist()))


def _bootstrap(
    groups: np.ndarray, is_member: np.ndarray, n_groups: int, levels: Sequence[float],
    n_bootstrap: int, seed: int, block_bytes: int = _BLOCK_BYTES, clusters: _Clusters | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Metrics of `n_bootstrap` stratified (cluster) resamples, processed in memory blocks."""
    mem, non = groups[is_member], groups[~is_member]
    if clusters is None:
        clusters = _clusters_of(None, is_member, "")
    n = len(groups)
    block = max(1, block_bytes // (96 * max(n, n_groups)))
    parts = []
    for mem_mult, non_mult in _draws(seed, n_bootstrap, len(clusters.member_labels),
                                     len(clusters.nonmember_labels), block):
        pos = _resampled_counts(mem_mult[:, clusters.member_index], mem, n_groups)
        neg = _resampled_counts(non_mult[:, clusters.nonmember_index], non, n_groups)
        parts.append(_replicate_metrics(pos, neg, levels))
    return tuple(np.concatenate(p) for p in zip(*parts))  # type: ignore[return-value]


def _clean_scores(scores: np.ndarray, attack: str, sample_ids: Sequence[str]) -> tuple[np.ndarray, int, int]:
    """Raise on NaN, clip +-inf to the finite extremes; returns (scores, n_pos_inf, n_neg_inf)."""
    nan = np.isnan(scores)
    if nan.any():
        bad = [str(sample_ids[i]) for i in np.flatnonzero(nan)]
        shown = ", ".join(bad[:_IDS_SHOWN]) + (", ..." if len(bad) > _IDS_SHOWN else "")
        noun = "sample" if len(bad) == 1 else "samples"
        raise InvalidScoresError(
            f"attack {attack!r}: NaN score for {len(bad)} {noun} ({shown}); fix the attack or its features"
        )
    finite = np.isfinite(scores)
    if not finite.any():
        raise InvalidScoresError(
            f"attack {attack!r}: all {len(scores)} scores are infinite; fix the attack or its features"
        )
    posinf, neginf = scores == np.inf, scores == -np.inf
    if posinf.any() or neginf.any():
        scores = scores.copy()
        scores[posinf] = scores[finite].max()
        scores[neginf] = scores[finite].min()
    return scores, int(posinf.sum()), int(neginf.sum())


@dataclass(frozen=True)
class Replicates:
    """Point values and bootstrap replicates of every metric of one attack on one sample set:
    what paired comparisons (`paired_difference`) are computed from."""

    point: dict[str, float]  # "auc", "balanced_accuracy", "tpr@1%fpr", ...
    replicates: dict[str, np.ndarray]  # same keys, [n_bootstrap]
    clusters: tuple[tuple, tuple]  # sorted member / non-member cluster labels
    seed: int
    n_bootstrap: int


@dataclass(frozen=True)
class _Prepared:
    direction: Direction
    is_member: np.ndarray
    groups: np.ndarray
    n_groups: int
    clusters: _Clusters
    n_posinf: int
    n_neginf: int


def _prepare(scores, labels, direction, attack: str, sample_ids: Sequence[str], clusters) -> _Prepared:
    direction = Direction(direction)
    raw = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if raw.ndim != 1:
        raise InvalidScoresError(f"attack {attack!r}: scores must be 1-D, got shape {raw.shape}")
    if labels.shape != raw.shape:
        raise InvalidScoresError(
            f"attack {attack!r}: {len(raw)} scores but labels of shape {labels.shape}"
        )
    if len(sample_ids) != len(raw):
        raise InvalidScoresError(f"attack {attack!r}: {len(raw)} scores but {len(sample_ids)} sample ids")
    if labels.dtype != bool and not (labels.dtype.kind in "iuf" and np.isin(labels, (0, 1)).all()):
        raise InvalidScoresError(f"attack {attack!r}: labels must be 0/1 (1 = member)")
    is_member = labels.astype(bool)
    n_pos = int(is_member.sum())
    n_neg = len(raw) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise InvalidScoresError(
            f"attack {attack!r}: need both classes, got {n_pos} members and {n_neg} non-members"
        )
    clipped, n_posinf, n_neginf = _clean_scores(raw, attack, sample_ids)
    groups, n_groups = _group_ties(direction.orient(clipped))
    return _Prepared(direction, is_member, groups, n_groups, _clusters_of(clusters, is_member, attack),
                     n_posinf, n_neginf)


def _point_and_replicates(p: _Prepared, levels: tuple[float, ...], n_bootstrap: int, seed: int):
    pos = np.bincount(p.groups[p.is_member], minlength=p.n_groups)[None]
    neg = np.bincount(p.groups[~p.is_member], minlength=p.n_groups)[None]
    point = _replicate_metrics(pos, neg, levels)
    boot = _bootstrap(p.groups, p.is_member, p.n_groups, levels, n_bootstrap, seed, clusters=p.clusters)
    return point, boot


def _check_settings(n_bootstrap: int, confidence: float, fpr_levels: Sequence[float]) -> tuple[float, ...]:
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    levels = tuple(float(x) for x in fpr_levels)
    if any(not 0 <= x <= 1 for x in levels):
        raise ValueError(f"fpr_levels must lie in [0, 1], got {levels}")
    return levels


def percentile_interval(replicates: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The percentile bootstrap interval of `replicates` at `confidence`."""
    lo, hi = np.percentile(replicates, [100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2])
    return float(lo), float(hi)


def cluster_mean(values: np.ndarray, clusters: Sequence, *, n_bootstrap: int = 1000, seed: int = 0,
                 confidence: float = 0.95) -> MetricValue:
    """Mean of `values` (one per sample) with the percentile interval of a bootstrap that resamples whole
    clusters (`clusters[i]`: sample i's unit, e.g. its video; the mean of a replicate weighs every drawn
    sample). Same inputs and seed give the same interval."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) != len(clusters) or not len(values):
        raise InvalidScoresError(f"cluster_mean: {len(values)} values for {len(clusters)} clusters")
    if not np.isfinite(values).all():
        raise InvalidScoresError("cluster_mean: the values hold NaN or infinity")
    names = sorted(set(clusters))
    index = {c: k for k, c in enumerate(names)}
    where = [index[c] for c in clusters]
    sums, counts = np.zeros(len(names)), np.zeros(len(names))
    np.add.at(sums, where, values)
    np.add.at(counts, where, 1)
    draws = np.random.default_rng(seed).integers(len(names), size=(n_bootstrap, len(names)))
    means = sums[draws].sum(1) / counts[draws].sum(1)
    return MetricValue(float(values.mean()), *percentile_interval(means, confidence))


def evaluate_scores(
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    direction: Direction | str,
    attack: str,
    sample_ids: Sequence[str],
    n_bootstrap: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    fpr_levels: Sequence[float] = DEFAULT_FPR_LEVELS,
    clusters: Sequence | np.ndarray | None = None,
    min_false_positives: int = DEFAULT_MIN_FALSE_POSITIVES,
) -> Evaluation:
    """AUC, balanced accuracy and TPR@FPR of raw attack scores, with bootstrap CIs.

    clusters: per sample, the unit that is resampled (e.g. its video); None: the sample.
    min_false_positives: a TPR@x FPR needs at least this many / x non-members, else it is
    reported unresolved (value None, with the reason); 0 reports every level.
    Same inputs and seed give bit-identical results. Raises InvalidScoresError
    (naming the attack) for NaN or all-infinite scores, mismatched lengths,
    labels other than 0/1, a missing class or a cluster holding both classes.
    """
    levels = _check_settings(n_bootstrap, confidence, fpr_levels)
    p = _prepare(scores, labels, direction, attack, sample_ids, clusters)
    n_pos = int(p.is_member.sum())
    n_neg = len(p.is_member) - n_pos
    point, boot = _point_and_replicates(p, levels, n_bootstrap, seed)

    def metric(value: float, reps: np.ndarray) -> MetricValue:
        return MetricValue(float(value), *percentile_interval(reps, confidence))

    tprs = {}
    for j, level in enumerate(levels):
        reason = resolution_reason(level, n_neg, min_false_positives)
        tprs[level] = unresolved(reason) if reason else metric(point[2][0, j], boot[2][:, j])
    return Evaluation(
        attack=attack,
        direction=p.direction.value,
        n_members=n_pos,
        n_nonmembers=n_neg,
        auc=metric(point[0][0], boot[0]),
        balanced_accuracy=metric(point[1][0], boot[1]),
        tpr_at_fpr=tprs,
        n_posinf_clipped=p.n_posinf,
        n_neginf_clipped=p.n_neginf,
        n_bootstrap=int(n_bootstrap),
        seed=int(seed),
        confidence=float(confidence),
        n_clusters=None if clusters is None else (len(p.clusters.member_labels), len(p.clusters.nonmember_labels)),
    )


def bootstrap_replicates(
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    direction: Direction | str,
    attack: str,
    sample_ids: Sequence[str],
    n_bootstrap: int = 1000,
    seed: int = 0,
    fpr_levels: Sequence[float] = DEFAULT_FPR_LEVELS,
    clusters: Sequence | np.ndarray | None = None,
) -> Replicates:
    """Point values and the bootstrap replicates behind `evaluate_scores` (same inputs, same
    seed: the same resamples), for paired comparisons between attacks."""
    levels = _check_settings(n_bootstrap, 0.95, fpr_levels)
    p = _prepare(scores, labels, direction, attack, sample_ids, clusters)
    point, boot = _point_and_replicates(p, levels, n_bootstrap, seed)
    keys = ["auc", "balanced_accuracy"] + [tpr_key(lv) for lv in levels]
    values = [point[0][0], point[1][0], *point[2][0]]
    reps = [boot[0], boot[1], *boot[2].T]
    return Replicates(point={k: float(v) for k, v in zip(keys, values)},
                      replicates={k: np.asarray(r) for k, r in zip(keys, reps)},
                      clusters=(p.clusters.member_labels, p.clusters.nonmember_labels),
                      seed=int(seed), n_bootstrap=int(n_bootstrap))


def paired_difference(a: Replicates, b: Replicates, metric: str, confidence: float = 0.95) -> MetricValue:
    """metric(a) - metric(b) with the percentile interval of the paired replicate differences.

    Both must come from the same resamples (same seed, replicate count and clusters);
    anything else would not be a paired comparison, so it is refused.
    """
    if (a.seed, a.n_bootstrap, a.clusters) != (b.seed, b.n_bootstrap, b.clusters):
        raise InvalidScoresError(f"paired difference of {metric}: the two replicate sets come from different "
                                 "resamples (seed, replicate count or clusters differ)")
    diff = a.replicates[metric] - b.replicates[metric]
    return MetricValue(a.point[metric] - b.point[metric], *percentile_interval(diff, confidence))
