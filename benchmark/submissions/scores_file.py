"""`vidsme submit --scores FILE`: add per-sample scores computed elsewhere for one suite target.

The CSV `sample_id,score` must hold exactly the target's evaluated ids (the split manifest
minus the excluded rows; at level "video", its videos), once each, with finite scores. They
are scored with the suite's own evaluation on both partitions and added as kind "scores_file";
a refusal (SubmissionRefused: which check, and why) writes nothing.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vidsme import __version__
from vidsme.attack.inputs import SLICES
from vidsme.attack.registry import list_attacks
from vidsme.benchmark.evaluate import LEVELS, ROW_IS_VIDEO, evaluate_level_scores
from vidsme.benchmark.results_schema import load_results
from vidsme.benchmark.submissions.common import (
    MAX_ABS_SCORE,
    SUBMISSIONS_DIR,
    SubmissionRefused,
    SubmissionResult,
    archive,
    commit_results,
    evaluated_samples,
    ids_preview,
    read_results_bytes,
    utc_now,
    verdicts_of,
)
from vidsme.benchmark.submissions.namespace import check_claims, previous_record
from vidsme.benchmark.suite import metric_row
from vidsme.provenance import sha256_file
from vidsme.names import did_you_mean
from vidsme.text_formats import one_line
from vidsme.provenance import git_commit

SCORES_FILE_CHECKS: tuple[str, ...] = ("format", "target", "name", "ids", "finite")


MAX_SCORES_FILE_BYTES = 64 * 1024 ** 2  # a million rows of a long id and a score fit in a tenth of it
MAX_FIELD_CHARS = 1024  # an id or a score is never longer


def _read_scores_csv(path: Path, max_rows: int) -> tuple[list[str], list[str]]:
    """(ids, raw score strings) of a `sample_id,score` CSV, read line by line; "format" refusals name the line
    and the cap: at most MAX_SCORES_FILE_BYTES, `max_rows` data rows and MAX_FIELD_CHARS per field."""
    import csv

    if not path.is_file():
        raise SubmissionRefused("format", f"scores file {path} does not exist")
    size = path.stat().st_size
    if size > MAX_SCORES_FILE_BYTES:
        raise SubmissionRefused("format", f"{path} is {size:,} bytes; a scores file may have at most "
                                          f"{MAX_SCORES_FILE_BYTES:,} (one line per evaluated sample)")
    ids, scores = [], []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(_bounded_lines(fh, path))
        try:
            header = next(reader, None)
            if header is None:
                raise SubmissionRefused("format", f"{path} is empty; expected a header line `sample_id,score`")
            header = [h.strip() for h in header]
            if "sample_id" not in header or "score" not in header:
                raise SubmissionRefused("format", f"{path}: the header {one_line(header)} must name the columns "
                                                  "sample_id and score")
            i_id, i_score = header.index("sample_id"), header.index("score")
            for row in reader:
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) <= max(i_id, i_score):
                    raise SubmissionRefused("format", f"{path}, line {reader.line_num}: {len(row)} fields, the "
                                                      f"header has {len(header)}")
                if len(ids) >= max_rows:
                    raise SubmissionRefused("format", f"{path}, line {reader.line_num}: more than {max_rows:,} rows, "
                                                      "the most a scores file of this target may have (twice its "
                                                      "evaluated samples, and 1,000); give each sample once")
                if max(len(row[i_id]), len(row[i_score])) > MAX_FIELD_CHARS:  # a quoted field over many lines
                    raise SubmissionRefused("format", f"{path}, line {reader.line_num}: a field of over "
                                                      f"{MAX_FIELD_CHARS:,} characters; an id or a score is shorter")
                ids.append(row[i_id].strip())
                scores.append(row[i_score].strip())
        except csv.Error as err:
            raise SubmissionRefused("format", f"{path}, line {reader.line_num}: not CSV ({one_line(err)})") from None
        except UnicodeDecodeError as err:
            raise SubmissionRefused("format", f"{path} is not UTF-8 text ({err})") from None
    if not ids:
        raise SubmissionRefused("format", f"{path} has a header but no scores")
    return ids, scores


def _bounded_lines(fh, path: Path):
    """The file's lines, refusing one longer than a row can be (a field over MAX_FIELD_CHARS, quoted or not)."""
    limit = 4 * MAX_FIELD_CHARS
    for number, line in enumerate(iter(lambda: fh.readline(limit + 1), ""), start=1):
        if len(line) > limit:
            raise SubmissionRefused("format", f"{path}, line {number}: longer than {limit:,} characters; a row is "
                                              "a sample id and a score")
        for field in line.split(","):
            if len(field) > MAX_FIELD_CHARS:
                raise SubmissionRefused("format", f"{path}, line {number}: a field of {len(field):,} characters, over "
                                                  f"the {MAX_FIELD_CHARS:,} an id or a score may have")
        yield line


def submit_scores_file(scores_file: Path, results_dir: Path, *, submitter: str, target: str, attack_name: str,
                       direction: str, level: str = "row", slice_name: str = "answer", n_frames: int | None = None,
                       citation: str = "", command: str | None = None) -> SubmissionResult:
    """Add per-sample scores computed elsewhere (CSV `sample_id,score`) for one suite target, kind "scores_file",
    as `submitter`'s (authenticated by the caller). Its name is its family: a method of its own.

    At level "row" the ids are the split's sample ids; at level "video" they are the videos (the
    manifest's video paths). Raises SubmissionRefused (nothing written) when a check fails.
    """
    scores_file, results_dir = Path(scores_file), Path(results_dir)
    original = read_results_bytes(results_dir)
    results = load_results(results_dir)
    if direction not in ("higher", "lower"):
        raise SubmissionRefused("format", f"--direction must be 'higher' or 'lower' (which raw score means member), "
                                          f"got {direction!r}")
    if level not in LEVELS:
        raise SubmissionRefused("format", f"--level must be one of {', '.join(LEVELS)}, got {level!r}")
    if slice_name not in SLICES:
        raise SubmissionRefused("format", f"--slice must be one of {', '.join(SLICES)}, got {slice_name!r}"
                                          f"{did_you_mean(slice_name, SLICES)}")
    if n_frames is not None and (isinstance(n_frames, bool) or not isinstance(n_frames, int) or n_frames < 1):
        raise SubmissionRefused("format", f"--n-frames must be a positive integer, got {n_frames!r}")
    entries = {t["name"]: t for t in results["targets"]}
    if target not in entries:
        raise SubmissionRefused("target", f"unknown target {target!r}.{did_you_mean(target, entries)} The suite's "
                                          f"targets: {', '.join(entries)}")
    registered = {s.name: s for s in list_attacks()}
    if attack_name in registered:
        raise SubmissionRefused("name", f"attack name {attack_name!r} clashes with the registered attack of that "
                                        f"name ({registered[attack_name].source}); choose another")
    check_claims([(attack_name, "scores-file name")], results, submitter)  # its name is its family: a method
    previous = previous_record(attack_name, results, "scores_file", submitter)
    if previous is not None and previous.get("direction") != direction:
        raise SubmissionRefused("name", f"{attack_name!r} was submitted with direction {previous.get('direction')!r}; "
                                        "use the same direction or another name")
    samples = evaluated_samples(entries[target])
    # far more rows than samples is never a scores file (duplicates and unknown ids are named further down)
    ids, raw = _read_scores_csv(scores_file, max_rows=2 * len(samples.ids) + 1000)
    if ROW_IS_VIDEO in samples.levels:  # one row per video: both levels are the same numbers
        if level == "video":  # the ids given are videos: name them by their one row
            by_video = dict(zip(samples.videos, samples.ids))
            ids = [by_video.get(i, i) for i in ids]
        level = ROW_IS_VIDEO
    view = samples.views[level]
    expected = view.ids
    seen: set[str] = set()
    dupes: set[str] = set()
    for i in ids:
        (dupes if i in seen else seen).add(i)
    if dupes:
        raise SubmissionRefused("ids", f"{scores_file}: duplicate sample ids: {ids_preview(sorted(dupes))}; give each id "
                                       "once")
    known = set(expected)
    unknown = [i for i in ids if i not in known]
    what = "videos" if level == "video" else "sample ids"
    if unknown:
        raise SubmissionRefused("ids", f"{scores_file}: {len(unknown)} unknown {what} (not evaluated for target "
                                       f"{target!r}): {ids_preview(unknown)}")
    missing = [i for i in expected if i not in seen]
    if missing:
        raise SubmissionRefused("ids", f"{scores_file}: {len(missing)} of the {len(expected)} evaluated {what} of "
                                       f"target {target!r} are missing: {ids_preview(missing)}; score every one")
    by_id = dict(zip(ids, raw))
    values = []
    for i in expected:
        try:
            values.append(float(by_id[i]))
        except ValueError:
            raise SubmissionRefused("format", f"{scores_file}: score {by_id[i]!r} of {i!r} is not a number") from None
    scores = np.array(values, dtype=np.float64)
    bad = [expected[i] for i in np.flatnonzero(~np.isfinite(scores))]
    if bad:
        raise SubmissionRefused("finite", f"{scores_file}: {len(bad)} of {len(scores)} scores are not finite: "
                                          f"{ids_preview(bad)}")
    huge = [expected[i] for i in np.flatnonzero(np.abs(scores) > MAX_ABS_SCORE)]
    if huge:
        raise SubmissionRefused("finite", f"{scores_file}: {len(huge)} scores are larger than {MAX_ABS_SCORE:g} in "
                                          f"magnitude ({ids_preview(huge)}): a video's mean of them overflows; rescale")
    if np.ptp(scores) == 0:
        raise SubmissionRefused("finite", f"{scores_file}: every score is {scores[0]:g}: a constant carries no "
                                          "membership information, so it is not ranked")
    sha = sha256_file(scores_file)
    rel = (f"scores/{target}/{SUBMISSIONS_DIR}/{attack_name}-scores-{slice_name}-{level}"
           + (f"-f{n_frames}" if n_frames is not None else "") + ".csv")
    ident = (target, attack_name, slice_name, level, n_frames)
    old = [r for r in results["rows"] if (r["target"], r["attack"], r["slice"], r["level"], r["n_frames"]) == ident]
    if old and all((r.get("provenance") or {}).get("file_sha256") == sha for r in old):
        return SubmissionResult("unchanged", [attack_name], f"{attack_name} ({target}, {slice_name}, {level}): "
                                                            "already on the leaderboard (same file sha256); nothing "
                                                            "changed")
    config = results["suite"].get("config") or {}
    evaluations = {part: evaluate_level_scores(scores, view, part, direction=direction, attack=attack_name,
                                               n_bootstrap=int(config.get("n_bootstrap", 1000)),
                                               seed=int(config.get("seed", 0)),
                                               min_false_positives=int(config.get("min_false_positives", 10)))
                   for part in samples.sides}
    commit = git_commit()
    # a scores file is a method of its own: its family is its name
    meta = {"name": attack_name, "family": attack_name, "version": 1, "source": scores_file.as_posix(),
            "file_sha256": sha}
    column = f"{slice_name}/{attack_name}"
    new_rows = [metric_row(target, meta, "scores_file", slice_name, level, n_frames, part, ev, rel, column, commit)
                for part, ev in evaluations.items()]
    slices = sorted(set((previous or {}).get("slices", [])) | {slice_name}, key=SLICES.index)
    record = {"name": attack_name, "family": attack_name, "direction": direction, "needs": [], "slices": slices,
              "citation": citation or (previous or {}).get("citation", ""),
              "summary": "per-sample scores submitted as a file (not run here)", "version": 1,
              "source": scores_file.as_posix(), "file_sha256": sha,
              "submission": {"kind": "scores_file", "file_sha256": sha, "git_commit": commit, "submitter": submitter}}
    kept, moves = archive({**results, "rows": old}, {attack_name}, submitter)
    new = dict(results)
    new["rows"] = [r for r in results["rows"] if r not in old] + new_rows
    if kept is not None:
        new["history"] = [*(results.get("history") or []), kept]
    new["attacks"] = {**(results.get("attacks") or {}), attack_name: record}
    new["submissions"] = list(results.get("submissions") or []) + [{
        "kind": "scores_file", "attacks": [attack_name], "target": target, "slice": slice_name, "level": level,
        "n_frames": n_frames, "source": scores_file.as_posix(), "file_sha256": sha, "git_commit": commit,
        "vidsme": __version__, "submitter": submitter, "status": "replaced" if old else "added", "created": utc_now(),
        "command": command}]
    board = commit_results(results_dir, original, new, [(Path(rel), view, {column: scores})], moves)
    status = "replaced" if old else "added"
    return SubmissionResult(status, [attack_name], f"{attack_name}: {status} for target {target!r} ({slice_name} "
                                                   f"slice, {level} level, kind scores_file)", new_rows, board,
                            verdicts_of(new, {attack_name}))


__all__ = ["MAX_FIELD_CHARS", "MAX_SCORES_FILE_BYTES", "SCORES_FILE_CHECKS", "submit_scores_file"]
