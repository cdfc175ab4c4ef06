"""Default locations for caches, overridable by environment variables."""
from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "VIDSME_CACHE_DIR"


def cache_root() -> Path:
    """Root of vidsme's caches: $VIDSME_CACHE_DIR, else ~/.cache/vidsme."""
    override = os.environ.get(CACHE_ENV)
    return Path(override) if override else Path.home() / ".cache" / "vidsme"
