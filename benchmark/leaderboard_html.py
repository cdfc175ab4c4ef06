"""leaderboard.html: the leaderboard as one self-contained page (inline CSS, a few lines of JS for
sorting, inline SVG ROC thumbnails drawn from the test-partition scores under the results directory)."""
from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vidsme.text_formats import html_text
from vidsme.benchmark.leaderboard_format import (
    CEILING,
    ceiling_note,
    config_text,
    confidence_text,
    entry_of,
    fmt_diff,
    fmt_metric,
    frames_text,
    level_label,
    levels_note,
    main_na_legend,
    metric_label,
    na_legend,
    partition_note,
    selection_note,
    shadows_note,
    target_title,
    video_tied_note,
)
from vidsme.benchmark.results_schema import METRICS
from vidsme.benchmark.verdicts import BLIND_METHOD, NOT_ABOVE_BLIND
from vidsme.direction import Direction
from vidsme.metrics import roc_points

MAX_ROC_POINTS = 64


class _ScoresFiles:
    """Per-sample score CSVs of one results dir, each read at most once."""

    def __init__(self, results_dir: Path) -> None:
        self.root = Path(results_dir).resolve()
        self._tables: dict[str, tuple[list[str], list[list[str]]] | str] = {}

    def _table(self, rel: str) -> tuple[list[str], list[list[str]]] | str:
        if rel not in self._tables:
            path = (self.root / rel).resolve()
            if not path.is_relative_to(self.root):  # results.json must not point us elsewhere
                self._tables[rel] = "scores file is outside the results directory"
            elif not path.is_file():
                self._tables[rel] = f"scores file {rel} not found"
            else:
                with path.open(newline="", encoding="utf-8") as fh:
                    rows = list(csv.reader(fh))
                self._tables[rel] = (rows[0], rows[1:]) if rows else f"scores file {rel} is empty"
        return self._tables[rel]

    def roc(self, entry: dict) -> tuple[np.ndarray, np.ndarray] | str:
        """(fpr, tpr) of the entry's oriented TEST-partition scores, or why there is none."""
        rel, column = entry.get("scores_file"), entry.get("scores_column")
        if not rel or not column:
            return "no scores file recorded"
        table = self._table(rel)
        if isinstance(table, str):
            return table
        header, rows = table
        missing = [c for c in ("label", "partition", column) if c not in header]
        if missing:
            return f"column {missing[0]} not in {rel}"
        li, pi, si = header.index("label"), header.index("partition"), header.index(column)
        try:
            test = [r for r in rows if r[pi] == "test"]
            labels = np.array([int(r[li]) for r in test])
            scores = np.array([float(r[si]) for r in test])
        except (ValueError, IndexError):
            return f"unreadable values in {rel}"
        finite = np.isfinite(scores)
        if np.isnan(scores).any() or not finite.any() or set(labels.tolist()) != {0, 1}:
            return f"test scores in {rel} cannot give a ROC (NaN, no finite score, or one class)"
        # clip +-inf to the finite extremes, as the metrics do
        scores = np.clip(scores, scores[finite].min(), scores[finite].max())
        return roc_points(Direction(entry["direction"]).orient(scores), labels)


def _roc_svg(fpr: np.ndarray, tpr: np.ndarray, label: str) -> str:
    # Points inside a straight run carry no shape: drop them first (lossless, keeps the
    # corners), then thin the rest to evenly spaced indices, both ends kept.
    d_fpr, d_tpr = np.diff(fpr), np.diff(tpr)
    bend = np.abs(d_fpr[:-1] * d_tpr[1:] - d_tpr[:-1] * d_fpr[1:]) > 1e-12
    corners = np.concatenate([[True], bend, [True]])
    fpr, tpr = fpr[corners], tpr[corners]
    if len(fpr) > MAX_ROC_POINTS:
        keep = np.unique(np.round(np.linspace(0, len(fpr) - 1, MAX_ROC_POINTS)).astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    points = " ".join(f"{100 * x:.1f},{100 * (1 - y):.1f}" for x, y in zip(fpr, tpr))
    return (f'<svg class="roc" viewBox="0 0 100 100" width="56" height="56" role="img" '
            f'aria-label="ROC {html_text(label)}"><title>ROC on the test partition (linear axes): '
            f'{html_text(label)}</title><rect width="100" height="100"></rect>'
            f'<line x1="0" y1="100" x2="100" y2="0"></line><polyline points="{points}"></polyline></svg>')


# Sizes matter: the details tables hold every row (~10,000 for the demo), so their cells
# omit the optional </td></tr> end tags and carry no attributes; sorting reads cell text.
_CSS = """body{font:14px/1.35 system-ui,sans-serif;margin:12px 16px;color:#222;max-width:1500px}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin:1.2em 0 .3em}h3{font-size:1em;margin:.6em 0 .2em}p,ul{margin:.35em 0}
.meta{color:#555;font-size:.85em;overflow-wrap:anywhere}
table{border-collapse:collapse;font-size:.88em}th,td{border:1px solid #ccc;padding:2px 5px;text-align:left}
th{background:#eee;font-weight:600}td{white-space:nowrap}
table.main th{text-align:center}table.main th.m{text-align:left}table.main td.b{text-align:center}
table.main th.t{white-space:normal;max-width:15em;overflow-wrap:anywhere}
small{display:block;font-size:.78em;color:#555}tr.blind{background:#fff4d6}
.nb{display:inline-block;font-size:.72em;background:#b3261e;color:#fff;border-radius:3px;padding:0 3px}.ceil{display:inline-block;font-size:.72em;background:#1b6e3a;color:#fff;border-radius:3px;padding:0 3px}.sub{font-size:.72em;color:#1f5fbf}
.legend{font-size:.85em;color:#444}.legend li{overflow-wrap:anywhere}
.scroll{overflow-x:auto;max-width:100%}
table.sortable th{cursor:pointer;user-select:none}th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
table.d tr.s{font-weight:600;background:#eef4ff}details{margin:.5em 0}summary{cursor:pointer;font-weight:600}
svg.roc rect{fill:#fff;stroke:#999}svg.roc line{stroke:#bbb;stroke-dasharray:4}
svg.roc polyline{fill:none;stroke:#1f5fbf;stroke-width:3}.note{color:#777;font-size:.8em;white-space:normal}
nav a{margin-right:1em}p.board{background:#fff4d6;padding:4px 8px;border-left:4px solid #e0a000}"""

# Click a header to sort by its column's cell text; class "n" headers sort numerically
# (parseFloat), with non-numbers ("n/a", "—") last in either direction.
_JS = """document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0], i = th.cellIndex, num = th.classList.contains("n");
    var asc = th.getAttribute("aria-sort") !== "ascending";
    th.parentNode.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var rows = Array.prototype.map.call(body.rows, function (r) {
      var t = r.cells[i] ? r.cells[i].textContent : "";
      return {r: r, t: t, v: num ? parseFloat(t) : NaN};
    });
    rows.sort(function (a, b) {
      if (num && isNaN(a.v) !== isNaN(b.v)) return isNaN(a.v) ? 1 : -1;
      var c = num && !isNaN(a.v) ? a.v - b.v : a.t.localeCompare(b.t);
      return asc ? c : -c;
    });
    rows.forEach(function (x) { body.appendChild(x.r); });
  });
});"""


def _h(value: object) -> str:
    return html_text(value)  # one line, entities: a name cannot close a tag or an attribute


def _cell2(metric: dict | None, fmt_value: str, fmt_ci: str) -> str:
    """Value on one line, its CI in a smaller second line (keeps the main table narrow)."""
    if not metric or metric.get("value") is None:
        return "n/a"
    return (f"{metric['value']:{fmt_value}}<small>[{metric['ci_low']:{fmt_ci}}, "
            f"{metric['ci_high']:{fmt_ci}}]</small>")


def _vs_blind_cell(e: dict) -> str:
    """The difference to the blind baseline, the flag as a badge after it, the CI below."""
    if e["blind"]:
        return f"reference: {e['slice']}"
    vs = _cell2(e.get("vs_blind"), "+.3f", "+.2f").replace("n/a", "—")
    if e.get("flag"):
        badge = f' <span class="nb">{_h(e["flag"])}</span>'
        vs = vs.replace("<small>", badge + "<small>", 1) if "<small>" in vs else vs + badge
    return vs


def _rank_cell(e: dict) -> str:
    """The rank interval, with the ceiling badge on the target's dev-chosen strongest method."""
    return _h(e["rank_band"]) + (f' <span class="ceil">{CEILING}</span>' if e.get("ceiling") else "")


def _legend(lines: Sequence[str], extra: Sequence[str] = ()) -> str:
    items = [*extra, *(f"n/a — {x}" for x in lines)]
    return '<ul class="legend">' + "".join(f"<li>{x}</li>" for x in items) + "</ul>" if items else ""


def _html_main(board: dict) -> list[str]:
    conf = confidence_text(board)
    head1, head2 = ['<th class="m" rowspan="2">method</th>'], []
    for i, t in enumerate(board["targets"]):
        info = t["target"]
        head1.append(f'<th class="t" colspan="3"><a href="#target-{i}">{_h(t["name"])}</a>'
                     f'<small>{_h(info.get("task"))} × {_h(info.get("strategy") or "n/a")}</small></th>')
        head2 += [f'<th>{_h(metric_label(t["primary_metric"]))}<small>[{conf} CI]</small></th>', "<th>rank</th>",
                  "<th>vs blind<small>[CI]</small></th>"]
    body = []
    for method in board["methods"]:
        blind = method == BLIND_METHOD
        submitted = any((entry_of(t, method) or {}).get("submitted") for t in board["targets"])
        name = _h(method) + (' <span class="sub">submitted</span>' if submitted else "")
        cells = [f'<th class="m">{name}</th>']
        for t in board["targets"]:
            e = entry_of(t, method)
            if e is None:
                cells.append('<td class="b">—</td>' * 3)
                continue
            title = _h(f"{config_text(e)}; chosen on dev among {e['n_candidates']}")
            cells += [f'<td title="{title}">{_cell2(e[t["primary_metric"]], ".3f", ".2f")}</td>',
                      f'<td class="b">{_rank_cell(e)}</td>', f"<td>{_vs_blind_cell(e)}</td>"]
        body.append(f'<tr{" class=blind" if blind else ""}>' + "".join(cells) + "</tr>")
    notes = [
        f'<span class="nb">{_h(NOT_ABOVE_BLIND)}</span>: the {conf} CI of the paired difference to the split\'s blind '
        "(model-free) baseline does not lie above 0 — no membership signal beyond what metadata gives away.",
        "rank: the ranks the test data allows (\u201c1–3\u201d): from 1 + the entries significantly above (paired "
        "bootstrap, against every other entry) to n \u2212 the entries significantly below; an entry significantly "
        "above another never shares its interval. Hover a value for the configuration chosen on dev.",
        f'<span class="ceil">{CEILING}</span>: the target\'s strongest method, chosen on the dev partition (highest dev '
        "selection metric); its test number is reported like every other. Where a target has shadow models it is "
        "usually a calibrated attack (lira, rmia).",
        *(f"{_h(t['name'])} is ranked by {_h(metric_label(t['primary_metric']))}: {_h(t['why'])}" for t in board["targets"]),
    ]
    return ['<h2 id="main">Main view</h2>',
            f"<p>One row per method; per target its dev-selected configuration measured on the test partition: "
            f"the ranking metric with its {conf} CI, the rank interval, and the paired difference to the blind baseline "
            "with its CI.</p>",
            '<table class="main"><thead><tr>' + "".join(head1) + "</tr><tr>" + "".join(head2) + "</tr></thead><tbody>",
            *body, "</tbody></table>", _legend([_h(x) for x in main_na_legend(board)], notes)]


def _html_target(i: int, t: dict, conf: str, scores: _ScoresFiles) -> list[str]:
    primary, selection = t["primary_metric"], t.get("selection_metric") or "auc"
    out = [f'<section id="target-{i}">', f"<h2>{_h(target_title(t))}</h2>",
           f"<p>Ranked by <b>{_h(metric_label(primary))}</b>: {_h(t['why'])}.<br>{_h(selection_note(t))}.<br>"
           f"{_h(partition_note(t))}; "
           f"{_h(levels_note(t))}.</p>"]
    if not t["has_blind_baseline"]:
        out.append('<p class="note">no blind baseline in results.json for this target: no entry can be compared '
                   "with it</p>")
    out += [f"<p>{_h(note)}.</p>" for note in (video_tied_note(t), ceiling_note(t), shadows_note(t)) if note]
    heads = [("rank", True), ("method", False), ("attack", False), ("slice", False), ("frames", True),
             ("level", False), ("cand.", True), (f"dev {metric_label(selection)}", True),
             *((f"test {metric_label(m)}".replace("%FPR", "% FPR"), True) for m in METRICS), ("vs blind", True),
             ("ROC (test)", False)]
    out.append('<div class="scroll"><table class="sortable"><thead><tr>'
               + "".join(f'<th{" class=n" if n else ""}>{_h(h)}</th>' for h, n in heads) + "</tr></thead><tbody>")
    for e in t["entries"]:
        roc = scores.roc(e)
        label = f"{e['method']}: {config_text(e)}"
        thumb = _roc_svg(*roc, label) if not isinstance(roc, str) else f'<span class="note">{_h(roc)}</span>'
        vs = _vs_blind_cell(e)
        method = _h(e["method"]) + (' <span class="sub">submitted</span>' if e.get("submitted") else "")
        cells = [_rank_cell(e), method, _h(e["attack"]), _h(e["slice"]), frames_text(e["n_frames"]),
                 _h(level_label(e["level"])), str(e["n_candidates"]), _cell2(e["dev"].get(selection), ".3f", ".2f"),
                 *(_cell2(e.get(m), ".3f", ".2f") for m in METRICS), vs, thumb]
        out.append(f'<tr{" class=blind" if e["blind"] else ""}>' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table></div>")
    pairs = [f"{_h(a.get('higher'))} − {_h(a.get('lower'))}: {_h(fmt_diff(a.get('difference')))} "
             f"({'distinguishable' if a.get('distinguishable') else 'not distinguishable'})" for a in t["adjacent"]]
    extra = [f"neighbours, paired {conf} CI of the {_h(metric_label(primary))} difference: " + "; ".join(pairs)] if pairs \
        else []
    out.append(_legend([_h(x) for x in na_legend(t["entries"])], extra))
    if t["skipped"]:
        out.append(f"<details><summary>{len(t['skipped'])} skipped (attack, slice, frame count)</summary><ul>"
                   + "".join(f"<li>{_h(s.get('attack'))} ({_h(s.get('slice'))}, frames {_h(s.get('n_frames'))}): "
                             f"{_h(s.get('reason'))}</li>" for s in t["skipped"]) + "</ul></details>")
    out += _html_details(t)
    out.append("</section>")
    return out


def _html_details(t: dict) -> list[str]:
    # One table per partition: no partition (nor method) cell on ~10,000 rows keeps the page small,
    # and numbers are only ever compared within one partition.
    heads = [("attack", False), ("slice", False), ("frames", True), ("level", False),
             *((metric_label(m), True) for m in METRICS)]
    thead = "".join(f'<th{" class=n" if n else ""}>{_h(h)}</th>' for h, n in heads)
    notes = ["every variant, slice, frame count and level; bold: a method's dev-selected configuration (its dev "
             "row, where it was chosen, and its test row, the one reported); click a header to sort; the method "
             "of each attack is in leaderboard.json and leaderboard.md",
             _h(levels_note(t))]
    out = [f"<details><summary>Details: all {len(t['details'])} rows of {_h(t['name'])} (test and dev partitions)"
           "</summary>", _legend([_h(x) for x in na_legend(t["details"])], notes)]
    for part, role in (("test", "where the numbers are reported"), ("dev", "where configurations are chosen")):
        rows = []
        for d in t["details"]:
            if d["partition"] != part:
                continue
            cells = [d["attack"], d["slice"], frames_text(d["n_frames"]), level_label(d["level"]),
                     *(fmt_metric(d[m]) for m in METRICS)]
            rows.append(("<tr class=s>" if d["selected"] else "<tr>") + "".join(f"<td>{_h(c)}" for c in cells))
        out += [f"<h3>{part} partition ({role}): {len(rows)} rows</h3>",
                f'<div class="scroll"><table class="d sortable"><thead><tr>{thead}</tr></thead><tbody>',
                *rows, "</tbody></table></div>"]
    out.append("</details>")
    return out


def render_html(board: dict, results_dir: Path) -> str:
    """leaderboard.html: a self-contained page — the main table (fits a 1,366-px window), per
    target the chosen configurations with ROC thumbnails, and every row in a collapsed details
    table.

    ROC thumbnails are computed from the test-partition rows of the per-sample score CSVs
    under `results_dir`; an entry whose scores cannot be read gets a note saying why.
    """
    prov, conf, scores = board["provenance"], confidence_text(board), _ScoresFiles(results_dir)
    name = _h(board["suite"]["name"])
    facts = [("created", prov.get("created")), ("vidsme", prov.get("vidsme")), ("git commit", prov.get("git_commit")),
             ("command", prov.get("command")), ("suite config sha256", board["suite"]["config_hash"]),
             ("results.json sha256", board["source"]["sha256"])]
    out = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>vidsme leaderboard: {name}</title>", f"<style>\n{_CSS}\n</style>", "</head>", "<body>",
        f"<h1>vidsme leaderboard: suite {name}</h1>",
        '<p class="meta">' + " · ".join(f"{_h(k)}: {_h(v)}" for k, v in facts) + "</p>",
        f'<p class="board"><b>{_h(board["board"]["kind"])}.</b> {_h(board["board"]["note"])}</p>',
        '<nav><a href="#main">main view</a><a href="#protocol">protocol</a>'
        + "".join(f'<a href="#target-{i}">{_h(t["name"])}</a>' for i, t in enumerate(board["targets"])) + "</nav>",
        *_html_main(board),
        f'<p id="protocol"><b>Protocol.</b> {_h(board["protocol"])}</p>',
        f"<p><b>Ranking.</b> {_h(board['ranking'])}</p>",
    ]
    for i, t in enumerate(board["targets"]):
        out += _html_target(i, t, conf, scores)
    out += [f"<script>\n{_JS}\n</script>", "</body>", "</html>", ""]
    return "\n".join(out)
