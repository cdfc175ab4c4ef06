"""Text keys: words of a row's text that name one video of the split.

A target memorises whatever lowers its loss most cheaply. If a question or caption carries a
word sequence no other video's text has (a title, a credit, a place), that sequence is a key:
the target can learn "this text -> this answer" without reading a frame, and every membership
number then measures text memorisation. Real video QA text (NExT-QA, most of CinePile) does
not name its clip; the synthetic splits do not either, except the *-titled controls.

A row is *text-keyed* when its text (question, candidates, answer, caption) holds a word n-gram
(n = 1..MAX_N, case-folded words and numbers) that occurs in the text of exactly one video of
the split. `vidsme splits audit` reports the count per split and a few of the keys.

MAX_N is 1: a word used in one video's text only (a title's number, a name, a place). Longer
n-grams flag text that is no key: frame-derived phrases are combinations of shared words, and a
combination can be rare by chance ("yellow object" in the one shape question about a yellow
object, of 200). A shared template word can also be rare by chance (one "never" in a draw of 200
rows): a handful of keyed rows is noise; a text key keys every row that carries it.
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MAX_N = 1  # words: longer n-grams flag rare combinations of shared, frame-derived words
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
TEXT_FIELDS: tuple[str, ...] = ("question", "candidates", "answer", "caption")
_SHOWN = 5


def _words(row: dict) -> list[str]:
    parts = []
    for field in TEXT_FIELDS:
        value = row.get(field)
        parts += [str(v) for v in value] if isinstance(value, list) else ([str(value)] if value else [])
    return _WORD.findall(" ".join(parts).casefold())


def ngrams(words: Sequence[str], max_n: int = MAX_N) -> set[str]:
    """Every word n-gram of `words` for n = 1..max_n, as space-joined strings."""
    return {" ".join(words[i:i + n]) for n in range(1, max_n + 1) for i in range(len(words) - n + 1)}


@dataclass(frozen=True)
class TextKeys:
    """The text-keyed rows of a split: how many of how many, and a few (row id, key) examples."""

    keyed_rows: int
    rows: int
    examples: tuple[tuple[str, str], ...]

    def to_dict(self) -> dict:
        return {"keyed_rows": self.keyed_rows, "rows": self.rows, "max_n": MAX_N,
                "examples": [{"row": r, "key": k} for r, k in self.examples]}


def text_keys(rows: Iterable[dict], max_n: int = MAX_N) -> TextKeys:
    """The rows of `rows` whose text holds an n-gram (n <= max_n) found in the text of one video only."""
    rows = list(rows)
    per_row = [ngrams(_words(r), max_n) for r in rows]
    videos_of: dict[str, set[str]] = defaultdict(set)
    for row, grams in zip(rows, per_row):
        for gram in grams:
            videos_of[gram].add(row["video"])
    keyed, examples = 0, []
    for row, grams in zip(rows, per_row):
        unique = sorted(g for g in grams if len(videos_of[g]) == 1)
        if unique:
            keyed += 1
            if len(examples) < _SHOWN:
                examples.append((row["id"], min(unique, key=lambda g: (len(g.split()), g))))
    return TextKeys(keyed, len(rows), tuple(examples))


__all__ = ["MAX_N", "TextKeys", "ngrams", "text_keys"]
