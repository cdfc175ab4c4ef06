"""The leaderboard: results.json -> leaderboard.json, leaderboard.md, leaderboard.html.

RANKING (one ranked list per target; also written into every leaderboard.json):
  1. TPR@1%FPR point value, descending — the headline metric: membership inference
     matters at low false-positive rates, where AUC says little;
  2. AUC point value, descending;
  3. then attack name, slice, level, n_frames (ascending; the blind baseline's null
     n_frames last) and kind, so that ties always come out in the same order.
Ranks are positions 1..n in that order. The target's blind (model-free) baseline rows are
ranked like any other row and always kept and flagged: an attack that does not beat them
shows no membership leakage beyond what metadata already gives away.

Outputs are byte-deterministic for the same results directory (sorted keys, fixed float
formatting, no clock reads: the only timestamps are those in results.json) and written
atomically (temp file + os.replace). The HTML is self-contained: inline CSS, a few lines
of inline JS for sorting, and per-row ROC thumbnails as inline SVG drawn from the
per-sample scores CSVs; nothing is fetched from anywhere.
"""
from __future__ import annotations

import csv
import hashlib
import html
import json
import math
from pathlib import Path

import numpy as np

from vidsme.attack.direction import Direction
from vidsme.atomic import write_text_atomic
from vidsme.attack.metrics import roc_points
from vidsme.errors import VidsmeError

SCHEMA_VERSION = 1
LEADERBOARD_VERSION = 1
RESULTS_FILE = "results.json"
KINDS = ("reproduced", "scores_file", "blind")
LEVELS = ("row", "video")
METRICS = ("auc", "balanced_accuracy", "tpr@0.1%fpr", "tpr@1%fpr", "tpr@5%fpr")
METRIC_LABELS = ("AUC", "bal. acc.", "TPR@0.1%FPR", "TPR@1%FPR", "TPR@5%FPR")
RANKING = (
    "Per target: TPR@1%FPR (value) descending, then AUC (value) descending, then attack name, "
    "slice, level, n_frames (ascending; null last) and kind. Ranks are positions 1..n. "
    "Blind-baseline rows (kind 'blind') are always listed and flagged."
)
MAX_ROC_POINTS = 64
_FIX = "fix or regenerate it with `vidsme benchmark SUITE`"


# ----------------------------------------------------------------------------- loading
def _bad(path: Path, where: str, problem: str) -> VidsmeError:
    return VidsmeError(f"{path}: {where}: {problem}; {_FIX}")


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_row(path: Path, i: int, row: object, targets: set[str]) -> None:
    if not isinstance(row, dict):
        raise _bad(path, f"rows[{i}]", "must be an object")
    where = f"rows[{i}] (target {row.get('target')!r}, attack {row.get('attack')!r})"
    for key in ("target", "attack", "slice"):
        if not isinstance(row.get(key), str) or not row[key]:
            raise _bad(path, where, f"{key!r} must be a non-empty string")
    if row["target"] not in targets:
        raise _bad(path, where, f"target {row['target']!r} is not in 'targets' ({', '.join(sorted(targets))})")
    checks = {
        "kind": (row.get("kind") in KINDS, f"must be one of {', '.join(KINDS)}"),
        "level": (row.get("level") in LEVELS, f"must be one of {', '.join(LEVELS)}"),
        "direction": (row.get("direction") in ("higher", "lower"), "must be 'higher' or 'lower'"),
        "n_frames": (row.get("n_frames") is None or (isinstance(row["n_frames"], int)
                     and not isinstance(row["n_frames"], bool)), "must be an integer or null"),
    }
    for key, (ok, problem) in checks.items():
        if not ok:
            raise _bad(path, where, f"{key!r} {problem} (got {row.get(key)!r})")
    for key in METRICS:
        metric = row.get(key)
        if not isinstance(metric, dict) or not all(_is_number(metric.get(k)) for k in ("value", "ci_low", "ci_high")):
            raise _bad(path, where, f"{key!r} must be {{'value', 'ci_low', 'ci_high'}} with finite numbers "
                                    f"(got {metric!r})")
    for key in ("scores_file", "scores_column"):
        if row.get(key) is not None and not isinstance(row[key], str):
            raise _bad(path, where, f"{key!r} must be a string or null")
    if not isinstance(row.get("provenance", {}), dict):
        raise _bad(path, where, "'provenance' must be an object")


def _rank_key(row: dict) -> tuple:
    n_frames = row["n_frames"]
    return (-row["tpr@1%fpr"]["value"], -row["auc"]["value"], row["attack"], row["slice"], row["level"],
            n_frames is None, n_frames or 0, row["kind"])


def load_results(results_dir: Path) -> dict:
    """Read and validate `<results_dir>/results.json` (schema_version 1).

    Raises VidsmeError naming the file, the offending entry and the problem if the file is
    missing, not JSON, of another schema version, or lacks a field the leaderboard needs.
    """
    path = Path(results_dir) / RESULTS_FILE
    if not path.is_file():
        raise VidsmeError(f"{path}: no results file; run `vidsme benchmark SUITE` to write one, "
                          "or pass the directory that holds results.json")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise VidsmeError(f"{path}: not valid JSON ({err}); {_FIX}") from None
    if not isinstance(results, dict):
        raise _bad(path, "top level", "must be a JSON object")
    version = results.get("schema_version")
    if version != SCHEMA_VERSION:
        raise _bad(path, "schema_version", f"this vidsme reads version {SCHEMA_VERSION}, got {version!r}")
    for key, kind in (("suite", dict), ("provenance", dict), ("targets", list), ("rows", list)):
        if not isinstance(results.get(key), kind):
            raise _bad(path, repr(key), f"missing or not a JSON {'object' if kind is dict else 'list'}")
    if not isinstance(results.get("skipped", []), list):
        raise _bad(path, "'skipped'", "must be a list")
    names: set[str] = set()
    for i, target in enumerate(results["targets"]):
        if not isinstance(target, dict) or not isinstance(target.get("name"), str) or not target["name"]:
            raise _bad(path, f"targets[{i}]", "must be an object with a non-empty string 'name'")
        if target["name"] in names:
            raise _bad(path, f"targets[{i}]", f"duplicate target name {target['name']!r}")
        names.add(target["name"])
    seen: set[tuple] = set()
    for i, row in enumerate(results["rows"]):
        _check_row(path, i, row, names)
        ident = (row["target"], *_rank_key(row)[2:])
        if ident in seen:  # the ranking would otherwise depend on the input order
            raise _bad(path, f"rows[{i}]", f"duplicate row for {ident}")
        seen.add(ident)
    return results


# ----------------------------------------------------------------------------- building
def build_leaderboard(results: dict, *, results_sha256: str | None = None) -> dict:
    """The leaderboard.json content for validated `results` (see `load_results`).

    Per target (in suite order): the target record, its rows ranked by RANKING (blind
    baseline rows included and flagged with "blind": true), and its skipped attacks.
    `results_sha256` (of the results.json bytes) is recorded as the source when given.
    """
    targets = []
    for target in results["targets"]:
        name = target["name"]
        rows = sorted((r for r in results["rows"] if r["target"] == name), key=_rank_key)
        entries = [_entry(rank, row, target) for rank, row in enumerate(rows, start=1)]
        targets.append({
            "name": name,
            "target": target,
            "entries": entries,
            "has_blind_baseline": any(e["blind"] for e in entries),
            "skipped": [s for s in results.get("skipped", []) if isinstance(s, dict) and s.get("target") == name],
        })
    suite = results["suite"]
    return {
        "leaderboard_version": LEADERBOARD_VERSION,
        "ranking": RANKING,
        "source": {"file": RESULTS_FILE, "schema_version": results["schema_version"], "sha256": results_sha256},
        "suite": {"name": suite.get("name"), "config_hash": suite.get("config_hash")},
        "provenance": results["provenance"],
        "targets": targets,
    }


def _entry(rank: int, row: dict, target: dict) -> dict:
    task, strategy = target.get("task"), target.get("strategy")
    entry = {
        "rank": rank,
        "attack": row["attack"],
        "family": row.get("family"),
        "attack_version": row.get("attack_version"),
        "kind": row["kind"],
        "blind": row["kind"] == "blind",
        "slice": row["slice"],
        "level": row["level"],
        "n_frames": row["n_frames"],
        "target": row["target"],
        "task": task,
        "strategy": strategy,
        "dataset": f"{task} × {strategy or 'n/a'}",
        "split": (target.get("split") or {}).get("name"),
        "direction": row["direction"],
        "n_members": row.get("n_members"),
        "n_nonmembers": row.get("n_nonmembers"),
        "scores_file": row.get("scores_file"),
        "scores_column": row.get("scores_column"),
        "provenance": row.get("provenance", {}),
    }
    entry.update({key: {k: row[key][k] for k in ("value", "ci_low", "ci_high")} for key in METRICS})
    return entry


# ----------------------------------------------------------------------------- formatting
def _cell(metric: dict) -> str:
    return f"{metric['value']:.3f} [{metric['ci_low']:.2f}, {metric['ci_high']:.2f}]"


def _frames(entry: dict) -> str:
    return "—" if entry["n_frames"] is None else str(entry["n_frames"])


def _md_text(value: object) -> str:
    # a "|" or a newline from a name would break the table; "<", "&" would become markup
    text = html.escape(str(value), quote=False).replace("\\", "\\\\")
    return text.replace("|", "\\|").replace("\n", " ")


def _target_title(t: dict) -> str:
    info = t["target"]
    split = info.get("split") or {}
    return (f"{t['name']} — {info.get('task')} × {info.get('strategy') or 'n/a'} "
            f"(split {split.get('name')} v{split.get('version')})")


def render_markdown(board: dict) -> str:
    """leaderboard.md: provenance, the ranking rule, one section with one table per target."""
    prov = board["provenance"]
    lines = [
        f"# vidsme leaderboard — suite {_md_text(board['suite']['name'])}",
        "",
        f"- created: {_md_text(prov.get('created'))}; vidsme {_md_text(prov.get('vidsme'))}; "
        f"git commit {_md_text(prov.get('git_commit'))}",
        f"- command: {_md_text(prov.get('command'))}",
        f"- suite config sha256: {_md_text(board['suite']['config_hash'])}; "
        f"results.json sha256: {_md_text(board['source']['sha256'])}",
        f"- ranking: {board['ranking']}",
        "- **[blind]** marks the split's model-free baseline: an attack below it shows no leakage.",
        "",
    ]
    header = ["#", "attack", "kind", "slice", "level", "frames", *METRIC_LABELS]
    for t in board["targets"]:
        lines += [f"## {_md_text(_target_title(t))}", ""]
        if not t["has_blind_baseline"]:
            lines += ["> no blind baseline row in results.json for this target", ""]
        if t["entries"]:
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for e in t["entries"]:
            attack = ("**[blind]** " if e["blind"] else "") + _md_text(e["attack"])
            cells = [str(e["rank"]), attack, e["kind"], _md_text(e["slice"]), e["level"], _frames(e)]
            lines.append("| " + " | ".join(cells + [_cell(e[m]) for m in METRICS]) + " |")
        if not t["entries"]:
            lines.append("_no rows_")
        lines.append("")
        for s in t["skipped"]:
            lines.append(f"- skipped {_md_text(s.get('attack'))} ({_md_text(s.get('slice'))}, "
                         f"frames {_md_text(s.get('n_frames'))}): {_md_text(s.get('reason'))}")
        if t["skipped"]:
            lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- ROC thumbnails
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
        """(fpr, tpr) of the entry's oriented scores, or why there is none."""
        rel, column = entry["scores_file"], entry["scores_column"]
        if not rel or not column:
            return "no scores file recorded"
        table = self._table(rel)
        if isinstance(table, str):
            return table
        header, rows = table
        missing = [c for c in ("label", column) if c not in header]
        if missing:
            return f"column {missing[0]} not in {rel}"
        li, si = header.index("label"), header.index(column)
        try:
            labels = np.array([int(r[li]) for r in rows])
            scores = np.array([float(r[si]) for r in rows])
        except (ValueError, IndexError):
            return f"unreadable values in {rel}"
        finite = np.isfinite(scores)
        if np.isnan(scores).any() or not finite.any() or set(labels.tolist()) != {0, 1}:
            return f"scores in {rel} cannot give a ROC (NaN, no finite score, or one class)"
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
    return (f'<svg class="roc" viewBox="0 0 100 100" width="64" height="64" role="img" '
            f'aria-label="ROC {html.escape(label)}"><title>ROC (linear axes): {html.escape(label)}</title>'
            '<rect x="0" y="0" width="100" height="100"></rect><line x1="0" y1="100" x2="100" y2="0"></line>'
            f'<polyline points="{points}"></polyline></svg>')


# ----------------------------------------------------------------------------- HTML
_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:0.9em}th,td{border:1px solid #ccc;padding:0.25em 0.5em;text-align:left;white-space:nowrap}
th{background:#eee;cursor:pointer;user-select:none}th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}tr.blind{background:#fff4d6}
.badge{background:#b36b00;color:#fff;border-radius:3px;padding:0 0.3em;font-size:0.8em;margin-right:0.3em}
svg.roc rect{fill:#fff;stroke:#999}svg.roc line{stroke:#bbb;stroke-dasharray:4}
svg.roc polyline{fill:none;stroke:#1f5fbf;stroke-width:3}.note{color:#777;font-size:0.8em;white-space:normal;display:inline-block;max-width:14em}
nav a{margin-right:1em}dl{display:grid;grid-template-columns:max-content auto;gap:0 1em}dd{margin:0}"""

# Click a header to sort by its column; cells carry their sort value in data-v.
_JS = """document.querySelectorAll("table.lb th").forEach(function (th) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0], i = th.cellIndex;
    var asc = th.getAttribute("aria-sort") !== "ascending";
    th.parentNode.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[i].getAttribute("data-v"), y = b.cells[i].getAttribute("data-v");
      var c = th.getAttribute("data-num") ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});"""


def _td(text: str, sort_value: object, raw: bool = False) -> str:
    return f'<td data-v="{html.escape(str(sort_value))}">{text if raw else html.escape(text)}</td>'


def _html_row(e: dict, scores: _ScoresFiles) -> str:
    badge = '<span class="badge">blind baseline</span>' if e["blind"] else ""
    roc = scores.roc(e)
    label = f"{e['attack']} {e['slice']} {e['level']} frames {_frames(e)}"
    thumb = _roc_svg(*roc, label) if not isinstance(roc, str) else f'<span class="note">no thumbnail: {html.escape(roc)}</span>'
    cells = [
        _td(str(e["rank"]), e["rank"]),
        _td(badge + html.escape(e["attack"]), e["attack"], raw=True),
        _td(e["kind"], e["kind"]),
        _td(e["slice"], e["slice"]),
        _td(e["level"], e["level"]),
        _td(_frames(e), -1 if e["n_frames"] is None else e["n_frames"]),
        *[_td(_cell(e[m]), repr(float(e[m]["value"]))) for m in METRICS],
        _td(thumb, "", raw=True),
    ]
    cls = ' class="blind"' if e["blind"] else ""
    return f"<tr{cls}>" + "".join(cells) + "</tr>"


def render_html(board: dict, results_dir: Path) -> str:
    """leaderboard.html: self-contained page, one section (sortable table) per target.

    ROC thumbnails are computed from the per-sample score CSVs under `results_dir`; a row
    whose scores cannot be read gets a note saying why instead of a thumbnail.
    """
    esc, prov, scores = html.escape, board["provenance"], _ScoresFiles(results_dir)
    heads = ["#", "attack", "kind", "slice", "level", "frames", *METRIC_LABELS, "ROC"]
    numeric = [True, False, False, False, False, True] + [True] * len(METRICS) + [False]
    thead = "".join(f'<th{" data-num=1" if n else ""}>{esc(h)}</th>' for h, n in zip(heads, numeric))
    facts = [("created", prov.get("created")), ("command", prov.get("command")), ("vidsme", prov.get("vidsme")),
             ("git commit", prov.get("git_commit")), ("suite config sha256", board["suite"]["config_hash"]),
             ("results.json sha256", board["source"]["sha256"]), ("ranking", board["ranking"])]
    out = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>vidsme leaderboard: {esc(str(board['suite']['name']))}</title>",
        f"<style>\n{_CSS}\n</style>", "</head>", "<body>",
        f"<h1>vidsme leaderboard: suite {esc(str(board['suite']['name']))}</h1>",
        "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(str(v))}</dd>" for k, v in facts) + "</dl>",
        "<p>Rows marked <span class=\"badge\">blind baseline</span> are the split's model-free baseline: "
        "an attack below them shows no membership leakage. Click a column header to sort.</p>",
        "<nav>" + "".join(f'<a href="#target-{i}">{esc(t["name"])}</a>' for i, t in enumerate(board["targets"]))
        + "</nav>",
    ]
    for i, t in enumerate(board["targets"]):
        out.append(f'<section id="target-{i}" class="target">')
        out.append(f"<h2>{esc(_target_title(t))}</h2>")
        if not t["has_blind_baseline"]:
            out.append('<p class="note">no blind baseline row in results.json for this target</p>')
        out.append(f'<table class="lb"><thead><tr>{thead}</tr></thead><tbody>')
        out += [_html_row(e, scores) for e in t["entries"]]
        out.append("</tbody></table>")
        if t["skipped"]:
            out.append("<ul>" + "".join(
                f"<li>skipped {esc(str(s.get('attack')))} ({esc(str(s.get('slice')))}, frames "
                f"{esc(str(s.get('n_frames')))}): {esc(str(s.get('reason')))}</li>" for s in t["skipped"]) + "</ul>")
        out.append("</section>")
    out += [f"<script>\n{_JS}\n</script>", "</body>", "</html>", ""]
    return "\n".join(out)


# ----------------------------------------------------------------------------- writing
def write_leaderboard(results_dir: Path, out_dir: Path | None = None) -> dict[str, Path]:
    """Write leaderboard.json, .md and .html for `results_dir` into `out_dir` (default: results_dir).

    Returns {"json": path, "md": path, "html": path}. Same input gives byte-identical files.
    """
    results_dir = Path(results_dir)
    out_dir = results_dir if out_dir is None else Path(out_dir)
    results = load_results(results_dir)
    sha = hashlib.sha256((results_dir / RESULTS_FILE).read_bytes()).hexdigest()
    board = build_leaderboard(results, results_sha256=sha)
    texts = {
        "json": json.dumps(board, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n",
        "md": render_markdown(board),
        "html": render_html(board, results_dir),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for ext, text in texts.items():
        paths[ext] = out_dir / f"leaderboard.{ext}"
        write_text_atomic(paths[ext], text)
    return paths


def run_leaderboard_command(results_dir: Path, out_dir: Path | None = None) -> int:
    """`vidsme leaderboard RESULTS_DIR`: write the three files and print where. Returns 0.

    VidsmeError (bad or missing results.json) propagates for the CLI to report.
    """
    for ext, path in write_leaderboard(results_dir, out_dir).items():
        print(f"leaderboard.{ext}: {path}")
    return 0
