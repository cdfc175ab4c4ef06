"""LiRA: the likelihood-ratio attack, a Gaussian of each sample's signal under shadow models.

Carlini, Chien, Nasr, Song, Terzis, Tramèr, "Membership Inference Attacks From First
Principles", IEEE S&P 2022, Sec. IV (Algorithm 1). For a sample x with signal s = φ(target, x)
(oriented: higher = member) and its signals under the shadows that trained on x (IN) and
those that did not (OUT):

  online   Λ(x) = log N(s; μ_in, σ_in²) − log N(s; μ_out, σ_out²)              (Alg. 1, line 12)
  offline  Λ(x) = log Φ((s − μ_out) / σ_out)  = log (1 − Pr[Z > s]), Z ~ N(μ_out, σ_out²)   (Sec. IV-D)

μ is the mean of the sample's IN (OUT) shadow signals. σ² is either the sample's own unbiased
variance ("per-sample") or the within-sample variance pooled over every sample ("global": the
paper's fixed variance, better below ~64 shadows, Sec. VI-A). docs/ATTACKS.md lists how this
differs from the paper's code (mean, not median; pooled within-sample variance; the signal
is any attack's score rather than the logit-scaled confidence).
"""
from __future__ import annotations

from functools import partial

import numpy as np
from scipy.special import log_ndtr

from vidsme.attack.calibration import CalibrationInputs, MaskedMoments, masked_moments, register_calibration
from vidsme.errors import InvalidScoresError

CITATION = ("Carlini, Chien, Nasr, Song, Terzis, Tramèr. Membership Inference Attacks From First Principles, "
            "IEEE S&P 2022, Sec. IV, Algorithm 1 (LiRA)")
VARIANCES = ("per_sample", "global")
# A sample whose shadows agree exactly would get sigma = 0: its variance is floored at this fraction of the
# pooled one, so one degenerate sample cannot produce an infinite score.
VAR_FLOOR = 1e-6


def lira_variance(moments: MaskedMoments, variance: str, signal: str) -> np.ndarray:
    """σ² per sample: its own (floored at VAR_FLOOR x pooled) or the pooled within-sample variance."""
    if moments.pooled_var <= 0.0:
        raise InvalidScoresError(f"signal {signal!r}: the shadow signals do not vary within any sample; LiRA's "
                                 "Gaussian is undefined (a constant signal carries no information)")
    if variance == "global":
        return np.full(moments.mean.shape, moments.pooled_var)
    return np.maximum(moments.var, VAR_FLOOR * moments.pooled_var)


def gaussian_logpdf(x: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """log N(x; mean, var), elementwise."""
    return -0.5 * ((x - mean) ** 2 / var + np.log(2 * np.pi * var))


def lira_online(inputs: CalibrationInputs, variance: str) -> np.ndarray:
    """log N(s; μ_in, σ_in²) − log N(s; μ_out, σ_out²) per sample."""
    included = inputs.inclusion
    inside = masked_moments(inputs.shadows, included)
    outside = masked_moments(inputs.shadows, ~included)
    var_in = lira_variance(inside, variance, inputs.signal)
    var_out = lira_variance(outside, variance, inputs.signal)
    s = np.asarray(inputs.target, dtype=np.float64)
    return gaussian_logpdf(s, inside.mean, var_in) - gaussian_logpdf(s, outside.mean, var_out)


def lira_offline(inputs: CalibrationInputs, variance: str) -> np.ndarray:
    """log Φ((s − μ_out) / σ_out) per sample: the one-sided test against the OUT Gaussian."""
    outside = masked_moments(inputs.shadows, ~inputs.inclusion)
    var_out = lira_variance(outside, variance, inputs.signal)
    s = np.asarray(inputs.target, dtype=np.float64)
    return log_ndtr((s - outside.mean) / np.sqrt(var_out))


# Both variances need >= 2 IN (online) and >= 2 OUT shadows per sample: a variance within a sample needs two
# values (the global one pools these within-sample variances; see lira_variance).
for _variance in VARIANCES:
    register_calibration(
        f"lira_online_{_variance}", family="lira", setting="online", min_in=2, min_out=2,
        params={"variance": _variance}, citation=CITATION,
        summary=f"log N(s; mu_in, var_in) - log N(s; mu_out, var_out), {_variance.replace('_', '-')} variance",
    )(partial(lira_online, variance=_variance))
    register_calibration(
        f"lira_offline_{_variance}", family="lira", setting="offline", min_out=2, params={"variance": _variance},
        citation=CITATION, summary=f"log Phi((s - mu_out) / sigma_out), {_variance.replace('_', '-')} variance",
    )(partial(lira_offline, variance=_variance))
