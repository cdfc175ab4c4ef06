"""Which splits exist: committed ones (paper), buildable ones (synthetic), user-created.

A split lives in `<splits dir>/<name>/` as manifest.jsonl + card.json. The splits dir is
this package's folder (the repository's data_splits/) unless VIDSME_SPLITS_DIR says
otherwise, e.g. for an installed package whose folder is read-only.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vidsme.data_splits.manifest import CARD_FILE, MANIFEST_FILE, SplitCard, read_manifest
from vidsme.data_splits.partition import FEEDBACK, Partition, check_partition_record
from vidsme.errors import SplitError, UnknownNameError
from vidsme.names import did_you_mean
from vidsme.paths import SPLITS_DIR_ENV

# Built by `vidsme splits build NAME` from the deterministic generator (not committed:
# the videos are generated on each machine; the generator pins their content).
# The *-population pools are unlabelled draws of their split's distribution on other scenes (offline
# shadow models train on them; RMIA compares against them).
SYNTHETIC_SPLITS: tuple[str, ...] = (
    "synth-mcqa", "synth-oeqa", "synth-caption", "synth-pretrain", "synth-mcqa-large",
    "synth-mcqa-population", "synth-oeqa-population", "synth-caption-population", "synth-mcqa-large-population",
    "synth-mcqa-titled", "synth-oeqa-titled", "synth-caption-titled",  # controls: the same scenes with text keys
    "synth-probe",  # held-out scenes: a base's video reading
    "synth-pretrain-large",  # synth-pretrain's scenes and 1,760 more, perception rows only (a base that reads)
)


def splits_dir() -> Path:
    """Folder holding one sub-folder per split."""
    override = os.environ.get(SPLITS_DIR_ENV)
    return Path(override) if override else Path(__file__).resolve().parent


@dataclass(frozen=True)
class Split:
    """A split on disk: its folder, card and (validated) manifest rows."""

    name: str
    path: Path
    card: SplitCard

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST_FILE

    @property
    def is_pool(self) -> bool:
        return self.card.kind == "pool"

    def rows(self) -> list[dict]:
        """The manifest rows, schema-checked (errors name file:line)."""
        return read_manifest(self.manifest_path, pool=self.is_pool)

    @property
    def test_only(self) -> bool:
        """A sealed challenge's split: every row is a test row (no dev/test partition)."""
        return bool(self.card.drawn.get("test_only")) if isinstance(self.card.drawn, dict) else False

    def sides(self, rows: list[dict]) -> list[str]:
        """The dev/test side of each of `rows`. A test-only split's rows are all "test", but for the videos
        its card sets aside as FEEDBACK (a sealed challenge's feedback part, reported apart, never ranked)."""
        if self.test_only:
            feedback = set(self.feedback_videos())
            return [FEEDBACK if r["video"] in feedback else "test" for r in rows]
        return self.partition().of_rows(rows)

    def feedback_videos(self) -> list[str]:
        """The videos of a test-only split's feedback part ([] when it has none or the card hides them)."""
        drawn = self.card.drawn if isinstance(self.card.drawn, dict) else {}
        videos = (drawn.get("feedback") or {}).get("videos") if isinstance(drawn.get("feedback"), dict) else None
        return list(videos) if isinstance(videos, list) else []

    def partition(self) -> Partition:
        """The split's dev/test partition, redrawn from the manifest and checked against the card.

        Raises SplitError naming the split, with the fix, for a pool or an incomplete split
        (nothing to partition), a card without a partition record (written before partitions
        existed), or a record the manifest does not reproduce (card or manifest changed).
        """
        where = f"split {self.name!r}"
        if self.is_pool:
            raise SplitError(f"{where} is a pool (unlabelled rows): it has no dev/test partition; evaluate a "
                             "member/non-member split instead")
        if not self.card.members_available:
            raise SplitError(f"{where} is incomplete (its member list is not available, see its card's notes): it "
                             "has no dev/test partition; supply members with `vidsme splits create --members ... "
                             "--nonmembers ...`")
        return check_partition_record(self.card.partition, self.rows(), where)


def _on_disk(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CARD_FILE).is_file())


def known_split_names() -> list[str]:
    """Every split name `vidsme splits` knows: on disk, plus buildable synthetic ones."""
    return sorted(set(_on_disk(splits_dir())) | set(SYNTHETIC_SPLITS))


def load_split(name: str) -> Split:
    """The split called `name`; did-you-mean for unknown names, a hint for unbuilt ones."""
    path = splits_dir() / name
    if not (path / CARD_FILE).is_file():
        if name in SYNTHETIC_SPLITS:
            raise SplitError(f"split {name!r} is not built yet: run `vidsme splits build {name}`")
        raise UnknownNameError(
            f"unknown split {name!r}.{did_you_mean(name, known_split_names())} "
            f"Run `vidsme splits list` (splits dir: {splits_dir()})."
        )
    return Split(name=name, path=path, card=SplitCard.read(path / CARD_FILE))
