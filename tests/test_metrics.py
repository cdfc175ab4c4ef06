"""Pinned metrics: hand-computed ROC cases, sklearn agreement, bootstrap properties, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from vidsme.direction import Direction
from vidsme.metrics import (
    Evaluation,
    _bootstrap,
    _group_ties,
    _replicate_metrics,
    auc_from_roc,
    balanced_accuracy_from_roc,
    evaluate_scores,
    roc_points,
    tpr_at_fpr,
)
from vidsme.errors import InvalidScoresError


def ids(n: int) -> list[str]:
    return [f"vid_{i:03d}" for i in range(n)]


def evaluate(scores, labels, direction="higher", **kw) -> Evaluation:
    kw.setdefault("n_bootstrap", 200)
    kw.setdefault("min_false_positives", 0)  # these cases check the TPR arithmetic on small samples
    return evaluate_scores(
        np.asarray(scores, dtype=float), np.asarray(labels), direction=direction,
        attack="loss", sample_ids=ids(len(scores)), **kw,
    )


def random_case(n: int = 300, seed: int = 3, decimals: int = 1):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = np.round(rng.normal(size=n) + 0.8 * labels, decimals)  # rounding makes ties
    return scores, labels


# ------------------------------------------------------------- hand-computed cases
def test_hand_computed_roc_with_ties():
    # members [3, 2, 2], non-members [2, 1]. Thresholds 3, 2, 1:
    # >=3: TP 1 FP 0; >=2: TP 3 FP 1; >=1: TP 3 FP 2  (P = 3, N = 2)
    scores = np.array([3, 2, 2, 2, 1.0])
    labels = np.array([1, 1, 1, 0, 0])
    fpr, tpr = roc_points(scores, labels)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 1, 1])
    # AUC: 0 + 0.5 * (1/3 + 1) / 2 + 0.5 * 1 = 5/6 (Mann-Whitney: 5 of 6 pairs, ties 1/2)
    assert auc_from_roc(fpr, tpr) == pytest.approx(5 / 6)
    # BA per point: 0.5, 2/3, 0.75, 0.5
    assert balanced_accuracy_from_roc(fpr, tpr) == pytest.approx(0.75)
    for level in (0.001, 0.01, 0.05):
        assert tpr_at_fpr(fpr, tpr, level) == pytest.approx(1 / 3)
    assert tpr_at_fpr(fpr, tpr, 0.5) == pytest.approx(1.0)

    ev = evaluate(scores, labels)
    assert ev.auc.value == pytest.approx(5 / 6)
    assert ev.balanced_accuracy.value == pytest.approx(0.75)
    assert ev.tpr_at_fpr[0.05].value == pytest.approx(1 / 3)
    assert (ev.n_members, ev.n_nonmembers) == (3, 2)


def test_perfect_separation():
    ev = evaluate([5, 6, 7, 1, 2, 3], [1, 1, 1, 0, 0, 0])
    assert ev.auc.value == 1.0
    assert ev.balanced_accuracy.value == 1.0
    assert ev.tpr_at_fpr[0.001].value == 1.0
    # every resample of a perfectly separated set is still perfect
    assert ev.auc.ci_low == ev.auc.ci_high == 1.0


def test_lower_direction_inverts():
    scores, labels = [1, 2, 3, 5, 6, 7], [1, 1, 1, 0, 0, 0]
    assert evaluate(scores, labels, direction=Direction.LOWER).auc.value == 1.0
    assert evaluate(scores, labels, direction="lower").direction == "lower"
    assert evaluate(scores, labels, direction="higher").auc.value == 0.0


def test_all_tied_scores():
    ev = evaluate([4.0] * 6, [1, 0, 1, 0, 0, 1])
    fpr, tpr = roc_points(np.full(6, 4.0), np.array([1, 0, 1, 0, 0, 1]))
    np.testing.assert_array_equal(fpr, [0, 1])
    np.testing.assert_array_equal(tpr, [0, 1])
    assert ev.auc.value == 0.5
    assert ev.balanced_accuracy.value == 0.5
    assert ev.tpr_at_fpr[0.05].value == 0.0


def test_tpr_at_fpr_is_inclusive():
    # N = 20 non-members, so one false positive is FPR = 1/20 = 0.05 exactly.
    # Points: (0, 1/3) at 11, (0.05, 1/3) at 10, (0.05, 1) at 9, (1, 1) at 0.
    scores = [11, 9, 9] + [10] + [0] * 19
    labels = [1, 1, 1] + [0] * 20
    fpr, tpr = roc_points(np.array(scores, float), np.array(labels))
    assert tpr_at_fpr(fpr, tpr, 0.05) == 1.0
    assert tpr_at_fpr(fpr, tpr, 0.0499) == pytest.approx(1 / 3)
    ev = evaluate(scores, labels)
    assert ev.tpr_at_fpr[0.05].value == 1.0
    assert ev.tpr_at_fpr[0.01].value == pytest.approx(1 / 3)


# ------------------------------------------------------------------------ sklearn
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_sklearn(seed):
    scores, labels = random_case(seed=seed)
    fpr, tpr = roc_points(scores, labels)
    sk_fpr, sk_tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    expected = roc_auc_score(labels, scores)
    assert auc_from_roc(fpr, tpr) == pytest.approx(expected, abs=1e-12)
    assert evaluate(scores, labels).auc.value == pytest.approx(expected, abs=1e-12)
    assert evaluate(-scores, labels, direction="lower").auc.value == pytest.approx(expected, abs=1e-12)


def test_point_estimate_matches_roc_functions():
    scores, labels = random_case(n=500, seed=7)
    fpr, tpr = roc_points(scores, labels)
    ev = evaluate(scores, labels, fpr_levels=(0.001, 0.01, 0.05, 0.2))
    assert ev.auc.value == pytest.approx(auc_from_roc(fpr, tpr), abs=1e-12)
    assert ev.balanced_accuracy.value == pytest.approx(balanced_accuracy_from_roc(fpr, tpr), abs=1e-12)
    for level in (0.001, 0.01, 0.05, 0.2):
        assert ev.tpr_at_fpr[level].value == pytest.approx(tpr_at_fpr(fpr, tpr, level), abs=1e-12)


# ---------------------------------------------------------------------- bootstrap
def test_weighted_formula_equals_explicit_resample():
    # Integer weights per sample must give the metrics of the data repeated that often.
    scores, labels = random_case(n=60, seed=11)
    groups, n_groups = _group_ties(scores)
    rng = np.random.default_rng(5)
    levels = (0.01, 0.05, 0.3)
    for _ in range(5):
        w = rng.integers(0, 4, len(scores))
        w[np.flatnonzero(labels == 1)[0]] += 1  # keep both classes present
        w[np.flatnonzero(labels == 0)[0]] += 1
        pos = np.bincount(groups, weights=w * (labels == 1), minlength=n_groups).astype(np.int64)
        neg = np.bincount(groups, weights=w * (labels == 0), minlength=n_groups).astype(np.int64)
        auc, ba, tpr = _replicate_metrics(pos[None], neg[None], levels)
        fpr_r, tpr_r = roc_points(np.repeat(scores, w), np.repeat(labels, w))
        assert auc[0] == pytest.approx(auc_from_roc(fpr_r, tpr_r), abs=1e-12)
        assert ba[0] == pytest.approx(balanced_accuracy_from_roc(fpr_r, tpr_r), abs=1e-12)
        for j, level in enumerate(levels):
            assert tpr[0, j] == pytest.approx(tpr_at_fpr(fpr_r, tpr_r, level), abs=1e-12)


def test_point_estimate_is_formula_with_unit_weights():
    scores, labels = random_case(n=400, seed=4)
    groups, n_groups = _group_ties(scores)
    ones = np.ones(len(scores))
    pos = np.bincount(groups, weights=ones * (labels == 1), minlength=n_groups).astype(np.int64)
    neg = np.bincount(groups, weights=ones * (labels == 0), minlength=n_groups).astype(np.int64)
    levels = (0.001, 0.01, 0.05)
    auc, ba, tpr = _replicate_metrics(pos[None], neg[None], levels)
    ev = evaluate(scores, labels)
    assert ev.auc.value == auc[0]
    assert ev.balanced_accuracy.value == ba[0]
    assert [ev.tpr_at_fpr[lv].value for lv in levels] == list(tpr[0])


def test_bootstrap_deterministic_and_seed_dependent():
    scores, labels = random_case(n=400, seed=9)
    a = evaluate(scores, labels, seed=123, n_bootstrap=300).to_dict()
    b = evaluate(scores, labels, seed=123, n_bootstrap=300).to_dict()
    c = evaluate(scores, labels, seed=124, n_bootstrap=300).to_dict()
    assert a == b
    assert a["auc"]["value"] == c["auc"]["value"]
    assert (a["auc"]["ci_low"], a["auc"]["ci_high"]) != (c["auc"]["ci_low"], c["auc"]["ci_high"])


def test_bootstrap_independent_of_block_size():
    scores, labels = random_case(n=200, seed=2)
    groups, n_groups = _group_ties(scores)
    member = labels == 1
    whole = _bootstrap(groups, member, n_groups, (0.01, 0.05), 50, seed=3)
    blocked = _bootstrap(groups, member, n_groups, (0.01, 0.05), 50, seed=3, block_bytes=96 * 200 * 7)
    for x, y in zip(whole, blocked):
        np.testing.assert_array_equal(x, y)


def test_bootstrap_is_stratified_and_varies():
    # A class-size-preserving resample keeps n_members fixed: TPR values are k / n_pos.
    scores, labels = random_case(n=90, seed=6)
    groups, n_groups = _group_ties(scores)
    member = labels == 1
    auc, ba, tpr = _bootstrap(groups, member, n_groups, (0.05,), 400, seed=0)
    n_pos = int(member.sum())
    np.testing.assert_allclose(tpr * n_pos, np.round(tpr * n_pos), atol=1e-9)
    assert auc.std() > 0 and ba.std() > 0
    assert np.all((auc >= 0) & (auc <= 1)) and np.all((ba >= 0.5) & (ba <= 1))


def test_ci_contains_point_estimate():
    scores, labels = random_case(n=600, seed=8, decimals=3)
    ev = evaluate(scores, labels, n_bootstrap=500)
    for m in (ev.auc, ev.balanced_accuracy, ev.tpr_at_fpr[0.05]):
        assert m.ci_low <= m.value <= m.ci_high
        assert m.ci_low < m.ci_high
    narrow = evaluate(scores, labels, n_bootstrap=500, confidence=0.5)
    assert ev.auc.ci_low < narrow.auc.ci_low < narrow.auc.ci_high < ev.auc.ci_high


# --------------------------------------------------------------- non-finite input
def test_nan_raises_with_attack_and_ids():
    scores = np.array([0.1, np.nan, 0.3, 0.2, np.nan, 0.5])
    with pytest.raises(InvalidScoresError) as err:
        evaluate(scores, [1, 1, 1, 0, 0, 0])
    msg = str(err.value)
    assert "'loss'" in msg and "vid_001" in msg and "vid_004" in msg and "2 samples" in msg
    assert "vid_000" not in msg


def test_nan_message_truncates_ids():
    scores = np.full(20, np.nan)
    with pytest.raises(InvalidScoresError, match=r"20 samples \(vid_000, .*vid_004, \.\.\.\)"):
        evaluate(scores, [1, 0] * 10)


@pytest.mark.parametrize("direction", ["higher", "lower"])
def test_inf_clipped_and_counted(direction):
    scores = np.array([np.inf, 2.0, 0.5, -np.inf, 1.0, np.inf, -1.0, 3.0])
    labels = np.array([1, 1, 0, 0, 1, 0, 0, 1])
    ev = evaluate(scores, labels, direction=direction, seed=1)
    manual = evaluate(np.clip(scores, -1.0, 3.0), labels, direction=direction, seed=1)
    assert (ev.n_posinf_clipped, ev.n_neginf_clipped) == (2, 1)
    assert (manual.n_posinf_clipped, manual.n_neginf_clipped) == (0, 0)
    drop = ("n_posinf_clipped", "n_neginf_clipped")
    assert {k: v for k, v in ev.to_dict().items() if k not in drop} == {
        k: v for k, v in manual.to_dict().items() if k not in drop
    }


def test_all_infinite_raises():
    with pytest.raises(InvalidScoresError, match="'loss'"):
        evaluate([np.inf, -np.inf, np.inf], [1, 0, 1])


# ------------------------------------------------------------------ input errors
def test_length_mismatches_raise():
    with pytest.raises(InvalidScoresError, match="'loss'"):
        evaluate_scores(np.ones(4), np.array([1, 0, 1]), direction="higher", attack="loss", sample_ids=ids(4))
    with pytest.raises(InvalidScoresError, match="'loss'.*sample ids"):
        evaluate_scores(np.ones(4), np.array([1, 0, 1, 0]), direction="higher", attack="loss", sample_ids=ids(3))


@pytest.mark.parametrize("labels", [[1, 1, 1], [0, 0, 0]])
def test_single_class_raises(labels):
    with pytest.raises(InvalidScoresError, match="'loss'.*both classes"):
        evaluate([0.1, 0.2, 0.3], labels)


@pytest.mark.parametrize("labels", [[1, 2, 0], [1, 0.5, 0], ["a", "b", "a"]])
def test_bad_labels_raise(labels):
    with pytest.raises(InvalidScoresError, match="'loss'.*0/1"):
        evaluate([0.1, 0.2, 0.3], labels)


def test_bool_labels_accepted():
    a = evaluate([3, 2, 2, 2, 1], np.array([True, True, True, False, False]))
    b = evaluate([3, 2, 2, 2, 1], np.array([1, 1, 1, 0, 0]))
    assert a.to_dict() == b.to_dict()


# ------------------------------------------------------------------------- output
def test_to_dict_json_and_keys():
    scores, labels = random_case(n=100, seed=1)
    d = evaluate(scores, labels).to_dict()
    back = json.loads(json.dumps(d, allow_nan=False))
    assert back == d
    for key in ("auc", "balanced_accuracy", "tpr@0.1%fpr", "tpr@1%fpr", "tpr@5%fpr"):
        assert set(d[key]) == {"value", "ci_low", "ci_high"}
    assert d["attack"] == "loss" and d["direction"] == "higher"
    assert d["n_bootstrap"] == 200 and d["seed"] == 0 and d["confidence"] == 0.95


def test_resampled_counts_count_the_drawn_groups():
    """Grouping the draws' multiplicities by tie group equals counting the drawn groups directly."""
    from vidsme.metrics import _multiplicities, _resampled_counts

    rng = np.random.default_rng(3)
    groups = rng.integers(0, 7, size=40)  # ties: several samples per group, some groups empty
    u = rng.random((25, 40))
    drawn = groups[np.minimum((u * 40).astype(int), 39)]
    expected = np.stack([np.bincount(row, minlength=9) for row in drawn])
    assert np.array_equal(_resampled_counts(_multiplicities(u, 40), groups, 9), expected)


# ------------------------------------------------ resolution, clusters, pairing
def test_tpr_is_null_with_reason_below_resolvable_size():
    scores, labels = random_case(n=500, seed=1)
    n_neg = int((labels == 0).sum())
    assert 200 <= n_neg < 1000
    ev = evaluate_scores(scores, labels, direction="higher", attack="a", sample_ids=ids(500), n_bootstrap=50)
    assert ev.tpr_at_fpr[0.05].resolved  # 200 non-members resolve 5%
    for level, need in ((0.01, 1000), (0.001, 10000)):
        m = ev.tpr_at_fpr[level]
        assert (m.value, m.ci_low, m.ci_high) == (None, None, None)
        assert m.reason == f"needs ≥ {need} non-members (has {n_neg})"
    d = ev.to_dict()
    assert d["tpr@1%fpr"]["value"] is None and "needs ≥ 1000" in d["tpr@1%fpr"]["reason"]
    assert "reason" not in d["tpr@5%fpr"]


def test_min_nonmembers_thresholds():
    from vidsme.metrics import min_nonmembers, resolution_reason

    assert [min_nonmembers(x) for x in (0.001, 0.01, 0.05)] == [10000, 1000, 200]
    assert resolution_reason(0.05, 200) is None and resolution_reason(0.05, 199) is not None


def test_cluster_bootstrap_resamples_whole_clusters():
    # Clusters of 3 identical samples: a cluster resample equals a sample resample of the
    # cluster means repeated 3x, so the AUC replicates must match that explicit computation.
    from vidsme.metrics import _draws, bootstrap_replicates

    rng = np.random.default_rng(0)
    n_videos = 30
    video_label = np.array([1] * 15 + [0] * 15)
    video_score = np.round(rng.normal(size=n_videos) + 0.5 * video_label, 2)
    rows = np.repeat(np.arange(n_videos), 3)
    reps = bootstrap_replicates(video_score[rows], video_label[rows], direction="higher", attack="a",
                                sample_ids=ids(len(rows)), n_bootstrap=40, seed=7, clusters=rows)
    (mem, non), = _draws(7, 40, 15, 15, 40)  # the draws do not depend on the block size
    for r in range(40):
        w = np.concatenate([mem[r], non[r]])  # members are videos 0..14, non-members 15..29 (sorted labels)
        fpr, tpr = roc_points(np.repeat(video_score, w), np.repeat(video_label, w))
        assert reps.replicates["auc"][r] == pytest.approx(auc_from_roc(fpr, tpr), abs=1e-12)
    # row level and video level of the same videos are paired: same resamples
    video = bootstrap_replicates(video_score, video_label, direction="higher", attack="a", sample_ids=ids(n_videos),
                                 n_bootstrap=40, seed=7, clusters=np.arange(n_videos))
    np.testing.assert_allclose(video.replicates["auc"], reps.replicates["auc"], atol=1e-12)


def test_clustered_ci_is_wider_than_iid_for_duplicated_rows():
    rng = np.random.default_rng(2)
    video_label = np.array([1] * 40 + [0] * 40)
    video_score = rng.normal(size=80) + 0.3 * video_label
    rows = np.repeat(np.arange(80), 5)
    kw = dict(direction="higher", attack="a", sample_ids=ids(400), n_bootstrap=300)
    iid = evaluate_scores(video_score[rows], video_label[rows], **kw).auc
    clustered = evaluate_scores(video_score[rows], video_label[rows], clusters=rows, **kw).auc
    assert iid.value == clustered.value
    assert clustered.ci_high - clustered.ci_low > 1.5 * (iid.ci_high - iid.ci_low)


def test_cluster_with_both_labels_is_refused():
    with pytest.raises(InvalidScoresError, match="both members and non-members"):
        evaluate_scores(np.arange(4.0), np.array([1, 0, 1, 0]), direction="higher", attack="a", sample_ids=ids(4),
                        clusters=["v1", "v1", "v2", "v3"])


def test_paired_difference_of_identical_attacks_is_exactly_zero_and_checks_pairing():
    from vidsme.metrics import bootstrap_replicates, paired_difference

    scores, labels = random_case(n=200, seed=5)
    a = bootstrap_replicates(scores, labels, direction="higher", attack="a", sample_ids=ids(200), n_bootstrap=100)
    b = bootstrap_replicates(scores + 0.0, labels, direction="higher", attack="b", sample_ids=ids(200),
                             n_bootstrap=100)
    d = paired_difference(a, b, "auc")
    assert (d.value, d.ci_low, d.ci_high) == (0.0, 0.0, 0.0)
    noise = scores + np.random.default_rng(0).normal(size=200)
    c = bootstrap_replicates(noise, labels, direction="higher", attack="c", sample_ids=ids(200), n_bootstrap=100)
    d = paired_difference(a, c, "auc")
    assert d.ci_low < d.value < d.ci_high
    other_seed = bootstrap_replicates(scores, labels, direction="higher", attack="a", sample_ids=ids(200),
                                      n_bootstrap=100, seed=1)
    with pytest.raises(InvalidScoresError, match="different resamples"):
        paired_difference(a, other_seed, "auc")


def test_cluster_mean_resamples_whole_clusters_and_refuses_bad_values():
    from vidsme.metrics import cluster_mean

    values = np.array([1.0, 1.0, 3.0, 3.0])
    m = cluster_mean(values, ["a", "a", "b", "b"], n_bootstrap=200, seed=0)
    assert m.value == 2.0 and 1.0 <= m.ci_low <= m.ci_high <= 3.0
    assert cluster_mean(values, ["a", "a", "b", "b"], n_bootstrap=200, seed=0) == m  # same seed, same interval
    same = cluster_mean(np.ones(4), ["a", "b", "c", "d"], n_bootstrap=50)
    assert (same.value, same.ci_low, same.ci_high) == (1.0, 1.0, 1.0)
    with pytest.raises(InvalidScoresError, match="NaN or infinity"):
        cluster_mean(np.array([1.0, np.nan]), ["a", "b"])
    with pytest.raises(InvalidScoresError, match="2 values for 3 clusters"):
        cluster_mean(np.array([1.0, 2.0]), ["a", "b", "c"])
