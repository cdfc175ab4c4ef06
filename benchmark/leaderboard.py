"""The leaderboard: results.json (schema_version 2) -> leaderboard.json, leaderboard.md, leaderboard.html.

What is ranked is results.json's `verdicts` (benchmark/verdicts.py): per target one entry per
METHOD (an attack family, a submitted family or scores file, and the blind baseline), whose
configuration (variant, slice, frame count, level) was chosen on the dev partition and whose
numbers come from the test partition. The leaderboard only presents them; this module builds
the board (leaderboard.json) and writes the three files, results_schema.py validates the input,
leaderboard_markdown.py and leaderboard_html.py render the pages (leaderboard_format.py: how
both write numbers and notes):

  MAIN VIEW   one row per method, one column group per target: the primary metric's test
              value with its CI, the rank interval, and the paired difference to the blind
              baseline with its CI (flagged "not above blind" where the CI does not lie above
              0). Rows are ordered by each method's best rank over the targets, then name;
              the blind baseline is the last row.
  PER TARGET  the ranking metric and why, each method's chosen configuration (with a ROC
              thumbnail drawn from its TEST-partition scores), neighbour differences, skips.
  DETAILS     every results.json row of the target (every variant, slice, frame count,
              level, dev and test): a collapsed, sortable table in the HTML, a section of
              its own in the markdown, `details` in the JSON.

A metric the sample cannot resolve (a TPR at a low FPR on few non-members) is null in the
JSON and "n/a" in the tables, with the reason once per table in a legend. A split with one
QA row per video has level "row=video": its row and video levels are the same numbers,
shown once with both labels ("row = video").

Outputs are byte-deterministic for the same results directory (sorted keys, fixed float
formatting, no clock reads: the only timestamps are results.json's) and written atomically.
The HTML is self-contained: inline CSS, a few lines of inline JS for sorting, inline SVG.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from vidsme.atomic import write_text_atomic
from vidsme.benchmark.leaderboard_html import render_html
from vidsme.benchmark.leaderboard_markdown import render_markdown
from vidsme.benchmark.results_schema import METRICS, RESULTS_FILE, load_results
from vidsme.benchmark.verdicts import BLIND_METHOD, method_of
from vidsme.provenance import sha256_file

LEADERBOARD_VERSION = 2
HONOUR_BOARD = ("An honour board: these splits' labels are public (anyone can rebuild them), so a submission can "
                "memorise them and rank first; the sandbox cannot stop that. Ranks here are unverified; the verified "
                "ranking is a sealed challenge's, whose labels stay secret until its reveal (docs/CHALLENGE.md).")
SEALED_BOARD = ("A sealed challenge's final ranks: every entry was fixed on the public dev partition and scored once on "
                "rows whose labels were secret until the reveal (docs/CHALLENGE.md).")
RANKING = (
    "Per target, one entry per method (attack family, submitted family or scores file, and the blind baseline): "
    "its configuration (variant, slice, frame count, level) is the one with the best selection metric on the DEV "
    "partition; its numbers are from the TEST partition. Entries are ordered by the primary metric's test value "
    "(descending; ties by method name). Each entry's rank interval comes from paired bootstraps over test videos "
    "against every other entry: from 1 + the number of entries significantly above it to n - the number "
    "significantly below it, so an entry significantly above another never shares its interval. The main view "
    "lists methods by their best rank over the "
    "targets, then name; the blind baseline last."
)


def _frames_key(n_frames: int | None) -> tuple:
    return (n_frames is None, n_frames or 0)


def _detail(row: dict, attacks: dict, chosen: set[tuple]) -> dict:
    ident = (row["attack"], row["slice"], row["level"], row["n_frames"], row["kind"])
    out = {key: row.get(key) for key in ("attack", "family", "kind", "slice", "level", "n_frames", "partition",
                                         "direction", "n_members", "n_nonmembers", "scores_file", "scores_column")}
    out.update({key: row[key] for key in METRICS})
    out["method"] = method_of(row, attacks)
    out["selected"] = ident in chosen  # the method's dev-selected configuration (its dev and its test row)
    return out


def _detail_key(d: dict) -> tuple:
    return (d["method"] == BLIND_METHOD, d["method"], d["attack"], d["slice"], *_frames_key(d["n_frames"]),
            d["level"], d["partition"], d["kind"])


def main_view_order(targets: Sequence[dict]) -> list[str]:
    """The main view's method order: best rank position over the targets, then the sum of
    positions, then name; the blind baseline last."""
    ranks: dict[str, list[int]] = {}
    for t in targets:
        for e in t["entries"]:
            ranks.setdefault(e["method"], []).append(e["rank"])
    return sorted(ranks, key=lambda m: (m == BLIND_METHOD, min(ranks[m]), sum(ranks[m]), m))


def build_leaderboard(results: dict, *, results_sha256: str | None = None) -> dict:
    """The leaderboard.json content for validated `results` (see `load_results`).

    Per target (in suite order): the target record, the ranking metric and why, the verdict
    entries (one per method, test numbers, rank interval, distance to the blind baseline), the
    neighbour differences, the skipped attacks and `details` (every results row of the
    target, dev and test). `methods` is the main view's row order. `results_sha256` (of the
    results.json bytes) is recorded as the source when given.
    """
    verdicts = results["verdicts"]
    by_target = {v["target"]: v for v in verdicts["targets"]}
    attacks = results.get("attacks") or {}
    targets = []
    for target in results["targets"]:
        name = target["name"]
        verdict = by_target[name]
        chosen = {(e["attack"], e["slice"], e["level"], e["n_frames"], e["kind"]) for e in verdict["entries"]}
        details = sorted((_detail(r, attacks, chosen) for r in results["rows"] if r["target"] == name),
                         key=_detail_key)
        targets.append({
            "name": name,
            "target": target,
            "primary_metric": verdict["primary_metric"],
            "declared_metric": verdict.get("declared_metric"),
            "why": verdict["why"],
            "selection_metric": verdict.get("selection_metric"),
            "selection_why": verdict.get("selection_why"),
            "partition": verdict.get("partition"),
            "has_blind_baseline": any(e["method"] == BLIND_METHOD for e in verdict["entries"]),
            "entries": verdict["entries"],
            "adjacent": verdict.get("adjacent", []),
            "ceiling": verdict.get("ceiling"),
            "skipped": [s for s in results.get("skipped", []) if isinstance(s, dict) and s.get("target") == name],
            "details": details,
        })
    suite = results["suite"]
    return {
        "leaderboard_version": LEADERBOARD_VERSION,
        "ranking": RANKING,
        "board": {"kind": "sealed challenge" if results.get("challenge") else "honour board",
                  "note": SEALED_BOARD if results.get("challenge") else HONOUR_BOARD},
        "protocol": verdicts["protocol"],
        "verdicts": {k: verdicts.get(k) for k in ("version", "confidence", "n_bootstrap", "seed",
                                                  "min_false_positives", "declared_metric")},
        "source": {"file": RESULTS_FILE, "schema_version": results["schema_version"], "sha256": results_sha256},
        "suite": {"name": suite.get("name"), "config_hash": suite.get("config_hash")},
        "provenance": results["provenance"],
        "methods": main_view_order(targets),
        "targets": targets,
    }


def _json_depth(x: object) -> int:
    if isinstance(x, dict):
        return 1 + max(map(_json_depth, x.values()), default=0)
    if isinstance(x, list):
        return 1 + max(map(_json_depth, x), default=0)
    return 0


def dumps_board(obj: object, level: int = 0) -> str:
    """JSON text, indented, with containers of nesting depth <= 2 (a metric, a details row)
    on one line: ~10,000 details rows stay a few MB and one row reads as one line."""
    if _json_depth(obj) <= 2:
        return json.dumps(obj, sort_keys=True, ensure_ascii=False, allow_nan=False)
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(obj, dict):
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {dumps_board(obj[k], level + 1)}" for k in sorted(obj)]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    return "[\n" + ",\n".join(inner + dumps_board(x, level + 1) for x in obj) + "\n" + pad + "]"


def write_leaderboard(results_dir: Path, out_dir: Path | None = None) -> dict[str, Path]:
    """Write leaderboard.json, .md and .html for `results_dir` into `out_dir` (default: results_dir).

    Returns {"json": path, "md": path, "html": path}. Same input gives byte-identical files.
    """
    results_dir = Path(results_dir)
    out_dir = results_dir if out_dir is None else Path(out_dir)
    results = load_results(results_dir)
    sha = sha256_file(results_dir / RESULTS_FILE)
    board = build_leaderboard(results, results_sha256=sha)
    texts = {
        "json": dumps_board(board) + "\n",
        "md": render_markdown(board),
        "html": render_html(board, results_dir),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for ext, text in texts.items():
        paths[ext] = out_dir / f"leaderboard.{ext}"
        write_text_atomic(paths[ext], text)
    return paths


__all__ = ["HONOUR_BOARD", "LEADERBOARD_VERSION", "RANKING", "SEALED_BOARD", "build_leaderboard", "dumps_board", "main_view_order",
           "write_leaderboard"]
