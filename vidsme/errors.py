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


class VideoError(VidsmeError):
    """A video that cannot be used; the message names its path. Never replaced by another."""

    def __init__(self, path: object, problem: str, fix: str) -> None:
        self.path = str(path)
        self.problem, self.fix = problem, fix
        super().__init__(f"{self.path}: {problem}. {fix}")

    def __reduce__(self):  # cross process-pool boundaries with its class and fields intact
        return (type(self), (self.path, self.problem, self.fix))


class VideoNotFoundError(VideoError):
    """The file does not exist."""


class CorruptVideoError(VideoError):
    """The file exists but cannot be decoded (truncated, damaged, zero bytes)."""


class EmptyVideoError(VideoError):
    """The container decodes but holds no video frames."""


class UnsupportedVideoError(VideoError):
    """Not a video container we can read (e.g. a text or image file renamed .mp4, a directory)."""


class SplitError(VidsmeError):
    """A split that fails verification or cannot be built/created."""


class DamagedFileError(VidsmeError):
    """A file vidsme wrote or was handed (model, checkpoint, cache shard) that is missing, truncated
    or unreadable; the message names the file, what is wrong with it and what to do."""

    def __init__(self, path: object, problem: str, fix: str) -> None:
        self.path = str(path)
        self.problem, self.fix = problem, fix
        super().__init__(f"{self.path}: {problem}; {fix}")

    def __reduce__(self):  # cross process-pool boundaries with its class and fields intact
        return (type(self), (self.path, self.problem, self.fix))


class ModelFileError(DamagedFileError):
    """A model directory's file (weights, config, tokenizer) or a training checkpoint's file."""


class CacheFileError(DamagedFileError):
    """A feature-cache shard (safetensors or JSON) that cannot be read back."""


def printable(text: object, keep_newlines: bool = True) -> str:
    """`text` safe to print on a terminal: every control or format character (ANSI escapes, carriage
    returns, bidirectional overrides, ...) becomes "?", newlines kept if asked. Text that may come from
    submitted code goes through this before anyone sees it."""
    import unicodedata

    return "".join(c if (c == "\n" and keep_newlines) or unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp")
                   else "?" for c in str(text))
