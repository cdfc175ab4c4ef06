"""Benchmark figures: valid, byte-deterministic PNGs; ROC edge cases; infinite scores; bad inputs."""
from __future__ import annotations

from pathlib import Path

import matplotlib.figure
import matplotlib.image
import numpy as np
import pytest

from vidsme.benchmark import plots
from vidsme.benchmark.plots import Curve, HistPanel, qr_histograms, roc_plot, score_histograms
from vidsme.errors import VidsmeError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LABELS = np.array([1] * 6 + [0] * 9)  # 6 members, 9 non-members


def scores(seed: int = 0, shift: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(rng.normal(size=len(LABELS)) + shift * LABELS, 1)  # rounding makes ties


def with_infs(values: np.ndarray) -> np.ndarray:
    values = values.copy()
    values[[0, 7]] = np.inf  # one member, one non-member
    values[8] = -np.inf
    return values


def legend_texts(fig: matplotlib.figure.Figure) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def read_png(path: Path) -> tuple[bytes, np.ndarray]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    return data, matplotlib.image.imread(path)


# ----------------------------------------------------------------------------- files
WRITERS = {
    # name: (write(path), expected (height, width) in pixels at 100 dpi)
    "roc": (lambda p: roc_plot([Curve("loss", scores(), LABELS, "higher"),
                                Curve("zlib", -scores(1), LABELS, "lower")], p, "ROC"), (520, 1100)),
    "hist": (lambda p: score_histograms([HistPanel("loss", with_infs(scores()), LABELS)], p, "scores"), (390, 420)),
    # r all equal: the degenerate pool of vidsme.attack.vid_sme_orders
    "qr": (lambda p: qr_histograms(1 + scores() / 10, np.ones(len(LABELS)), LABELS, p, "orders"), (390, 840)),
}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_writes_deterministic_png(tmp_path: Path, name: str) -> None:
    write, (height, width) = WRITERS[name]
    first = tmp_path / "a" / "b" / f"{name}.png"  # parents are created
    assert write(first) == first
    # a user's rcParams / style must not leak into the figure
    with matplotlib.rc_context({"lines.linewidth": 7, "axes.facecolor": "black", "font.size": 20}):
        second = write(tmp_path / f"{name}_again.png")

    data, image = read_png(first)
    assert image.shape == (height, width, 4)
    assert image[..., :3].min() < 0.5  # something was drawn, not a blank canvas
    assert second.read_bytes() == data  # same input, same bytes, whatever the ambient style
    assert b"Software" not in data  # no matplotlib version string in the file
    # atomic write: no temp file left beside the figure
    assert sorted(p.name for p in first.parent.iterdir()) == [f"{name}.png"]


def test_failed_write_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "roc.png"
    path.write_bytes(b"old")

    def broken_savefig(self, fh, **kw):
        fh.write(b"half a png")
        raise OSError("disk full")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        roc_plot([Curve("loss", scores(), LABELS, "higher")], path, "ROC")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["roc.png"]


# ----------------------------------------------------------------------------- ROC
def test_roc_perfect_separator_and_identical_scores(tmp_path: Path) -> None:
    perfect = Curve("perfect", LABELS * 2.0, LABELS, "higher")
    flat = Curve("flat", np.zeros(len(LABELS)), LABELS, "higher")
    fig = plots._roc_figure([perfect, flat], "edge cases")
    assert legend_texts(fig) == ["perfect (AUC 1.00)", "flat (AUC 0.50)", "chance"]

    lin, log = fig.axes
    floor = 1 / 9  # 1 / n_nonmembers
    assert log.get_xscale() == log.get_yscale() == "log"
    assert log.get_xlim() == pytest.approx((floor, 1)) and log.get_ylim() == pytest.approx((floor, 1))
    # zero FPR/TPR raised to the floor, so the log panel has no point it cannot show
    np.testing.assert_allclose(log.lines[0].get_xydata(), [[floor, floor], [floor, 1], [1, 1]])
    np.testing.assert_allclose(log.lines[1].get_xydata(), [[floor, floor], [1, 1]])
    np.testing.assert_allclose(lin.lines[0].get_xydata(), [[0, 0], [0, 1], [1, 1]])
    # and the PNG renders with those lines on the axes' edges
    read_png(roc_plot([perfect, flat], tmp_path / "edge.png", "edge cases"))


def test_roc_direction_orients_scores() -> None:
    member_low = -LABELS * 1.0  # members score lower
    fig = plots._roc_figure([Curve("lower", member_low, LABELS, "lower"),
                             Curve("higher", member_low, LABELS, "higher")], "t")
    assert legend_texts(fig)[:2] == ["lower (AUC 1.00)", "higher (AUC 0.00)"]


def test_roc_log_floor_uses_largest_nonmember_count() -> None:
    big = np.array([1] * 5 + [0] * 40)
    fig = plots._roc_figure([Curve("small", scores(), LABELS, "higher"),
                             Curve("big", np.arange(45.0), big, "lower")], "t")
    assert fig.axes[1].get_xlim() == pytest.approx((1 / 40, 1))
    # one non-member: 1/1 would be an empty log axis, so the floor is 1/2
    one = plots._roc_figure([Curve("one", [3.0, 2.0, 1.0], [1, 1, 0], "higher")], "t")
    assert one.axes[1].get_xlim() == pytest.approx((0.5, 1))


def test_roc_infinite_scores_clipped_like_metrics() -> None:
    raw = with_infs(scores())
    clipped = raw.copy()
    finite = raw[np.isfinite(raw)]
    clipped[raw == np.inf], clipped[raw == -np.inf] = finite.max(), finite.min()
    for direction in ("higher", "lower"):
        a = plots._roc_figure([Curve("loss", raw, LABELS, direction)], "t")
        b = plots._roc_figure([Curve("loss", clipped, LABELS, direction)], "t")
        assert legend_texts(a) == legend_texts(b)
        for ax_a, ax_b in zip(a.axes, b.axes):
            np.testing.assert_array_equal(ax_a.lines[0].get_xydata(), ax_b.lines[0].get_xydata())


def test_text_is_shown_verbatim() -> None:
    # "_"-prefixed legend labels are dropped by matplotlib by default; "$...$" is mathtext
    fig = plots._roc_figure([Curve("_private", scores(), LABELS, "higher"),
                             Curve("cost $5", scores(1), LABELS, "higher")], "a $b$ c")
    texts = legend_texts(fig)
    assert texts[0].startswith("_private (AUC ") and texts[1].startswith(r"cost \$5 (AUC ")
    assert fig.get_suptitle() == r"a \$b\$ c"
    fig.canvas.draw()  # would raise on unbalanced mathtext


# ----------------------------------------------------------------------------- histograms
def test_histogram_infinite_scores_counted_in_title() -> None:
    fig = plots._histogram_figure([HistPanel("loss", with_infs(scores()), LABELS),
                                   HistPanel("zlib", scores(1), LABELS)], "t")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "loss\n(2 +inf, 1 -inf clipped to the finite range)"
    assert titles[1] == "zlib"
    # clipped to the finite range: the shared bins span exactly the finite scores
    finite = scores()[np.isfinite(with_infs(scores()))]
    lo, hi = fig.axes[0].get_xlim()
    assert lo <= finite.min() and hi >= finite.max()
    assert np.isfinite([lo, hi]).all()


def test_histogram_grid_up_to_three_columns() -> None:
    fig = plots._histogram_figure([HistPanel(f"p{i}", scores(i), LABELS) for i in range(4)], "t")
    assert len(fig.axes) == 4
    grids = {ax.get_subplotspec().get_geometry()[:2] for ax in fig.axes}
    assert grids == {(2, 3)}
    assert tuple(fig.get_size_inches()) == pytest.approx((12.6, 7.3))
    # densities: each class's bars integrate to 1 whatever the class size
    member_stairs = fig.axes[0].patches[3]  # non-member fill, outline, member fill, outline
    assert member_stairs.get_label() == "member (n=6)"
    data = member_stairs.get_data()
    values, edges = data.values, data.edges
    assert float(np.sum(values * np.diff(edges))) == pytest.approx(1.0)


def test_qr_panels() -> None:
    fig = plots._qr_figure(1 + scores() / 10, np.ones(len(LABELS)), LABELS, "orders")
    assert [ax.get_title() for ax in fig.axes] == ["Vid-SME order q (from motion k1)",
                                                   "Vid-SME order r (from brightness k3)"]


# ----------------------------------------------------------------------------- errors
GOOD = scores()


@pytest.mark.parametrize("call, message", [
    (lambda p: roc_plot([], p, "T"), "no curves"),
    (lambda p: roc_plot([Curve("loss", [], [], "higher")], p, "T"), "'loss'.*no scores"),
    (lambda p: roc_plot([Curve("loss", GOOD[:-1], LABELS, "higher")], p, "T"), "'loss'.*14 scores but labels"),
    (lambda p: roc_plot([Curve("loss", GOOD, np.ones(15), "higher")], p, "T"),
     "'loss'.*both classes, got 15 members and 0 non-members"),
    (lambda p: roc_plot([Curve("loss", GOOD, LABELS * 2, "higher")], p, "T"), "'loss'.*labels must be 0/1"),
    (lambda p: roc_plot([Curve("loss", GOOD, LABELS, "up")], p, "T"), "'loss'.*direction must be"),
    (lambda p: roc_plot([Curve("ok", GOOD, LABELS, "higher"),
                         Curve("zlib", np.where(LABELS, np.nan, 0.0), LABELS, "higher")], p, "T"),
     r"'zlib' \(#1\): 6 NaN score\(s\)"),
    (lambda p: roc_plot([Curve("loss", np.full(15, np.inf), LABELS, "higher")], p, "T"), "all 15 scores are infinite"),
    (lambda p: roc_plot([Curve("loss", GOOD, LABELS, "higher")], p.with_suffix(".pdf"), "T"), r"ending in \.png"),
    (lambda p: score_histograms([], p, "T"), "no panels"),
    (lambda p: score_histograms([HistPanel("ok", GOOD, LABELS),
                                 HistPanel("min_k", np.r_[np.nan, GOOD[1:]], LABELS)], p, "T"),
     r"panel 'min_k' \(#1\): 1 NaN score\(s\) \(first at index 0\)"),
    (lambda p: score_histograms([HistPanel("loss", GOOD, LABELS[:3])], p, "T"), "'loss'.*15 scores but labels"),
    (lambda p: score_histograms([HistPanel("loss", GOOD, np.zeros(15))], p, "T"), "'loss'.*both classes"),
    (lambda p: qr_histograms(GOOD, GOOD[:-1], LABELS, p, "T"), ", r: 14 scores but labels"),
    (lambda p: qr_histograms([], [], [], p, "T"), ", q: no scores"),
    (lambda p: qr_histograms(GOOD, GOOD, np.zeros(15), p, "T"), ", q: need both classes"),
])
def test_bad_inputs_raise(tmp_path: Path, call, message: str) -> None:
    with pytest.raises(VidsmeError, match=message):
        call(tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a folder or temp file
