"""What both kinds of `vidsme submit` share: the refusal and result types, the samples the
benchmark evaluated (checked against what results.json recorded), the name rules, and writing.

Writing comes last and is atomic: every check passes and every number is computed before
`commit_results` touches a file; it then writes the scores CSVs, results.json (with verdicts
recomputed) and the leaderboard under a lock on the results folder, and puts every file back
if any write fails. Code submissions live in attack_code.py (calibrations: calibration_code.py), scores files in scores_file.py.
"""
from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidsme.atomic import write_bytes_atomic, write_json_atomic
from vidsme.benchmark.cache import FeatureCache
from vidsme.benchmark.evaluate import EvalSet
from vidsme.benchmark.leaderboard import write_leaderboard
from vidsme.benchmark.results_schema import RESULTS_FILE
from vidsme.benchmark.suite import write_scores_csv
from vidsme.benchmark.verdicts import compute_verdicts
from vidsme.data_splits.partition import PARTITIONS
from vidsme.benchmark.submissions.sandbox import describe_protections
from vidsme.errors import VidsmeError, printable
from vidsme.provenance import ids_sha256
from vidsme.text_formats import one_line

SUBMISSIONS_DIR = "submissions"
CALIBRATED_DIR = "calibrated"  # scores/<target>/submissions/calibrated/: calibrated methods' files
HISTORY_DIR = "history"  # scores/<target>/submissions/history/<entry>/: files of replaced submissions
BUILTIN_MODULES = "vidsme.attack.attacks."  # where vidsme's own attack families live
LEADERBOARD_FILES: tuple[str, ...] = ("leaderboard.json", "leaderboard.md", "leaderboard.html")
_IDS_SHOWN = 5
MAX_ABS_SCORE = 1e300  # larger finite scores overflow a video's mean (of its rows) to inf: refused


class SubmissionRefused(VidsmeError):
    """A submission that failed a check; nothing was written."""

    def __init__(self, check: str, why: str) -> None:
        self.check, self.why = check, why
        super().__init__(f"submission refused: the {check!r} check failed: {why}")


@dataclass
class SubmissionResult:
    """What a submission did."""

    status: str  # "added" | "replaced" | "unchanged"
    attacks: list[str]
    message: str
    rows: list[dict] = field(default_factory=list)
    leaderboard: dict[str, Path] = field(default_factory=dict)
    verdicts: list[dict] = field(default_factory=list)  # the submitted methods' leaderboard entries, per target
    sandboxed: bool = True  # False: ran without isolation (--no-sandbox); kept off challenge leaderboards
    isolation: dict | None = None  # what isolated the attack's child process (sandbox.SandboxProcess.protections)



def ids_preview(ids: Sequence[str]) -> str:
    """The first few ids (each cut to 64 characters) and how many there are, for an error message."""
    shown = ", ".join(str(i) if len(str(i)) <= 64 else str(i)[:61] + "..." for i in list(ids)[:_IDS_SHOWN])
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > _IDS_SHOWN else "")




# ----------------------------------------------------------------------------- the benchmark's samples
def evaluated_samples(entry: dict) -> EvalSet:
    """The rows the benchmark evaluated for one results.json target — the split manifest minus
    the target's excluded rows — with their dev/test sides, checked against the manifest
    sha256, the ids' sha256 and the partition the benchmark recorded."""
    from vidsme.provenance import sha256_file
    from vidsme.data_splits.registry import load_split

    name, info = entry["name"], entry.get("split") or {}
    rerun = "restore that split version, or rerun `vidsme benchmark SUITE`"
    split = load_split(str(info.get("name")))
    sha = sha256_file(split.manifest_path)
    if sha != info.get("manifest_sha256") or split.card.version != info.get("version"):
        raise VidsmeError(f"target {name!r}: split {split.name!r} on disk (version {split.card.version}, manifest "
                          f"sha256 {sha[:12]}...) is not the one the benchmark evaluated (version {info.get('version')}, "
                          f"sha256 {str(info.get('manifest_sha256'))[:12]}...); {rerun}")
    excluded = set((entry.get("excluded") or {}).get("rows", []))
    rows = [r for r in split.rows() if r["id"] not in excluded]
    ids = [r["id"] for r in rows]
    expected = entry.get("evaluated_ids_sha256")
    if expected is None or ids_sha256(ids) != expected:
        raise VidsmeError(f"target {name!r}: the split's rows minus the excluded ones do not give the ids the "
                          f"benchmark evaluated (evaluated_ids_sha256 {'missing' if expected is None else 'differs'}); "
                          f"{rerun}")
    recorded = entry.get("partition") or {}
    if split.test_only != bool(recorded.get("test_only")):
        raise VidsmeError(f"target {name!r}: the split is {'' if split.test_only else 'not '}test-only, the benchmark "
                          f"recorded otherwise; {rerun}")
    if not split.test_only:
        now = split.partition().record(rows)
        if any(recorded.get(k) != now[k] for k in ("version", "seed", *PARTITIONS)):
            raise VidsmeError(f"target {name!r}: the split's dev/test partition is not the one the benchmark used; "
                              f"{rerun}")
    return EvalSet(ids=ids, videos=[r["video"] for r in rows],
                   labels=np.array([r["label"] == "member" for r in rows], dtype=int),
                   partitions=split.sides(rows))



def open_feature_cache(entry: dict, n_frames: str, folder: str) -> FeatureCache:
    """The feature cache a results.json target recorded for `n_frames`, checked to be that target's, split's and
    frame count's."""
    path = Path(folder)
    if not path.is_dir():
        raise VidsmeError(f"target {entry['name']!r}, {n_frames} frames: feature cache {folder} not found. Paths in "
                          "results.json are relative to where `vidsme benchmark` ran: run `vidsme submit` from there, "
                          "or rerun the benchmark to extract the features again")
    cache = FeatureCache.from_folder(path)
    key = cache.key
    if (key.target_card_sha256, key.n_frames, key.manifest_sha256) != (
            entry.get("card_sha256"), int(n_frames), (entry.get("split") or {}).get("manifest_sha256")):
        raise VidsmeError(f"target {entry['name']!r}, {n_frames} frames: cache {folder} was written for another "
                          "target, frame count or split; rerun `vidsme benchmark SUITE`")
    return cache


def owner_of(record: object) -> str | None:
    """Who submitted the attack of a results.json `attacks` record (None: the suite's own, or no one recorded)."""
    submission = record.get("submission") if isinstance(record, dict) else None
    return submission.get("submitter") if isinstance(submission, dict) else None


def archive(results: dict, names: set[str], submitter: str) -> tuple[dict | None, dict[Path, Path]]:
    """The history entry of the rows of `names` about to be replaced (None: no rows), and where each of
    their per-sample files moves: `scores/<target>/submissions/history/<entry>/<file>`. Nothing replaced
    is deleted: results.json's `history` keeps the rows, the attacks' records and the files' new places."""
    rows = [r for r in results["rows"] if r.get("attack") in names]
    if not rows:
        return None, {}
    number = len(results.get("history") or [])
    moves: dict[Path, Path] = {}
    for r in rows:
        rel = r.get("scores_file")
        if is_submission_file(rel) and Path(rel) not in moves:
            moves[Path(rel)] = Path(rel).parent / HISTORY_DIR / str(number) / Path(rel).name
    kept = [{**r, "scores_file": str(moves.get(Path(r["scores_file"]), r["scores_file"]))} if r.get("scores_file")
            else r for r in rows]
    attacks = results.get("attacks") or {}
    entry = {"attacks": sorted({r["attack"] for r in rows}), "replaced": utc_now(), "by": submitter,
             "records": {n: attacks[n] for n in sorted(names) if n in attacks}, "rows": kept}
    return entry, moves




def verdicts_of(results: dict, methods: set[str]) -> list[dict]:
    """The leaderboard entries of `methods`, each with its target and primary metric."""
    out = []
    for verdict in results.get("verdicts", {}).get("targets", []):
        for entry in verdict["entries"]:
            if entry["method"] in methods:
                out.append({"target": verdict["target"], **entry})
    return out




# ----------------------------------------------------------------------------- writing, last and atomically
def is_submission_file(rel: object) -> bool:
    """Whether a results.json scores path is a submission's file (the only ones a resubmission deletes)."""
    if not isinstance(rel, str):
        return False
    parts = Path(rel).parts
    if ".." in parts or len(parts) < 4 or parts[0] != "scores" or parts[2] != SUBMISSIONS_DIR:
        return False
    return len(parts) == 4 or (len(parts) == 5 and parts[3] == CALIBRATED_DIR)


def utc_now() -> str:
    """Now, UTC, to the second (submission records)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_results_bytes(results_dir: Path) -> bytes:
    """results.json as bytes: `commit_results` refuses to write if the file changed meanwhile."""
    path = Path(results_dir) / RESULTS_FILE
    if not path.is_file():
        raise VidsmeError(f"{path}: no results file; run `vidsme benchmark SUITE` first (e.g. `make demo`), or pass "
                          "the directory that holds results.json")
    return path.read_bytes()


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on the results folder while it is rewritten (POSIX; a no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _restore(path: Path, data: bytes | None) -> None:
    if data is None:
        path.unlink(missing_ok=True)
        return
    write_bytes_atomic(path, data)


def commit_results(results_dir: Path, original: bytes, new_results: dict, csvs: list, moves: dict[Path, Path],
                   leaderboard_dir: Path | None = None) -> dict[str, Path]:
    """Move replaced scores files to their history places (`archive`), write the new scores CSVs,
    results.json and the leaderboard; on any failure put every file back."""
    results_path = results_dir / RESULTS_FILE
    with locked(results_dir):
        if results_path.read_bytes() != original:
            raise VidsmeError(f"{results_path} changed while the submission was being validated (another submission "
                              "or benchmark run?); submit again")
        board_dir = results_dir if leaderboard_dir is None else Path(leaderboard_dir)
        touched = {board_dir / name for name in LEADERBOARD_FILES} | {results_path}
        touched |= {results_dir / rel for rel, *_ in csvs}
        touched |= {results_dir / rel for pair in moves.items() for rel in pair}
        backup = {p: (p.read_bytes() if p.is_file() else None) for p in touched}
        try:
            for old, kept in moves.items():
                if (results_dir / old).is_file():
                    (results_dir / kept).parent.mkdir(parents=True, exist_ok=True)
                    os.replace(results_dir / old, results_dir / kept)
            for rel, view, columns in csvs:
                write_scores_csv(results_dir / rel, view, columns)
            # rank bands and blind distances change with every new method: recomputed, from the files just written
            new_results["verdicts"] = compute_verdicts(new_results, results_dir)
            write_json_atomic(results_path, new_results)
            return write_leaderboard(results_dir, board_dir)
        except BaseException:
            for path, data in backup.items():
                with contextlib.suppress(OSError):
                    _restore(path, data)
            raise


def format_result(result: SubmissionResult) -> str:
    """Lines for the terminal: what happened, the rows added, where the leaderboard is. Every name is put on one
    line (a line break in a name recorded by an older vidsme cannot print a line of its own)."""
    t = one_line
    lines = [result.message]
    dev_rows = [r for r in result.rows if r.get("partition") == "dev"]  # dev numbers choose; test ones are read
    calibrated = [r for r in dev_rows if r.get("kind") == "calibrated"]
    dev_rows = [r for r in dev_rows if r.get("kind") != "calibrated"]
    for r in dev_rows:
        frames = "-" if r["n_frames"] is None else str(r["n_frames"])
        lines.append(f"  {t(r['target']):<20} {t(r['attack']):<24} {t(r['slice']):<11} {t(r['level']):<9} frames "
                     f"{frames:<3} dev AUC {r['auc']['value']:.3f} [{r['auc']['ci_low']:.3f}, {r['auc']['ci_high']:.3f}]")
    if dev_rows:
        lines.append("  (dev-partition numbers, where configurations are chosen)")
    if calibrated:  # signal x slice x level x calibration: too many to list; each method's dev choice follows
        methods = sorted({t(r["family"]) for r in calibrated})
        lines.append(f"  {len(calibrated)} calibrated dev rows (methods {', '.join(methods)}; every row in "
                     "results.json)")
    for e in result.verdicts:
        metric = e["primary_metric"]
        value = e[metric]
        vs = e.get("vs_blind")
        lines.append(f"  leaderboard {t(e['target'])}: {t(e['method'])} rank {e['rank_band']}, test {metric} "
                     f"{value['value']:.3f} [{value['ci_low']:.3f}, {value['ci_high']:.3f}] "
                     f"({t(e['slice'])}, {t(e['attack'])}, {e['n_frames']} frames, {t(e['level'])}: chosen on dev)"
                     + ("" if vs is None else f", vs blind {vs['value']:+.3f} [{vs['ci_low']:+.3f}, "
                        f"{vs['ci_high']:+.3f}]" + ("" if e["above_blind"] else " — not above blind")))
    if result.isolation is not None:
        lines.append(f"  isolation: {describe_protections(result.isolation)}")
    if not result.sandboxed:
        lines.append("  (--no-sandbox: ran without isolation, for local development only; its records say "
                     "\"sandboxed\": false and a challenge leaderboard refuses them)")
    if result.leaderboard:
        lines.append("leaderboard: " + ", ".join(str(p) for p in result.leaderboard.values()))
    return printable("\n".join(lines))



__all__ = ["BUILTIN_MODULES", "CALIBRATED_DIR", "HISTORY_DIR", "LEADERBOARD_FILES", "MAX_ABS_SCORE", "SUBMISSIONS_DIR",
           "SubmissionRefused",
           "SubmissionResult", "archive", "commit_results",
           "locked", "owner_of", "evaluated_samples", "open_feature_cache", "format_result", "ids_preview",
           "is_submission_file", "read_results_bytes", "utc_now", "verdicts_of"]
