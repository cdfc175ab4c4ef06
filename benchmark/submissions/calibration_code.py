"""Submitted code through the suite's shadow models: submitted calibrations, and submitted signals calibrated.

A file given to `vidsme submit` may register calibrations (`@register_calibration` from
vidsme.attack.calibration) beside or instead of attacks. Where the suite's targets have shadow sets
(`targets[].shadows`), this module
  * runs every submitted calibration, in the same sandboxed child as the attacks, on every signal the
    suite calibrates (`calibration_signals`) and on every submitted signal: the child receives arrays
    only — the signal under the target and each shadow, the inclusion bits, the population's — with
    the samples (and the population) shuffled independently in each of two copies, and no id at all;
  * scores every submitted attack (a signal) in its sandbox under every shadow model and on the
    population, as it was scored under the target, and hands it to the suite's own calibrations
    (LiRA, RMIA) too.
The results are checked as attack scores are (finite, bit-identical on the shuffled copy, not constant
on a target, within the time budget), evaluated by the suite's evaluation, and added as rows of kind
"calibrated": a submitted calibration is a method of its own (its family), a suite calibration over a
submitted signal is the method "<calibration family>+<signal family>" (e.g. "lira+mine"), so a
submission never moves the suite's own lira and rmia entries. Dev chooses, test reports, as everywhere.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidsme.attack.calibration import SETTINGS, CalibrationSpec, get_calibration, list_calibrations
from vidsme.attack.registry import AttackSpec, get_attack
from vidsme.benchmark.calibrated import (
    CalibrationCase,
    CalibrationSetup,
    calibration_cases,
    calibration_caches_of,
    calibration_setup,
    evaluate_calibrated,
    score_in_process,
)
from vidsme.benchmark.config import SuiteConfig
from vidsme.benchmark.evaluate import LevelView
from vidsme.benchmark.submissions.common import (
    CALIBRATED_DIR,
    SUBMISSIONS_DIR,
    SubmissionRefused,
    evaluated_samples,
    open_feature_cache,
    owner_of,
)
from vidsme.benchmark.submissions.scorer import SandboxScorer, one_line
from vidsme.benchmark.suite import STATS_SUBDIR, metric_row, read_target_card, target_split_rows
from vidsme.config import config_from_dict
from vidsme.errors import VidsmeError

MAX_CALIBRATIONS = 64  # per code submission: bounds the sandbox's CPU-time limit
_TEXT_FIELDS = ("name", "family", "setting", "citation", "summary", "source")


def _in_the_sandbox(inputs):  # the stand-in of a sandboxed calibration's declaration
    raise VidsmeError("a sandboxed submission's calibration runs only inside its sandbox")


def declared_calibrations(items: object) -> list[CalibrationSpec]:
    """CalibrationSpecs from the declarations the sandbox reported, checked here again as register_calibration
    would (nothing the sandbox says is trusted); they run in the sandbox only."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise SubmissionRefused("sandbox", "the sandboxed process reported malformed calibration declarations")
    if len(items) > MAX_CALIBRATIONS:
        raise SubmissionRefused("declaration", f"the source registers {len(items)} calibrations; at most "
                                               f"{MAX_CALIBRATIONS} per submission: split them over several submissions")
    registered = {c.name: c for c in list_calibrations()}
    specs: list[CalibrationSpec] = []
    for item in items:
        counts = [item.get(k) for k in ("min_in", "min_out", "version")] if isinstance(item, dict) else []
        if not (isinstance(item, dict) and all(isinstance(item.get(k), str) for k in _TEXT_FIELDS)
                and all(isinstance(v, int) and not isinstance(v, bool) for v in counts)
                and isinstance(item.get("needs_population"), bool) and isinstance(item.get("params"), dict)):
            raise SubmissionRefused("sandbox", f"the sandboxed process reported a malformed calibration declaration: "
                                               f"{one_line(item, 300)}")
        name = item["name"]
        if item["setting"] not in SETTINGS or item["min_in"] < 0 or item["min_out"] < 0 or (
                item["setting"] == "offline" and item["min_in"] > 0):
            raise SubmissionRefused("declaration", f"calibration {name!r}: setting must be one of {SETTINGS}, min_in and "
                                                   "min_out >= 0, and an offline calibration sees no IN shadows "
                                                   "(min_in=0)")
        clash = registered.get(name) or next((s for s in specs if s.name == name), None)
        if clash is not None:
            raise SubmissionRefused("name", f"calibration name {name!r} is already registered by {clash.source}; "
                                            "rename yours")
        specs.append(CalibrationSpec(name=name, family=item["family"], fn=_in_the_sandbox, setting=item["setting"],
                                     min_in=item["min_in"], min_out=item["min_out"],
                                     needs_population=item["needs_population"], params=dict(item["params"]),
                                     citation=item["citation"], summary=item["summary"], version=item["version"],
                                     source=item["source"]))
    return specs


def check_calibrations(specs: Sequence[CalibrationSpec], attack_names: set[str], results: dict,
                       submitter: str) -> dict[str, dict | None]:
    """Citation and name rules of submitted calibrations (their spelling and ownership: namespace.check_claims);
    each one's earlier record by the same submitter (to be replaced), or None."""
    previous: dict[str, dict | None] = {}
    recorded = results.get("calibrations") or {}
    for spec in specs:
        name = spec.name
        if not spec.citation.strip():
            raise SubmissionRefused("declaration", f"calibration {name!r} has an empty citation: say which paper (and "
                                                   "equation) it implements, or describe it if it is new")
        if name in attack_names or name in (results.get("attacks") or {}):
            raise SubmissionRefused("name", f"calibration name {name!r} is also an attack's name; choose another")
        before = recorded.get(name)
        if before is not None and owner_of(before) != submitter:
            raise SubmissionRefused("name", f"calibration name {name!r} belongs to "
                                            f"{'submitter ' + repr(owner_of(before)) if owner_of(before) else 'the suite'}"
                                            "; choose another")
        previous[name] = before
    return previous


def calibrated_names(attack_metas: Mapping[str, dict], calibration_metas: Mapping[str, dict], results: dict
                     ) -> list[str]:
    """The names a submission's calibrated rows would carry: `<calibration>(<signal>)` for every submitted
    calibration over the suite's calibration signals and the submitted attacks, and for the suite's
    calibrations over the submitted attacks, whose methods are `<calibration family>+<family>`."""
    config = (results.get("suite") or {}).get("config") or {}
    signals = [*(config.get("calibration_signals") or []), *attack_metas]
    suite = [c for c in list_calibrations() if c.name not in calibration_metas]
    names = [f"{c}({s})" for c in calibration_metas for s in signals]
    names += [f"{c.name}({a})" for c in suite for a in attack_metas]
    names += sorted({f"{c.family}+{m['family']}" for c in suite for m in attack_metas.values()})
    return names


def calibrated_by(row: dict, names: set[str]) -> bool:
    """Whether a results.json row is a calibrated row of a submitted calibration or signal named in `names`
    (what a resubmission of them replaces)."""
    record = row.get("calibration") or {}
    return (row.get("kind") == "calibrated" and isinstance(record, dict) and "submission" in record
            and (record.get("calibration") in names or record.get("signal") in names))


# ----------------------------------------------------------------------------- rebuilding a target's shadows
def suite_config(results: dict) -> SuiteConfig:
    """The suite config results.json recorded."""
    data = (results.get("suite") or {}).get("config")
    if not isinstance(data, dict):
        raise VidsmeError("results.json records no suite config; rerun `vidsme benchmark SUITE` with this vidsme")
    return config_from_dict(SuiteConfig, data, where="results.json suite.config")


def _setup_of(cfg: SuiteConfig, entry: dict) -> CalibrationSetup:
    """The CalibrationSetup of a results.json target, checked to be the shadow sets and population the
    benchmark used."""
    target = next((t for t in cfg.targets if t.name == entry["name"]), None)
    if target is None:
        raise VidsmeError(f"results.json target {entry['name']!r} is not in its recorded suite config; rerun the "
                          "benchmark")
    split, all_rows = target_split_rows(target)
    setup = calibration_setup(target, read_target_card(target.path), split, all_rows)
    if setup is None or setup.describe() != entry["calibration"]:
        raise VidsmeError(f"target {entry['name']!r}: its shadow sets or population on disk are not those the "
                          "benchmark used (retrained or moved since); rerun `vidsme benchmark SUITE`")
    return setup


# ----------------------------------------------------------------------------- calibrating
@dataclass
class CalibratedPending:
    """Rows and scores files of a submission's calibrated methods, computed before anything is written."""

    rows: list[dict] = field(default_factory=list)
    csvs: list[tuple[Path, LevelView, dict[str, np.ndarray]]] = field(default_factory=list)


def _signal_scorer(scorer: SandboxScorer, submitted: set[str], target: str, n_frames: str):
    """Raw signal scores of one model's features: vidsme's signals here, submitted ones in their sandbox."""
    def score(model: str, features, calls: list[tuple[AttackSpec, str]]) -> list[np.ndarray]:
        out: list[np.ndarray | None] = [None] * len(calls)
        mine = [j for j, (spec, _) in enumerate(calls) if spec.name not in submitted]
        theirs = [j for j, (spec, _) in enumerate(calls) if spec.name in submitted]
        for j, scores in zip(mine, score_in_process(model, features, [calls[j] for j in mine])):
            out[j] = scores
        if theirs:
            validated = scorer.run([calls[j] for j in theirs], features, target, n_frames,
                                   model=None if model == "the target" else model)
            for j, (scores, _) in zip(theirs, validated):
                out[j] = scores
        return out

    return score


def calibrate_submission(calibrations: Sequence[CalibrationSpec], signals: Sequence[AttackSpec], metas: dict[str, dict],
                         results: dict, scorer: SandboxScorer, commit: str | None, sandboxed: bool) -> CalibratedPending:
    """Run `calibrations` (submitted) on every calibrated signal, and the suite's calibrations on the submitted
    `signals`, on every target of `results` with shadow sets; `metas` are the submitted records by name."""
    pending = CalibratedPending()
    targets = [e for e in results["targets"] if e.get("calibration")]
    if not targets:
        if calibrations:
            raise SubmissionRefused("features", "no target of this suite has shadow models (targets[].shadows): a "
                                                "calibration has nothing to calibrate; submit it to a suite trained "
                                                "with shadows (`make shadows`, configs/suites/shadows.yaml)")
        return pending
    cfg = suite_config(results)
    suite_calibrations = [get_calibration(n) for n in (results.get("calibrations") or {})
                          if not (results["calibrations"][n] or {}).get("submission")]
    submitted_signals = {s.name for s in signals}
    # the suite's signals matter only to submitted calibrations
    all_signals = ([get_attack(n) for n in cfg.calibration_signals] if calibrations else []) + list(signals)
    ran: set[str] = set()
    why_not: dict[str, str] = {}
    varies: dict[tuple[str, str], bool] = {}
    for entry in targets:
        target = entry["name"]
        setup = _setup_of(cfg, entry)
        samples = evaluated_samples(entry)
        for n_frames, folder in sorted((entry.get("caches") or {}).items(), key=lambda kv: int(kv[0])):
            cache = open_feature_cache(entry, n_frames, folder)
            caches = calibration_caches_of(setup, cache.key, cfg, int(n_frames), features_dir=Path(folder).parent,
                                           stats_dir=Path(cfg.cache_dir) / STATS_SUBDIR, existing=True)
            settings = {c.setting for c in calibrations} | ({c.setting for c in suite_calibrations} if signals else set())
            cases = list(calibration_cases(setup, caches, samples, cache.read(samples.ids), slices=cache.key.slices,
                                           signals=all_signals, settings=settings, target_name=target,
                                           score=_signal_scorer(scorer, submitted_signals, target, n_frames)))
            jobs, sandboxed_calls, local = [], [], []
            for case in cases:
                mine = case.signal.name in submitted_signals
                for cal in [c for c in calibrations if c.setting == case.shadow_set.setting] + (
                        [c for c in suite_calibrations if c.setting == case.shadow_set.setting] if mine else []):
                    why = cal.unusable(case.inputs)
                    if why:
                        why_not.setdefault(cal.name, why)
                        continue
                    unit = (f"target {target!r}, {n_frames} frames, slice {case.slice!r}, signal {case.signal.name!r}, "
                            f"{case.level} level, {case.shadow_set.count} {case.shadow_set.setting} shadows")
                    (sandboxed_calls if cal.fn is _in_the_sandbox else local).append((cal, case, unit))
            scored = scorer.calibrate([(cal, case.inputs, unit) for cal, case, unit in sandboxed_calls])
            scored += [cal.calibrate(case.inputs) for cal, case, _ in local]
            columns: dict[tuple[str, str], dict[str, np.ndarray]] = {}
            records: dict[str, tuple[dict, str]] = {}
            for (cal, case, _), scores in zip(sandboxed_calls + local, scored):
                ran.add(cal.name)
                owner = cal.name if cal.fn is _in_the_sandbox else case.signal.name
                varies[(owner, target)] = varies.get((owner, target), False) or bool(np.ptp(scores) > 0)
                name = f"{cal.name}({case.signal.name})"
                columns.setdefault((owner, case.level), {})[f"{case.slice}/{name}"] = scores
                records[name] = (_row_meta(cal, case, metas), owner)
                jobs += [((name, case.slice, case.level, part), scores, case.view) for part in samples.sides]
            evaluations = evaluate_calibrated(jobs, n_bootstrap=cfg.n_bootstrap, seed=cfg.seed,
                                              min_false_positives=cfg.min_false_positives)
            for (name, slice_name, level, part), ev in evaluations.items():
                meta, owner = records[name]
                rel = _scores_path(target, owner, n_frames, level)
                row = metric_row(target, meta, "calibrated", slice_name, level, int(n_frames), part, ev, rel,
                                 f"{slice_name}/{name}", commit)
                row["provenance"]["sandboxed"] = sandboxed
                row["calibration"] = meta["calibration"]
                pending.rows.append(row)
            for (owner, level), cols in columns.items():
                pending.csvs.append((Path(_scores_path(target, owner, n_frames, level)), samples.views[level], cols))
    constant = sorted(key for key, v in varies.items() if not v)
    if constant:
        owner, target = constant[0]
        raise SubmissionRefused("scores", f"calibrated {owner!r} gives every sample the same score on target "
                                          f"{target!r} (every frame count, slice, signal and level evaluated): a "
                                          "constant carries no membership information, so it is not ranked")
    for cal in calibrations:
        if cal.name not in ran:
            raise SubmissionRefused("features", f"calibration {cal.name!r} ran on no shadow set of this suite: "
                                                f"{why_not.get(cal.name, f'no {cal.setting} shadow set')}")
    return pending


def _row_meta(cal: CalibrationSpec, case: CalibrationCase, metas: dict[str, dict]) -> dict:
    """metric_row's record of a calibrated method, with the calibration record results.json rows carry."""
    submitted_cal = metas.get(cal.name)
    owner = submitted_cal or metas[case.signal.name]
    family = submitted_cal["family"] if submitted_cal else f"{cal.family}+{owner['family']}"
    calibration = {"calibration": cal.name, "signal": case.signal.name, "signal_version": case.signal.version,
                   "shadows": case.shadow_set.describe(), "submission": owner["submission"]}
    return {"name": f"{cal.name}({case.signal.name})", "family": family, "version": cal.version,
            "source": owner["source"], "file_sha256": owner.get("file_sha256"), "calibration": calibration}


def _scores_path(target: str, owner: str, n_frames: str, level: str) -> str:
    return f"scores/{target}/{SUBMISSIONS_DIR}/{CALIBRATED_DIR}/{owner}-f{n_frames}-{level}.csv"


__all__ = ["MAX_CALIBRATIONS", "CalibratedPending", "calibrate_submission", "calibrated_by", "calibrated_names",
           "check_calibrations", "declared_calibrations", "suite_config"]
