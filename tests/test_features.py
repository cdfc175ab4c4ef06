"""Token features: against the slow per-token loop, closed forms, limits, bad input."""
from __future__ import annotations

import math

import mpmath
import pytest
import torch

from vidsme.attack.features import (
    TOKEN_FEATURES,
    InvalidLogitsError,
    sequence_sharma_mittal,
    token_features,
)
from vidsme.attack.features_reference import features_one_position, sharma_mittal_direct

mpmath.mp.dps = 50


def _rel_err(got: float, want: float) -> float:
    return abs(got - want) / max(1.0, abs(want))


def _random_batch(dtype: torch.dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    batch, positions, vocab = 3, 6, 512
    logits = torch.randn(batch, positions, vocab, generator=g) * 3.0
    logits[0, 0, 11] = 45.0  # a memorised token: p_max within 1e-15 of 1
    logits[1, 2, 3] = 12.0
    mask = torch.ones(batch, positions, dtype=torch.bool)
    mask[2, 4:] = False  # padding
    mask[1, 0] = False  # a hole inside a row (gather path)
    targets = torch.randint(0, vocab, (batch, positions), generator=g)
    targets[0, 0] = 11
    targets[1, 2] = 3
    q = torch.tensor([1.0, 1.7, 0.6], dtype=torch.float64)
    r = torch.tensor([1.0, 1.04, 1.5], dtype=torch.float64)
    return logits.to(dtype), mask, targets, q, r


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("chunk_elements", [512 * 2, 1 << 20])
@pytest.mark.parametrize("argmax_targets", [False, True])
def test_every_feature_matches_the_per_token_loop(dtype, chunk_elements, argmax_targets):
    logits, mask, targets, q, r = _random_batch(dtype)
    out = token_features(
        logits, mask, None if argmax_targets else targets, q, r, chunk_elements=chunk_elements
    ).token
    assert set(out) == set(TOKEN_FEATURES)
    for b in range(logits.shape[0]):
        for t in range(logits.shape[1]):
            if not mask[b, t]:
                assert all(math.isnan(float(out[n][b, t])) for n in out)
                continue
            target = None if argmax_targets else int(targets[b, t])
            want = features_one_position(logits[b, t].float(), target, float(q[b]), float(r[b]))
            for name, value in want.items():
                got = float(out[name][b, t])
                assert _rel_err(got, value) < 2e-5, (name, b, t, got, value)


def test_without_orders_sharma_mittal_is_not_computed():
    logits, mask, targets, _, _ = _random_batch(torch.float32)
    out = token_features(logits, mask, targets).token
    assert "sharma_mittal" not in out
    assert set(out) == set(TOKEN_FEATURES) - {"sharma_mittal"}


def test_uniform_distribution_closed_forms():
    vocab = 1000
    logits = torch.zeros(1, 1, vocab)
    q, r = torch.tensor([1.6], dtype=torch.float64), torch.tensor([1.08], dtype=torch.float64)
    out = {k: float(v) for k, v in token_features(logits, targets=torch.tensor([[5]]), q=q, r=r).token.items()}
    log_v = math.log(vocab)
    p = 1.0 / vocab
    for name in ("entropy", "renyi_05", "renyi_2", "renyi_inf"):
        assert out[name] == pytest.approx(log_v, rel=1e-6), name
    assert out["target_logprob"] == pytest.approx(-log_v, rel=1e-6)
    assert out["max_prob_gap"] == 0.0
    assert out["mink_pp_z"] == 0.0  # sigma = 0: defined as 0
    assert out["modified_entropy"] == pytest.approx(-(1 - p) * math.log(p) - (vocab - 1) * p * math.log1p(-p), rel=1e-6)
    assert out["modified_renyi_2"] == pytest.approx((1 - p) ** 2 + (vocab - 1) * p * p, rel=1e-5)
    # Every Renyi order equals log V, so SME = expm1((1 - r) log V) / (1 - r).
    assert out["sharma_mittal"] == pytest.approx(math.expm1(-0.08 * log_v) / -0.08, rel=1e-6)


def test_one_hot_distribution_is_exactly_zero_entropy():
    logits = torch.full((1, 1, 50), -1.0e4)
    logits[0, 0, 7] = 0.0  # exp(-1e4) underflows: a true one-hot
    out = token_features(logits, q=torch.tensor([1.3]), r=torch.tensor([1.05])).token
    for name in ("entropy", "renyi_05", "renyi_2", "renyi_inf", "target_logprob", "modified_entropy",
                 "modified_renyi_05", "modified_renyi_2", "sharma_mittal"):
        assert float(out[name]) == 0.0, name
    assert float(out["max_prob_gap"]) == pytest.approx(1.0e4)


@pytest.mark.parametrize("gap", [0.5, 5.0, 30.0, 60.0])
def test_two_point_distribution_matches_high_precision(gap):
    """p = (a, 1-a): every feature in closed form, including p_max -> 1 (gap 60: 1-a ~ 1e-26)."""
    logits = torch.tensor([[[0.0, -gap]]])
    out = {k: float(v) for k, v in token_features(logits, q=torch.tensor([1.4]), r=torch.tensor([1.1])).token.items()}
    eps = 1 / (1 + mpmath.exp(gap))  # 1 - a, computed in 50-digit arithmetic
    a = 1 - eps
    want = {
        "entropy": -a * mpmath.log(a) - eps * mpmath.log(eps),
        "renyi_2": -mpmath.log(a * a + eps * eps),
        "renyi_05": 2 * mpmath.log(mpmath.sqrt(a) + mpmath.sqrt(eps)),
        "renyi_inf": -mpmath.log(a),
        "modified_entropy": -2 * eps * mpmath.log(a),  # sum_{v != y} p_v log(1-p_v) = eps log a
        "modified_renyi_2": 2 * eps * eps,
        "modified_renyi_05": -2 * (2 * eps * (mpmath.sqrt(a) - 1)),
        "target_logprob": mpmath.log(a),
        "max_prob_gap": mpmath.mpf(gap),
    }
    sum_q = a**1.4 + eps**1.4
    want["sharma_mittal"] = (sum_q ** ((1 - 1.1) / (1 - 1.4)) - 1) / (1 - 1.1)
    for name, value in want.items():
        value = float(value)
        # relative to the value itself: tiny values must be tiny *and* right
        assert abs(out[name] - value) <= 1e-5 * abs(value) + 1e-30, (name, out[name], value)


def _sme(logits_row: torch.Tensor, q: float, r: float) -> float:
    out = token_features(logits_row.view(1, 1, -1), q=torch.tensor([q]), r=torch.tensor([r])).token
    return float(out["sharma_mittal"])


def test_sharma_mittal_named_limits_are_exact():
    g = torch.Generator().manual_seed(3)
    row = torch.randn(300, generator=g) * 2
    p = torch.softmax(row.double(), -1)
    shannon = float(-(p * p.log()).sum())
    assert _sme(row, 1.0, 1.0) == pytest.approx(shannon, rel=1e-6)  # q = r = 1: Shannon
    renyi_2 = -math.log(float((p * p).sum()))
    assert _sme(row, 2.0, 1.0) == pytest.approx(renyi_2, rel=1e-6)  # r = 1: Renyi of order q
    tsallis = (float((p**1.5).sum()) - 1) / (1 - 1.5)
    assert _sme(row, 1.5, 1.5) == pytest.approx(tsallis, rel=1e-6)  # q = r: Tsallis
    gaussian = math.expm1((1 - 1.3) * shannon) / (1 - 1.3)
    assert _sme(row, 1.0, 1.3) == pytest.approx(gaussian, rel=1e-6)  # q = 1


@pytest.mark.parametrize("which", ["q", "r", "both"])
def test_sharma_mittal_is_continuous_across_its_limits(which):
    """Approaching q=1 / r=1 from both sides converges to the limit value, no jumps."""
    g = torch.Generator().manual_seed(4)
    row = torch.randn(400, generator=g) * 2.5
    base_q, base_r = 1.0, 1.0
    at_limit = _sme(row, base_q, base_r) if which == "both" else _sme(row, 1.0 if which == "q" else 1.4,
                                                                        1.0 if which == "r" else 1.06)
    for h in (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7):
        for sign in (1, -1):
            dq = sign * h if which in ("q", "both") else 0.0
            dr = sign * h if which in ("r", "both") else 0.0
            q = (1.0 if which in ("q", "both") else 1.4) + dq
            r = (1.0 if which in ("r", "both") else 1.06) + dr
            value = _sme(row, q, r)
            # Lipschitz near the limit: the change is O(h) with a modest constant
            assert abs(value - at_limit) <= 20 * h * max(1.0, abs(at_limit)) + 1e-6, (h, sign, value, at_limit)
            # and it matches the textbook formula in float64 where that is well conditioned
            if h >= 1e-3:
                direct = sharma_mittal_direct(torch.softmax(row.double(), -1), q, r)
                assert value == pytest.approx(direct, rel=1e-5)


def test_sequence_sharma_mittal_of_mean_probabilities():
    logits, mask, _, q, r = _random_batch(torch.float32, seed=5)
    q, r = q.abs() + 0.5, r  # any positive orders
    out = token_features(logits, mask, q=q, r=r, mean_probs=True)
    probs = torch.softmax(logits.double(), -1)
    for b in range(logits.shape[0]):
        mean = probs[b][mask[b]].mean(0)
        assert torch.allclose(out.mean_probs[b].double(), mean, atol=1e-6)
        got = float(sequence_sharma_mittal(out.mean_probs[b : b + 1], q[b : b + 1], r[b : b + 1]))
        assert got == pytest.approx(sharma_mittal_direct(mean / mean.sum(), float(q[b]), float(r[b])), rel=1e-5)


def test_minus_inf_logits_are_banned_entries_not_errors():
    g = torch.Generator().manual_seed(6)
    row = torch.randn(64, generator=g)
    banned = row.clone()
    banned[[3, 9, 40]] = float("-inf")
    kept = torch.cat([row[:3], row[4:9], row[10:40], row[41:]])
    a = token_features(banned.view(1, 1, -1), q=torch.tensor([1.2]), r=torch.tensor([1.02])).token
    b = token_features(kept.view(1, 1, -1), q=torch.tensor([1.2]), r=torch.tensor([1.02])).token
    for name in TOKEN_FEATURES:
        if name in ("target_logprob", "mink_pp_z", "modified_entropy", "modified_renyi_05", "modified_renyi_2"):
            continue  # argmax target index differs between the two layouts; values checked via argmax below
        assert float(a[name]) == pytest.approx(float(b[name]), rel=1e-5), name
    assert float(a["target_logprob"]) == pytest.approx(float(b["target_logprob"]), rel=1e-5)


def test_nan_logits_raise_naming_sample_and_position():
    logits = torch.randn(2, 3, 20)
    logits[1, 2, 5] = float("nan")
    with pytest.raises(InvalidLogitsError, match=r"sample 1, position 2"):
        token_features(logits)
    logits[1, 2, 5] = float("inf")
    with pytest.raises(InvalidLogitsError, match=r"sample 1, position 2"):
        token_features(logits)


def test_masked_nan_logits_are_never_read():
    logits = torch.randn(1, 3, 20)
    logits[0, 1] = float("nan")
    mask = torch.tensor([[True, False, True]])
    out = token_features(logits, mask).token
    assert torch.isfinite(out["entropy"][0, [0, 2]]).all()


def test_results_do_not_depend_on_chunking_and_are_deterministic():
    logits, mask, targets, q, r = _random_batch(torch.float32, seed=7)
    a = token_features(logits, mask, targets, q, r, chunk_elements=512).token
    b = token_features(logits, mask, targets, q, r, chunk_elements=512 * 5).token
    c = token_features(logits, mask, targets, q, r, chunk_elements=512).token
    for name in a:
        assert torch.allclose(a[name], c[name], rtol=0, atol=0, equal_nan=True), name  # bit-identical rerun
        assert torch.allclose(a[name], b[name], rtol=1e-6, atol=1e-7, equal_nan=True), name


def test_logits_are_not_modified():
    logits, mask, targets, q, r = _random_batch(torch.float32, seed=8)
    before = logits.clone()
    token_features(logits, mask, targets, q, r, mean_probs=True)
    assert torch.equal(logits, before)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mask": torch.ones(2, 2, dtype=torch.bool)}, "mask shape"),
        ({"targets": torch.zeros(2, 2, dtype=torch.long)}, "targets shape"),
        ({"q": torch.tensor([1.0, 1.0])}, "both q and r"),
        ({"q": torch.tensor([1.0]), "r": torch.tensor([1.0])}, "one value per sample"),
        ({"q": torch.tensor([0.0, 1.0]), "r": torch.tensor([1.0, 1.0])}, "q > 0"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        token_features(torch.randn(2, 3, 10), **kwargs)


@pytest.mark.parametrize("vocab", [1, 7, 128, 300, 32000])
def test_row_argmax_matches_torch_including_ties(vocab):
    from vidsme.attack.features import _row_argmax

    g = torch.Generator().manual_seed(vocab)
    x = torch.randint(0, 5, (64, vocab), generator=g).float()  # many ties on purpose
    assert torch.equal(_row_argmax(x), x.argmax(-1))
    y = torch.randn(16, vocab, generator=g)
    assert torch.equal(_row_argmax(y), y.argmax(-1))
    assert torch.equal(_row_argmax(y.bfloat16()), y.bfloat16().argmax(-1))
