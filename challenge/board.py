"""The sealed challenge's leaderboard: `vidsme challenge evaluate DIR` and `vidsme submit FILE --challenge DIR`.

A challenge (vidsme.challenge.build) is test-only: its labels never leave DIR/private, so
nothing can be tuned on it. Its development set is the public suite (`make demo`'s results):
every method enters with the configuration the public leaderboard chose for it on the public
dev partition —

  * a built-in family at the (attack, slice, frame count, level) of its public verdict entry for
    the target of the same name (mcqa-full, oeqa-lora, caption-projector);
  * a submitted family at the configuration its own public submission was given there: the file
    must be on the public results (same sha256), submitted sandboxed; it then runs in the sandbox
    again, once, on the challenge's features at exactly those configurations.

Nothing is chosen on the challenge. Results (with per-sample scores and labels) are written to
DIR/private/results/results.json; the leaderboard to DIR/public/leaderboard.{json,md,html}.
Scores-file submissions and --no-sandbox runs cannot enter a challenge.
"""
from __future__ import annotations

import contextlib
import datetime
import json
from pathlib import Path

import numpy as np

from vidsme import __version__
from vidsme.atomic import write_json_atomic
from vidsme.benchmark.results_schema import RESULTS_FILE, SCHEMA_VERSION
from vidsme.benchmark.submissions.common import SubmissionRefused, SubmissionResult, locked, owner_of
from vidsme.challenge.feedback import reset_feedback, update_feedback, write_public_board
from vidsme.errors import VidsmeError
from vidsme.provenance import sha256_file
from vidsme.text_formats import one_line

RESULTS_SUBDIR = "results"


def _paths(out: Path):
    from vidsme.challenge.build import ChallengePaths

    paths = ChallengePaths(Path(out))
    if not (paths.private / "suite.yaml").is_file():
        raise VidsmeError(f"{paths.private / 'suite.yaml'} not found: {out} is not a built challenge; run "
                          "`vidsme challenge build --secret FILE --out DIR` first (on the machine that holds private/)")
    return paths


def _dev_verdicts(dev_results: Path) -> tuple[dict, dict[str, dict], str]:
    """(dev results, their verdicts by target name, results.json sha256)."""
    from vidsme.benchmark.results_schema import load_results

    results = load_results(dev_results)
    sha = sha256_file(Path(dev_results) / RESULTS_FILE)
    return results, {v["target"]: v for v in results["verdicts"]["targets"]}, sha


def _selection(entry: dict, dev_results: Path, sha: str) -> dict:
    """What a challenge row records about where its configuration was fixed."""
    return {"on": f"public dev partition ({dev_results})", "dev_results_sha256": sha,
            "n_candidates": entry["n_candidates"], "dev": entry["dev"], "method": entry["method"]}


def _dev_verdict_of(verdicts: dict[str, dict], name: str, dev_results: Path) -> dict:
    if name not in verdicts:
        raise VidsmeError(f"the public results {dev_results} have no target {name!r} (they hold "
                          f"{', '.join(verdicts) or 'none'}): a challenge's targets take their configurations from "
                          "the public target of the same name; run `make demo` (or pass --dev-results)")
    return verdicts[name]


def evaluate_challenge(out: Path, dev_results: Path, *, progress: bool = True,
                       command: str | None = None) -> dict[str, Path]:
    """Evaluate every built-in family of the public suite on a built challenge at its configuration
    fixed on the public dev partition, with the challenge's own blind baseline; write the private
    results and the public leaderboard. Returns the leaderboard files. `command`: the command line
    recorded in the results' provenance (default: the equivalent `vidsme challenge evaluate` line)."""
    from vidsme.attack.registry import get_attack
    from vidsme.paths import using_splits_dir
    from vidsme.benchmark.config import SuiteConfig
    from vidsme.benchmark.evaluate import evaluate_level_scores, slice_inputs
    from vidsme.benchmark.extract import World
    from vidsme.benchmark.leaderboard import write_leaderboard
    from vidsme.benchmark.suite import (
        Exclusions,
        target_split_rows,
        target_video_root,
        blind_rows,
        eval_set,
        extract_features,
        load_target_models,
        metric_row,
        scores_path,
        target_entry,
        write_scores_csv,
    )
    from vidsme.benchmark.verdicts import compute_verdicts
    from vidsme.config import config_hash, config_to_dict, load_config
    from vidsme.provenance import git_commit, library_versions

    paths = _paths(out)
    dev_results = Path(dev_results)
    dev, verdicts, dev_sha = _dev_verdicts(dev_results)
    cfg = load_config(SuiteConfig, paths.private / "suite.yaml")
    results_dir = paths.private / RESULTS_SUBDIR
    commit = git_commit()
    targets, rows, attacks = [], [], {}
    with using_splits_dir(paths.splits):
        for t in cfg.targets:
            verdict = _dev_verdict_of(verdicts, t.name, dev_results)
            # calibrated methods (lira, rmia) need shadow models of the challenge's own targets, which a build
            # does not train: they stay on the public board
            chosen = [e for e in verdict["entries"] if not e["blind"] and not e["submitted"]
                      and e.get("kind") != "calibrated"]
            split, split_rows = target_split_rows(t)
            if not split.test_only:
                raise VidsmeError(f"challenge split {split.name} is not test-only; rebuild the challenge")
            video_root = target_video_root(t, split)
            samples = eval_set(split, split_rows)
            models = load_target_models(t, cfg)
            entry = target_entry(t, split, split_rows, samples, video_root, t.template or cfg.template, models,
                                 Exclusions())
            columns: dict[tuple[int, str], dict[str, np.ndarray]] = {}
            for n_frames in cfg.frame_counts:  # every cache is recorded: submissions may need any frame count
                cache, _, written = extract_features(t, cfg, models, split, split_rows, video_root, n_frames,
                                                     world=World(), progress=progress)
                if written:
                    print(f"note: {written} batch(es) of {t.name} at {n_frames} frames were missing from the "
                          "challenge's cache and were extracted now")
                entry["caches"][str(n_frames)] = str(cache.folder.resolve())
                cached = cache.read(samples.ids)
                for e in (e for e in chosen if e["n_frames"] == n_frames):
                    spec = get_attack(e["attack"])
                    attacks[spec.name] = spec.describe()
                    view = samples.views[e["level"]]
                    level_scores = samples.at_level(spec.score(slice_inputs(cached, e["slice"])), e["level"])
                    ev = evaluate_level_scores(level_scores, view, "test", direction=spec.direction.value,
                                               attack=spec.name, n_bootstrap=cfg.n_bootstrap, seed=cfg.seed,
                                               min_false_positives=cfg.min_false_positives)
                    column = f"{e['slice']}/{spec.name}"
                    row = metric_row(t.name, spec.describe(), "reproduced", e["slice"], e["level"], n_frames, "test",
                                     ev, scores_path(t.name, n_frames, e["level"]), column, commit)
                    row["selection"] = _selection(e, dev_results, dev_sha)
                    rows.append(row)
                    columns.setdefault((n_frames, e["level"]), {})[column] = level_scores
            for (n_frames, level), cols in columns.items():
                write_scores_csv(results_dir / scores_path(t.name, n_frames, level), samples.views[level], cols)
            # the blind baseline too enters at the kind (metadata, text, both) the public dev partition chose
            candidates = blind_rows(t.name, split_rows, samples, video_root, cfg, results_dir, commit)
            public_blind = next((e["attack"] for e in verdict["entries"] if e["blind"]), None)
            if public_blind not in {r["attack"] for r in candidates}:  # public results of an older vidsme
                public_blind = "blind_metadata"
            blind = [r for r in candidates if r["attack"] == public_blind]
            for row in blind:
                row["selection"] = {"on": "none: the challenge split's own out-of-fold blind classifier",
                                    "n_candidates": 1, "dev": {}, "method": "blind baseline"}
            rows += blind
            targets.append(entry)
    results = {
        "schema_version": SCHEMA_VERSION,
        "suite": {"name": f"challenge {paths.root.name}", "config": config_to_dict(cfg), "config_hash": config_hash(cfg)},
        "provenance": {"git_commit": commit, "vidsme": __version__, "libraries": library_versions(),
                       "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "command": command or f"vidsme challenge evaluate {out} --dev-results {dev_results}", "world_size": 1,
                       "fingerprint": None},
        "challenge": {"test_only": True, "dev_results": str(dev_results), "dev_results_sha256": dev_sha,
                      "dev_suite": dev["suite"].get("name")},
        "attacks": attacks,
        "targets": targets,
        "rows": rows,
        "skipped": [],
    }
    previous = results_dir / RESULTS_FILE
    if previous.is_file() and json.loads(previous.read_text(encoding="utf-8")).get("submissions"):
        print(f"note: {previous} is rewritten; its submissions are not carried over: submit them again with "
              f"`vidsme submit FILE --challenge {out}`")
    results_dir.mkdir(parents=True, exist_ok=True)
    results["verdicts"] = compute_verdicts(results, results_dir)
    write_json_atomic(results_dir / RESULTS_FILE, results)
    write_leaderboard(results_dir)  # the final part's ranks: private until the reveal publishes them
    reset_feedback(results_dir)
    update_feedback(results_dir, results, submitters=_submitters(results))
    return write_public_board(results_dir, paths.public, paths.root.name)


def _submitters(results: dict) -> dict[str, str]:
    """Submitted method (family) -> its submitter on a challenge's results."""
    return {meta["family"]: owner_of(meta) for meta in (results.get("attacks") or {}).values()
            if isinstance(meta, dict) and "family" in meta and owner_of(meta)}


def fixed_configurations(out: Path, source_sha256: str, submitter: str) -> tuple[dict[str, dict[tuple, dict]], Path]:
    """Per challenge target, the configurations a submitted file was given on the public dev partition:
    {target: {(attack, slice, n_frames, level): selection record}}, and the challenge's results dir.

    The file must be on the public results the challenge was evaluated against, with the same sha256,
    submitted there by the same submitter, and it must have run sandboxed there.
    """
    paths = _paths(out)
    results_dir = paths.private / RESULTS_SUBDIR
    if not (results_dir / RESULTS_FILE).is_file():
        raise VidsmeError(f"{results_dir / RESULTS_FILE} not found: run `vidsme challenge evaluate {out}` first")
    challenge = json.loads((results_dir / RESULTS_FILE).read_text(encoding="utf-8")).get("challenge") or {}
    dev_results = Path(challenge.get("dev_results", ""))
    dev, verdicts, sha = _dev_verdicts(dev_results)
    mine = {name: meta for name, meta in (dev.get("attacks") or {}).items()
            if isinstance(meta, dict) and (meta.get("submission") or {}).get("file_sha256") == source_sha256}
    if not mine:
        raise VidsmeError(f"this file (sha256 {source_sha256[:12]}...) is not on the public results {dev_results}: "
                          f"a challenge entry's configuration is chosen on the public dev partition first — run "
                          f"`vidsme submit FILE --results {dev_results}` (sandboxed), then submit it to the challenge")
    others = sorted(n for n, m in mine.items() if owner_of(m) != submitter)
    if others:
        raise VidsmeError(f"{', '.join(others)}: on the public results as another submitter's, not {submitter!r}'s: "
                          "a challenge entry is its public entry's submitter's")
    unsandboxed = sorted(n for n, m in mine.items() if m["submission"].get("sandboxed") is not True)
    if unsandboxed:
        raise VidsmeError(f"{', '.join(unsandboxed)}: on the public results without the sandboxed flag (--no-sandbox "
                          "or an older vidsme); submit it there again sandboxed, then to the challenge")
    families = {m["family"] for m in mine.values()}
    fixed: dict[str, dict[tuple, dict]] = {}
    for name, verdict in verdicts.items():
        for e in verdict["entries"]:
            if e["method"] in families and e["attack"] in mine:
                fixed.setdefault(name, {})[(e["attack"], e["slice"], e["n_frames"], e["level"])] = \
                    _selection(e, dev_results, sha)
    if not fixed:
        raise VidsmeError(f"the public verdicts of {dev_results} hold no entry of {', '.join(sorted(families))}; "
                          "resubmit it there")
    return fixed, results_dir


ATTEMPTS_FILE = "attempts.json"  # private/results/: every challenge submission that ran, and how it ended
COUNTED = ("running", "refused", "error")  # attempts that count toward the limit beyond results.json's own


def _attempts(results_dir: Path) -> list[dict]:
    path = Path(results_dir) / ATTEMPTS_FILE
    return json.loads(path.read_text(encoding="utf-8"))["attempts"] if path.is_file() else []


def _record_attempt(results_dir: Path, record: dict, *, lock: bool = True) -> int:
    """Add (or, with its "n", update) one attempt in private/results/attempts.json; its number. `lock=False`:
    the caller holds the results folder's lock."""
    with locked(results_dir) if lock else contextlib.nullcontext():
        attempts = _attempts(results_dir)
        if "n" not in record:
            record = {**record, "n": len(attempts)}
            attempts.append(record)
        else:
            attempts[record["n"]] = record
        write_json_atomic(Path(results_dir) / ATTEMPTS_FILE, {"version": 1, "attempts": attempts})
    return record["n"]


def _used(results_dir: Path, results: dict, submitter: str) -> int:
    """How many of the round's submissions `submitter` has used: those on the results, and every other one that
    reached the sandbox (refused, failed, or still running when it was stopped)."""
    done = [s for s in results.get("submissions") or [] if s.get("submitter") == submitter
            and s.get("status") in ("added", "replaced")]
    other = [a for a in _attempts(results_dir) if a.get("submitter") == submitter and a.get("status") in COUNTED
             and a.get("evaluation") == _evaluation(results)]
    return len(done) + len(other)


def _evaluation(results: dict) -> str | None:
    """Which `vidsme challenge evaluate` the results are (a rerun starts the round's submissions anew)."""
    return (results.get("provenance") or {}).get("created")


def submit_to_challenge(source: str, out: Path, *, submitter: str | None, key: str, time_budget_s: float,
                        command: str | None = None, limits=None):
    """`vidsme submit FILE --challenge DIR`: the file's public dev-chosen configurations, run sandboxed
    once on the challenge's features; rows go to the private results, the leaderboard to public/.
    `submitter` must be one of the challenge's (private/submitters.json), with its `key`.

    Every submission that reaches the sandbox counts toward the round's limit, refused or not, and a refusal
    says only which check failed: its reason (which may quote what the attack wrote, e.g. an exception
    message built from the challenge's texts or scores) stays in private/results/attempts.json."""
    from vidsme.paths import using_splits_dir
    from vidsme.benchmark.submissions.attack_code import submit_attack
    from vidsme.benchmark.submissions.common import utc_now
    from vidsme.benchmark.submissions.sandbox import detect_isolation, no_isolation_message
    from vidsme.benchmark.submissions.submitters import authenticate

    path = Path(source)
    if not path.is_file():
        raise VidsmeError(f"{source}: a challenge takes a submitted .py file (the one already on the public results)")
    paths = _paths(out)
    submitter = authenticate(paths.private, submitter, key)
    sha = sha256_file(path)
    fixed, results_dir = fixed_configurations(out, sha, submitter)
    rules = _read_rules(paths)
    families = {key[0] for chosen in fixed.values() for key in chosen}
    if len(families) > rules["families_per_file"]:
        raise SubmissionRefused("declaration", f"the file enters {len(families)} attacks here; a file may enter at "
                                               f"most {rules['families_per_file']} per round")
    if detect_isolation() is None:  # the host's machine, not the submission: refused before anything counts
        raise SubmissionRefused("sandbox", no_isolation_message())
    limit = rules["submissions_per_submitter"]
    with locked(results_dir):  # count and record in one step: concurrent submissions cannot all pass the limit
        evaluated = json.loads((results_dir / RESULTS_FILE).read_text(encoding="utf-8"))
        used = _used(results_dir, evaluated, submitter)
        if used >= limit:
            raise SubmissionRefused("submitter", f"submitter {submitter!r} has made {used} submission(s) to this "
                                                 f"round, its limit ({limit})")
        attempt = {"submitter": submitter, "file_sha256": sha, "status": "running", "started": utc_now(),
                   "evaluation": _evaluation(evaluated)}
        attempt["n"] = _record_attempt(results_dir, attempt, lock=False)
    try:
        with using_splits_dir(paths.splits):
            result = submit_attack(source, results_dir, submitter=submitter, time_budget_s=time_budget_s,
                                   command=command, sandbox=True, limits=limits, fixed=fixed)
    except SubmissionRefused as err:
        _record_attempt(results_dir, {**attempt, "status": "refused", "check": err.check, "why": err.why,
                                      "ended": utc_now()})
        raise SubmissionRefused(err.check, f"on a challenge a refusal names only the check that failed: its reason "
                                           "stays with the organiser until the reveal (what an attack writes must "
                                           "not carry the challenge's data out); this submission counts toward your "
                                           f"limit ({used + 1} of {limit} used). Check the file on the public "
                                           "results, which say why") from None
    except Exception as err:  # whatever else stopped it may quote the attack's output too: kept private
        _record_attempt(results_dir, {**attempt, "status": "error", "why": f"{type(err).__name__}: {err}",
                                      "ended": utc_now()})
        raise SubmissionRefused("evaluation", "the submission stopped on the challenge's data; the reason stays with "
                                              "the organiser until the reveal; this submission counts toward your "
                                              f"limit ({used + 1} of {limit} used)") from None
    except BaseException:
        _record_attempt(results_dir, {**attempt, "status": "error", "why": "interrupted", "ended": utc_now()})
        raise
    _record_attempt(results_dir, {**attempt, "status": result.status, "ended": utc_now()})
    results = json.loads((results_dir / RESULTS_FILE).read_text(encoding="utf-8"))
    added = update_feedback(results_dir, results, submitters=_submitters(results))
    board = write_public_board(results_dir, paths.public, paths.root.name)
    # what the submitter sees is what the public sees: no final-part number, rank or curve
    lines = [f"  feedback {one_line(e['target'])}: {one_line(e['method'])} "
             + (f"{e['metric']} {e['released']:.2f} (feedback part, rounded)" if e["released"] is not None
                else "no improvement over your best released number by more than the resolution") for e in added]
    return SubmissionResult(result.status, result.attacks, "\n".join([result.message, *lines]), [], board, [],
                            result.sandboxed, result.isolation)


def _read_rules(paths) -> dict:
    """The round's limits, as the build recorded them (defaults for a round built before limits existed)."""
    record = json.loads((paths.private / "challenge.json").read_text(encoding="utf-8"))
    limits = (record.get("settings") or {}).get("limits") or {}
    return {"submissions_per_submitter": int(limits.get("submissions_per_submitter", 3)),
            "families_per_file": int(limits.get("families_per_file", 2))}


__all__ = ["evaluate_challenge", "fixed_configurations", "submit_to_challenge"]
