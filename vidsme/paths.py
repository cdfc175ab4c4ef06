"""Default locations (caches, splits), overridable by environment variables."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

CACHE_ENV = "VIDSME_CACHE_DIR"
# The folder of split folders (data_splits/ by default, see vidsme.data_splits.registry). A study or a
# challenge points it at its own work folder so that its splits never touch the repository's.
SPLITS_DIR_ENV = "VIDSME_SPLITS_DIR"


def cache_root() -> Path:
    """Root of vidsme's caches: $VIDSME_CACHE_DIR, else ~/.cache/vidsme."""
    override = os.environ.get(CACHE_ENV)
    return Path(override) if override else Path.home() / ".cache" / "vidsme"


@contextlib.contextmanager
def using_splits_dir(path: Path) -> Iterator[None]:
    """$VIDSME_SPLITS_DIR = `path` for the duration of the block, restored afterwards."""
    before = os.environ.get(SPLITS_DIR_ENV)
    os.environ[SPLITS_DIR_ENV] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(SPLITS_DIR_ENV, None)
        else:
            os.environ[SPLITS_DIR_ENV] = before
