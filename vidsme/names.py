"""Did-you-mean suggestions for unknown names (attacks, config keys, splits)."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, known: Iterable[str], n: int = 3) -> str:
    """Return ' Did you mean: a, b?' for the closest known names, or '' if none is close."""
    matches = difflib.get_close_matches(name, sorted(set(known)), n=n, cutoff=0.6)
    return f" Did you mean: {', '.join(matches)}?" if matches else ""
