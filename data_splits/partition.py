"""The dev/test partition of a split: where choices are made, and where they are reported.

Every choice made from data — an attack family's K, alpha, frame count, slice, level, its
representative variant — is made on the dev half and reported on the test half only
(docs/LEADERBOARD.md). The partition is drawn once per split, by video, so a video and all
of its QA rows fall on one side; within each label (member, non-member) the videos are
ordered by sha256("vidsme-partition-v1:<seed>:<video>") and the first floor(n/2) go to dev,
the rest to test. Ordering by a keyed hash instead of a random generator keeps the draw
identical across numpy versions and platforms, and adding a video to the split moves at
most one other video across (the one at the dev/test boundary of its label).

The split card records the seed, the rule's version and, per side, the sha256 of the
sorted video list with the row and video counts: `check_partition_record` (through
`Split.partition()` and `vidsme splits verify`) redraws the partition from the manifest and
refuses a card whose record does not match (a tampered manifest or card), so results always
say exactly which samples chose and which reported.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from vidsme.errors import SplitError

PARTITIONS: tuple[str, ...] = ("dev", "test")
# A sealed challenge's test rows held out for feedback before its reveal: evaluated apart, never ranked
FEEDBACK = "feedback"
PARTITION_VERSION = 1
DEFAULT_PARTITION_SEED = 0
METHOD = ("by video, stratified by label: within each label the videos ordered by "
          "sha256('vidsme-partition-v1:<seed>:<video>'), the first floor(n/2) dev, the rest test")


def _order_key(seed: int, video: str) -> str:
    return hashlib.sha256(f"vidsme-partition-v{PARTITION_VERSION}:{seed}:{video}".encode()).hexdigest()


def _videos_sha256(videos: Sequence[str]) -> str:
    return hashlib.sha256("".join(f"{v}\n" for v in sorted(videos)).encode()).hexdigest()


@dataclass(frozen=True)
class Partition:
    """Which side (dev | test) each video of a split is on."""

    seed: int
    of_video: dict[str, str]  # video -> "dev" | "test"
    version: int = PARTITION_VERSION

    def videos(self, side: str) -> list[str]:
        """The sorted videos of one side."""
        if side not in PARTITIONS:
            raise ValueError(f"partition side must be one of {PARTITIONS}, got {side!r}")
        return sorted(v for v, s in self.of_video.items() if s == side)

    def of_rows(self, rows: Sequence[dict]) -> list[str]:
        """The side of each row (by its video); SplitError for a video the partition lacks."""
        try:
            return [self.of_video[r["video"]] for r in rows]
        except KeyError as err:
            raise SplitError(f"video {err.args[0]} is not in the split's dev/test partition; the rows do not "
                             "belong to this split (or its manifest changed): rebuild or re-create the split") from None

    def record(self, rows: Sequence[dict]) -> dict:
        """What the split card stores: rule, seed, and per side the video-list sha256 and counts."""
        record: dict = {"version": self.version, "seed": self.seed, "method": METHOD}
        sides = self.of_rows(rows)
        for side in PARTITIONS:
            videos = self.videos(side)
            mine = [r for r, s in zip(rows, sides) if s == side]
            record[side] = {
                "videos_sha256": _videos_sha256(videos),
                "rows": {label: sum(r["label"] == label for r in mine) for label in ("member", "nonmember")},
                "videos": {label: len({r["video"] for r in mine if r["label"] == label})
                           for label in ("member", "nonmember")},
            }
        return record


def draw_partition(rows: Sequence[dict], seed: int = DEFAULT_PARTITION_SEED) -> Partition:
    """The dev/test partition of labelled split rows (see the module docstring).

    Raises SplitError when a video carries both labels or a label has fewer than two
    videos (one side would then have no member or no non-member).
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SplitError(f"the partition seed must be an integer, got {seed!r}")
    label_of: dict[str, str] = {}
    for row in rows:
        label = row["label"]
        if label not in ("member", "nonmember"):
            raise SplitError(f"row {row.get('id')!r} has label {label!r}: only member/non-member splits are "
                             "partitioned into dev and test")
        if label_of.setdefault(row["video"], label) != label:
            raise SplitError(f"video {row['video']} has both member and non-member rows; a video must be on one side "
                             "(run `vidsme splits verify`)")
    of_video: dict[str, str] = {}
    for label in ("member", "nonmember"):
        videos = sorted((v for v, lab in label_of.items() if lab == label), key=lambda v: _order_key(seed, v))
        if len(videos) < 2:
            raise SplitError(f"{len(videos)} {label} video(s): a dev/test partition needs at least two per label")
        n_dev = len(videos) // 2
        of_video.update({v: "dev" for v in videos[:n_dev]})
        of_video.update({v: "test" for v in videos[n_dev:]})
    return Partition(seed=seed, of_video=of_video)


def check_partition_record(record: object, rows: Sequence[dict], where: str) -> Partition:
    """Redraw the partition a card records and check it against the manifest rows.

    Raises SplitError naming `where` (the split) when the record is missing, malformed, of
    another rule version, or does not match what the rows give (a tampered card or manifest).
    """
    fix = "rebuild the split (`vidsme splits build`), or re-create it (`vidsme splits create ... --force`)"
    if not isinstance(record, dict):
        raise SplitError(f"{where}: the split card records no dev/test partition; {fix}")
    if record.get("version") != PARTITION_VERSION:
        raise SplitError(f"{where}: the card's partition is of rule version {record.get('version')!r}, this vidsme "
                         f"draws version {PARTITION_VERSION}; {fix}")
    seed = record.get("seed")
    try:
        partition = draw_partition(rows, seed)  # type: ignore[arg-type]
    except SplitError as err:  # name the split: the draw's own message does not know it
        raise SplitError(f"{where}: {err}; {fix}") from None
    expected = partition.record(rows)
    for side in PARTITIONS:
        if record.get(side) != expected[side]:
            raise SplitError(f"{where}: the card's {side} partition (seed {seed}) does not match the manifest's rows "
                             f"(videos or counts differ): the card or the manifest was changed; {fix}")
    return partition


__all__ = ["DEFAULT_PARTITION_SEED", "PARTITIONS", "PARTITION_VERSION", "Partition", "check_partition_record",
           "draw_partition"]
