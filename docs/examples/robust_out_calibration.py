"""Robust OUT z-score: an example calibration written for docs/SUBMITTING.md, section 9.

Submit it to a suite whose targets have shadow models (`make shadows`, or `make demo`'s four
offline shadows on mcqa-full):
`vidsme submit docs/examples/robust_out_calibration.py --submitter me --results runs/demo/benchmark`.

Idea, after offline LiRA (Carlini et al., "Membership Inference Attacks From First Principles",
IEEE S&P 2022, Sec. IV-C): a sample's signal under the target is compared with the same signal
under shadow models that never saw it, which removes how easy the sample is for any model. LiRA
fits a Gaussian to those OUT values; with few shadows one odd shadow moves its mean and variance
a lot, so this example uses the median and the median absolute deviation instead:

    score = (s_target - median_OUT) / (1.4826 * MAD_OUT + eps)

where median_OUT and MAD_OUT are taken over the shadows with inclusion False for that sample,
and eps is a small floor (a sample whose OUT values all agree would divide by zero). Signals
arrive oriented (higher = member), so a higher score means member. No population needed.
"""
from __future__ import annotations

import numpy as np

from vidsme.attack.calibration import CalibrationInputs, register_calibration

EPS = 1e-6  # the MAD floor, in the signal's units


@register_calibration(
    "robust_out_z",
    family="robust_out",
    setting="offline",
    min_out=2,
    citation="docs/SUBMITTING.md example, after Carlini et al., IEEE S&P 2022, Sec. IV-C (offline LiRA)",
)
def robust_out_z(inputs: CalibrationInputs) -> np.ndarray:
    """(target - median of the OUT shadows) / (1.4826 MAD of the OUT shadows + eps), per sample."""
    out = np.where(inputs.inclusion, np.nan, inputs.shadows)  # IN shadows drop out of every statistic
    median = np.nanmedian(out, axis=1)
    mad = np.nanmedian(np.abs(out - median[:, None]), axis=1)
    return (inputs.target - median) / (1.4826 * mad + EPS)
