"""Calibrations (LiRA, RMIA) against closed-form values, and what they refuse."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from vidsme.attack.calibration import CalibrationInputs, get_calibration, list_calibrations
from vidsme.errors import InvalidScoresError, UnknownNameError, VidsmeError


def exact_shadows(mu_in, sd_in, mu_out, sd_out):
    """Two IN and two OUT shadow values per sample whose mean and unbiased sd are exactly the given ones."""
    d_in, d_out = np.asarray(sd_in) / np.sqrt(2), np.asarray(sd_out) / np.sqrt(2)
    shadows = np.stack([mu_in - d_in, mu_in + d_in, mu_out - d_out, mu_out + d_out], axis=1)
    inclusion = np.zeros(shadows.shape, dtype=bool)
    inclusion[:, :2] = True
    return shadows, inclusion


MU_IN, SD_IN = np.array([1.0, -0.5, 3.0]), np.array([0.5, 2.0, 1.0])
MU_OUT, SD_OUT = np.array([0.0, -1.0, 2.0]), np.array([1.0, 1.5, 0.25])
S = np.array([0.7, -2.0, 2.4])


def test_lira_online_per_sample_is_the_gaussian_log_likelihood_ratio():
    shadows, inclusion = exact_shadows(MU_IN, SD_IN, MU_OUT, SD_OUT)
    inputs = CalibrationInputs("toy", "online", S, shadows, inclusion)
    got = get_calibration("lira_online_per_sample").calibrate(inputs)
    expected = norm.logpdf(S, MU_IN, SD_IN) - norm.logpdf(S, MU_OUT, SD_OUT)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_lira_global_variance_pools_the_within_sample_variances():
    shadows, inclusion = exact_shadows(MU_IN, SD_IN, MU_OUT, SD_OUT)
    inputs = CalibrationInputs("toy", "online", S, shadows, inclusion)
    got = get_calibration("lira_online_global").calibrate(inputs)
    sd_in, sd_out = np.sqrt(np.mean(SD_IN ** 2)), np.sqrt(np.mean(SD_OUT ** 2))  # equal counts: the plain mean
    expected = norm.logpdf(S, MU_IN, sd_in) - norm.logpdf(S, MU_OUT, sd_out)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_lira_offline_is_the_one_sided_gaussian_test():
    shadows, _ = exact_shadows(MU_IN, SD_IN, MU_OUT, SD_OUT)
    out_only = shadows[:, 2:]
    inputs = CalibrationInputs("toy", "offline", S, out_only, np.zeros(out_only.shape, dtype=bool))
    got = get_calibration("lira_offline_per_sample").calibrate(inputs)
    np.testing.assert_allclose(got, norm.logcdf(S, MU_OUT, SD_OUT), rtol=0, atol=1e-12)
    pooled = np.sqrt(np.mean(SD_OUT ** 2))
    np.testing.assert_allclose(get_calibration("lira_offline_global").calibrate(inputs),
                               norm.logcdf(S, MU_OUT, pooled), rtol=0, atol=1e-12)


def test_lira_estimates_converge_to_the_closed_form_with_many_shadows():
    """Shadow signals drawn from known IN/OUT Gaussians: the estimate approaches the true ratio."""
    rng = np.random.default_rng(0)
    m = 4000
    inclusion = np.zeros((3, m), dtype=bool)
    inclusion[:, : m // 2] = True
    shadows = np.where(inclusion, rng.normal(MU_IN[:, None], SD_IN[:, None], (3, m)),
                       rng.normal(MU_OUT[:, None], SD_OUT[:, None], (3, m)))
    got = get_calibration("lira_online_per_sample").calibrate(CalibrationInputs("toy", "online", S, shadows, inclusion))
    expected = norm.logpdf(S, MU_IN, SD_IN) - norm.logpdf(S, MU_OUT, SD_OUT)
    np.testing.assert_allclose(got, expected, atol=0.15)


def rmia_by_hand(target, shadows, inclusion, pop_target, pop_shadows, pop_inclusion, a):
    """RMIA written out with probabilities and loops (the test's own reading of the paper)."""
    c = max(0.0, np.max(target), np.max(shadows), np.max(pop_target), np.max(pop_shadows))

    def pr(row, included):
        p = np.exp(row - c)
        if a is None:
            return p.mean()
        return 0.5 * ((1 + a) * p[~included].mean() + (1 - a))

    scores = []
    for i in range(len(target)):
        ratio_x = np.exp(target[i] - c) / pr(shadows[i], inclusion[i])
        hits = 0
        for j in range(len(pop_target)):
            ratio_z = np.exp(pop_target[j] - c) / pr(pop_shadows[j], pop_inclusion[j])
            hits += ratio_x / ratio_z >= 1.0
        scores.append(hits / len(pop_target))
    return np.array(scores)


def rmia_world(seed=1):
    rng = np.random.default_rng(seed)
    n, z, m = 6, 9, 4
    target = rng.normal(-1.0, 0.5, n)
    shadows = rng.normal(-1.2, 0.5, (n, m))
    inclusion = np.zeros((n, m), dtype=bool)
    for i in range(n):
        inclusion[i, rng.permutation(m)[: m // 2]] = True
    pop_target, pop_shadows = rng.normal(-1.1, 0.5, z), rng.normal(-1.2, 0.5, (z, m))
    return target, shadows, inclusion, pop_target, pop_shadows


@pytest.mark.parametrize("name,a", [("rmia_online", None), ("rmia_offline_a0", 0.0), ("rmia_offline_a0.25", 0.25),
                                    ("rmia_offline_a1", 1.0)])
def test_rmia_matches_the_formula_written_out(name, a):
    target, shadows, inclusion, pop_target, pop_shadows = rmia_world()
    if a is not None:  # offline: the evaluated samples are OUT of every shadow; half the population is IN
        inclusion = np.zeros_like(inclusion)
    pop_inclusion = np.zeros(pop_shadows.shape, dtype=bool)
    if a is not None:
        pop_inclusion[::2, :2] = True
    setting = "online" if a is None else "offline"
    inputs = CalibrationInputs("toy", setting, target, shadows, inclusion, pop_target, pop_shadows, pop_inclusion)
    got = get_calibration(name).calibrate(inputs)
    expected = rmia_by_hand(target, shadows, inclusion, pop_target, pop_shadows, pop_inclusion, a)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert got.min() >= 0 and got.max() <= 1


def test_rmia_shift_keeps_positive_signals_in_range():
    """A signal above 0 (not a log-probability) is shifted so every Pr stays in (0, 1]: same formula."""
    target, shadows, inclusion, pop_target, pop_shadows = rmia_world(2)
    shift = 5.0
    inclusion = np.zeros_like(inclusion)
    pop_inclusion = np.zeros(pop_shadows.shape, dtype=bool)
    inputs = CalibrationInputs("toy", "offline", target + shift, shadows + shift, inclusion, pop_target + shift,
                               pop_shadows + shift, pop_inclusion)
    got = get_calibration("rmia_offline_a0.5").calibrate(inputs)
    expected = rmia_by_hand(target + shift, shadows + shift, inclusion, pop_target + shift, pop_shadows + shift,
                            pop_inclusion, 0.5)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def difficulty_world(seed=0, n=400, m=16, effect=0.6, spread=3.0):
    """Each sample has a difficulty far larger than the membership effect: the raw signal barely ranks
    members, calibration by shadows that saw the same difficulty removes it."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, spread, n)
    member = np.arange(n) % 2 == 0
    target = difficulty + effect * member + rng.normal(0, 0.3, n)
    inclusion = np.zeros((n, m), dtype=bool)
    for i in range(n):
        inclusion[i, rng.permutation(m)[: m // 2]] = True
    shadows = difficulty[:, None] + effect * inclusion + rng.normal(0, 0.3, (n, m))
    return member, target, shadows, inclusion, rng


def test_calibration_removes_per_sample_difficulty():
    member, target, shadows, inclusion, rng = difficulty_world()
    raw = roc_auc_score(member, target)
    inputs = CalibrationInputs("toy", "online", target, shadows, inclusion)
    lira = roc_auc_score(member, get_calibration("lira_online_global").calibrate(inputs))
    pop = rng.normal(0, 3.0, 300)
    pop_inputs = CalibrationInputs("toy", "online", target, shadows, inclusion, pop + rng.normal(0, 0.3, 300),
                                   pop[:, None] + rng.normal(0, 0.3, (300, shadows.shape[1])),
                                   np.zeros((300, shadows.shape[1]), dtype=bool))
    rmia = roc_auc_score(member, get_calibration("rmia_online").calibrate(pop_inputs))
    assert raw < 0.65
    assert lira > 0.85 and rmia > 0.8


def test_bad_inputs_are_refused_naming_the_signal():
    shadows, inclusion = exact_shadows(MU_IN, SD_IN, MU_OUT, SD_OUT)
    with pytest.raises(InvalidScoresError, match="answer/loss.*non-finite target"):
        CalibrationInputs("answer/loss", "online", np.array([0.1, np.nan, 0.2]), shadows, inclusion)
    with pytest.raises(VidsmeError, match="bool array"):
        CalibrationInputs("s", "online", S, shadows, inclusion.astype(int))
    with pytest.raises(VidsmeError, match="together"):
        CalibrationInputs("s", "online", S, shadows, inclusion, population_target=S)
    online = CalibrationInputs("s", "online", S, shadows, inclusion)
    with pytest.raises(VidsmeError, match="needs offline shadows"):
        get_calibration("lira_offline_global").calibrate(online)
    with pytest.raises(VidsmeError, match="needs population"):
        get_calibration("rmia_online").calibrate(online)
    one_in = inclusion.copy()
    one_in[0, 1] = False
    with pytest.raises(VidsmeError, match="1 sample.* fewer IN"):
        get_calibration("lira_online_per_sample").calibrate(CalibrationInputs("s", "online", S, shadows, one_in))
    flat = np.ones_like(shadows)
    with pytest.raises(InvalidScoresError, match="do not vary"):
        get_calibration("lira_online_global").calibrate(CalibrationInputs("s", "online", S, flat, inclusion))
    with pytest.raises(UnknownNameError, match="Did you mean: lira_online_global"):
        get_calibration("lira_onlne_global")


def test_the_registry_lists_lira_and_rmia_for_both_settings():
    names = {s.name for s in list_calibrations()}
    assert {"lira_online_per_sample", "lira_online_global", "lira_offline_per_sample", "lira_offline_global",
            "rmia_online", "rmia_offline_a0.5"} <= names
    assert {s.family for s in list_calibrations("offline")} == {"lira", "rmia"}
    assert all(s.describe()["direction"] == "higher" for s in list_calibrations())
