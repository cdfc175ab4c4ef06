"""Which way an attack's raw score points."""
from __future__ import annotations

from enum import Enum

import numpy as np


class Direction(str, Enum):
    """HIGHER: a higher raw score means "member"; LOWER: a lower one does.

    Metrics always work on member-positive scores, obtained by `orient`.
    """

    HIGHER = "higher"
    LOWER = "lower"

    def orient(self, scores: np.ndarray) -> np.ndarray:
        """Raw scores -> member-positive scores (higher = more likely a member)."""
        scores = np.asarray(scores, dtype=np.float64)
        return scores if self is Direction.HIGHER else -scores
