"""Verdicts: per target, one dev-selected, test-reported entry per method, with rank bands
and the paired distance to the split's blind baseline.

PROTOCOL (docs/LEADERBOARD.md has a worked example):
  1. A method is an attack family (every K, alpha, alignment ... of it: its registered
     variants), a submitted family, or a submitted scores file; the blind baseline is a
     method with nothing to choose. Its candidates are its rows of results.json: variant x
     slice x frame count x level.
  2. The candidate with the best selection metric on the DEV partition is the method's
     representative (ties: higher dev AUC, then attack, slice, level, frame count in
     ascending order). The selection metric is the primary metric where the dev partition
     resolves it, else AUC.
  3. The representative's TEST-partition row is what is reported; no test number is ever
     compared across candidates of a method.
  4. The primary (ranking) metric is the suite's `primary_metric` (default TPR@1%FPR) when
     the test partition holds enough non-member videos to resolve it (10 false positives at
     that rate: 1,000 for 1%), else AUC. Videos, not QA rows, are counted: rows of one video
     are not independent.
  5. Entries are ordered by the primary metric's test value. For every pair of entries a
     paired bootstrap (the same resampled test videos for both, stratified by label) gives
     the CI of their difference; "significantly above" means that CI lies above 0. Each
     entry's rank interval ("1–3") runs from 1 + the number of entries significantly above
     it to n - the number significantly below it (the Chatbot Arena rule), tightened along
     the relation (`rank_intervals`), so that an entry significantly above another never
     shows the same interval. (The bands of earlier versions chained neighbours: a run of
     small steps put the best entry and the blind baseline in one band.)
  6. Each entry's paired difference to the blind baseline, with its CI: an entry whose CI
     does not lie above 0 is flagged "not above blind".
  7. The ceiling: the method with the highest DEV selection metric (a calibrated attack, LiRA or
     RMIA, where the target has shadow models) is marked as the target's ceiling; its test number
     is reported like every other, and no test number chose it.

The replicates are recomputed from the per-sample scores CSVs (column `partition`), with
the suite's seed and replicate count, so they are exactly the resamples behind every CI in
results.json; a scores file that does not reproduce its row's value is an error.
"""
from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vidsme.metrics import (
    DEFAULT_FPR_LEVELS,
    DEFAULT_MIN_FALSE_POSITIVES,
    MetricValue,
    Replicates,
    bootstrap_replicates,
    min_nonmembers,
    paired_difference,
    tpr_key,
)
from vidsme.errors import VidsmeError

VERDICTS_VERSION = 1
BLIND_METHOD = "blind baseline"
PARTITION_SELECT, PARTITION_REPORT = "dev", "test"
CONFIDENCE = 0.95
PRIMARY_METRICS: tuple[str, ...] = ("auc", "balanced_accuracy", *(tpr_key(lv) for lv in DEFAULT_FPR_LEVELS))
NOT_ABOVE_BLIND = "not above blind"
CEILING_WHY = ("the strongest method on this target, chosen on the dev partition (highest dev {metric} of every "
               "method): the ceiling a new attack measures itself against")
PROTOCOL = ("Each method's configuration (variant, slice, frame count, level) is chosen on the dev partition by the "
            "selection metric; its test-partition numbers are reported. Rank interval of an entry: from 1 + the number "
            "of entries significantly above it to n - the number significantly below it (paired bootstrap over the "
            f"same resampled test videos, {CONFIDENCE:.0%} CI of the difference excluding 0, against every other "
            "entry), tightened so that an entry significantly above another never shares its interval. "
            f"'{NOT_ABOVE_BLIND}': the paired difference to the split's blind baseline has a CI that does not lie "
            "above 0.")
PROTOCOL_TEST_ONLY = ("Test-only (a sealed challenge): every row is a test row and nothing is chosen here; each "
                      "method enters at the configuration (variant, slice, frame count, level) it was given on the "
                      "public suite's dev partition, recorded in each row's `selection`. Rank intervals and 'not "
                      "above blind' as in the public protocol: paired bootstraps over the test videos.")
_FPR_OF = {tpr_key(lv): lv for lv in DEFAULT_FPR_LEVELS}
METRIC_LABELS = {"auc": "AUC", "balanced_accuracy": "balanced accuracy",
                 **{tpr_key(lv): f"TPR@{lv * 100:g}%FPR" for lv in DEFAULT_FPR_LEVELS}}


# ----------------------------------------------------------------------------- which metric
def resolve_primary(declared: str, n_nonmember_videos: int,
                    min_false_positives: int = DEFAULT_MIN_FALSE_POSITIVES) -> tuple[str, str]:
    """(metric to rank by, why) for a partition with `n_nonmember_videos` non-member videos."""
    if declared not in PRIMARY_METRICS:
        raise VidsmeError(f"unknown primary_metric {declared!r}; choose one of {', '.join(PRIMARY_METRICS)}")
    name = METRIC_LABELS[declared]
    if declared not in _FPR_OF:
        return declared, f"{name} is the suite's declared primary metric"
    need = min_nonmembers(_FPR_OF[declared], min_false_positives)
    if n_nonmember_videos >= need:
        return declared, (f"{name} declared; the partition's {n_nonmember_videos} non-member videos resolve it "
                          f"(≥ {need} needed for {min_false_positives} false positives)")
    return "auc", (f"{name} declared, but the partition has {n_nonmember_videos} non-member videos and "
                   f"{need} are needed for {min_false_positives} false positives at that rate: ranked by AUC")


def method_of(row: dict, attacks: dict) -> str:
    """The method a results.json row belongs to: the blind baseline, its attack's family (a scores-file
    submission is a method of its own), or for a calibrated attack its calibration's family (lira, rmia)."""
    if row["kind"] == "blind":
        return BLIND_METHOD
    if row["kind"] == "calibrated":
        return row["family"]
    meta = attacks.get(row["attack"]) or {}
    if row["kind"] == "scores_file" or meta.get("family") in (None, "scores_file"):
        return row["attack"]
    return meta["family"]


def _value(metric: dict | None) -> float:
    value = (metric or {}).get("value")
    return -np.inf if value is None else float(value)


def _frames_key(row: dict) -> tuple:
    return (row["n_frames"] is None, row["n_frames"] or 0)


def select_on_dev(candidates: Sequence[dict], metric: str) -> dict:
    """The dev row with the best `metric` (ties: dev AUC, then attack, slice, level, frames)."""
    if not candidates:
        raise VidsmeError("no dev-partition candidates to select from")
    return min(candidates, key=lambda r: (-_value(r[metric]), -_value(r["auc"]), r["attack"], r["slice"], r["level"],
                                          *_frames_key(r)))


def dev_selected(rows: Sequence[dict], metric: str = "auc") -> tuple[dict, dict, int]:
    """(dev row chosen, its test twin, number of dev candidates) among `rows`, one method's candidates
    of one target on both partitions, by `select_on_dev` (used by vidsme.study on subsets of a family,
    or across families, e.g. every non-Vid-SME attack on the video slice)."""
    dev = [r for r in rows if r.get("partition") == PARTITION_SELECT]
    chosen = select_on_dev(dev, metric)
    ident = (chosen["target"], chosen["attack"], chosen["slice"], chosen["level"], chosen["n_frames"])
    test = [r for r in rows if r.get("partition") == PARTITION_REPORT and
            (r["target"], r["attack"], r["slice"], r["level"], r["n_frames"]) == ident]
    if len(test) != 1:
        raise VidsmeError(f"target {chosen['target']!r}: {len(test)} test rows for the dev-selected configuration "
                          f"{ident[1:]}; rerun `vidsme benchmark SUITE`")
    return chosen, test[0], len(dev)


def paired_test_difference(a: dict, b: dict, results_dir: Path, *, n_bootstrap: int, seed: int,
                           metric: str = "auc") -> dict:
    """{value, ci_low, ci_high} of test-row `a` minus test-row `b` (same target) in `metric`, by the
    paired bootstrap of the verdicts (the same resampled test videos, from the scores CSVs under
    `results_dir`, with the suite's `n_bootstrap` and `seed`)."""
    tables = _ScoreTables(results_dir)
    diff = paired_difference(_replicates(a, tables, n_bootstrap, seed), _replicates(b, tables, n_bootstrap, seed),
                             metric, CONFIDENCE)
    return _metric(diff)


# ----------------------------------------------------------------------------- scores files
class _ScoreTables:
    """Per-sample scores CSVs of a results directory, each read once."""

    def __init__(self, results_dir: Path) -> None:
        self.root = Path(results_dir).resolve()
        self._tables: dict[str, tuple[list[str], list[list[str]]]] = {}

    def test_scores(self, row: dict) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
        """(ids, videos, labels, scores) of the row's test-partition samples."""
        rel, column = row.get("scores_file"), row.get("scores_column")
        where = f"target {row['target']!r}, attack {row['attack']!r}"
        if not rel or not column:
            raise VidsmeError(f"{where}: results.json records no scores file; rerun `vidsme benchmark SUITE`")
        if rel not in self._tables:
            path = (self.root / rel).resolve()
            if not path.is_relative_to(self.root) or not path.is_file():
                raise VidsmeError(f"{where}: scores file {rel} not found under {self.root}; rerun `vidsme benchmark "
                                  "SUITE` (the verdicts are computed from the per-sample scores)")
            with path.open(newline="", encoding="utf-8") as fh:
                rows = list(csv.reader(fh))
            self._tables[rel] = (rows[0], rows[1:]) if rows else ([], [])
        header, rows = self._tables[rel]
        missing = [c for c in ("sample_id", "video", "label", "partition", column) if c not in header]
        if missing:
            raise VidsmeError(f"{where}: scores file {rel} lacks the column(s) {missing}; rerun `vidsme benchmark "
                              "SUITE` with this vidsme")
        i_id, i_video, i_label, i_part, i_score = (header.index(c) for c in
                                                   ("sample_id", "video", "label", "partition", column))
        test = [r for r in rows if r[i_part] == PARTITION_REPORT]
        try:
            return ([r[i_id] for r in test], [r[i_video] for r in test], np.array([int(r[i_label]) for r in test]),
                    np.array([float(r[i_score]) for r in test]))
        except (ValueError, IndexError):
            raise VidsmeError(f"{where}: unreadable values in scores file {rel}; rerun `vidsme benchmark SUITE`") \
                from None


def _replicates(row: dict, tables: _ScoreTables, n_bootstrap: int, seed: int) -> Replicates:
    ids, videos, labels, scores = tables.test_scores(row)
    reps = bootstrap_replicates(scores, labels, direction=row["direction"], attack=row["attack"], sample_ids=ids,
                                n_bootstrap=n_bootstrap, seed=seed, clusters=videos)
    recorded = row["auc"]["value"]
    if not np.isclose(reps.point["auc"], recorded, rtol=0, atol=1e-12):
        raise VidsmeError(f"target {row['target']!r}, attack {row['attack']!r}: its scores file {row['scores_file']} "
                          f"gives test AUC {reps.point['auc']:.6f}, results.json says {recorded:.6f}: the files do "
                          "not belong together; rerun `vidsme benchmark SUITE`")
    return reps


# ----------------------------------------------------------------------------- rank intervals
def rank_intervals(above: Sequence[Sequence[bool]]) -> list[tuple[int, int]]:
    """(first, last) possible rank of each of n entries (in value order), where above[i][j] says entry i is
    significantly above entry j (the CI of their paired difference lies above 0).

    The Chatbot Arena rule: first = 1 + the number of entries significantly above it, last = n - the
    number significantly below it; then tightened along the relation (an entry below one that cannot
    rank better than k cannot rank better than k + 1, and the mirror rule for the last rank) until
    nothing changes. An entry significantly above another therefore always has a smaller first rank:
    their labels never coincide, however small the steps between the entries around them."""
    n = len(above)
    first = [1 + sum(above[j][i] for j in range(n)) for i in range(n)]
    last = [n - sum(above[i][j] for j in range(n)) for i in range(n)]
    changed = True
    while changed:
        changed = False
        for a in range(n):
            for b in range(n):
                if above[a][b] and first[b] < first[a] + 1:
                    first[b], changed = first[a] + 1, True
                if above[a][b] and last[a] > last[b] - 1:
                    last[a], changed = last[b] - 1, True
    return list(zip(first, last))


def band_label(band: tuple[int, int]) -> str:
    """(1, 3) -> "1–3", (2, 2) -> "2"."""
    return str(band[0]) if band[0] == band[1] else f"{band[0]}–{band[1]}"


def _metric(m: MetricValue) -> dict:
    return {"value": m.value, "ci_low": m.ci_low, "ci_high": m.ci_high}


# ----------------------------------------------------------------------------- per target
def _n_videos(target: dict, side: str) -> dict:
    return ((target.get("partition") or {}).get(side) or {}).get("videos") or {}


def _fixed_entries(name: str, methods: dict[str, list[dict]], attacks: dict, primary: str) -> list[dict]:
    """Entries of a test-only target (a sealed challenge): every method holds exactly one test row, a
    configuration chosen beforehand on another suite's dev partition (recorded in the row's `selection`)."""
    entries = []
    for method, method_rows in sorted(methods.items()):
        test = [r for r in method_rows if r.get("partition") == PARTITION_REPORT]
        if method == BLIND_METHOD:  # its own reference, at the video unit (the challenge keeps one kind of it)
            test = [min(test, key=lambda r: (r["level"] == "row", r["attack"]))] if test else []
        if len(test) != 1:
            raise VidsmeError(f"target {name!r} is test-only, so method {method!r} needs one fixed configuration; "
                              f"results.json holds {len(test)}")
        chosen = test[0]
        selection = chosen.get("selection") or {}
        entry = _entry(method, chosen, chosen, attacks, int(selection.get("n_candidates", 1)), "auc", primary)
        entry["dev"] = selection.get("dev") or {}
        entry["selected_on"] = selection.get("on", "fixed by the entry")
        entries.append(entry)
    return entries


def target_verdict(target: dict, rows: Sequence[dict], attacks: dict, tables: _ScoreTables, *, declared: str,
                   n_bootstrap: int, seed: int, min_false_positives: int) -> dict:
    """The verdict record of one target (see the module docstring). A test-only target (a sealed
    challenge) has no dev partition: each method's configuration was fixed beforehand."""
    name = target["name"]
    test_only = bool((target.get("partition") or {}).get("test_only"))
    n_test = _n_videos(target, PARTITION_REPORT)
    n_dev = {} if test_only else _n_videos(target, PARTITION_SELECT)
    if not n_test or not (n_dev or test_only):
        raise VidsmeError(f"target {name!r} in results.json records no dev/test partition; rerun `vidsme benchmark "
                          "SUITE` with this vidsme")
    primary, why = resolve_primary(declared, int(n_test.get("nonmember", 0)), min_false_positives)
    if test_only:
        selection, selection_why = None, "none: test-only; configurations were fixed on the public suite's dev partition"
    else:
        selection, selection_why = resolve_primary(primary, int(n_dev.get("nonmember", 0)), min_false_positives)
    methods: dict[str, list[dict]] = {}
    for row in rows:
        if row["target"] == name:
            methods.setdefault(method_of(row, attacks), []).append(row)
    entries = _fixed_entries(name, methods, attacks, primary) if test_only else []
    for method, method_rows in sorted(methods.items()) if not test_only else ():
        dev = [r for r in method_rows if r.get("partition") == PARTITION_SELECT]
        if method == BLIND_METHOD:  # at the video unit; dev chooses metadata, text or both, like any variant
            dev = [r for r in dev if r["level"] != "row"]
        if not dev:
            continue
        chosen = select_on_dev(dev, selection)
        ident = (chosen["attack"], chosen["slice"], chosen["level"], chosen["n_frames"])
        test = [r for r in method_rows if r.get("partition") == PARTITION_REPORT and
                (r["attack"], r["slice"], r["level"], r["n_frames"]) == ident]
        if len(test) != 1:
            raise VidsmeError(f"target {name!r}: method {method!r} has {len(test)} test rows for its dev-selected "
                              f"configuration {ident}; rerun `vidsme benchmark SUITE`")
        entries.append(_entry(method, chosen, test[0], attacks, len(dev), selection, primary))
    reps = {e["method"]: _replicates(e["_row"], tables, n_bootstrap, seed) for e in entries}
    entries.sort(key=lambda e: (-_value(e[primary]), e["method"]))
    diffs = {(a["method"], b["method"]): paired_difference(reps[a["method"]], reps[b["method"]], primary, CONFIDENCE)
             for a in entries for b in entries if a is not b}
    above = [[a is not b and bool(diffs[(a["method"], b["method"])].ci_low > 0) for b in entries] for a in entries]
    adjacent = []
    for a, b in zip(entries, entries[1:]):
        diff = diffs[(a["method"], b["method"])]
        adjacent.append({"higher": a["method"], "lower": b["method"], "difference": _metric(diff),
                         "distinguishable": bool(diff.ci_low > 0 or diff.ci_high < 0)})
    blind = reps.get(BLIND_METHOD)
    for position, (entry, band) in enumerate(zip(entries, rank_intervals(above)), start=1):
        entry.update(rank=position, band=list(band), rank_band=band_label(band))
        if blind is None or entry["method"] == BLIND_METHOD:
            entry.update(vs_blind=None, above_blind=None, flag=None)
            continue
        diff = paired_difference(reps[entry["method"]], blind, primary, CONFIDENCE)
        above = bool(diff.ci_low > 0)
        entry.update(vs_blind=_metric(diff), above_blind=above, flag=None if above else NOT_ABOVE_BLIND)
    for entry in entries:
        del entry["_row"]
    ceiling = None if test_only else _ceiling(entries, selection)
    for entry in entries:
        entry["ceiling"] = entry["method"] == ceiling
    return {"target": name, "primary_metric": primary, "declared_metric": declared, "why": why,
            "selection_metric": selection, "selection_why": selection_why,
            "partition": {"selected_on": "public dev (fixed beforehand)" if test_only else PARTITION_SELECT,
                          "reported_on": PARTITION_REPORT, "test_only": test_only,
                          "videos": {PARTITION_SELECT: n_dev, PARTITION_REPORT: n_test}},
            "has_blind_baseline": blind is not None, "entries": entries, "adjacent": adjacent,
            "ceiling": None if ceiling is None else {"method": ceiling, "selected_on": PARTITION_SELECT,
                                                     "why": CEILING_WHY.format(metric=METRIC_LABELS[selection])}}


def _ceiling(entries: Sequence[dict], selection: str) -> str | None:
    """The strongest method, chosen on DEV: the highest dev selection metric of every non-blind entry (ties:
    dev AUC, then name). Its test number is what the leaderboard reports; no test number chose it."""
    contenders = [e for e in entries if not e["blind"]]
    if not contenders:
        return None
    return min(contenders, key=lambda e: (-_value(e["dev"].get(selection)), -_value(e["dev"].get("auc")),
                                          e["method"]))["method"]


def _entry(method: str, chosen: dict, test: dict, attacks: dict, n_candidates: int, selection: str,
           primary: str) -> dict:
    meta = attacks.get(test["attack"]) or {}
    entry = {
        "method": method,
        "kind": test["kind"],
        "blind": test["kind"] == "blind",
        "submitted": (test["kind"] == "scores_file" or "submission" in meta
                      or "submission" in (test.get("calibration") or {})),
        "attack": test["attack"],
        "slice": test["slice"],
        "level": test["level"],
        "n_frames": test["n_frames"],
        "direction": test["direction"],
        "partition": PARTITION_REPORT,
        "selected_on": PARTITION_SELECT,
        "n_candidates": n_candidates,
        "dev": {selection: chosen[selection], "auc": chosen["auc"]},
        "primary_metric": primary,
        "n_members": test["n_members"],
        "n_nonmembers": test["n_nonmembers"],
        "scores_file": test.get("scores_file"),
        "scores_column": test.get("scores_column"),
        "calibration": test.get("calibration"),
        "_row": test,
    }
    for key in ("auc", "balanced_accuracy", *(tpr_key(lv) for lv in DEFAULT_FPR_LEVELS)):
        if key in test:
            entry[key] = test[key]
    return entry


def compute_verdicts(results: dict, results_dir: Path) -> dict:
    """The `verdicts` section of results.json, from its rows and the per-sample scores under
    `results_dir` (see the module docstring)."""
    config = results["suite"].get("config") or {}
    declared = str(config.get("primary_metric", "tpr@1%fpr"))
    n_bootstrap, seed = int(config.get("n_bootstrap", 1000)), int(config.get("seed", 0))
    min_fp = int(config.get("min_false_positives", DEFAULT_MIN_FALSE_POSITIVES))
    tables = _ScoreTables(results_dir)
    attacks = results.get("attacks") or {}
    targets = [target_verdict(t, results["rows"], attacks, tables, declared=declared, n_bootstrap=n_bootstrap,
                              seed=seed, min_false_positives=min_fp) for t in results["targets"]]
    test_only = bool(targets) and all(v["partition"]["test_only"] for v in targets)
    return {"version": VERDICTS_VERSION, "protocol": PROTOCOL_TEST_ONLY if test_only else PROTOCOL,
            "confidence": CONFIDENCE, "n_bootstrap": n_bootstrap,
            "seed": seed, "min_false_positives": min_fp, "declared_metric": declared, "targets": targets}


__all__ = ["BLIND_METHOD", "METRIC_LABELS", "NOT_ABOVE_BLIND", "PRIMARY_METRICS", "PROTOCOL", "band_label", "compute_verdicts",
           "dev_selected", "method_of", "paired_test_difference", "rank_intervals", "resolve_primary", "select_on_dev",
           "target_verdict"]
