"""Vid-SME: (q, r) orders over the pool, score aggregations, frame alignment."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vidsme.attack import AttackInputs, Direction, build_attack_inputs, get_attack
from vidsme.attack.features import sequence_sharma_mittal, token_features
from vidsme.attack.vid_sme_orders import orders_from_stats
from vidsme.errors import MissingFeatureError, VidsmeError

NAN = float("nan")


def test_orders_follow_the_paper_formula():
    k1 = [0.0, 2.0, 4.0, 1.0]  # motion
    k3 = [5.0, 1.0, 3.0, 1.0]  # brightness std
    orders = orders_from_stats(k1, k3, ["a", "b", "c", "d"], beta1=1.0, beta2=0.1)
    # q = 1 + (max k1 - k1) / (max - min): the most dynamic video gets q = 1
    np.testing.assert_allclose(orders.q, [2.0, 1.5, 1.0, 1.75])
    # r = 1 + 0.1 (k3 - min) / (max - min)
    np.testing.assert_allclose(orders.r, [1.1, 1.0, 1.05, 1.0])
    assert not orders.q_degenerate and not orders.r_degenerate


def test_orders_are_scale_invariant_like_the_reference_zscore():
    k1, k3 = np.array([0.3, 1.2, 0.7]), np.array([2.0, 9.0, 4.0])
    a = orders_from_stats(k1, k3, ["a", "b", "c"])
    b = orders_from_stats(k1 * 17 + 3, k3 * 0.01 + 8, ["a", "b", "c"])  # z-scoring would cancel this
    np.testing.assert_allclose(a.q, b.q)
    np.testing.assert_allclose(a.r, b.r)


def test_orders_with_betas():
    orders = orders_from_stats([0, 1], [0, 1], ["a", "b"], beta1=0.5, beta2=0.3)
    np.testing.assert_allclose(orders.q, [1.5, 1.0])
    np.testing.assert_allclose(orders.r, [1.0, 1.3])


def test_equal_statistics_give_order_one_and_say_so():
    orders = orders_from_stats([2.0, 2.0, 2.0], [1.0, 3.0, 2.0], ["a", "b", "c"])
    np.testing.assert_array_equal(orders.q, [1.0, 1.0, 1.0])
    assert orders.q_degenerate and not orders.r_degenerate
    single = orders_from_stats([5.0], [7.0], ["only"])
    assert single.q_degenerate and single.r_degenerate
    np.testing.assert_array_equal(single.q, [1.0])
    np.testing.assert_array_equal(single.r, [1.0])


@pytest.mark.parametrize("bad", [NAN, float("inf"), -1.0])
def test_bad_statistics_name_the_video(bad):
    with pytest.raises(VidsmeError, match=r"clip_7"):
        orders_from_stats([1.0, bad], [1.0, 2.0], ["clip_3", "clip_7"])


def test_orders_reject_mismatched_lengths_and_negative_betas():
    with pytest.raises(VidsmeError, match="3 videos"):
        orders_from_stats([1.0, 2.0], [1.0, 2.0], ["a", "b", "c"])
    with pytest.raises(VidsmeError, match="beta"):
        orders_from_stats([1.0, 2.0], [1.0, 2.0], ["a", "b"], beta1=-1.0)


def _sme_inputs() -> AttackInputs:
    """Two samples; sample 0 has 5 valid positions, sample 1 has 3 (then padding)."""
    natural = torch.tensor([[5.0, 1.0, 4.0, 2.0, 3.0], [1.0, 2.0, 3.0, NAN, NAN]])
    reversed_ = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0], [0.5, 3.0, 1.0, NAN, NAN]])
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    return AttackInputs(
        slice="video",
        sample_ids=("s0", "s1"),
        mask=mask,
        token={"natural.sharma_mittal": natural, "reversed.sharma_mittal": reversed_},
        sequence={
            "natural.sequence_sharma_mittal": torch.tensor([2.0, 1.0], dtype=torch.float64),
            "reversed.sequence_sharma_mittal": torch.tensor([0.5, 1.5], dtype=torch.float64),
        },
    )


@pytest.mark.parametrize(
    "name, expected",
    [
        # differences: s0 = [4, 0, 3, 1, 2]; s1 = [0.5, -1, 2]
        ("vid_sme_max", [4.0, 2.0]),
        ("vid_sme_min", [0.0, -1.0]),
        ("vid_sme_mean", [2.0, 1.5 / 3]),
        ("vid_sme_max_k0", [4.0, 2.0]),  # K = 0: one token
        ("vid_sme_min_k30", [0.0, -1.0]),  # floor(5 * .3) = 1 ; floor(3 * .3) = 0 -> 1
        ("vid_sme_max_k60", [(4 + 3 + 2) / 3, 2.0]),  # floor(5 * .6) = 3 ; floor(3 * .6) = 1
        ("vid_sme_min_k90", [(0 + 1 + 2 + 3) / 4, (-1 + 0.5) / 2]),  # 4 ; 2
        ("vid_sme_max_k100", [2.0, 1.5 / 3]),
        ("vid_sme_sequence", [1.5, -0.5]),
    ],
)
def test_vid_sme_aggregations_by_hand(name, expected):
    spec = get_attack(name)
    assert spec.direction is Direction.LOWER
    np.testing.assert_allclose(spec.score(_sme_inputs()), expected)


def test_vid_sme_family_is_complete():
    from vidsme.attack import list_attacks

    names = {s.name for s in list_attacks("vid_sme")}
    for prefix in ("vid_sme", "vid_sme_frame"):
        for how in ("max", "min", "mean"):
            assert f"{prefix}_{how}" in names
        for k in (0, 5, 10, 30, 60, 90, 100):
            assert {f"{prefix}_max_k{k}", f"{prefix}_min_k{k}"} <= names
    assert "vid_sme_sequence" in names
    assert all(get_attack(n).slices == ("video",) for n in names)


def _frame_inputs() -> AttackInputs:
    # 3 frames x 2 tokens + one trailing non-frame position (slot -1).
    slots = torch.tensor([[0, 0, 1, 1, 2, 2, -1]])
    natural = torch.tensor([[10.0, 11.0, 20.0, 21.0, 30.0, 31.0, 5.0]])
    # In the reversed input slot 0 shows frame 2, slot 2 shows frame 0.
    reversed_ = torch.tensor([[3.0, 3.5, 2.0, 2.5, 1.0, 1.5, 4.0]])
    return AttackInputs(
        slice="video",
        sample_ids=("v",),
        mask=torch.ones(1, 7, dtype=torch.bool),
        token={"natural.sharma_mittal": natural, "reversed.sharma_mittal": reversed_},
        frame_slot=slots,
    )


def test_frame_aligned_pairs_the_same_frame_content():
    inputs = _frame_inputs()
    # frame 0 (natural slot 0) <-> reversed slot 2 ; frame 1 <-> slot 1 ; frame 2 <-> slot 0
    diffs = [10 - 1.0, 11 - 1.5, 20 - 2.0, 21 - 2.5, 30 - 3.0, 31 - 3.5, 5 - 4.0]
    np.testing.assert_allclose(get_attack("vid_sme_frame_max").score(inputs), [max(diffs)])
    np.testing.assert_allclose(get_attack("vid_sme_frame_mean").score(inputs), [sum(diffs) / 7])
    # position-aligned differs: it compares slot i with slot i
    pos = [10 - 3.0, 11 - 3.5, 20 - 2.0, 21 - 2.5, 30 - 1.0, 31 - 1.5, 5 - 4.0]
    np.testing.assert_allclose(get_attack("vid_sme_mean").score(inputs), [sum(pos) / 7])


def test_frame_alignment_needs_frame_slots_and_equal_frames():
    inputs = _frame_inputs()
    without = AttackInputs(slice="video", sample_ids=inputs.sample_ids, mask=inputs.mask, token=inputs.token)
    with pytest.raises(MissingFeatureError, match="frame_slot"):
        get_attack("vid_sme_frame_max").score(without)
    uneven = AttackInputs(
        slice="video",
        sample_ids=("v",),
        mask=inputs.mask,
        token=inputs.token,
        frame_slot=torch.tensor([[0, 0, 0, 1, 2, 2, -1]]),
    )
    with pytest.raises(VidsmeError, match="'v': frames 0 and 2 have 3 and 2 tokens"):
        get_attack("vid_sme_frame_max").score(uneven)


def test_vid_sme_refuses_text_slices():
    inputs = _sme_inputs()
    answer = AttackInputs(slice="answer", sample_ids=inputs.sample_ids, mask=inputs.mask, token=inputs.token)
    with pytest.raises(VidsmeError, match="not defined on slice 'answer'"):
        get_attack("vid_sme_mean").score(answer)


def test_end_to_end_from_logits_natural_vs_reversed():
    """From raw logits of two passes to Vid-SME scores, checked against a direct computation."""
    g = torch.Generator().manual_seed(11)
    n, t, v = 4, 8, 64
    nat_logits = torch.randn(n, t, v, generator=g) * 2
    rev_logits = torch.randn(n, t, v, generator=g) * 2
    mask = torch.ones(n, t, dtype=torch.bool)
    mask[3, 5:] = False
    orders = orders_from_stats([0.1, 0.9, 0.5, 0.3], [2.0, 1.0, 4.0, 3.0], ["a", "b", "c", "d"])
    q, r = torch.from_numpy(orders.q), torch.from_numpy(orders.r)
    natural = token_features(nat_logits, mask, q=q, r=r, mean_probs=True)
    reversed_ = token_features(rev_logits, mask, q=q, r=r, mean_probs=True)
    inputs = build_attack_inputs("video", ["a", "b", "c", "d"], mask, natural, reversed_, q=q, r=r)
    mean_scores = get_attack("vid_sme_mean").score(inputs)
    seq_scores = get_attack("vid_sme_sequence").score(inputs)
    for i in range(n):
        m = mask[i]
        diff = natural.token["sharma_mittal"][i][m].double() - reversed_.token["sharma_mittal"][i][m].double()
        assert mean_scores[i] == pytest.approx(float(diff.mean()), rel=1e-9)
        nat_mean = torch.softmax(nat_logits[i][m].double(), -1).mean(0, keepdim=True)
        rev_mean = torch.softmax(rev_logits[i][m].double(), -1).mean(0, keepdim=True)
        want = sequence_sharma_mittal(nat_mean, q[i : i + 1], r[i : i + 1]) - sequence_sharma_mittal(
            rev_mean, q[i : i + 1], r[i : i + 1]
        )
        assert seq_scores[i] == pytest.approx(float(want), rel=1e-5, abs=1e-6)


def test_nan_at_a_real_position_surfaces_in_every_aggregate():
    inputs = _sme_inputs()
    token = dict(inputs.token)
    natural = token["natural.sharma_mittal"].clone()
    natural[0, 2] = NAN  # a real (masked-in) position
    token["natural.sharma_mittal"] = natural
    bad = AttackInputs(slice="video", sample_ids=inputs.sample_ids, mask=inputs.mask, token=token)
    for name in ("vid_sme_max", "vid_sme_min", "vid_sme_mean", "vid_sme_max_k30", "vid_sme_min_k30"):
        scores = get_attack(name).score(bad)
        assert np.isnan(scores[0]) and not np.isnan(scores[1]), name


def test_frame_partner_pairs_temporal_patches_like_frames():
    """Qwen2-VL slots are the first frame of each two-frame patch (0, 2, 4): group k of n pairs with n-1-k."""
    from vidsme.attack.attacks.vid_sme import frame_partner

    slots = torch.tensor([[-1, 0, 0, 2, 2, 4, 4, -1]])
    partner = frame_partner(slots, torch.ones_like(slots, dtype=torch.bool), ("q",))
    assert partner.tolist() == [[0, 5, 6, 3, 4, 1, 2, 7]]
