"""RMIA: the sample's likelihood ratio against population samples, over reference (shadow) models.

Zarifzadeh, Liu, Shokri, "Low-Cost High-Power Membership Inference Attacks", ICML 2024, Sec. 3:

  LR(x, z) = [Pr(x|θ) / Pr(x)] / [Pr(z|θ) / Pr(z)]          θ the target, Pr(·) over reference models
  Score(x) = (1/|Z|) · #{ z in Z : LR(x, z) ≥ γ }            (Eq. 3-4), γ = 1 here

  online   Pr(x) = mean of Pr(x|θ_k) over every shadow k (IN and OUT of x)
  offline  Pr(x) = ½ ((1 + a) · Pr_OUT(x) + (1 − a))        Pr_OUT the mean over x's OUT shadows;
                                                            a in [0, 1] chosen on dev (one variant per a)

Z are population samples: in no target's training set and not among the evaluated samples.
Pr(z) follows the same rule as Pr(x) (its OUT shadows, offline). The paper's Pr(x|θ) is the
model's probability of the sample; here it is exp(s − c), s the oriented signal and
c = max(0, largest s seen): for a mean log-probability (the loss signal) c = 0 and this is the
geometric-mean token probability exactly; for other signals it is a monotone surrogate that
keeps Pr in (0, 1], where the offline formula is meant to work. Everything is computed in
log space (no underflow on long sequences).
"""
from __future__ import annotations

from functools import partial

import numpy as np
from scipy.special import logsumexp

from vidsme.attack.calibration import CalibrationInputs, register_calibration

CITATION = ("Zarifzadeh, Liu, Shokri. Low-Cost High-Power Membership Inference Attacks, ICML 2024, Sec. 3, "
            "Eq. 3-4 (RMIA)")
OFFLINE_A: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
GAMMA = 1.0


def log_reference_probability(log_p: np.ndarray, use: np.ndarray, a: float | None) -> np.ndarray:
    """log Pr(x) per row of log_p [R, M] from the shadows `use` selects: their mean (a is None), or
    the offline ½((1 + a) mean + (1 − a))."""
    log_mean = logsumexp(log_p, b=use.astype(np.float64), axis=1) - np.log(use.sum(1))
    if a is None or a == 1.0:
        return log_mean
    return np.log(0.5) + np.logaddexp(np.log1p(a) + log_mean, np.log1p(-a))


def rmia(inputs: CalibrationInputs, a: float | None, gamma: float = GAMMA) -> np.ndarray:
    """Score(x) = fraction of population samples z with LR(x, z) >= gamma; `a` None: online."""
    values = [inputs.target, inputs.shadows, inputs.population_target, inputs.population_shadows]
    c = max(0.0, *(float(np.max(v)) for v in values))
    online = a is None
    use_x = np.ones_like(inputs.inclusion) if online else ~inputs.inclusion
    use_z = np.ones_like(inputs.population_inclusion) if online else ~inputs.population_inclusion
    log_ratio_x = (inputs.target - c) - log_reference_probability(inputs.shadows - c, use_x, a)
    log_ratio_z = (inputs.population_target - c) - log_reference_probability(inputs.population_shadows - c, use_z, a)
    # LR(x, z) >= gamma  <=>  log_ratio_z <= log_ratio_x - log gamma: count with one sorted search
    below = np.searchsorted(np.sort(log_ratio_z), log_ratio_x - np.log(gamma), side="right")
    return below / len(log_ratio_z)


register_calibration(
    "rmia_online", family="rmia", setting="online", min_in=1, min_out=1, needs_population=True,
    params={"gamma": GAMMA}, citation=CITATION,
    summary="fraction of population z with LR(x, z) >= 1, Pr(x) the mean over every shadow",
)(partial(rmia, a=None))
for _a in OFFLINE_A:
    register_calibration(
        f"rmia_offline_a{_a:g}", family="rmia", setting="offline", min_out=1, needs_population=True,
        params={"a": _a, "gamma": GAMMA}, citation=CITATION,
        summary=f"fraction of population z with LR(x, z) >= 1, Pr(x) = ((1 + a) Pr_OUT(x) + (1 - a)) / 2, a = {_a:g}",
    )(partial(rmia, a=_a))
