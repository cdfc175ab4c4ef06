"""`vidsme splits verify`: is this split exactly what its card says, and usable?

Checks, each reported with how many rows and which ids:
  manifest   the manifest's sha256 equals the card's (a hand-edited row fails here)
  schema     every row parses and has every field; ids are unique
  counts     rows and distinct videos per label equal the card's counts
  overlap    no video is on both sides, by path and by content checksum
  complete   the member list is available (the paper's caption split is not)
  partition  the card's dev/test partition record is what the manifest's rows give
             (redrawn with the recorded seed); pools and incomplete splits have none
  videos     (with a video root) every video exists, matches its recorded checksum,
             and decodes (probe + first and last frame; with thorough=True every frame,
             with PyAV, which also catches damaged frame data that decord conceals)
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from vidsme.data_splits.manifest import count_by_label
from vidsme.provenance import sha256_file
from vidsme.data_splits.partition import check_partition_record
from vidsme.data_splits.registry import Split
from vidsme.errors import SplitError, VideoError

IDS_SHOWN = 8


@dataclass
class Problem:
    """One kind of failure and every row it affects."""

    check: str
    message: str
    ids: list[str] = field(default_factory=list)

    def format(self) -> str:
        shown = ", ".join(self.ids[:IDS_SHOWN]) + (", ..." if len(self.ids) > IDS_SHOWN else "")
        which = f" ({len(self.ids)}: {shown})" if self.ids else ""
        return f"[{self.check}] {self.message}{which}"


@dataclass
class VerifyReport:
    """Outcome of verify_split; `ok` only when no check found a problem."""

    split: str
    problems: list[Problem] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self) -> str:
        head = f"split {self.split!r}: " + ("OK" if self.ok else f"{len(self.problems)} problem(s)")
        lines = [head, "  checked: " + ", ".join(self.checked)]
        lines += ["  " + p.format() for p in self.problems]
        return "\n".join(lines)


def shared_videos(rows: list[dict], other: list[dict]) -> list[str]:
    """The videos of `rows` that `other` holds too, by path or by checksum (sorted): a population or a shadow
    pool must share none with the evaluated split."""
    paths = {r["video"] for r in other}
    checksums = {r["video_sha256"] for r in other if r.get("video_sha256")}
    return sorted({r["video"] for r in rows if r["video"] in paths or r.get("video_sha256") in checksums})


def _overlaps(rows: list[dict], key: str) -> list[str]:
    """Ids of rows whose `key` value appears under both labels."""
    labels_by_value: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if row[key] is not None:
            labels_by_value[row[key]].add(row["label"])
    shared = {v for v, labels in labels_by_value.items() if len(labels) > 1}
    return [row["id"] for row in rows if row[key] in shared]


def verify_split(
    split: Split, video_root: Path | None = None, *, decode: bool = True, thorough: bool = False, progress: bool = True
) -> VerifyReport:
    """Run every check on `split`; video checks need `video_root`."""
    report = VerifyReport(split.name)
    card = split.card

    report.checked.append("manifest sha256")
    if not split.manifest_path.is_file():
        report.problems.append(Problem("manifest", f"{split.manifest_path} is missing"))
        return report
    actual = sha256_file(split.manifest_path)
    if actual != card.manifest_sha256:
        report.problems.append(
            Problem(
                "manifest",
                f"manifest sha256 {actual[:12]}... differs from the card's {card.manifest_sha256[:12]}...: "
                "the manifest was edited after the split was drawn; rebuild or re-create the split",
            )
        )

    report.checked.append("schema")
    try:
        rows = split.rows()
    except SplitError as err:
        report.problems.append(Problem("schema", str(err)))
        return report
    seen: dict[str, int] = defaultdict(int)
    for row in rows:
        seen[row["id"]] += 1
    duplicated = [i for i, n in seen.items() if n > 1]
    if duplicated:
        report.problems.append(Problem("schema", "ids appear more than once", duplicated))

    report.checked.append("counts")
    counts = count_by_label(rows)
    if counts != card.counts:
        report.problems.append(Problem("counts", f"manifest counts {counts} differ from the card's {card.counts}"))

    if not split.is_pool:
        report.checked.append("member/non-member disjointness")
        for key, what in (("id", "ids"), ("video", "video paths"), ("video_sha256", "video checksums")):
            both = _overlaps(rows, key)
            if both:
                report.problems.append(
                    Problem("overlap", f"{what} shared by members and non-members", sorted(set(both)))
                )
        report.checked.append("completeness")
        if not card.members_available:
            report.problems.append(
                Problem(
                    "complete",
                    "the member list of this split is not available (see the card's notes): the split is "
                    "incomplete and cannot be evaluated as a membership benchmark",
                )
            )
        if split.test_only:  # a sealed challenge's split: every row is a test row
            report.checked.append("dev/test partition: none (test-only split)")
        elif card.members_available:
            try:
                partition = check_partition_record(card.partition, rows, f"split {split.name!r}")
            except SplitError as err:
                report.checked.append("dev/test partition")
                report.problems.append(Problem("partition", str(err)))
            else:
                sides = {side: card.partition[side]["videos"] for side in ("dev", "test")}
                report.checked.append(
                    f"dev/test partition (seed {partition.seed}; videos member/non-member: dev "
                    f"{sides['dev']['member']}/{sides['dev']['nonmember']}, test "
                    f"{sides['test']['member']}/{sides['test']['nonmember']})"
                )

    if video_root is None:
        report.checked.append("videos: NOT checked (no --video-root)")
        return report
    report.checked.append(f"videos under {video_root}")
    _check_videos(report, rows, Path(video_root), decode=decode, thorough=thorough, progress=progress)
    return report


def decode_error(path: Path, *, thorough: bool = False) -> VideoError | None:
    """None if the video at `path` decodes, else the VideoError (naming the path and the problem).

    The decode check of verify (and of `vidsme splits create`): probe, then the first and
    last frame; with thorough=True every frame, with PyAV, which also catches damaged frame
    data that decord conceals.
    """
    from vidsme.video import probe_video, read_frames

    try:
        info = probe_video(path)
        if thorough:
            read_frames(path, info.num_frames, backend="pyav")
        else:
            read_frames(path, 2 if info.num_frames > 1 else 1)
    except VideoError as err:
        return err
    return None


def _check_videos(
    report: VerifyReport, rows: list[dict], video_root: Path, *, decode: bool, thorough: bool, progress: bool
) -> None:
    by_video: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_video[row["video"]].append(row)
    missing, mismatched, undecodable = [], [], []
    label_by_checksum: dict[str, set] = defaultdict(set)
    ids_by_checksum: dict[str, list[str]] = defaultdict(list)
    reasons: list[str] = []
    for video, video_rows in tqdm(sorted(by_video.items()), desc="verify videos", unit="video", disable=not progress):
        ids = [r["id"] for r in video_rows]
        path = video_root / video
        if not path.is_file():
            missing += ids
            continue
        checksum = sha256_file(path)
        recorded = {r["video_sha256"] for r in video_rows} - {None}
        if recorded and recorded != {checksum}:
            mismatched += ids
        for r in video_rows:
            label_by_checksum[checksum].add(r["label"])
            ids_by_checksum[checksum].append(r["id"])
        err = decode_error(path, thorough=thorough) if decode else None
        if err is not None:
            undecodable += ids
            if len(reasons) < 3:
                reasons.append(str(err))
    if missing:
        report.problems.append(Problem("videos", f"videos missing under {video_root}", missing))
    if mismatched:
        report.problems.append(
            Problem("videos", "video files differ from the checksums recorded in the manifest", mismatched)
        )
    if undecodable:
        report.problems.append(Problem("videos", "videos do not decode: " + " | ".join(reasons), undecodable))
    # Content duplicates under different paths: only files reveal them.
    shared = [i for c, labels in label_by_checksum.items() if len(labels - {None}) > 1 for i in ids_by_checksum[c]]
    if shared:
        report.problems.append(
            Problem("overlap", "the same video content (checksum) is used by members and non-members", shared)
        )
