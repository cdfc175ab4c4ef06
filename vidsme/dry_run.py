"""The report every dry run prints (`vidsme train ... --dry-run`, `vidsme benchmark ... --dry-run`).

A dry run loads no weights and writes nothing; it lists what it found and every problem
that would stop or spoil the real run, so that all of them can be fixed in one go.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

SHOWN = 5  # items shown of a long list (the count is always printed beside it)


def shown(items: Sequence[str], sep: str = ", ") -> str:
    """The first SHOWN items joined by `sep`, then "..." when there are more."""
    return sep.join(items[:SHOWN]) + (f"{sep.rstrip()} ..." if len(items) > SHOWN else "")


@dataclass
class DryRunReport:
    """What a dry run found: `lines` (findings), `problems` (what must be fixed), `sections` (one
    sub-report per part checked, e.g. per target of a suite) and `figures` (the numbers behind the
    lines, for programs: parameter counts, memory per GPU). `summary` is the closing verdict's detail
    ("the run would make 12 forward passes")."""

    title: str
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    sections: list[DryRunReport] = field(default_factory=list)
    figures: dict[str, object] = field(default_factory=dict)
    summary: str | None = None

    @property
    def ok(self) -> bool:
        """Nothing missing, here or in any section."""
        return not self.problems and all(s.ok for s in self.sections)

    def problem_count(self) -> int:
        return len(self.problems) + sum(s.problem_count() for s in self.sections)

    def format(self) -> str:
        """The report as printed: title, findings, problems, each section indented under its verdict,
        then the closing verdict."""
        out = [self.title, *self.lines, *(f"MISSING: {p}" for p in self.problems)]
        for s in self.sections:
            out.append(f"{s.title}: {'ready' if s.ok else 'NOT READY'}")
            out += [f"  {line}" for line in s.lines]
            out += [f"  MISSING: {p}" for p in s.problems]
        if self.ok:
            out.append(f"ready: {self.summary or 'nothing missing'}")
        else:
            out.append("not ready: " + (f"{self.summary}; " if self.summary else "")
                       + f"fix the {self.problem_count()} problem(s) above before allocating GPUs")
        return "\n".join(out)
