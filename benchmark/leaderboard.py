"""The leaderboard: results.json (schema_version 2) -> leaderboard.json, leaderboard.md, leaderboard.html.

What is ranked is results.json's `verdicts` (benchmark/verdicts.py): per target one entry per
METHOD (an attack family, a submitted family or scores file, and the blind baseline), whose
configuration (variant, slice, frame count, level) was chosen on the dev partition and whose
numbers come from the test partition. This module only presents them:

  MAIN VIEW   one row per method, one column group per target: the primary metric's test
              value with its CI, the rank band, and the paired difference to the blind
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

import csv
import hashlib
import html
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from vidsme.atomic import write_text_atomic
from vidsme.direction import Direction
from vidsme.metrics import roc_points
from vidsme.benchmark.verdicts import BLIND_METHOD, NOT_ABOVE_BLIND, method_of
from vidsme.data_splits.partition import PARTITIONS
from vidsme.errors import VidsmeError

SCHEMA_VERSION = 2
LEADERBOARD_VERSION = 2
RESULTS_FILE = "results.json"
KINDS = ("reproduced", "scores_file", "blind")
ROW_IS_VIDEO = "row=video"  # as in benchmark/evaluate.py (not imported: it pulls in torch)
LEVELS = ("row", "video", ROW_IS_VIDEO)
METRICS = ("auc", "balanced_accuracy", "tpr@0.1%fpr", "tpr@1%fpr", "tpr@5%fpr")
TPR_METRICS = METRICS[2:]
METRIC_LABELS = {"auc": "AUC", "balanced_accuracy": "bal. acc.", "tpr@0.1%fpr": "TPR@0.1%FPR",
                 "tpr@1%fpr": "TPR@1%FPR", "tpr@5%fpr": "TPR@5%FPR"}
RANKING = (
    "Per target, one entry per method (attack family, submitted family or scores file, and the blind baseline): "
    "its configuration (variant, slice, frame count, level) is the one with the best selection metric on the DEV "
    "partition; its numbers are from the TEST partition. Entries are ordered by the primary metric's test value "
    "(descending; ties by method name). Rank bands come from a paired bootstrap over test videos: neighbours whose "
    "difference has a CI containing 0 share a band. The main view lists methods by their best rank over the "
    "targets, then name; the blind baseline last."
)
MAX_ROC_POINTS = 64
_FIX = "rerun `vidsme benchmark SUITE` to regenerate it"


# ----------------------------------------------------------------------------- loading
def _bad(path: Path, where: str, problem: str) -> VidsmeError:
    return VidsmeError(f"{path}: {where}: {problem}; {_FIX}")


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_metric(path: Path, where: str, key: str, metric: object, *, nullable: bool) -> None:
    """A metric is {value, ci_low, ci_high} of finite numbers; a `nullable` one may instead be
    all null with a non-empty 'reason' (the sample cannot resolve it)."""
    if isinstance(metric, dict):
        triple = [metric.get(k) for k in ("value", "ci_low", "ci_high")]
        if all(_is_number(x) for x in triple):
            return
        reason = metric.get("reason")
        if nullable and all(x is None for x in triple) and isinstance(reason, str) and reason:
            return
    problem = f"{key!r} must be {{'value', 'ci_low', 'ci_high'}} with finite numbers"
    if nullable:
        problem += " or, when unresolvable, all null with a non-empty 'reason'"
    raise _bad(path, where, f"{problem} (got {metric!r})")


def _check_fields(path: Path, where: str, obj: dict) -> None:
    """The fields rows and verdict entries share."""
    for key in ("attack", "slice"):
        if not isinstance(obj.get(key), str) or not obj[key]:
            raise _bad(path, where, f"{key!r} must be a non-empty string (got {obj.get(key)!r})")
    checks = {
        "kind": (obj.get("kind") in KINDS, f"must be one of {', '.join(KINDS)}"),
        "level": (obj.get("level") in LEVELS, f"must be one of {', '.join(LEVELS)}"),
        "partition": (obj.get("partition") in PARTITIONS, f"must be one of {', '.join(PARTITIONS)}"),
        "direction": (obj.get("direction") in ("higher", "lower"), "must be 'higher' or 'lower'"),
        "n_frames": (obj.get("n_frames") is None or _is_int(obj["n_frames"]), "must be an integer or null"),
    }
    for key, (ok, problem) in checks.items():
        if not ok:
            raise _bad(path, where, f"{key!r} {problem} (got {obj.get(key)!r})")
    for key in METRICS:
        _check_metric(path, where, key, obj.get(key), nullable=key in TPR_METRICS)
    for key in ("scores_file", "scores_column"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            raise _bad(path, where, f"{key!r} must be a string or null")


def _check_row(path: Path, i: int, row: object, targets: set[str]) -> None:
    if not isinstance(row, dict):
        raise _bad(path, f"rows[{i}]", "must be an object")
    where = f"rows[{i}] (target {row.get('target')!r}, attack {row.get('attack')!r})"
    if not isinstance(row.get("target"), str) or row["target"] not in targets:
        raise _bad(path, where, f"target {row.get('target')!r} is not in 'targets' ({', '.join(sorted(targets))})")
    _check_fields(path, where, row)
    if not isinstance(row.get("provenance", {}), dict):
        raise _bad(path, where, "'provenance' must be an object")


def _row_ident(row: dict) -> tuple:
    return (row["target"], row["attack"], row["slice"], row["level"], row["n_frames"] is None, row["n_frames"] or 0,
            row["kind"], row["partition"])


def _check_entry(path: Path, where: str, entry: object) -> None:
    if not isinstance(entry, dict):
        raise _bad(path, where, "must be an object")
    where = f"{where} (method {entry.get('method')!r})"
    if not isinstance(entry.get("method"), str) or not entry["method"]:
        raise _bad(path, where, "'method' must be a non-empty string")
    _check_fields(path, where, entry)
    if entry["partition"] != "test":
        raise _bad(path, where, f"'partition' must be 'test' (entries report the test partition), got "
                                f"{entry['partition']!r}")
    band = entry.get("band")
    if not (_is_int(entry.get("rank")) and isinstance(entry.get("rank_band"), str) and isinstance(band, list)
            and len(band) == 2 and all(_is_int(b) for b in band)):
        raise _bad(path, where, "needs an integer 'rank', a 'band' [first, last] and a string 'rank_band'")
    if not _is_int(entry.get("n_candidates")) or not isinstance(entry.get("dev"), dict):
        raise _bad(path, where, "needs an integer 'n_candidates' and a 'dev' object")
    for key, metric in entry["dev"].items():
        _check_metric(path, f"{where} dev", key, metric, nullable=key in TPR_METRICS)
    if entry.get("vs_blind") is not None:
        _check_metric(path, where, "vs_blind", entry["vs_blind"], nullable=False)
    if entry.get("flag") is not None and not isinstance(entry["flag"], str):
        raise _bad(path, where, "'flag' must be a string or null")


def _check_verdicts(path: Path, verdicts: object, names: list[str]) -> None:
    if not isinstance(verdicts, dict) or not isinstance(verdicts.get("targets"), list):
        raise _bad(path, "'verdicts'", "missing or without a 'targets' list (results.json written before verdicts "
                                       "existed?)")
    if not isinstance(verdicts.get("protocol"), str):
        raise _bad(path, "'verdicts'", "'protocol' must be a string")
    seen: set[str] = set()
    for i, v in enumerate(verdicts["targets"]):
        where = f"verdicts.targets[{i}]"
        if not isinstance(v, dict) or v.get("target") not in names:
            raise _bad(path, where, f"must be an object whose 'target' is one of {', '.join(names)}")
        if v["target"] in seen:
            raise _bad(path, where, f"second verdict for target {v['target']!r}")
        seen.add(v["target"])
        if v.get("primary_metric") not in METRICS or not isinstance(v.get("why"), str):
            raise _bad(path, where, f"needs 'primary_metric' (one of {', '.join(METRICS)}) and a string 'why'")
        if not isinstance(v.get("entries"), list) or not isinstance(v.get("adjacent", []), list):
            raise _bad(path, where, "'entries' and 'adjacent' must be lists")
        for j, entry in enumerate(v["entries"]):
            _check_entry(path, f"{where}.entries[{j}]", entry)
    missing = [n for n in names if n not in seen]
    if missing:
        raise _bad(path, "'verdicts'", f"no verdict for target(s) {', '.join(map(repr, missing))}")


def load_results(results_dir: Path) -> dict:
    """Read and validate `<results_dir>/results.json` (schema_version 2, with `verdicts`).

    Raises VidsmeError naming the file, the offending entry and the problem if the file is
    missing, not JSON, of another schema version (a version-1 file: rerun `vidsme benchmark`),
    or lacks a field the leaderboard needs.
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
    if version == 1:
        raise VidsmeError(f"{path}: schema_version 1 was written by an older vidsme (no dev/test partition, no "
                          "verdicts); rerun `vidsme benchmark SUITE` to write schema_version 2")
    if version != SCHEMA_VERSION:
        raise _bad(path, "schema_version", f"this vidsme reads version {SCHEMA_VERSION}, got {version!r}")
    for key, kind in (("suite", dict), ("provenance", dict), ("targets", list), ("rows", list)):
        if not isinstance(results.get(key), kind):
            raise _bad(path, repr(key), f"missing or not a JSON {'object' if kind is dict else 'list'}")
    if not isinstance(results.get("skipped", []), list):
        raise _bad(path, "'skipped'", "must be a list")
    names: list[str] = []
    for i, target in enumerate(results["targets"]):
        if not isinstance(target, dict) or not isinstance(target.get("name"), str) or not target["name"]:
            raise _bad(path, f"targets[{i}]", "must be an object with a non-empty string 'name'")
        if target["name"] in names:
            raise _bad(path, f"targets[{i}]", f"duplicate target name {target['name']!r}")
        names.append(target["name"])
    seen: set[tuple] = set()
    levels: dict[str, set[str]] = {}
    for i, row in enumerate(results["rows"]):
        _check_row(path, i, row, set(names))
        ident = _row_ident(row)
        if ident in seen:  # the details order would otherwise depend on the input order
            raise _bad(path, f"rows[{i}]", f"duplicate row for {ident}")
        seen.add(ident)
        levels.setdefault(row["target"], set()).add(row["level"])
    for name, found in levels.items():
        if ROW_IS_VIDEO in found and len(found) > 1:
            raise _bad(path, f"rows of target {name!r}", f"level {ROW_IS_VIDEO!r} (one row per video) mixed with "
                                                         f"{sorted(found - {ROW_IS_VIDEO})}")
    _check_verdicts(path, results.get("verdicts"), names)
    return results


# ----------------------------------------------------------------------------- building
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
    entries (one per method, test numbers, rank band, distance to the blind baseline), the
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
            "skipped": [s for s in results.get("skipped", []) if isinstance(s, dict) and s.get("target") == name],
            "details": details,
        })
    suite = results["suite"]
    return {
        "leaderboard_version": LEADERBOARD_VERSION,
        "ranking": RANKING,
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


# ----------------------------------------------------------------------------- formatting
def fmt_metric(metric: dict | None) -> str:
    """'0.931 [0.90, 0.95]', or 'n/a' for an unresolved (null) metric."""
    if not metric or metric.get("value") is None:
        return "n/a"
    return f"{metric['value']:.3f} [{metric['ci_low']:.2f}, {metric['ci_high']:.2f}]"


def fmt_diff(metric: dict | None) -> str:
    """'+0.123 [+0.05, +0.20]' (a paired difference), '—' for none."""
    if not metric or metric.get("value") is None:
        return "—"
    return f"{metric['value']:+.3f} [{metric['ci_low']:+.2f}, {metric['ci_high']:+.2f}]"


def level_label(level: str) -> str:
    """'row=video' -> 'row = video' (one row per video: both levels, the same numbers)."""
    return "row = video" if level == ROW_IS_VIDEO else level


def _frames(n_frames: int | None) -> str:
    return "—" if n_frames is None else str(n_frames)


def _label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def na_legend(items: Iterable[dict], metrics: Sequence[str] = METRICS) -> list[str]:
    """One line per (metric, reason) that leaves a cell of `items` n/a, with where it applies:
    'TPR@1%FPR: needs ≥ 1000 non-members (has 48) — test, video level'."""
    where: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for item in items:
        for key in metrics:
            metric = item.get(key) or {}
            if metric.get("value") is None and metric.get("reason"):
                where.setdefault((key, metric["reason"]), set()).add((item["partition"], item["level"]))
    lines = []
    for (key, reason), contexts in sorted(where.items(), key=lambda kv: (metrics.index(kv[0][0]), kv[0][1])):
        parts = "; ".join(f"{p}, {level_label(lv)} level" for p, lv in sorted(contexts))
        lines.append(f"{_label(key)}: {reason} — {parts}")
    return lines


def _main_na_legend(board: dict) -> list[str]:
    """The n/a legend of the main table, which shows each target's primary metric only."""
    return [f"{t['name']}: {x}" for t in board["targets"] for x in na_legend(t["entries"], (t["primary_metric"],))]


def _levels_note(t: dict) -> str:
    levels = t["target"].get("levels") or sorted({d["level"] for d in t["details"]})
    if ROW_IS_VIDEO in levels:
        return ("levels: row = video — every video has one QA row, so its row-level and video-level results are "
                "the same numbers, shown once with both labels")
    return f"levels: {', '.join(levels)} (video = the mean score of the video's QA rows)"


def _selection_note(t: dict) -> str:
    """How the target's configurations were chosen (test-only targets: fixed beforehand elsewhere)."""
    if (t.get("partition") or {}).get("test_only"):
        return f"test-only target: every configuration was fixed beforehand ({t.get('selection_why')})"
    return f"configuration chosen on the dev partition by {_label(t.get('selection_metric') or 'auc')}: " \
           f"{t.get('selection_why')}"


def _partition_note(t: dict) -> str:
    videos = {side: v for side, v in ((t.get("partition") or {}).get("videos") or {}).items() if v}
    parts = [f"{side} {v.get('member')} member + {v.get('nonmember')} non-member videos"
             for side, v in sorted(videos.items()) if isinstance(v, dict)]
    return "partition: " + ("; ".join(parts) if parts else "not recorded")


def _target_title(t: dict) -> str:
    info = t["target"]
    split = info.get("split") or {}
    return (f"{t['name']} — {info.get('task')} × {info.get('strategy') or 'n/a'} "
            f"(split {split.get('name')} v{split.get('version')})")


def _config(e: dict) -> str:
    return f"{e['slice']} / {e['attack']} / {_frames(e['n_frames'])} frames / {level_label(e['level'])} level"


def _entry_of(t: dict, method: str) -> dict | None:
    return next((e for e in t["entries"] if e["method"] == method), None)


def _confidence(board: dict) -> str:
    conf = board["verdicts"].get("confidence")
    return f"{conf:.0%}" if _is_number(conf) else "95%"


# ----------------------------------------------------------------------------- markdown
def _md_text(value: object) -> str:
    # a "|" or a newline from a name would break the table; "<", "&" would become markup
    text = html.escape(str(value), quote=False).replace("\\", "\\\\")
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _md_vs_blind(e: dict | None) -> str:
    if e is None:
        return "—"
    if e["blind"]:
        return "reference"
    text = fmt_diff(e.get("vs_blind"))
    return text + (f" **{_md_text(e['flag'])}**" if e.get("flag") else "")


def render_markdown(board: dict) -> str:
    """leaderboard.md: provenance and protocol, the main table, per target the chosen
    configurations, then every row of every target in a details section."""
    prov, conf = board["provenance"], _confidence(board)
    lines = [
        f"# vidsme leaderboard — suite {_md_text(board['suite']['name'])}",
        "",
        f"- created: {_md_text(prov.get('created'))}; vidsme {_md_text(prov.get('vidsme'))}; "
        f"git commit {_md_text(prov.get('git_commit'))}",
        f"- command: {_md_text(prov.get('command'))}",
        f"- suite config sha256: {_md_text(board['suite']['config_hash'])}; "
        f"results.json sha256: {_md_text(board['source']['sha256'])}",
        f"- protocol: {_md_text(board['protocol'])}",
        f"- ranking: {_md_text(board['ranking'])}",
        "",
        "## Main view",
        "",
        f"One row per method; per target its dev-selected configuration measured on the test partition: the "
        f"ranking metric with its {conf} CI, the rank band (entries sharing a band are not distinguishable), and "
        f"the paired difference to the blind baseline with its CI; **{NOT_ABOVE_BLIND}** marks a CI that does not "
        "lie above 0. Details per target below.",
        "",
    ]
    header = ["method"]
    for t in board["targets"]:
        header += [f"{_md_text(t['name'])}: {_label(t['primary_metric'])} [{conf} CI]", "band", "vs blind"]
    rows = []
    for method in board["methods"]:
        cells = [f"**{_md_text(method)}**" if method == BLIND_METHOD else _md_text(method)]
        for t in board["targets"]:
            e = _entry_of(t, method)
            if e is not None and e.get("submitted"):
                cells[0] = _md_text(method) + " (submitted)"
            cells += ["—", "—", "—"] if e is None else [fmt_metric(e[t["primary_metric"]]), e["rank_band"],
                                                        _md_vs_blind(e)]
        rows.append(cells)
    lines += _md_table(header, rows)
    lines.append("")
    lines += [f"- n/a: {_md_text(x)}" for x in _main_na_legend(board)]
    lines += [f"- {_md_text(t['name'])} is ranked by {_label(t['primary_metric'])}: {_md_text(t['why'])}"
              for t in board["targets"]]
    lines.append("")
    for t in board["targets"]:
        lines += _md_target(t, conf)
    lines += ["## Details", "",
              "Every results.json row per target: every variant, slice, frame count, level, on the dev partition "
              "(where configurations are chosen) and the test partition (where they are reported). "
              "* marks a method's dev-selected configuration.", ""]
    for t in board["targets"]:
        lines += [f"### Details: {_md_text(t['name'])} ({len(t['details'])} rows)", "", _md_text(_levels_note(t)), ""]
        header = ["attack", "method", "slice", "frames", "level", "partition", *(_label(m) for m in METRICS)]
        lines += _md_table(header, ([("\\* " if d["selected"] else "") + _md_text(d["attack"]), _md_text(d["method"]),
                                     _md_text(d["slice"]), _frames(d["n_frames"]), level_label(d["level"]),
                                     d["partition"], *(fmt_metric(d[m]) for m in METRICS)] for d in t["details"]))
        lines.append("")
        lines += [f"- n/a: {_md_text(x)}" for x in na_legend(t["details"])]
        lines.append("")
    return "\n".join(lines)


def _md_target(t: dict, conf: str) -> list[str]:
    primary, selection = t["primary_metric"], t.get("selection_metric") or "auc"
    lines = [f"## {_md_text(_target_title(t))}", "",
             f"- ranked by **{_label(primary)}**: {_md_text(t['why'])}",
             f"- {_md_text(_selection_note(t))}",
             f"- {_md_text(_partition_note(t))}",
             f"- {_md_text(_levels_note(t))}"]
    if not t["has_blind_baseline"]:
        lines.append("- no blind baseline in results.json for this target: no entry can be compared with it")
    lines.append("")
    header = ["band", "method", "attack", "slice", "frames", "level", "candidates", f"dev {_label(selection)}",
              *(f"test {_label(m)}" for m in METRICS), "vs blind"]
    lines += _md_table(header, ([e["rank_band"], _md_text(e["method"]) + (" (submitted)" if e.get("submitted") else ""),
                                 _md_text(e["attack"]), _md_text(e["slice"]), _frames(e["n_frames"]),
                                 level_label(e["level"]), str(e["n_candidates"]),
                                 fmt_metric(e["dev"].get(selection)), *(fmt_metric(e.get(m)) for m in METRICS),
                                 _md_vs_blind(e)] for e in t["entries"]))
    if not t["entries"]:
        lines.append("_no entries_")
    lines.append("")
    lines += [f"- n/a: {_md_text(x)}" for x in na_legend(t["entries"])]
    for a in t["adjacent"]:
        verdict = "distinguishable" if a.get("distinguishable") else "not distinguishable (same band)"
        lines.append(f"- {_md_text(a.get('higher'))} − {_md_text(a.get('lower'))}: {_label(primary)} "
                     f"{fmt_diff(a.get('difference'))} ({conf} CI, paired): {verdict}")
    for s in t["skipped"]:
        lines.append(f"- skipped {_md_text(s.get('attack'))} ({_md_text(s.get('slice'))}, "
                     f"frames {_md_text(s.get('n_frames'))}): {_md_text(s.get('reason'))}")
    lines.append("")
    return lines


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
            f'aria-label="ROC {html.escape(label)}"><title>ROC on the test partition (linear axes): '
            f'{html.escape(label)}</title><rect width="100" height="100"></rect>'
            f'<line x1="0" y1="100" x2="100" y2="0"></line><polyline points="{points}"></polyline></svg>')


# ----------------------------------------------------------------------------- HTML
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
.nb{display:inline-block;font-size:.72em;background:#b3261e;color:#fff;border-radius:3px;padding:0 3px}.sub{font-size:.72em;color:#1f5fbf}
.legend{font-size:.85em;color:#444}.legend li{overflow-wrap:anywhere}
.scroll{overflow-x:auto;max-width:100%}
table.sortable th{cursor:pointer;user-select:none}th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
table.d tr.s{font-weight:600;background:#eef4ff}details{margin:.5em 0}summary{cursor:pointer;font-weight:600}
svg.roc rect{fill:#fff;stroke:#999}svg.roc line{stroke:#bbb;stroke-dasharray:4}
svg.roc polyline{fill:none;stroke:#1f5fbf;stroke-width:3}.note{color:#777;font-size:.8em;white-space:normal}
nav a{margin-right:1em}"""

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
    return html.escape(str(value))


def _cell2(metric: dict | None, fmt_value: str, fmt_ci: str) -> str:
    """Value on one line, its CI in a smaller second line (keeps the main table narrow)."""
    if not metric or metric.get("value") is None:
        return "n/a"
    return (f"{metric['value']:{fmt_value}}<small>[{metric['ci_low']:{fmt_ci}}, "
            f"{metric['ci_high']:{fmt_ci}}]</small>")


def _vs_blind_cell(e: dict) -> str:
    """The difference to the blind baseline, the flag as a badge after it, the CI below."""
    if e["blind"]:
        return "reference"
    vs = _cell2(e.get("vs_blind"), "+.3f", "+.2f").replace("n/a", "—")
    if e.get("flag"):
        badge = f' <span class="nb">{_h(e["flag"])}</span>'
        vs = vs.replace("<small>", badge + "<small>", 1) if "<small>" in vs else vs + badge
    return vs


def _legend(lines: Sequence[str], extra: Sequence[str] = ()) -> str:
    items = [*extra, *(f"n/a — {x}" for x in lines)]
    return '<ul class="legend">' + "".join(f"<li>{x}</li>" for x in items) + "</ul>" if items else ""


def _html_main(board: dict) -> list[str]:
    conf = _confidence(board)
    head1, head2 = ['<th class="m" rowspan="2">method</th>'], []
    for i, t in enumerate(board["targets"]):
        info = t["target"]
        head1.append(f'<th class="t" colspan="3"><a href="#target-{i}">{_h(t["name"])}</a>'
                     f'<small>{_h(info.get("task"))} × {_h(info.get("strategy") or "n/a")}</small></th>')
        head2 += [f'<th>{_h(_label(t["primary_metric"]))}<small>[{conf} CI]</small></th>', "<th>band</th>",
                  "<th>vs blind<small>[CI]</small></th>"]
    body = []
    for method in board["methods"]:
        blind = method == BLIND_METHOD
        submitted = any((_entry_of(t, method) or {}).get("submitted") for t in board["targets"])
        name = _h(method) + (' <span class="sub">submitted</span>' if submitted else "")
        cells = [f'<th class="m">{name}</th>']
        for t in board["targets"]:
            e = _entry_of(t, method)
            if e is None:
                cells.append('<td class="b">—</td>' * 3)
                continue
            title = _h(f"{_config(e)}; chosen on dev among {e['n_candidates']}")
            cells += [f'<td title="{title}">{_cell2(e[t["primary_metric"]], ".3f", ".2f")}</td>',
                      f'<td class="b">{_h(e["rank_band"])}</td>', f"<td>{_vs_blind_cell(e)}</td>"]
        body.append(f'<tr{" class=blind" if blind else ""}>' + "".join(cells) + "</tr>")
    notes = [
        f'<span class="nb">{_h(NOT_ABOVE_BLIND)}</span>: the {conf} CI of the paired difference to the split\'s blind '
        "(model-free) baseline does not lie above 0 — no membership signal beyond what metadata gives away.",
        "band: entries whose paired-bootstrap difference to a neighbour has a CI containing 0 share a band "
        "(\u201c1–3\u201d); ranks differ only across bands. Hover a value for the configuration chosen on dev.",
        *(f"{_h(t['name'])} is ranked by {_h(_label(t['primary_metric']))}: {_h(t['why'])}" for t in board["targets"]),
    ]
    return ['<h2 id="main">Main view</h2>',
            f"<p>One row per method; per target its dev-selected configuration measured on the test partition: "
            f"the ranking metric with its {conf} CI, the rank band, and the paired difference to the blind baseline "
            "with its CI.</p>",
            '<table class="main"><thead><tr>' + "".join(head1) + "</tr><tr>" + "".join(head2) + "</tr></thead><tbody>",
            *body, "</tbody></table>", _legend([_h(x) for x in _main_na_legend(board)], notes)]


def _html_target(i: int, t: dict, conf: str, scores: _ScoresFiles) -> list[str]:
    primary, selection = t["primary_metric"], t.get("selection_metric") or "auc"
    out = [f'<section id="target-{i}">', f"<h2>{_h(_target_title(t))}</h2>",
           f"<p>Ranked by <b>{_h(_label(primary))}</b>: {_h(t['why'])}.<br>{_h(_selection_note(t))}.<br>"
           f"{_h(_partition_note(t))}; "
           f"{_h(_levels_note(t))}.</p>"]
    if not t["has_blind_baseline"]:
        out.append('<p class="note">no blind baseline in results.json for this target: no entry can be compared '
                   "with it</p>")
    heads = [("band", True), ("method", False), ("attack", False), ("slice", False), ("frames", True),
             ("level", False), ("cand.", True), (f"dev {_label(selection)}", True),
             *((f"test {_label(m)}".replace("%FPR", "% FPR"), True) for m in METRICS), ("vs blind", True),
             ("ROC (test)", False)]
    out.append('<div class="scroll"><table class="sortable"><thead><tr>'
               + "".join(f'<th{" class=n" if n else ""}>{_h(h)}</th>' for h, n in heads) + "</tr></thead><tbody>")
    for e in t["entries"]:
        roc = scores.roc(e)
        label = f"{e['method']}: {_config(e)}"
        thumb = _roc_svg(*roc, label) if not isinstance(roc, str) else f'<span class="note">{_h(roc)}</span>'
        vs = _vs_blind_cell(e)
        method = _h(e["method"]) + (' <span class="sub">submitted</span>' if e.get("submitted") else "")
        cells = [_h(e["rank_band"]), method, _h(e["attack"]), _h(e["slice"]), _frames(e["n_frames"]),
                 _h(level_label(e["level"])), str(e["n_candidates"]), _cell2(e["dev"].get(selection), ".3f", ".2f"),
                 *(_cell2(e.get(m), ".3f", ".2f") for m in METRICS), vs, thumb]
        out.append(f'<tr{" class=blind" if e["blind"] else ""}>' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table></div>")
    pairs = [f"{_h(a.get('higher'))} − {_h(a.get('lower'))}: {_h(fmt_diff(a.get('difference')))} "
             f"({'distinguishable' if a.get('distinguishable') else 'same band'})" for a in t["adjacent"]]
    extra = [f"neighbours, paired {conf} CI of the {_h(_label(primary))} difference: " + "; ".join(pairs)] if pairs \
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
             *((_label(m), True) for m in METRICS)]
    thead = "".join(f'<th{" class=n" if n else ""}>{_h(h)}</th>' for h, n in heads)
    notes = ["every variant, slice, frame count and level; bold: a method's dev-selected configuration (its dev "
             "row, where it was chosen, and its test row, the one reported); click a header to sort; the method "
             "of each attack is in leaderboard.json and leaderboard.md",
             _h(_levels_note(t))]
    out = [f"<details><summary>Details: all {len(t['details'])} rows of {_h(t['name'])} (test and dev partitions)"
           "</summary>", _legend([_h(x) for x in na_legend(t["details"])], notes)]
    for part, role in (("test", "where the numbers are reported"), ("dev", "where configurations are chosen")):
        rows = []
        for d in t["details"]:
            if d["partition"] != part:
                continue
            cells = [d["attack"], d["slice"], _frames(d["n_frames"]), level_label(d["level"]),
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
    prov, conf, scores = board["provenance"], _confidence(board), _ScoresFiles(results_dir)
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


def run_leaderboard_command(results_dir: Path, out_dir: Path | None = None) -> int:
    """`vidsme leaderboard RESULTS_DIR`: write the three files and print where. Returns 0.

    VidsmeError (bad or missing results.json) propagates for the CLI to report.
    """
    for ext, path in write_leaderboard(results_dir, out_dir).items():
        print(f"leaderboard.{ext}: {path}")
    return 0


__all__ = ["LEADERBOARD_VERSION", "METRICS", "RANKING", "SCHEMA_VERSION", "build_leaderboard", "dumps_board",
           "fmt_diff", "fmt_metric", "level_label", "load_results", "main_view_order", "na_legend", "render_html",
           "render_markdown", "run_leaderboard_command", "write_leaderboard"]
