"""Baseline attack families on a tiny hand-made slice: every expected score is worked out by hand.

The slice ("answer") has three samples padded to T = 8 positions:

    row "a": 7 valid positions (0..6), position 7 masked
    row "b": 3 valid positions (0, 2, 4), the rest masked
    row "c": 5 valid positions (1..5), the rest masked

Masked positions hold NaN (row c) or absurd values (rows a, b: +-1e6 / -1000) that
would dominate any mean, min or max if the mask were ignored.

K% keeps max(1, floor(n * K / 100)) tokens:
    n = 7: K = 0, 5, 10 -> 1;  30 -> 2;  60 -> 4;  90 -> 6;  100 -> 7
    n = 3: K = 0, 5, 10, 30 -> 1;  60 -> 1;  90 -> 2;  100 -> 3
    n = 5: K = 0, 5, 10, 30 -> 1;  60 -> 3;  90 -> 4;  100 -> 5
Every value below is a multiple of 1/8 (exact in float32), so the checks can be tight.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vidsme.attack.aggregate import K_PERCENTS
from vidsme.direction import Direction
from vidsme.attack.inputs import SLICES, AttackInputs
from vidsme.attack.registry import get_attack, list_attacks
from vidsme.errors import MissingFeatureError, VidsmeError

NAN = float("nan")
IDS = ("a", "b", "c")
MASK = torch.tensor(
    [
        [1, 1, 1, 1, 1, 1, 1, 0],
        [1, 0, 1, 0, 1, 0, 0, 0],
        [0, 1, 1, 1, 1, 1, 0, 0],
    ],
    dtype=torch.bool,
)
TEXTS = ("a" * 100, "hello world", "naïve café über")


def _t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


# log p_y. Sorted valid values: a = -7..-1 (sum -28); b = -1.5, -0.5, -0.25; c = -8, -6, -4, -2, -1 (sum -21).
TARGET_LOGPROB = _t(
    [
        [-3, -1, -7, -2, -6, -4, -5, -1000],
        [-0.5, -1000, -1.5, -1000, -0.25, -1000, -1000, -1000],
        [NAN, -1, -2, -4, -8, -6, NAN, NAN],
    ]
)
# Reference model's log p_y: natural - reference = a: 1,0,1,0,0,1,0 ; b: 1,0,0 ; c: 1,0,0,0,0.
REFERENCE_LOGPROB = _t(
    [
        [-4, -1, -8, -2, -6, -5, -5, 1000],
        [-1.5, 1000, -1.5, 1000, -0.25, 1000, 1000, 1000],
        [NAN, -2, -2, -4, -8, -6, NAN, NAN],
    ]
)
# Min-K%++ z. Sorted valid: a = -3, -1, -0.5, 0, 0.5, 1.5, 2 (sum -0.5); b = -2, 0, 1;
# c = -1.75, -0.25, 0.25, 0.75, 1.25.
MINK_PP_Z = _t(
    [
        [0.5, -1.0, 2.0, -3.0, 1.5, 0.0, -0.5, -1e6],
        [1.0, -1e6, 0.0, -1e6, -2.0, -1e6, -1e6, -1e6],
        [NAN, 0.25, 0.75, -0.25, 1.25, -1.75, NAN, NAN],
    ]
)
# Shannon entropy. Sorted valid: a = 0.125 .. 0.875 step 0.125 (sum 3.5); b = 1, 2, 4; c = 0.5, 1, 1.5, 2, 3 (sum 8).
ENTROPY = _t(
    [
        [0.125, 0.875, 0.375, 0.625, 0.25, 0.75, 0.5, 1e6],
        [1.0, 1e6, 2.0, -1e6, 4.0, 1e6, -1e6, 1e6],
        [NAN, 2.0, 0.5, 1.5, 3.0, 1.0, NAN, NAN],
    ]
)
MODIFIED_ENTROPY = _t(
    [
        [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 1e6],  # mean 1
        [2.0, 1e6, 4.0, 1e6, 6.0, 1e6, 1e6, 1e6],  # mean 4
        [NAN, 1.0, 1.0, 1.0, 1.0, 6.0, NAN, NAN],  # mean 2
    ]
)
MAX_PROB_GAP = _t(
    [
        [0, 1, 2, 3, 4, 5, 6, 1e6],  # mean 3
        [10, 1e6, 20, 1e6, 0, 1e6, 1e6, 1e6],  # mean 10
        [NAN, 0.5, 0.5, 0.5, 0.5, 3.0, NAN, NAN],  # mean 1
    ]
)

# The other Renyi orders are positive affine maps of ENTROPY (x + 1, x / 2, x / 4). A
# K% mean commutes with such a map (same tokens kept, same order), so each order's
# expected scores are the Shannon ones below mapped the same way; the distinct maps
# catch an attack that reads the wrong feature.
RENYI_MAPS = {
    "0.5": ("natural.renyi_05", lambda x: x + 1.0),
    "1": ("natural.entropy", lambda x: x),
    "2": ("natural.renyi_2", lambda x: x / 2.0),
    "inf": ("natural.renyi_inf", lambda x: x / 4.0),
}


def make_inputs(slice_name: str = "answer", drop: tuple[str, ...] = (), texts=TEXTS) -> AttackInputs:
    """The hand-made slice above, optionally without some features."""
    token = {
        "natural.target_logprob": TARGET_LOGPROB,
        "reference.target_logprob": REFERENCE_LOGPROB,
        "natural.mink_pp_z": MINK_PP_Z,
        "natural.modified_entropy": MODIFIED_ENTROPY,
        "natural.modified_renyi_05": MODIFIED_ENTROPY * 2.0,  # means 2, 8, 4
        "natural.modified_renyi_2": MODIFIED_ENTROPY + 3.0,  # means 4, 7, 5
        "natural.max_prob_gap": MAX_PROB_GAP,
    }
    token.update({key: fn(ENTROPY) for key, fn in RENYI_MAPS.values()})
    token = {k: v for k, v in token.items() if k not in drop}
    return AttackInputs(slice=slice_name, sample_ids=IDS, mask=MASK, token=token, texts=texts)


def check(name: str, expected: list[float], inputs: AttackInputs | None = None) -> None:
    scores = get_attack(name).score(inputs if inputs is not None else make_inputs())
    assert isinstance(scores, np.ndarray) and scores.dtype == np.float64 and scores.shape == (3,)
    np.testing.assert_allclose(scores, expected, rtol=1e-12, atol=1e-12, err_msg=name)


# ---------------------------------------------------------------------------- scores


def test_loss():
    # a: 28/7 ; b: (0.5 + 1.5 + 0.25)/3 ; c: 21/5
    check("loss", [4.0, 0.75, 4.2])


# K -> expected [a, b, c] for the K% lowest log p_y.
MIN_K_PROB = {
    0: [-7.0, -1.5, -8.0],
    5: [-7.0, -1.5, -8.0],
    10: [-7.0, -1.5, -8.0],
    30: [-6.5, -1.5, -8.0],  # a keeps 2: (-7 - 6)/2
    60: [-5.5, -1.5, -6.0],  # a keeps 4: -22/4 ; b keeps 1 ; c keeps 3: -18/3
    90: [-4.5, -1.0, -5.0],  # a keeps 6: -27/6 ; b keeps 2: -2/2 ; c keeps 4: -20/4
    100: [-4.0, -0.75, -4.2],  # the mean log-likelihood = -loss
}


@pytest.mark.parametrize("k", K_PERCENTS)
def test_min_k_prob(k):
    check(f"min_k_prob_k{k}", MIN_K_PROB[k])


MIN_K_PP = {
    0: [-3.0, -2.0, -1.75],
    5: [-3.0, -2.0, -1.75],
    10: [-3.0, -2.0, -1.75],
    30: [-2.0, -2.0, -1.75],  # a: (-3 - 1)/2
    60: [-1.125, -2.0, -1.75 / 3],  # a: (-3 - 1 - 0.5 + 0)/4 ; c: (-1.75 - 0.25 + 0.25)/3
    90: [-2.5 / 6, -1.0, -0.25],  # a: (-0.5 - 2)/6 ; b: (-2 + 0)/2 ; c: (-1.75 - 0.25 + 0.25 + 0.75)/4
    100: [-0.5 / 7, -1.0 / 3, 0.05],  # c: 0.25/5
}


@pytest.mark.parametrize("k", K_PERCENTS)
def test_min_k_plus_plus(k):
    check(f"min_k_pp_k{k}", MIN_K_PP[k])


# Shannon entropy, K% largest.
MAX_K_ENTROPY = {
    0: [0.875, 4.0, 3.0],
    5: [0.875, 4.0, 3.0],
    10: [0.875, 4.0, 3.0],
    30: [0.8125, 4.0, 3.0],  # a: (0.875 + 0.75)/2
    60: [0.6875, 4.0, 6.5 / 3],  # a: (0.875 + 0.75 + 0.625 + 0.5)/4 ; c: (3 + 2 + 1.5)/3
    90: [0.5625, 3.0, 1.875],  # a: (3.5 - 0.125)/6 ; b: (4 + 2)/2 ; c: (8 - 0.5)/4
    100: [0.5, 7.0 / 3, 1.6],
}
# Shannon entropy, K% smallest.
MIN_K_ENTROPY = {
    0: [0.125, 1.0, 0.5],
    5: [0.125, 1.0, 0.5],
    10: [0.125, 1.0, 0.5],
    30: [0.1875, 1.0, 0.5],  # a: (0.125 + 0.25)/2
    60: [0.3125, 1.0, 1.0],  # a: (0.125 + 0.25 + 0.375 + 0.5)/4 ; c: (0.5 + 1 + 1.5)/3
    90: [0.4375, 1.5, 1.25],  # a: (3.5 - 0.875)/6 ; b: (1 + 2)/2 ; c: (8 - 3)/4
    100: [0.5, 7.0 / 3, 1.6],
}


@pytest.mark.parametrize("alpha", list(RENYI_MAPS))
@pytest.mark.parametrize("k", K_PERCENTS)
def test_renyi(alpha, k):
    _, fn = RENYI_MAPS[alpha]
    check(f"max_k_renyi_a{alpha}_k{k}", [fn(x) for x in MAX_K_ENTROPY[k]])
    check(f"min_k_renyi_a{alpha}_k{k}", [fn(x) for x in MIN_K_ENTROPY[k]])


def test_modified_entropy():
    check("modified_entropy", [1.0, 4.0, 2.0])
    check("modified_renyi_a0.5", [2.0, 8.0, 4.0])
    check("modified_renyi_a2", [4.0, 7.0, 5.0])


def test_max_prob_gap():
    check("max_prob_gap", [3.0, 10.0, 1.0])


def test_zlib_ratio():
    # len(zlib.compress(text.encode("utf-8"))): "a" * 100 -> 12 bytes (raw 100); "hello world"
    # -> 19 (raw 11); "naïve café über" -> 26 (15 characters, 18 UTF-8 bytes; 23 if encoded as latin-1).
    check("zlib", [4.0 / 12, 0.75 / 19, 4.2 / 26])


def test_ref_calibration():
    # mean(natural - reference): a: 3/7 ; b: 1/3 ; c: 1/5 (the +1000 masked reference values never count)
    check("ref_calibration", [3.0 / 7, 1.0 / 3, 0.2])


def test_scores_follow_the_samples():
    """Permuting the samples permutes the scores: no score leaks across rows."""
    base = make_inputs()
    order = [2, 0, 1]
    permuted = AttackInputs(
        slice=base.slice,
        sample_ids=tuple(IDS[i] for i in order),
        mask=MASK[order],
        token={k: v[order] for k, v in base.token.items()},
        texts=tuple(TEXTS[i] for i in order),
    )
    for name in ("loss", "min_k_prob_k30", "min_k_pp_k60", "max_k_renyi_a2_k90", "zlib", "ref_calibration"):
        spec = get_attack(name)
        np.testing.assert_allclose(spec.score(permuted), spec.score(base)[order], rtol=1e-12, err_msg=name)


# ---------------------------------------------------------------------- registration

LOGPROB = ("natural.target_logprob",)
EXPECTED_SPECS = {
    "loss": ("loss", Direction.LOWER, LOGPROB, SLICES, "Yeom"),
    "max_prob_gap": ("max_prob_gap", Direction.HIGHER, ("natural.max_prob_gap",), SLICES, "VL-MIA"),
    "zlib": ("zlib", Direction.LOWER, ("natural.target_logprob", "text"), ("instruction", "answer"), "Carlini"),
    "ref_calibration": (
        "reference",
        Direction.HIGHER,
        ("natural.target_logprob", "reference.target_logprob"),
        SLICES,
        "Watson",
    ),
    "modified_entropy": ("modified_entropy", Direction.LOWER, ("natural.modified_entropy",), SLICES, "Song"),
    "modified_renyi_a0.5": ("modified_entropy", Direction.LOWER, ("natural.modified_renyi_05",), SLICES, "VL-MIA"),
    "modified_renyi_a2": ("modified_entropy", Direction.LOWER, ("natural.modified_renyi_2",), SLICES, "VL-MIA"),
}
for _k in K_PERCENTS:
    EXPECTED_SPECS[f"min_k_prob_k{_k}"] = ("min_k_prob", Direction.HIGHER, LOGPROB, SLICES, "Shi")
    EXPECTED_SPECS[f"min_k_pp_k{_k}"] = (
        "min_k_plus_plus", Direction.HIGHER, ("natural.mink_pp_z",), SLICES, "2404.02936"
    )
    for _alpha, (_feature, _) in RENYI_MAPS.items():
        for _how in ("max", "min"):
            EXPECTED_SPECS[f"{_how}_k_renyi_a{_alpha}_k{_k}"] = (
                "renyi", Direction.LOWER, (_feature,), SLICES, "VL-MIA"
            )


@pytest.mark.parametrize("name", sorted(EXPECTED_SPECS))
def test_registration(name):
    family, direction, needs, slices, cited = EXPECTED_SPECS[name]
    spec = get_attack(name)
    assert spec.name == name
    assert spec.family == family
    assert spec.direction is direction
    assert spec.needs == needs
    assert spec.slices == slices
    assert cited in spec.citation
    assert spec.summary  # shown in listings


@pytest.mark.parametrize(
    "family, count",
    [
        ("loss", 1),
        ("min_k_prob", 7),
        ("min_k_plus_plus", 7),
        ("renyi", 56),
        ("modified_entropy", 3),
        ("max_prob_gap", 1),
        ("zlib", 1),
        ("reference", 1),
    ],
)
def test_family_sizes(family, count):
    names = {s.name for s in list_attacks(family)}
    assert len(names) == count
    assert names == {n for n, v in EXPECTED_SPECS.items() if v[0] == family}


# ------------------------------------------------------------------------- refusals


def test_zlib_refuses_the_video_slice():
    with pytest.raises(VidsmeError, match="not defined on slice 'video'"):
        get_attack("zlib").score(make_inputs("video"))


def test_zlib_empty_text_names_the_sample():
    inputs = make_inputs(texts=("a" * 100, "", "naïve"))
    with pytest.raises(VidsmeError, match="'b'.*empty"):
        get_attack("zlib").score(inputs)


def test_zlib_never_returns_inf():
    scores = get_attack("zlib").score(make_inputs())
    assert np.isfinite(scores).all()


@pytest.mark.parametrize(
    "name, missing",
    [
        ("loss", "natural.target_logprob"),
        ("min_k_pp_k10", "natural.mink_pp_z"),
        ("max_k_renyi_ainf_k30", "natural.renyi_inf"),
        ("modified_renyi_a2", "natural.modified_renyi_2"),
        ("max_prob_gap", "natural.max_prob_gap"),
        ("ref_calibration", "reference.target_logprob"),
    ],
)
def test_missing_feature_is_named(name, missing):
    with pytest.raises(MissingFeatureError, match=f"'{missing}'"):
        get_attack(name).score(make_inputs(drop=(missing,)))


def test_missing_feature_is_named_without_the_registry_check():
    """The score functions themselves fail clearly too (e.g. when called directly)."""
    spec = get_attack("ref_calibration")
    with pytest.raises(MissingFeatureError, match="'reference.target_logprob'"):
        spec.fn(make_inputs(drop=("reference.target_logprob",)))


def test_zlib_without_texts_names_text():
    with pytest.raises(MissingFeatureError, match="'text'"):
        get_attack("zlib").score(make_inputs(texts=None))
