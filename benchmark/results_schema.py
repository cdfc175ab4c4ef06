"""results.json (schema_version 2): its constants and `load_results`, which validates a file before
anything reads it (the leaderboard, submissions, the challenge board).

Every problem is a VidsmeError naming the file, the offending row or entry, and the fix.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from vidsme.data_splits.partition import PARTITIONS
from vidsme.errors import VidsmeError

SCHEMA_VERSION = 2
RESULTS_FILE = "results.json"
KINDS = ("reproduced", "scores_file", "blind", "calibrated")
ROW_IS_VIDEO = "row=video"  # as in benchmark/evaluate.py (not imported: it pulls in torch)
LEVELS = ("row", "video", ROW_IS_VIDEO)
METRICS = ("auc", "balanced_accuracy", "tpr@0.1%fpr", "tpr@1%fpr", "tpr@5%fpr")
TPR_METRICS = METRICS[2:]
_FIX = "rerun `vidsme benchmark SUITE` to regenerate it"


def _bad(path: Path, where: str, problem: str) -> VidsmeError:
    return VidsmeError(f"{path}: {where}: {problem}; {_FIX}")


def is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_metric(path: Path, where: str, key: str, metric: object, *, nullable: bool) -> None:
    """A metric is {value, ci_low, ci_high} of finite numbers; a `nullable` one may instead be
    all null with a non-empty 'reason' (the sample cannot resolve it)."""
    if isinstance(metric, dict):
        triple = [metric.get(k) for k in ("value", "ci_low", "ci_high")]
        if all(is_number(x) for x in triple):
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
