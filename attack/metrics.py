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
  x in `fpr_levels` (default 0.1%, 1%, 5%).
* NaN scores raise `InvalidScoresError` naming the attack and sample ids.
  +inf / -inf are clipped to the largest / smallest finite score of the vector
  (as the Vid-SME reference code does) and counted on the raw, un-oriented scores.
* Confidence intervals: stratified bootstrap (members resampled among members,
  non-members among non-members, class sizes kept), `n_bootstrap` replicates,
  percentile interval at `confidence`, `np.random.default_rng(seed)`. Point
  estimates use the data itself, never a resample.

How: scores are sorted once and tied scores grouped; a replicate is then only a
vector of per-group member / non-member counts, and all metrics of a block of
replicates come from cumulative counts over the descending thresholds, exactly in
integers until one final division.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vidsme.attack.direction import Direction
from vidsme.errors import InvalidScoresError

DEFAULT_FPR_LEVELS: tuple[float, ...] = (0.001, 0.01, 0.05)
# Working memory per block of bootstrap replicates (~12 int64/float64 arrays of
# replicates x samples are alive at once).
_BLOCK_BYTES = 200_000_000
_IDS_SHOWN = 5


@dataclass(frozen=True)
class MetricValue:
    """A point estimate with its bootstrap percentile interval."""

    value: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict:
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high}


@dataclass(frozen=True)
class Evaluation:
    """All pinned metrics of one attack's scores on one member/non-member split."""

    attack: str
    direction: str  # "higher" | "lower"
    n_members: int
    n_nonmembers: int
    auc: MetricValue
    balanced_accuracy: MetricValue
    tpr_at_fpr: dict[float, MetricValue]  # keys are the FPR levels
    n_posinf_clipped: int
    n_neginf_clipped: int
    n_bootstrap: int
    seed: int
    confidence: float

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
        return out


def tpr_key(level: float) -> str:
    """0.001 -> "tpr@0.1%fpr" (the report / JSON name of a TPR@FPR metric)."""
    return f"tpr@{level * 100:g}%fpr"


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
def _replicate_metrics(
    pos: np.ndarray, neg: np.ndarray, n_pos: int, n_neg: int, levels: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(auc [R], balanced accuracy [R], tpr [R, L]) from per-group counts [R, G].

    pos / neg are member / non-member counts per tie group (group 0 = highest
    score) of R replicates; each row must sum to n_pos / n_neg. Sums stay integer
    so the result does not depend on summation order.
    """
    pos, neg = np.asarray(pos, dtype=np.int64), np.asarray(neg, dtype=np.int64)
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    pairs = 2 * n_pos * n_neg
    # Trapezoid per group: dFP * (TP_before + TP_after) / 2, scaled by 1/(P N).
    auc = np.sum(neg * (2 * tp - pos), axis=1) / pairs
    # 1 - (FPR + 1 - TPR)/2 = 1/2 + (TP N - FP P) / (2 P N); the (0, 0) point gives 1/2.
    ba = 0.5 + np.maximum(np.max(tp * n_neg - fp * n_pos, axis=1), 0) / pairs
    rows = np.arange(len(pos))
    tpr = np.empty((len(pos), len(levels)))
    for j, level in enumerate(levels):
        # FP/N <= level, with the same float comparison as tpr_at_fpr on roc_points, is
        # FP <= the largest such count: compare integers instead of building FPR [R, G].
        max_fp = np.count_nonzero(np.arange(n_neg + 1) / n_neg <= level) - 1
        # fp is non-decreasing, so it holds on a prefix of thresholds and TP is largest
        # at its end; k = 0 means only the (0, 0) point.
        k = np.count_nonzero(fp <= max_fp, axis=1)
        tpr[:, j] = np.where(k > 0, tp[rows, np.maximum(k - 1, 0)], 0) / n_pos
    return auc, ba, tpr


def _multiplicities(u: np.ndarray, n: int) -> np.ndarray:
    """[R, n] how often each of n samples is drawn in each of R resamples (draw = floor(u * n))."""
    idx = np.minimum((u * n).astype(np.intp), n - 1)
    flat = idx + (np.arange(len(u)) * n)[:, None]
    return np.bincount(flat.ravel(), minlength=len(u) * n).reshape(len(u), n)


def _resampled_counts(mult: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Per-group counts [R, G] of R resamples with replacement of `groups`, from the
    resamples' multiplicities [R, n] (`_multiplicities`: they do not depend on the scores,
    so every attack evaluated on the same samples shares them)."""
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    counts = np.zeros((len(mult), n_groups), dtype=np.int64)
    counts[:, sorted_groups[starts]] = np.add.reduceat(mult[:, order], starts, axis=1)
    return counts


@functools.lru_cache(maxsize=4)
def _draws(seed: int, n_bootstrap: int, n_mem: int, n_non: int, block: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Per block, the member and non-member multiplicities of the stratified resamples.

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


def _bootstrap(
    groups: np.ndarray, is_member: np.ndarray, n_groups: int, levels: Sequence[float],
    n_bootstrap: int, seed: int, block_bytes: int = _BLOCK_BYTES,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Metrics of `n_bootstrap` stratified resamples, processed in memory blocks."""
    mem, non = groups[is_member], groups[~is_member]
    n = len(groups)
    block = max(1, block_bytes // (96 * max(n, n_groups)))
    parts = []
    for mem_mult, non_mult in _draws(seed, n_bootstrap, len(mem), len(non), block):
        pos = _resampled_counts(mem_mult, mem, n_groups)
        neg = _resampled_counts(non_mult, non, n_groups)
        parts.append(_replicate_metrics(pos, neg, len(mem), len(non), levels))
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
) -> Evaluation:
    """AUC, balanced accuracy and TPR@FPR of raw attack scores, with bootstrap CIs.

    Same inputs and seed give bit-identical results. Raises InvalidScoresError
    (naming the attack) for NaN or all-infinite scores, mismatched lengths,
    labels other than 0/1, or a missing class.
    """
    direction = Direction(direction)
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    levels = tuple(float(x) for x in fpr_levels)
    if any(not 0 <= x <= 1 for x in levels):
        raise ValueError(f"fpr_levels must lie in [0, 1], got {levels}")

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

    # Point estimate: the exact data, through the same formula as the replicates.
    pos = np.bincount(groups[is_member], minlength=n_groups)[None]
    neg = np.bincount(groups[~is_member], minlength=n_groups)[None]
    point = _replicate_metrics(pos, neg, n_pos, n_neg, levels)
    boot = _bootstrap(groups, is_member, n_groups, levels, n_bootstrap, seed)
    q = [100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2]

    def metric(value: float, reps: np.ndarray) -> MetricValue:
        lo, hi = np.percentile(reps, q)
        return MetricValue(float(value), float(lo), float(hi))

    return Evaluation(
        attack=attack,
        direction=direction.value,
        n_members=n_pos,
        n_nonmembers=n_neg,
        auc=metric(point[0][0], boot[0]),
        balanced_accuracy=metric(point[1][0], boot[1]),
        tpr_at_fpr={lv: metric(point[2][0, j], boot[2][:, j]) for j, lv in enumerate(levels)},
        n_posinf_clipped=n_posinf,
        n_neginf_clipped=n_neginf,
        n_bootstrap=int(n_bootstrap),
        seed=int(seed),
        confidence=float(confidence),
    )
