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
from vidsme.errors import SplitError, UnknownNameError
from vidsme.names import did_you_mean

SPLITS_DIR_ENV = "VIDSME_SPLITS_DIR"
# Built by `vidsme splits build NAME` from the deterministic generator (not committed:
# the videos are generated on each machine; the generator pins their content).
SYNTHETIC_SPLITS: tuple[str, ...] = ("synth-mcqa", "synth-oeqa", "synth-caption", "synth-pretrain")


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
