"""Figures the benchmark suite writes next to results.json: ROC curves, score and q/r histograms.

Every figure is a PNG at 100 dpi with a fixed size (a function of the number of panels
only), drawn with matplotlib's Agg canvas on a `Figure` of its own: no pyplot, so no
global figure registry to leak into and no GUI backend to trip over on a headless node.
Drawing runs under matplotlib's "default" style, so a user's matplotlibrc or style does
not change the pixels, and the PNG carries no "Software" text chunk: the same input gives
byte-identical files (with the same matplotlib and its bundled FreeType and fonts).

Conventions shared with vidsme.metrics: labels are 1/True = member, 0/False =
non-member; raw scores are oriented with `Direction.orient` (higher = member); NaN is an
error naming the curve or panel; +inf / -inf are clipped to the largest / smallest finite
score of the vector, so the AUC in a legend equals the point estimate in results.json.

Files are written atomically (temp file in the same folder + os.replace) and their
parent folders are created.
"""
from __future__ import annotations

import math
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.style
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vidsme.direction import Direction
from vidsme.metrics import auc_from_roc, roc_points
from vidsme.errors import InvalidScoresError, VidsmeError

DPI = 100
# tab10, spelled out so that the colours do not depend on the active style's cycle.
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
            "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
# Curve i: colour i % 10, line style i % 4 -> 20 distinct pairs, and neighbouring curves
# differ in both (still tellable apart printed in greyscale).
_LINESTYLES = ("-", "--", "-.", ":")
_MEMBER_COLOUR, _NONMEMBER_COLOUR = "#d62728", "#1f77b4"
_MAX_HIST_COLUMNS = 3
_MIN_BINS, _MAX_BINS = 10, 60


@dataclass(frozen=True)
class Curve:
    """One attack's scores on one split, as a ROC curve."""

    label: str  # legend text, e.g. "vid_sme_min_k10"
    scores: np.ndarray  # raw scores, one per sample
    labels: np.ndarray  # 1 = member, 0 = non-member
    direction: str  # "higher" | "lower": which way the raw score points to "member"


@dataclass(frozen=True)
class HistPanel:
    """One histogram panel: raw scores of members against non-members."""

    title: str
    scores: np.ndarray
    labels: np.ndarray


# ----------------------------------------------------------------------------- checks
def _check_pair(scores: object, labels: object, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(float64 scores, bool is_member) of one curve/panel; VidsmeError naming `what` if unusable."""
    try:
        values = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidScoresError(f"{what}: scores are not numeric ({exc})") from None
    labels = np.asarray(labels)
    if values.ndim != 1:
        raise InvalidScoresError(f"{what}: scores must be 1-D, got shape {values.shape}")
    if len(values) == 0:
        raise InvalidScoresError(f"{what}: no scores; nothing to plot")
    if labels.shape != values.shape:
        raise InvalidScoresError(f"{what}: {len(values)} scores but labels of shape {labels.shape}")
    if labels.dtype != bool and not (labels.dtype.kind in "iuf" and np.isin(labels, (0, 1)).all()):
        raise InvalidScoresError(f"{what}: labels must be 0/1 (1 = member)")
    is_member = labels.astype(bool)
    n_pos = int(is_member.sum())
    if n_pos == 0 or n_pos == len(values):
        raise InvalidScoresError(
            f"{what}: need both classes, got {n_pos} members and {len(values) - n_pos} non-members"
        )
    return values, is_member


def _clip_infinite(values: np.ndarray, what: str) -> tuple[np.ndarray, int, int]:
    """Raise on NaN, clip +-inf to the finite extremes; returns (values, n_pos_inf, n_neg_inf).

    Same rule as vidsme.metrics, so plots and results.json agree.
    """
    nan = np.isnan(values)
    if nan.any():
        first = ", ".join(str(i) for i in np.flatnonzero(nan)[:5])
        raise InvalidScoresError(
            f"{what}: {int(nan.sum())} NaN score(s) (first at index {first}); fix the attack or its features"
        )
    finite = np.isfinite(values)
    if not finite.any():
        raise InvalidScoresError(f"{what}: all {len(values)} scores are infinite; nothing to plot")
    posinf, neginf = values == np.inf, values == -np.inf
    if posinf.any() or neginf.any():
        values = values.copy()
        values[posinf] = values[finite].max()
        values[neginf] = values[finite].min()
    return values, int(posinf.sum()), int(neginf.sum())


def _plain(text: str) -> str:
    # Matplotlib treats text between two "$" as mathtext (and raises on bad TeX); names
    # and titles are plain text, so escape it.
    return str(text).replace("$", r"\$")


def _png_path(path: Path | str) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise VidsmeError(f"{path}: plots are PNG files; give a path ending in .png")
    return path


# ----------------------------------------------------------------------------- ROC
def _roc_figure(curves: Sequence[Curve], title: str) -> Figure:
    """The figure `roc_plot` saves (linear and log-log ROC panels), not yet written."""
    if len(curves) == 0:
        raise VidsmeError(f"roc_plot {title!r}: no curves given")
    prepared = []
    n_nonmembers = []
    for i, curve in enumerate(curves):
        what = f"roc_plot {title!r}, curve {curve.label!r} (#{i})"
        try:
            direction = Direction(curve.direction)
        except ValueError:
            raise VidsmeError(f"{what}: direction must be 'higher' or 'lower', got {curve.direction!r}") from None
        values, is_member = _check_pair(curve.scores, curve.labels, what)
        values, _, _ = _clip_infinite(values, what)
        fpr, tpr = roc_points(direction.orient(values), is_member)
        prepared.append((curve.label, fpr, tpr, auc_from_roc(fpr, tpr)))
        n_nonmembers.append(int((~is_member).sum()))

    # Log axes start at the smallest non-zero FPR any curve can reach; zero (and, for
    # TPR, anything below the floor, which is off-axis anyway) is raised to it so the
    # first ROC point is drawn. At least 2: one non-member would give an empty axis [1, 1].
    floor = 1.0 / max(max(n_nonmembers), 2)

    fig = Figure(figsize=(11.0, 5.2), dpi=DPI)
    FigureCanvasAgg(fig)
    # Fixed margins rather than constrained layout: every text here is known in advance
    # (rates in [0, 1], fixed axis labels), and layout would double the drawing time.
    lin, log = fig.subplots(1, 2, gridspec_kw={"left": 0.06, "right": 0.98, "bottom": 0.1, "top": 0.88,
                                               "wspace": 0.2})
    handles, legend = [], []
    for i, (label, fpr, tpr, auc) in enumerate(prepared):
        style = {"color": _COLOURS[i % len(_COLOURS)], "linestyle": _LINESTYLES[i % len(_LINESTYLES)],
                 "linewidth": 1.6, "clip_on": False}  # curves on the axes' edge stay whole
        (line,) = lin.plot(fpr, tpr, **style)
        log.plot(np.maximum(fpr, floor), np.maximum(tpr, floor), **style)
        handles.append(line)
        legend.append(_plain(f"{label} (AUC {auc:.2f})"))
    chance = {"color": "0.5", "linestyle": ":", "linewidth": 1.0, "zorder": 1}
    (line,) = lin.plot([0, 1], [0, 1], **chance)
    log.plot([floor, 1], [floor, 1], **chance)
    handles.append(line)
    legend.append("chance")

    lin.set(xlim=(0, 1), ylim=(0, 1), title="ROC (linear)", aspect="equal")
    log.set(xscale="log", yscale="log", xlim=(floor, 1), ylim=(floor, 1), aspect="equal",
            title="ROC (log-log: low-FPR regime)")
    for ax in (lin, log):
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.grid(True, which="major", alpha=0.3)
    # Explicit handles and labels: matplotlib silently drops auto-collected labels that
    # start with "_", and an attack may be named that way.
    lin.legend(handles, legend, loc="lower right", fontsize="small")
    fig.suptitle(_plain(title))
    return fig


def roc_plot(curves: Sequence[Curve], path: Path, title: str) -> Path:
    """One PNG with two panels: ROC on linear axes, and on log-log axes (the low-FPR regime MIAs are judged on).

    Chance diagonal on both; legend entries carry the AUC ("loss (AUC 0.93)"); log axes
    start at 1/n_nonmembers (the largest non-member count among the curves, at least 2 so
    there is an axis to show); zero FPR/TPR are clipped to that floor so log scale works.
    Curve i gets colour i % 10 and line style i % 4: 20 distinct combinations. Infinite
    scores are clipped to the finite range as in vidsme.metrics. Raises VidsmeError (naming the curve) for no curves, empty
    or NaN scores, length mismatches, labels other than 0/1, a single class or an unknown
    direction. Returns `path`.
    """
    path = _png_path(path)
    with matplotlib.style.context("default"):
        fig = _roc_figure(curves, title)
        return _save(fig, path)


# ----------------------------------------------------------------------------- histograms
def _n_bins(n: int) -> int:
    # sqrt rule, bounded: few samples still show a shape, many do not give hair-thin bars.
    return int(min(max(math.ceil(math.sqrt(n)), _MIN_BINS), _MAX_BINS))


def _draw_histogram(ax, values: np.ndarray, is_member: np.ndarray, title: str, xlabel: str) -> None:
    """Density histograms of members and non-members on bins shared across both classes."""
    edges = np.histogram_bin_edges(values, bins=_n_bins(len(values)))
    for mask, name, colour in ((~is_member, "non-member", _NONMEMBER_COLOUR), (is_member, "member", _MEMBER_COLOUR)):
        density, _ = np.histogram(values[mask], bins=edges, density=True)
        ax.stairs(density, edges, fill=True, color=colour, alpha=0.3, linewidth=0)
        ax.stairs(density, edges, color=colour, linewidth=1.4, label=f"{name} (n={int(mask.sum())})")
    ax.set_title(_plain(title), fontsize="medium")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles, labels, fontsize="small")


def _inf_note(n_posinf: int, n_neginf: int) -> str:
    parts = [f"{n} {sign}inf" for n, sign in ((n_posinf, "+"), (n_neginf, "-")) if n]
    return f"\n({', '.join(parts)} clipped to the finite range)" if parts else ""


def _histogram_grid(panels: Sequence[tuple[str, np.ndarray, np.ndarray]], title: str, xlabel: str,
                      columns: int) -> Figure:
    """Grid of histogram panels (title, checked values, is_member), `columns` wide."""
    rows = math.ceil(len(panels) / columns)
    fig = Figure(figsize=(4.2 * columns, 3.4 * rows + 0.5), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    for i, (panel_title, values, is_member) in enumerate(panels):
        _draw_histogram(fig.add_subplot(rows, columns, i + 1), values, is_member, panel_title, xlabel)
    fig.suptitle(_plain(title))
    return fig


def _histogram_figure(panels: Sequence[HistPanel], title: str) -> Figure:
    """The figure `score_histograms` saves, not yet written."""
    if len(panels) == 0:
        raise VidsmeError(f"score_histograms {title!r}: no panels given")
    checked = []
    for i, panel in enumerate(panels):
        what = f"score_histograms {title!r}, panel {panel.title!r} (#{i})"
        values, is_member = _check_pair(panel.scores, panel.labels, what)
        values, n_posinf, n_neginf = _clip_infinite(values, what)
        checked.append((panel.title + _inf_note(n_posinf, n_neginf), values, is_member))
    return _histogram_grid(checked, title, "raw score", min(len(panels), _MAX_HIST_COLUMNS))


def score_histograms(panels: Sequence[HistPanel], path: Path, title: str) -> Path:
    """Member vs non-member score histograms, one panel per entry in a grid (up to 3 columns).

    Raw (un-oriented) scores; each panel's bins are shared by both classes; densities, so
    unequal class sizes compare. Infinite scores are clipped to the panel's finite range
    and counted in the panel title. Raises VidsmeError naming the panel for NaN, empty
    scores, length mismatches, labels other than 0/1 or a single class, and for no panels.
    Returns `path`.
    """
    path = _png_path(path)
    with matplotlib.style.context("default"):
        fig = _histogram_figure(panels, title)
        return _save(fig, path)


def _qr_figure(q: np.ndarray, r: np.ndarray, labels: np.ndarray, title: str) -> Figure:
    """The figure `qr_histograms` saves, not yet written."""
    q_values, is_member = _check_pair(q, labels, f"qr_histograms {title!r}, q")
    r_values, _ = _check_pair(r, labels, f"qr_histograms {title!r}, r")
    panels = []
    for name, values in (("q (from motion k1)", q_values), ("r (from brightness k3)", r_values)):
        values, n_posinf, n_neginf = _clip_infinite(values, f"qr_histograms {title!r}, {name[0]}")
        panels.append((f"Vid-SME order {name}" + _inf_note(n_posinf, n_neginf), values, is_member))
    return _histogram_grid(panels, title, "order", 2)


def qr_histograms(q: np.ndarray, r: np.ndarray, labels: np.ndarray, path: Path, title: str) -> Path:
    """Two panels: the Vid-SME orders q and r per video, members vs non-members.

    q, r and labels are aligned per video (see vidsme.benchmark.orders). A degenerate pool
    (every q or r equal to 1) is drawn as one bar. Raises VidsmeError for empty inputs,
    length mismatches, NaN, labels other than 0/1 or a single class. Returns `path`.
    """
    path = _png_path(path)
    with matplotlib.style.context("default"):
        fig = _qr_figure(q, r, labels, title)
        return _save(fig, path)


# ----------------------------------------------------------------------------- writing
def _save(fig: Figure, path: Path) -> Path:
    """Write `fig` as a PNG at `path` atomically; returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Temp file in the same folder + os.replace: readers see the old figure or the whole
    # new one. A unique name with open(..., "xb") rather than mkstemp, whose 0600 mode
    # would carry over to the figure; the name never reaches the PNG bytes.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as fh:
            # format explicit: the ".tmp" suffix would not tell matplotlib; no "Software"
            # chunk (it carries the matplotlib version) so the bytes depend on pixels only.
            fig.savefig(fh, format="png", dpi=DPI, metadata={"Software": None})
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
