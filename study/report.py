"""The study's table (markdown) and figure (PNG) from its cell files.

The figure follows benchmark/plots.py: matplotlib's Agg canvas on a Figure of its own (no
pyplot), the "default" style, a fixed size, no "Software" chunk, an atomic write: the same cell
files give byte-identical output.
"""
from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from vidsme.atomic import write_bytes_atomic, write_text_atomic
from vidsme.benchmark.leaderboard_format import fmt_metric
from vidsme.study.metrics import CALIBRATED_METHODS, VIDEO_METHODS

TABLE_FILE, FIGURE_FILE = "table.md", "figure.png"
DPI = 100
# tab10 spelled out (as in benchmark/plots.py): colours do not depend on the active style
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
            "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
# marker by factor; an unlisted factor gets "X"
MARKERS = {"center": "*", "capacity": "s", "tokens": "D", "strategy": "^", "epochs": "o", "content": "v",
           "frames": "<", "combined": "P"}
PANELS = (("vid_sme", "Vid-SME, video slice (either alignment)"),
          ("other_video", "best other attack, video slice"),
          ("answer_loss", "loss, answer slice (fixed)"))


def _diff(metric: dict | None) -> str:
    if not metric or metric.get("value") is None:
        return "n/a"
    mark = "" if metric["ci_low"] > 0 or metric["ci_high"] < 0 else " ns"
    return f"{metric['value']:+.3f} [{metric['ci_low']:+.2f}, {metric['ci_high']:+.2f}]{mark}"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _chosen(m: dict) -> str:
    return f"`{m['attack']}` @{m['n_frames']}"


def _method(cell: dict, method: str) -> dict | None:
    return cell["answer_loss"] if method == "answer_loss" else cell["methods"].get(method)


def render_table(cells: Sequence[dict], *, missing: Sequence[str] = (), footer: Sequence[str] = ()) -> str:
    """The markdown tables of the study: main numbers, what dev chose, frame counts, paired
    differences, cost. `missing` lists cells of the grid without a current results file."""
    lines = ["<!-- written by `vidsme study video-signal`; do not edit by hand -->", ""]
    lines += ["| cell | factor | level | LM | tokens/frame | strategy | epochs | content | member loss | "
              "non-member loss | gap | answer loss AUC | Vid-SME position-aligned | Vid-SME frame-aligned | "
              "best other video-slice | single-order entropy (video) | blind |",
              "|---|---|---|---|---:|---|---:|---|---:|---:|---:|---|---|---|---|---|---|"]
    for c in cells:
        s = c["settings"]["cell"]
        strategy = s["strategy"] + (" + vision tower" if s["train_vision_tower"] else "")
        m = c["methods"]
        lines.append(
            f"| {c['cell']} | {c['factor']} | {c['level']} | {c['model']['hidden_size']} × "
            f"{c['model']['num_hidden_layers']} | {c['model']['video_tokens_per_frame']} | {strategy} | "
            f"{s['epochs']} | {s['content']} | {_num(c['loss']['members'])} | {_num(c['loss']['nonmembers'])} | "
            f"{_num(c['loss']['gap'])} | {fmt_metric(c['answer_loss']['auc'])} | {fmt_metric(m['vid_sme_position']['auc'])} | "
            f"{fmt_metric(m['vid_sme_frame']['auc'])} | {fmt_metric(m['other_video']['auc'])} | "
            f"{fmt_metric(m['entropy_video']['auc'])} | {fmt_metric((c.get('blind') or {}).get('auc'))} |")
    lines += ["", "Test-partition AUC [95% CI, bootstrap over test videos]. Video-slice columns: each method's "
              "configuration (variant × frame count × level) chosen on the dev partition by AUC; answer loss: "
              "the fixed configuration loss / answer slice / training frame count. Gap = held-out non-member "
              "minus member loss (the target card's probes).", ""]
    lines += ["What dev chose (attack @ frames; candidates):", "",
              "| cell | " + " | ".join(VIDEO_METHODS[k] for k in VIDEO_METHODS) + " |",
              "|---|" + "---|" * len(VIDEO_METHODS)]
    for c in cells:
        lines.append(f"| {c['cell']} | " + " | ".join(
            f"{_chosen(c['methods'][k])} ({c['methods'][k]['n_candidates']})" for k in VIDEO_METHODS) + " |")
    lines += _calibrated_table(cells)
    frames = sorted({int(n) for c in cells for n in c["by_frames"]["vid_sme"]})
    lines += ["", "By evaluation frame count (each method dev-selected within the frame count; test AUC):", "",
              "| cell | train frames | " + " | ".join(f"Vid-SME @{n}" for n in frames) + " | "
              + " | ".join(f"best other @{n}" for n in frames) + " |",
              "|---|---:|" + "---|" * (2 * len(frames))]
    for c in cells:
        by = c["by_frames"]
        lines.append(f"| {c['cell']} | {c['settings']['cell']['train_frames']} | "
                     + " | ".join(fmt_metric((by["vid_sme"].get(str(n)) or {}).get("auc")) for n in frames) + " | "
                     + " | ".join(fmt_metric((by["other_video"].get(str(n)) or {}).get("auc")) for n in frames) + " |")
    pairs = sorted({k for c in cells for k in c["paired"]}, key=lambda k: list(cells[0]["paired"]).index(k)
                   if k in cells[0]["paired"] else 99)
    lines += ["", "Paired test differences in AUC [95% CI, same resampled test videos]; ns: the CI contains 0:", "",
              "| cell | " + " | ".join(pairs) + " |", "|---|" + "---|" * len(pairs)]
    for c in cells:
        lines.append(f"| {c['cell']} | " + " | ".join(_diff(c["paired"].get(k)) for k in pairs) + " |")
    lines += ["", "Cost on this machine (seconds; base and target: training as recorded on their cards, '-' for a "
              "model another cell built; evaluate: the benchmark of the cell, extraction included):", "",
              "| cell | base | target | " + ("shadows | " if any("shadows" in c["seconds"] for c in cells) else "")
              + "evaluate |", "|---|---:|---:|" + ("---:|" if any("shadows" in c["seconds"] for c in cells) else "")
              + "---:|"]
    seen: set[str] = set()
    for c in cells:
        sec, base_id = c["seconds"], c["settings"]["base_id"]
        base = "-" if base_id in seen else _num(sec.get("base_card"), 0)
        seen.add(base_id)
        shadows = f"{_num(sec.get('shadows'), 0)} | " if any("shadows" in x["seconds"] for x in cells) else ""
        lines.append(f"| {c['cell']} | {base} | {_num(sec.get('target_card'), 0)} | {shadows}"
                     f"{_num(sec.get('evaluate'), 0)} |")
    if missing:
        lines += ["", "Not in the table (no results file with the current settings; run the study): "
                  + ", ".join(missing)]
    lines += ["", *footer] if footer else []
    return "\n".join(lines).rstrip() + "\n"


def _calibrated_table(cells: Sequence[dict]) -> list[str]:
    """The calibrated variant's table (cells with shadow models), else nothing."""
    done = [c for c in cells if c.get("calibrated")]
    if not done:
        return []
    lines = ["", "Calibrated by shadow models (online: each trained like the target on a random half of the split; "
             "each method chosen on dev over calibration × signal × frame count × level; test AUC [95% CI]):", "",
             "| cell | shadows | " + " | ".join(CALIBRATED_METHODS.values()) + " | blind | what dev chose (LiRA or RMIA, "
             "video slice) |", "|---|---:|" + "---|" * (len(CALIBRATED_METHODS) + 2)]
    for c in done:
        cal = c["calibrated"]
        chosen = cal.get("calibrated_video")
        what = (f"`{chosen['calibration']}` over `{chosen['signal']}` @{chosen['n_frames']} ({chosen['n_candidates']})"
                if chosen else "n/a")
        count = next((m["shadows"] for m in cal.values()), None)
        lines.append(f"| {c['cell']} | {count} | " + " | ".join(fmt_metric((cal.get(k) or {}).get("auc"))
                                                             for k in CALIBRATED_METHODS)
                     + f" | {fmt_metric((c.get('blind') or {}).get('auc'))} | {what} |")
    return lines


def _figure(cells: Sequence[dict]):
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    with matplotlib.style.context("default"):
        fig = Figure(figsize=(5.0 * len(PANELS), 4.6))
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(PANELS), sharey=True)
        handles = []
        for i, c in enumerate(cells):
            colour = _COLOURS[i % len(_COLOURS)]
            marker = MARKERS.get(c["factor"], "X")
            for ax, (method, _) in zip(axes, PANELS):
                metric = (_method(c, method) or {}).get("auc")
                gap = c["loss"]["gap"]
                if not metric or metric.get("value") is None or gap is None:
                    continue
                v = metric["value"]
                ax.errorbar([gap], [v], yerr=[[v - metric["ci_low"]], [metric["ci_high"] - v]], fmt=marker,
                            color=colour, markersize=8, capsize=3, linewidth=1)
            handles.append(Line2D([], [], color=colour, marker=marker, linestyle="", markersize=8,
                                  label=f"{c['cell']} ({c['factor']}: {c['level']})"))
        for ax, (_, title) in zip(axes, PANELS):
            ax.axhline(0.5, color="0.5", linestyle=":", linewidth=1)
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("member / non-member loss gap (non-member − member)")
            ax.set_ylim(0.0, 1.03)  # a point at AUC 1 stays whole
            ax.grid(True, alpha=0.3)
        axes[0].set_ylabel("test AUC (95% CI)")
        fig.legend(handles=handles, loc="lower center", ncol=min(4, max(1, len(handles))), fontsize=8,
                   frameon=False)
        rows = (len(handles) + 3) // 4
        fig.subplots_adjust(left=0.06, right=0.99, top=0.92, bottom=0.16 + 0.045 * rows, wspace=0.06)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def write_report(out: Path, cells: Sequence[dict], *, missing: Sequence[str] = (),
                 footer: Sequence[str] = ()) -> dict[str, Path]:
    """Write <out>/table.md and <out>/figure.png (atomically); returns their paths. With no cell
    done, the table says so and no figure is drawn."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    if not cells:
        text = ("<!-- written by `vidsme study video-signal` -->\n\nNo cell has a current results file yet: run "
                "the study.\n")
        write_text_atomic(out / TABLE_FILE, text)
        return {"table": out / TABLE_FILE}
    write_text_atomic(out / TABLE_FILE, render_table(cells, missing=missing, footer=footer))
    written["table"] = out / TABLE_FILE
    write_bytes_atomic(out / FIGURE_FILE, _figure(cells))
    written["figure"] = out / FIGURE_FILE
    return written


__all__ = ["FIGURE_FILE", "MARKERS", "TABLE_FILE", "render_table", "write_report"]
