"""Splits from annotation files in the reference's JSON format, for anyone's own videos.

Input: a JSON list of {"video": path relative to the video root, "question": str,
"candidates": [..] (optional), "answer": str}. Two ways to label it:
  * one file + --member-fraction F --seed S: an i.i.d. draw grouped by video, so a video
    (and every question on it) lands on exactly one side;
  * two files: --members A.json --nonmembers B.json.
Either way --seed S (default 0) also seeds the split's dev/test partition (partition.py).
Before anything is written every video must exist, decode (verify's check: probe + first
and last frame) and sit on one side only, by path and by content; a refusal names every
offending file and leaves no folder behind.
The result is an ordinary split (manifest + card) that training and the benchmark accept.
The paper's splits are converted with the same row builder (scripts/convert_paper_splits.py).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vidsme import __version__
from vidsme.data_splits.manifest import CARD_FILE, frame_record, make_row, write_split
from vidsme.provenance import sha256_file
from vidsme.data_splits.registry import Split, load_split, splits_dir
from vidsme.errors import SplitError

IDS_SHOWN = 8
BAD_VIDEOS_SHOWN = 20  # undecodable videos listed one per line in the refusal, then "... and N more"


def read_reference_json(path: Path) -> list[dict]:
    """The annotation list; SplitError naming the file and entry on malformed input."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SplitError(f"annotation file {path} does not exist") from None
    except json.JSONDecodeError as err:
        raise SplitError(f"annotation file {path} is not valid JSON: {err}") from None
    if not isinstance(data, list) or not data:
        raise SplitError(f"annotation file {path} must hold a non-empty JSON list of entries")
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or not isinstance(entry.get("video"), str) or not entry["video"]:
            raise SplitError(f"{path} entry {i}: needs a 'video' path string")
        if not isinstance(entry.get("question"), str):
            raise SplitError(f"{path} entry {i} ({entry.get('video')}): needs a 'question' string")
        if not isinstance(entry.get("answer"), (str, int, float)):
            raise SplitError(f"{path} entry {i} ({entry['video']}): needs an 'answer' (string or number)")
        if "candidates" in entry and not isinstance(entry["candidates"], list):
            raise SplitError(f"{path} entry {i} ({entry['video']}): 'candidates' must be a list")
    return data


def rows_from_reference(
    entries: Sequence[dict], *, source: str, id_prefix: str, label: str | None, task: str | None = None
) -> list[dict]:
    """Manifest rows (ids `<id_prefix>/<index:05d>`) from reference-format entries.

    Numbers in candidates/answers become strings (MLVU's count task has integers), so
    every manifest has one schema. `task` forces a task; by default entries with
    candidates are "mcqa", others "oeqa". For "caption" the answer is the caption and
    the question its instruction.
    """
    rows = []
    for i, entry in enumerate(entries):
        candidates = entry.get("candidates")
        kind = task or ("mcqa" if candidates else "oeqa")
        answer = str(entry["answer"])
        rows.append(
            make_row(
                id=f"{id_prefix}/{i:05d}",
                video=entry["video"],
                label=label,
                task=kind,
                question=entry["question"],
                candidates=[str(c) for c in candidates] if candidates else None,
                answer=None if kind == "caption" else answer,
                caption=answer if kind == "caption" else None,
                source=source,
                video_sha256=None,
            )
        )
    return rows


def _attach_checksums(rows: list[dict], video_root: Path, progress: bool) -> None:
    """Fill video_sha256 from the files; every referenced video must exist."""
    videos = sorted({r["video"] for r in rows})
    missing = [v for v in videos if not (video_root / v).is_file()]
    if missing:
        shown = ", ".join(missing[:IDS_SHOWN]) + (", ..." if len(missing) > IDS_SHOWN else "")
        raise SplitError(
            f"{len(missing)} video(s) referenced by the annotations are missing under {video_root}: {shown}. "
            "Fix the paths in the annotation file or the --video-root"
        )
    checksum = {v: sha256_file(video_root / v) for v in tqdm(videos, desc="checksums", unit="video", disable=not progress)}
    for row in rows:
        row["video_sha256"] = checksum[row["video"]]


def draw_members(rows: list[dict], fraction: float, seed: int) -> None:
    """Label rows in place: a seeded draw of whole videos, `fraction` of them members."""
    videos = sorted({r["video"] for r in rows})
    if len(videos) < 2:
        raise SplitError("an i.i.d. draw needs at least two distinct videos")
    order = np.random.default_rng(seed).permutation(len(videos))
    n_members = int(round(fraction * len(videos)))
    if not 0 < n_members < len(videos):
        raise SplitError(f"--member-fraction {fraction} leaves one side empty with {len(videos)} videos")
    members = {videos[i] for i in order[:n_members]}
    for row in rows:
        row["label"] = "member" if row["video"] in members else "nonmember"


def create_split(
    name: str,
    video_root: Path,
    *,
    annotations: Path | None = None,
    member_fraction: float | None = None,
    seed: int = 0,
    members: Path | None = None,
    nonmembers: Path | None = None,
    task: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> Split:
    """Create `<splits dir>/<name>/` from annotation file(s); see the module docstring.

    `seed` seeds the member draw of `annotations` (one-file mode) and, in both modes, the
    dev/test partition; the card records it. Raises SplitError, writing nothing, on bad
    arguments or annotations, missing or undecodable videos (each one named), a video on
    both sides (by path or content, the files named) or rows that cannot be partitioned.
    """
    one_file = annotations is not None
    if one_file == (members is not None or nonmembers is not None):
        raise SplitError("give either --annotations (with --member-fraction) or --members and --nonmembers")
    if one_file and member_fraction is None:
        raise SplitError("--annotations needs --member-fraction F (the share of videos that are members)")
    if not one_file and (members is None or nonmembers is None):
        raise SplitError("two-file mode needs both --members and --nonmembers")
    if not one_file and member_fraction is not None:
        raise SplitError("--member-fraction applies to --annotations only (two files give the labels)")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SplitError(f"--seed must be an integer, got {seed!r}")
    if one_file and not 0.0 < member_fraction < 1.0:
        raise SplitError(f"--member-fraction must be in (0, 1), got {member_fraction}")
    if not name or "/" in name or name.startswith("."):
        raise SplitError(f"invalid split name {name!r}: use a plain folder name")
    target = splits_dir() / name
    if (target / CARD_FILE).exists() and not force:
        raise SplitError(f"split {name!r} already exists at {target}; pass --force to replace it")
    video_root = Path(video_root)
    if not video_root.is_dir():
        raise SplitError(f"video root {video_root} is not a directory")

    if one_file:
        entries = read_reference_json(annotations)
        rows = rows_from_reference(entries, source=Path(annotations).name, id_prefix=Path(annotations).stem,
                                   label=None, task=task)
        draw_members(rows, member_fraction, seed)
        drawn = {"method": "iid_by_video", "member_fraction": member_fraction, "seed": seed}
        source = {"annotations": Path(annotations).name}
    else:
        if Path(members).stem == Path(nonmembers).stem:
            raise SplitError("--members and --nonmembers files need different names (their stems prefix the ids)")
        rows = rows_from_reference(read_reference_json(members), source=Path(members).name,
                                   id_prefix=Path(members).stem, label="member", task=task)
        rows += rows_from_reference(read_reference_json(nonmembers), source=Path(nonmembers).name,
                                    id_prefix=Path(nonmembers).stem, label="nonmember", task=task)
        drawn = {"method": "given_lists", "members": Path(members).name, "nonmembers": Path(nonmembers).name}
        source = {"members": Path(members).name, "nonmembers": Path(nonmembers).name}
    _refuse_overlap(rows, "video")  # paths: known before touching any file
    _attach_checksums(rows, video_root, progress)
    _refuse_overlap(rows, "video_sha256")
    frames = _refuse_undecodable(rows, video_root, progress)

    write_split(  # draws the dev/test partition (recorded with `seed`) before writing anything
        target,
        rows,
        partition_seed=seed,
        name=name,
        kind="split",
        version=1,
        description=f"User split created with `vidsme splits create` (vidsme {__version__}).",
        drawn=drawn,
        source=source,
        frames=frame_record(frames),
    )
    return load_split(name)


def _refuse_overlap(rows: list[dict], key: str) -> None:
    """A video on both sides, by path (key "video") or content ("video_sha256"), is an error.

    The message names the files: the shared path with the annotation files listing it, or
    for content the member path(s) and the non-member path(s) that share each checksum.
    """
    found: dict[str, dict[str, set[str]]] = {}  # value -> label -> video paths (or annotation files)
    for row in rows:
        found.setdefault(row[key], {}).setdefault(row["label"], set()).add(
            row["source"] if key == "video" else row["video"])
    both = sorted(v for v, by_label in found.items() if len(by_label) > 1)
    if not both:
        return
    if key == "video":
        listed = [f"{v} (member in {', '.join(sorted(found[v]['member']))}, non-member in "
                  f"{', '.join(sorted(found[v]['nonmember']))})" for v in both[:IDS_SHOWN]]
        what = f"{len(both)} video path(s) appear among both members and non-members"
        fix = "a video (with all of its questions) must be on one side: drop its entries from one annotation file"
    else:
        listed = [f"member {', '.join(sorted(found[c]['member']))} = non-member "
                  f"{', '.join(sorted(found[c]['nonmember']))} (sha256 {c[:12]}...)" for c in both[:IDS_SHOWN]]
        what = f"{len(both)} video content(s) (checksums) appear among both members and non-members"
        fix = "these files are copies of one video: keep one copy and put its entries on one side only"
    more = f"; ... and {len(both) - IDS_SHOWN} more" if len(both) > IDS_SHOWN else ""
    raise SplitError(f"{what}: {'; '.join(listed)}{more}. Nothing was written. Fix: {fix}")


def _refuse_undecodable(rows: list[dict], video_root: Path, progress: bool) -> dict[str, int]:
    """Every video must decode (verify's check); the refusal names each bad file and its problem. Returns
    each video's frame count (the card records the range)."""
    from vidsme.data_splits.verify import decode_error
    from vidsme.video import probe_video

    videos = sorted({r["video"] for r in rows})
    bad, frames = [], {}
    for video in tqdm(videos, desc="decode check", unit="video", disable=not progress):
        err = decode_error(video_root / video)
        if err is not None:
            bad.append(f"  {video}: {err.problem}")
        else:
            frames[video] = probe_video(video_root / video).num_frames
    if bad:
        more = f"\n  ... and {len(bad) - BAD_VIDEOS_SHOWN} more" if len(bad) > BAD_VIDEOS_SHOWN else ""
        raise SplitError(
            f"{len(bad)} of {len(videos)} video(s) under {video_root} do not decode (probe + first and last frame):\n"
            + "\n".join(bad[:BAD_VIDEOS_SHOWN]) + more
            + "\nNothing was written. Re-encode or replace these files, or drop their entries from the annotations"
        )
    return frames
