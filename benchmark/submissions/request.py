"""What `vidsme submit` is asked to do, and which of its options go together, checked before anything runs."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from vidsme.benchmark.submissions.attack_code import DEFAULT_TIME_BUDGET_S, submit_attack
from vidsme.benchmark.submissions.common import SubmissionResult
from vidsme.benchmark.submissions.sandbox import GIB, SandboxLimits
from vidsme.benchmark.submissions.scores_file import submit_scores_file
from vidsme.benchmark.submissions.submitters import authenticate
from vidsme.errors import VidsmeError

DEFAULT_MEMORY_GIB = 8.0


@dataclass(frozen=True)
class SubmitRequest:
    """One submission by `submitter` (whose `key` the board checks): attack code (`source`) or a scores file
    (`scores`), to a public benchmark (`results`) or a sealed challenge (`challenge`). The scores-file
    fields (target .. citation) apply to `scores` only.

    `kind` says which of the three ways it goes: "code", "scores" or "challenge".
    """

    submitter: str | None = None
    key: str = field(default="", repr=False)
    source: str | None = None
    scores: Path | None = None
    results: Path | None = None
    challenge: Path | None = None
    time_budget_s: float = DEFAULT_TIME_BUDGET_S
    memory_gib: float = DEFAULT_MEMORY_GIB
    sandbox: bool = True
    target: str | None = None
    attack_name: str | None = None
    direction: str | None = None
    level: str = "row"
    slice_name: str = "answer"
    n_frames: int | None = None
    citation: str | None = None

    @property
    def kind(self) -> str:
        if self.challenge is not None:
            return "challenge"
        return "scores" if self.scores is not None else "code"

    def check(self) -> SubmitRequest:
        """Raise VidsmeError naming the options that do not go together; returns self."""
        if not self.submitter:
            raise VidsmeError("every submission names its submitter: --submitter NAME (the host issues names and "
                              "keys with `vidsme submitters add NAME --results DIR`)")
        if (self.source is None) == (self.scores is None):
            raise VidsmeError("give either SOURCE (an attack .py file, module path or entry-point name) or "
                              "--scores FILE.csv, not both")
        if (self.results is None) == (self.challenge is None):
            raise VidsmeError("give either --results RESULTS_DIR (a public benchmark) or --challenge DIR (a sealed "
                              "challenge), not both")
        if self.challenge is not None and (self.scores is not None or not self.sandbox):
            raise VidsmeError("a challenge takes sandboxed code only: no --scores file (you have neither its labels "
                              "nor its features) and no --no-sandbox")
        if self.kind != "scores":
            if not 0 < self.memory_gib < math.inf:
                raise VidsmeError(f"--memory-limit must be a positive number of GiB, got {self.memory_gib}")
        else:
            lacking = [flag for flag, value in (("--target", self.target), ("--attack-name", self.attack_name),
                                                ("--direction", self.direction)) if value is None]
            if lacking:
                raise VidsmeError(f"a scores-file submission also needs {', '.join(lacking)}")
        return self

    def limits(self) -> SandboxLimits:
        """The sandbox's limits for code submissions."""
        return SandboxLimits(memory_bytes=int(self.memory_gib * GIB))


def submit(request: SubmitRequest, *, command: str | None = None) -> SubmissionResult:
    """Evaluate a checked code or scores-file `request` on its public results (a challenge request goes to
    vidsme.challenge.board.submit_to_challenge). `command` is recorded in results.json."""
    if request.kind == "challenge":
        raise VidsmeError("a challenge submission goes through `vidsme submit FILE --challenge DIR`")
    submitter = authenticate(request.results, request.submitter, request.key)
    if request.kind == "code":
        return submit_attack(request.source, request.results, submitter=submitter,
                             time_budget_s=request.time_budget_s, command=command, sandbox=request.sandbox,
                             limits=request.limits())
    return submit_scores_file(request.scores, request.results, submitter=submitter, target=request.target,
                              attack_name=request.attack_name, direction=request.direction, level=request.level,
                              slice_name=request.slice_name, n_frames=request.n_frames,
                              citation=request.citation or "", command=command)


__all__ = ["DEFAULT_MEMORY_GIB", "SubmitRequest", "submit"]
