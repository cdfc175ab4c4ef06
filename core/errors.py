"""Exception types shared by every stage.

Each error message names the offending thing (attack, sample, file) and says how
to fix it; callers should never have to guess which input was bad.
"""


class VidsmeError(Exception):
    """Base class: an error the user can act on (bad input, unknown name, ...)."""


class UnknownNameError(VidsmeError, KeyError):
    """A name (attack, split, target, config key) that no registry knows."""

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return str(self.args[0]) if self.args else ""


class MissingFeatureError(VidsmeError):
    """An attack asked for a feature that the provided inputs do not carry."""


class InvalidScoresError(VidsmeError):
    """Scores that cannot be evaluated (NaN, wrong length, single class...)."""
