"""`vidsme submit FILE`: add attack code to a finished benchmark's leaderboard.

The source is a .py file, a module path or an installed entry-point name (group
`vidsme.attacks`). It always runs in one child process, which sees a copy of the file and the
features the attacks declared (rows shuffled, sample ids opaque) and reports back only
declarations and score vectors, validated here; this process never imports the file. By default
that child is sandboxed (vidsme.benchmark.submissions.sandbox: namespaces, a fresh uid, seccomp,
cgroup, limits); with `sandbox=False` (`--no-sandbox`, local development only) it is a plain
process, and this process — which the attack cannot reach — marks everything it adds "sandboxed":
false. The attacks it registers with `register_attack` are validated, in this order, stopping at
the first failure:

  sandbox       isolation is available (else: how to get it) and the sandboxed process keeps to
                its protocol (this can fail at any step)
  import        the source imports cleanly and registers at least one attack or calibration
  declaration   registration accepted its direction and slices; it cites what it implements
  name          a safe name that clashes with no registered attack and no suite attack
  features      then, for every target x frame count x applicable slice, on the cached features:
                the inputs it needs are in the suite's feature caches
  scores        one finite score per evaluated sample, and not the same score for every sample of a target
  determinism   a second call on fresh inputs gives bit-identical scores (sandboxed: on a copy with
                the samples in another order, mapped back)
  time budget   each call finishes within `time_budget_s` (default 30 s), timed here, and the whole
                submission within the limits' deadline

Only then is it evaluated — from the caches, no model runs — with the suite's own
evaluation (same metrics, bootstrap replicates and seed), its per-sample scores written to
scores/<target>/submissions/<attack>-f<n>-<level>.csv, its rows (kind "reproduced") added to
results.json and the leaderboard regenerated (submission.commit_results: all or nothing).
Submitting again under the same name replaces the earlier rows when the submitted file changed
(sha256) or ran unsandboxed before and runs sandboxed now, and otherwise changes nothing.
Refusals name the opaque ids the attack saw, never a sample id.

Where the suite's targets have shadow models, the attacks are also scored under every shadow and
calibrated, and the calibrations the file registers run too: calibration_code.py. The calls to the
child and the checks on what comes back: scorer.py. Scores files computed elsewhere: scores_file.py.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import importlib.metadata
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidsme import __version__
from vidsme.direction import Direction
from vidsme.attack.inputs import SLICES, check_input_names
from vidsme.attack.isolated import COPIES
from vidsme.attack.calibration import CalibrationSpec
from vidsme.attack.registry import ENTRY_POINT_GROUP, AttackSpec, list_attacks
from vidsme.benchmark.submissions import sandbox as sandboxing
from vidsme.benchmark.evaluate import LevelView, evaluate_slice
from vidsme.benchmark.results_schema import load_results
from vidsme.benchmark.submissions.common import (
    BUILTIN_MODULES,
    SUBMISSIONS_DIR,
    SubmissionRefused,
    SubmissionResult,
    archive,
    commit_results,
    evaluated_samples,
    open_feature_cache,
    read_results_bytes,
    utc_now,
    verdicts_of,
)
from vidsme.benchmark.submissions.calibration_code import (
    CalibratedPending,
    calibrate_submission,
    calibrated_by,
    calibrated_names,
    check_calibrations,
    declared_calibrations,
)
from vidsme.benchmark.submissions.namespace import check_claims, previous_record
from vidsme.benchmark.submissions.scorer import SandboxScorer, last_line, one_line, sandbox_refusal
from vidsme.benchmark.suite import metric_row
from vidsme.errors import MissingFeatureError, VidsmeError
from vidsme.provenance import git_commit
from vidsme.provenance import sha256_file

DEFAULT_TIME_BUDGET_S = 30.0
CODE_CHECKS: tuple[str, ...] = ("sandbox", "import", "declaration", "name", "features", "scores", "determinism",
                                "time budget")
_USER_MODULES = "vidsme_user_attacks."  # where load_attack_source imports .py files
MAX_ATTACKS = 256  # per code submission: bounds the sandbox's CPU-time limit



# ----------------------------------------------------------------------------- loading the source
@dataclass
class _Source:
    label: str  # provenance "source": the path as given, a module path, or an entry point's value
    kind: str  # "file" | "module" | "entry point"
    file_sha256: str | None
    module: str | None = None  # module path (modules and entry points)
    entry_point: str | None = None
    file: Path | None = None  # the file that runs (a file source; a module's file in the sandbox)


def _resolve(source: str) -> _Source:
    path = Path(source)
    if path.is_file() or source.endswith(".py"):
        if not path.is_file():
            raise SubmissionRefused("import", f"attack file {source!r} does not exist")
        return _Source(path.as_posix(), "file", sha256_file(path), file=path)
    eps = {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    if source in eps:
        ep = eps[source]
        return _Source(ep.value, "entry point", None, module=ep.module, entry_point=ep.name)
    return _Source(source, "module", None, module=source)


def _meta(spec: AttackSpec | CalibrationSpec, src: _Source, commit: str | None, sandboxed: bool, submitter: str) -> dict:
    """The attack's (or calibration's) results.json record: describe(), with the submission's own provenance."""
    meta = spec.describe()
    if spec.source.startswith(_USER_MODULES) and spec.family == spec.source.rsplit(".", 1)[-1]:
        # the file import's module name carries a per-process hash
        meta["family"] = (src.file or Path(src.label)).stem
    meta["source"] = src.label
    meta["file_sha256"] = src.file_sha256
    meta["submission"] = {"kind": "reproduced", "source_kind": src.kind, "entry_point": src.entry_point,
                          "file_sha256": src.file_sha256, "git_commit": commit, "sandboxed": sandboxed,
                          "submitter": submitter}
    return meta


# ----------------------------------------------------------------------------- the sandboxed source
def _find_spec_quietly(name: str):
    """The import spec of module `name`, found without running any module (no parent __init__ either)."""
    parent = name.rpartition(".")[0]
    path = None
    if parent:
        loaded = sys.modules.get(parent)
        if loaded is not None:
            path = getattr(loaded, "__path__", None)
        else:
            parent_spec = _find_spec_quietly(parent)
            path = None if parent_spec is None else parent_spec.submodule_search_locations
        if path is None:
            return None
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        try:
            spec = find(name, path)
        except (ImportError, ValueError):
            continue
        if spec is not None:
            return spec
    return None


def _module_file(module: str) -> tuple[Path | None, bool]:
    """(the file of `module`, whether it is a package), without importing it."""
    loaded = sys.modules.get(module)
    if loaded is not None:
        file = getattr(loaded, "__file__", None)
        return (Path(file) if file else None), hasattr(loaded, "__path__")
    spec = _find_spec_quietly(module)
    if spec is None or not spec.has_location or not spec.origin:
        return None, False
    return Path(spec.origin), spec.submodule_search_locations is not None


def _child_source(source: str, src: _Source, sandbox: bool) -> tuple[Path | None, str | None]:
    """(file, module) the child imports for `source`: the sandbox runs one file (a module's or entry point's
    own file); without a sandbox a module path is imported by name (a package too), its file hashed."""
    if src.kind == "file":
        return Path(source), None
    module = str(src.module)
    if module == "vidsme" or module.startswith("vidsme."):
        builtin = [s for s in list_attacks() if s.source == module or s.source.startswith(module + ".")]
        if builtin:
            raise SubmissionRefused("name", f"{builtin[0].name!r} is a built-in attack ({builtin[0].source}); the "
                                            "benchmark runs built-ins itself: add it to the suite's `attacks` and "
                                            "rerun")
        raise SubmissionRefused("import", f"{source!r} is part of vidsme itself, not an attack submission")
    if sandbox:
        return _sandbox_file(source, src), None
    file, _ = _module_file(module)
    if file is None:
        raise SubmissionRefused("import", f"importing {source!r} raised ModuleNotFoundError: No module named "
                                          f"{module!r}; {source!r} is not a file, not an installed entry point of "
                                          f"group {ENTRY_POINT_GROUP!r}, and not an importable module")
    return (file if file.is_file() else None), module


def _sandbox_file(source: str, src: _Source) -> Path:
    """The one file the sandbox runs for a module or entry-point `source`: the module's own file."""
    module = str(src.module)
    file, package = _module_file(module)
    if file is None:
        raise SubmissionRefused("import", f"importing {source!r} raised ModuleNotFoundError: No module named "
                                          f"{module!r}; {source!r} is not a file, not an installed entry point of "
                                          f"group {ENTRY_POINT_GROUP!r}, and not an importable module")
    if package:
        raise SubmissionRefused("import", f"{source!r} is a package ({file}): the sandbox runs one file; submit the "
                                          "module that registers the attacks (e.g. a file of the package), or run "
                                          "it with --no-sandbox for local development")
    if file.suffix != ".py" or not file.is_file():
        raise SubmissionRefused("import", f"{source!r} is {file}, not a Python source file: the sandbox runs one "
                                          ".py file; use --no-sandbox for local development")
    return file


def _hidden(results_dir: Path, results: dict) -> list[Path]:
    """Folders the sandbox must not show even where they lie inside a bound tree."""
    out = [results_dir.resolve()]
    for entry in results.get("targets") or []:
        out += [Path(folder).resolve() for folder in (entry.get("caches") or {}).values()]
    cache_dir = ((results.get("suite") or {}).get("config") or {}).get("cache_dir")
    if cache_dir:
        out.append(Path(cache_dir).resolve())
    return out


def _cpu_seconds(results: dict, budget: float, limits: sandboxing.SandboxLimits) -> int:
    """RLIMIT_CPU of the sandbox: every thread busy for as long as the most calls a submission can make may take."""
    units = sum(len(e.get("caches") or {}) * _models(e) for e in results.get("targets") or []) * len(SLICES)
    calls = COPIES * max(units, 1) * MAX_ATTACKS
    return int(math.ceil(limits.thread_count() * (limits.startup_s + calls * (budget + limits.grace_s))))


def _models(entry: dict) -> int:
    """Feature sets a submitted signal is scored on for one target: the target's, and with shadow sets every
    shadow's on the rows and on the population, and the target's on the population."""
    sets = (entry.get("calibration") or {}).get("sets") or []
    return 1 + sum(2 * int(s.get("count", 0)) for s in sets) + (1 if sets else 0)


def _sandboxed_before(results: dict, sha: str) -> list[str]:
    """The attacks results.json holds from a sandboxed run of the file with this sha256 (then the same
    bytes need not run again), else []."""
    names = []
    for name, meta in {**(results.get("attacks") or {}), **(results.get("calibrations") or {})}.items():
        submission = meta.get("submission") if isinstance(meta, dict) else None
        if (isinstance(submission, dict) and submission.get("kind") == "reproduced" and meta.get("file_sha256") == sha
                and submission.get("sandboxed") is True):
            names.append(name)
    return sorted(names)


def _in_the_sandbox(inputs):  # the stand-in scoring function of a sandboxed attack's declaration
    raise VidsmeError("a sandboxed submission's attack runs only inside its sandbox")


_TEXT_FIELDS = ("name", "family", "citation", "summary", "source", "direction")


def _declared_specs(items: object, calibrations: bool) -> list[AttackSpec]:
    """AttackSpecs from the declarations the sandbox reported, checked here again as register_attack would
    (nothing the sandbox says is trusted); their scoring runs in the sandbox only. None is fine only when
    the file registered `calibrations`."""
    if not isinstance(items, list) or not (items or calibrations):
        raise SubmissionRefused("sandbox", "the sandboxed process reported no attack declarations")
    if len(items) > MAX_ATTACKS:
        raise SubmissionRefused("declaration", f"the source registers {len(items)} attacks; at most {MAX_ATTACKS} "
                                               "per submission: split them over several submissions")
    registered = {s.name: s for s in list_attacks()}
    specs: list[AttackSpec] = []
    for item in items:
        if not (isinstance(item, dict) and all(isinstance(item.get(k), str) for k in _TEXT_FIELDS)
                and all(isinstance(item.get(k), list) and all(isinstance(v, str) for v in item[k])
                        for k in ("needs", "slices"))
                and isinstance(item.get("version"), int) and not isinstance(item.get("version"), bool)):
            raise SubmissionRefused("sandbox", f"the sandboxed process reported a malformed declaration: "
                                               f"{one_line(item, 300)}")
        name = item["name"]
        why = ("(direction must be 'higher' or 'lower', slices among " + ", ".join(SLICES) + ")")
        try:
            direction = Direction(item["direction"])
        except ValueError as err:
            raise SubmissionRefused("declaration", f"register_attack rejected the declaration: {last_line(err)} "
                                                   f"{why}") from None
        bad = [x for x in item["slices"] if x not in SLICES]
        if bad:
            err = VidsmeError(f"attack {name!r}: unknown slices {bad}; slices are {SLICES}")
            raise SubmissionRefused("declaration", f"register_attack rejected the declaration: {last_line(err)} {why}")
        try:
            check_input_names(item["needs"], f"attack {name!r}")
        except MissingFeatureError as err:
            raise SubmissionRefused("features", str(err)) from None
        clash = registered.get(name) or next((s for s in specs if s.name == name), None)
        if clash is not None:
            raise SubmissionRefused("name", f"attack name {name!r} is already registered by {clash.source}; "
                                            "rename yours")
        specs.append(AttackSpec(name=name, family=item["family"], fn=_in_the_sandbox, direction=direction,
                                needs=tuple(item["needs"]), slices=tuple(item["slices"]), citation=item["citation"],
                                summary=item["summary"], version=item["version"], source=item["source"]))
    return specs


def _start_sandbox(proc: sandboxing.SandboxProcess, src: _Source, limits: sandboxing.SandboxLimits
                   ) -> tuple[list[AttackSpec], list[CalibrationSpec]]:
    """Start the sandbox and read the attacks and calibrations the file registered (import, declaration, name,
    features refusals)."""
    try:
        proc.start()
    except sandboxing.SandboxError as err:
        raise sandbox_refusal(err, "the sandbox did not start") from None
    left = max(1.0, limits.startup_s - (time.monotonic() - proc.started_at))
    try:
        message = proc.receive(left)
    except sandboxing.SandboxError as err:
        if err.kind == "timeout":
            raise SubmissionRefused("import", f"importing {src.label!r} did not finish within {limits.startup_s:g} s "
                                              "in the sandbox (Python, torch and the file's own imports)") from None
        if err.kind == "died":
            raise SubmissionRefused("import", one_line(f"importing {src.label!r} in the sandbox failed: the process "
                                                        f"{err}")) from None
        raise sandbox_refusal(err, "while importing the file") from None
    event = message.get("event")
    if event == "refused":
        check = message.get("check")
        if check not in ("import", "declaration", "name", "features"):
            raise SubmissionRefused("sandbox", f"the sandboxed process refused with an unknown check {check!r}")
        raise SubmissionRefused(check, one_line(message.get("why")))
    if event != "declared":
        raise SubmissionRefused("sandbox", f"the sandboxed process said {one_line(message, 200)} instead of "
                                           "declaring its attacks")
    calibrations = declared_calibrations(message.get("calibrations"))
    return _declared_specs(message.get("attacks"), bool(calibrations)), calibrations


def _claimed(metas: dict[str, dict], cal_metas: dict[str, dict]) -> list[tuple[str, str]]:
    """Every plain name a code submission puts on the board: its attacks, calibrations and their families."""
    return ([(n, "attack name") for n in metas] + [(n, "calibration name") for n in cal_metas]
            + [(m["family"], "family") for m in {**metas, **cal_metas}.values()])


# ----------------------------------------------------------------------------- code submissions
@dataclass
class _Pending:
    """Files and rows a submission will write once every check passed."""

    rows: list[dict] = field(default_factory=list)
    csvs: list[tuple[Path, LevelView, dict[str, np.ndarray]]] = field(default_factory=list)


def _evaluate_code(specs: list[AttackSpec], metas: dict[str, dict], results: dict, scorer,
                   commit: str | None, sandboxed: bool, fixed: dict[str, dict[tuple, dict]] | None = None) -> _Pending:
    """Score and evaluate `specs` on every target x frame count x applicable slice of `results`; with
    `fixed` (target -> {(attack, slice, n_frames, level): selection record}), only those configurations
    (a sealed challenge: each fixed beforehand on the public dev partition)."""
    config = results["suite"].get("config") or {}
    n_bootstrap, seed = int(config.get("n_bootstrap", 1000)), int(config.get("seed", 0))
    min_fp = int(config.get("min_false_positives", 10))
    pending = _Pending()
    applicable_anywhere = {s.name: False for s in specs}
    informative: dict[tuple[str, str], bool] = {}  # (attack, target) -> some call gave two different scores
    cache_slices: set[str] = set()
    for entry in results["targets"]:
        target = entry["name"]
        caches = entry.get("caches") or {}
        if not caches:
            raise VidsmeError(f"target {target!r} in results.json lists no feature caches; rerun "
                              "`vidsme benchmark SUITE` with this vidsme")
        samples_of = evaluated_samples(entry)
        for n_frames, folder in sorted(caches.items(), key=lambda kv: int(kv[0])):
            cache = open_feature_cache(entry, n_frames, folder)
            samples = cache.read(samples_of.ids)
            cache_slices.update(cache.key.slices)
            columns: dict[str, dict[str, dict[str, np.ndarray]]] = {level: {} for level in samples_of.levels}
            chosen = None if fixed is None else fixed.get(target, {})
            calls = [(spec, slice_name) for spec in specs for slice_name in cache.key.slices
                     if spec.applies_to(slice_name) and (chosen is None or any(
                         c[:3] == (spec.name, slice_name, int(n_frames)) for c in chosen))]
            if not calls:
                continue
            for spec, _ in calls:
                applicable_anywhere[spec.name] = True
            validated = scorer.run(calls, samples, target, n_frames)
            for (spec, slice_name), (scores, inputs) in zip(calls, validated):
                meta = metas[spec.name]
                informative[(spec.name, target)] = (informative.get((spec.name, target), False)
                                                    or bool(np.ptp(scores) > 0))
                # the suite's own evaluation, on the validated scores (no third call of the attack)
                scored = dataclasses.replace(spec, fn=lambda _inputs, s=scores: s)
                res = evaluate_slice(inputs, [scored], samples_of, n_bootstrap=n_bootstrap, seed=seed,
                                     extract_hint="", min_false_positives=min_fp)
                column = f"{slice_name}/{spec.name}"
                for level in samples_of.levels:
                    ident = (spec.name, slice_name, int(n_frames), level)
                    if chosen is not None and ident not in chosen:
                        continue
                    rel = f"scores/{target}/{SUBMISSIONS_DIR}/{spec.name}-f{n_frames}-{level}.csv"
                    for part in samples_of.sides:
                        row = metric_row(target, meta, "reproduced", slice_name, level, int(n_frames), part,
                                         res.evaluations[(spec.name, level, part)], rel, column, commit)
                        row["provenance"]["sandboxed"] = sandboxed
                        if chosen is not None:
                            row["selection"] = chosen[ident]
                        pending.rows.append(row)
                    columns[level].setdefault(spec.name, {})[column] = res.level_scores[(spec.name, level)]
            for level, view in samples_of.views.items():
                for name, cols in columns[level].items():
                    rel = f"scores/{target}/{SUBMISSIONS_DIR}/{name}-f{n_frames}-{level}.csv"
                    pending.csvs.append((Path(rel), view, cols))
    constant = [(name, target) for (name, target), varies in informative.items() if not varies]
    if constant:
        name, target = constant[0]
        where = sorted(t for n, t in constant if n == name)
        raise SubmissionRefused("scores", f"attack {name!r} gives every sample the same score on target(s) "
                                          f"{', '.join(map(repr, where))} (every frame count and slice evaluated): a "
                                          "constant carries no membership information, so it is not ranked")
    evaluated = {(r["target"], r["attack"], r["slice"], r["n_frames"], r["level"]) for r in pending.rows}
    lacking = [(target, *config) for target, chosen in (fixed or {}).items() for config in chosen
               if (target, *config) not in evaluated and config[0] in metas]
    if lacking:
        raise VidsmeError(f"the configuration(s) {lacking[:3]} fixed on the public dev partition could not be evaluated "
                          "here: this suite has no cached features at that frame count or slice")
    for spec in specs if fixed is None else ():
        if not applicable_anywhere[spec.name]:
            raise SubmissionRefused("features", f"attack {spec.name!r} is declared on slices {list(spec.slices)}, but "
                                                f"the suite's caches hold slices {sorted(cache_slices)}: nothing to "
                                                "evaluate")
    return pending


def submit_attack(source: str, results_dir: Path, *, submitter: str, time_budget_s: float = DEFAULT_TIME_BUDGET_S,
                  command: str | None = None, sandbox: bool = True,
                  limits: sandboxing.SandboxLimits | None = None,
                  fixed: dict[str, dict[tuple, dict]] | None = None,
                  leaderboard_dir: Path | None = None) -> SubmissionResult:
    """Validate the attacks `source` registers (a .py file, module path or entry-point name), evaluate them
    on every target of `results_dir`'s suite from the feature caches, and add them to its leaderboard as
    `submitter`'s (authenticated by the caller: submitters.authenticate).

    The code always runs in a child process under `limits` and this process never imports it: with
    `sandbox` (the default) an isolated one (vidsme.benchmark.submissions.sandbox); without (local
    development only) a plain one with the caller's rights, and its records say "sandboxed": false —
    recorded here, where the attack cannot reach. `fixed` restricts the evaluation to
    given configurations (a sealed challenge: see vidsme.challenge.board); `leaderboard_dir`
    is where the leaderboard goes (default: `results_dir`).
    Raises SubmissionRefused (check, why) for a submission that fails a check, VidsmeError for an
    unusable results directory; in both cases nothing is written.
    """
    if not (time_budget_s > 0 and math.isfinite(time_budget_s)):
        raise VidsmeError(f"--time-budget must be a positive number of seconds, got {time_budget_s}")
    limits = limits or sandboxing.SandboxLimits()
    if not (limits.memory_bytes > 0 and math.isfinite(limits.memory_bytes)):
        raise VidsmeError(f"--memory-limit must be a positive number of GiB, got {limits.memory_bytes / sandboxing.GIB}")
    results_dir = Path(results_dir)
    original = read_results_bytes(results_dir)
    results = load_results(results_dir)
    try:
        list_attacks()  # built-ins and installed plugins, before the snapshot
    except VidsmeError as err:
        raise SubmissionRefused("import", str(err)) from err
    src = _resolve(source)
    commit = git_commit()
    with contextlib.ExitStack() as stack:
        file, module = _child_source(source, src, sandbox)
        data = file.read_bytes() if file is not None else b""
        src.file = file
        src.file_sha256 = hashlib.sha256(data).hexdigest() if file is not None else None  # the very bytes that run
        if sandbox:
            known = _sandboxed_before(results, src.file_sha256)
            if known:  # nothing to run: these bytes are on the leaderboard, sandboxed
                return SubmissionResult("unchanged", known, f"{', '.join(known)}: already on the leaderboard (same "
                                                            f"file sha256 {src.file_sha256[:12]}...); nothing changed")
            isolation = sandboxing.detect_isolation()
            if isolation is None:
                raise SubmissionRefused("sandbox", sandboxing.no_isolation_message())
        else:
            isolation = sandboxing.Isolation.none()
        proc = stack.enter_context(sandboxing.SandboxProcess(
            isolation, limits, source=data, file_name=file.name if file is not None else "module.py",
            label=src.label, shown=str(file or src.label), hide=_hidden(results_dir, results),
            cpu_seconds=_cpu_seconds(results, time_budget_s, limits), module=module))
        specs, calibrations = _start_sandbox(proc, src, limits)
        protections = proc.protections()
        scorer = SandboxScorer(proc, time_budget_s, limits)
        for spec in specs:
            if spec.source.startswith(BUILTIN_MODULES):
                raise SubmissionRefused("name", f"{spec.name!r} is a built-in attack ({spec.source}); the benchmark "
                                                "runs built-ins itself: add it to the suite's `attacks` and rerun")
            if not spec.citation.strip():
                raise SubmissionRefused("declaration", f"attack {spec.name!r} has an empty citation: say which paper "
                                                       "(and equation) it implements, or describe it if it is new")
        if fixed is not None and calibrations:
            raise SubmissionRefused("declaration", f"calibration(s) {', '.join(c.name for c in calibrations)}: a "
                                                   "sealed challenge has no shadow models to calibrate with; submit "
                                                   "calibrations to a suite with targets[].shadows")
        metas = {s.name: _meta(s, src, commit, sandbox, submitter) for s in specs}
        cal_metas = {c.name: _meta(c, src, commit, sandbox, submitter) for c in calibrations}
        cal_previous = check_calibrations(calibrations, set(metas), results, submitter)
        # one namespace: attack, family, calibration and calibrated names, whoever took them first
        check_claims(_claimed(metas, cal_metas), results, submitter,
                     derived=calibrated_names(metas, cal_metas, results))
        previous = {s.name: previous_record(s.name, results, "reproduced", submitter) for s in specs}
        previous.update(cal_previous)
        names = sorted(metas) + sorted(cal_metas)
        # the same file again changes nothing, unless it ran unsandboxed before and now runs sandboxed
        same = [n for n, p in previous.items() if p is not None and src.file_sha256 is not None
                and p.get("file_sha256") == src.file_sha256
                and ((p.get("submission") or {}).get("sandboxed") is True or not sandbox)]
        if len(same) == len(specs) + len(calibrations):
            return SubmissionResult("unchanged", names, f"{', '.join(names)}: already on the leaderboard (same file "
                                                        f"sha256 {src.file_sha256[:12]}...); nothing changed",
                                    sandboxed=sandbox, isolation=protections)
        if fixed is not None:  # only the configurations fixed beforehand count
            specs = [s for s in specs if any(c[0] == s.name for chosen in fixed.values() for c in chosen)]
            metas = {s.name: metas[s.name] for s in specs}
            names = sorted(metas)
        pending = _evaluate_code(specs, metas, results, scorer, commit, sandbox, fixed)
        calibrated = (calibrate_submission(calibrations, specs, {**metas, **cal_metas}, results, scorer, commit, sandbox)
                      if fixed is None else CalibratedPending())
    replaced = sorted(n for n, p in previous.items() if p is not None)
    submitted = set(metas) | set(cal_metas)
    old_calibrated = {r["attack"] for r in results["rows"] if calibrated_by(r, submitted)}
    kept, moves = archive(results, set(metas) | old_calibrated, submitter)
    new = dict(results)
    new["rows"] = [r for r in results["rows"] if r.get("attack") not in metas and not calibrated_by(r, submitted)]
    new["rows"] += pending.rows + calibrated.rows
    if kept is not None:
        kept["calibration_records"] = {n: r for n, r in (results.get("calibrations") or {}).items() if n in cal_metas}
        new["history"] = [*(results.get("history") or []), kept]
    new["attacks"] = {**(results.get("attacks") or {}), **metas}
    if cal_metas:
        new["calibrations"] = {**(results.get("calibrations") or {}), **cal_metas}
    new["submissions"] = list(results.get("submissions") or []) + [{
        "kind": "reproduced", "attacks": sorted(metas), "calibrations": sorted(cal_metas), "source": src.label, "source_kind": src.kind,
        "file_sha256": src.file_sha256, "git_commit": commit, "vidsme": __version__, "sandboxed": sandbox,
        "submitter": submitter, "isolation": protections, "status": "replaced" if replaced else "added", "created": utc_now(),
        "command": command}]
    board = commit_results(results_dir, original, new, pending.csvs + calibrated.csvs, moves, leaderboard_dir)
    status = "replaced" if replaced else "added"
    what = f"replaced the earlier rows of {', '.join(replaced)}" if replaced else "added"
    counts = ", ".join(f"{n} rows, kind {k}" for n, k in ((len(pending.rows), "reproduced"),
                                                          (len(calibrated.rows), "calibrated")) if n) or "no rows"
    families = {m["family"] for m in metas.values()} | {r["family"] for r in calibrated.rows}
    return SubmissionResult(status, names, f"{', '.join(names)}: {what} ({counts})", pending.rows + calibrated.rows,
                            board, verdicts_of(new, families), sandbox, protections)


__all__ = ["CODE_CHECKS", "DEFAULT_TIME_BUDGET_S", "MAX_ATTACKS", "submit_attack"]
