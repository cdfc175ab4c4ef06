"""Calling a submission's sandboxed child and checking what comes back: one place for the protocol's
calls, timing and refusals, shared by submitted attacks (attack_code) and calibrations (calibration_code).

Every call goes out as two copies of its inputs with the rows shuffled independently (and, for
attacks, opaque sample ids drawn afresh); the two results must agree bit for bit once mapped back to
the real order. Times are measured here, from when each message arrives: the child could lie about
its own. Refusals name the opaque ids of the first copy, never a sample id.
"""
from __future__ import annotations

import secrets
import time
import traceback
from collections.abc import Sequence

import numpy as np

from vidsme.attack.calibration import CalibrationInputs, CalibrationSpec
from vidsme.attack.inputs import FRAME_SLOT, TEXT
from vidsme.attack.isolated import COPIES, decode_scores, opaque_ids
from vidsme.attack.registry import AttackSpec
from vidsme.benchmark.evaluate import slice_inputs
from vidsme.benchmark.submissions import sandbox as sandboxing
from vidsme.benchmark.submissions.common import MAX_ABS_SCORE, SubmissionRefused, ids_preview
from vidsme.errors import printable

WHY_CHARS = 2000  # a reason quoted from the sandbox, on one line
POOLED_RTOL = 1e-9  # how closely a calibration's two shuffled calls must agree
CPU_SLACK_S = 0.1  # clock-tick rounding of the kernel's CPU accounting


def last_line(err: BaseException) -> str:
    """The last line of a traceback: 'ValueError: bad thing'."""
    lines = traceback.format_exception_only(type(err), err)
    return lines[-1].strip() if lines else type(err).__name__


def one_line(text: object, limit: int = WHY_CHARS) -> str:
    """Untrusted text (from the sandbox) as one printable line of at most `limit` characters."""
    text = " ".join(printable(text, keep_newlines=False).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def sandbox_refusal(err: sandboxing.SandboxError, what: str) -> SubmissionRefused:
    """A failure of the sandbox machinery or protocol, as a 'sandbox' refusal."""
    hint = ""
    if "MemoryError" in err.output or "allocate" in err.output:
        hint = " (if it ran out of memory, raise --memory-limit)"
    return SubmissionRefused("sandbox", one_line(f"{what}: {err}{hint}"))


def _missing_hint(key: str, target: str, n_frames: str, slice_name: str) -> str:
    if key.startswith("reference."):
        return ("the suite ran without the reference view: set reference_view=true in the suite config (and "
                "targets[].reference when the target's card names no base model), rerun `vidsme benchmark SUITE` "
                "to extract it, then submit again")
    if key == TEXT:
        return "the text exists on the instruction and answer slices only: declare slices=(\"instruction\", \"answer\")"
    if key == FRAME_SLOT:
        return "frame slots exist on the video slice only: declare slices=(\"video\",)"
    return (f"the cache of target {target!r} ({n_frames} frames) has no {key!r} on slice {slice_name!r}; rerun "
            "`vidsme benchmark SUITE` with this vidsme to extract it")


def _features_refusal(spec: AttackSpec, inputs, unit: str, target: str, n_frames: str,
                      slice_name: str) -> SubmissionRefused | None:
    missing = [k for k in spec.needs if k not in inputs.available()]
    if not missing:
        return None
    return SubmissionRefused("features", f"attack {spec.name!r} needs {', '.join(missing)}, which the cached "
                                         f"features of {unit} lack; "
                                         f"{_missing_hint(missing[0], target, n_frames, slice_name)}")


def _unit(target: str, n_frames: str, slice_name: str, model: str | None = None) -> str:
    return f"target {target!r}{f' ({model})' if model else ''}, {n_frames} frames, slice {slice_name!r}"


def _noun(spec: AttackSpec | CalibrationSpec) -> str:
    return "calibration" if isinstance(spec, CalibrationSpec) else "attack"


def _order_hint(spec: AttackSpec | CalibrationSpec) -> str:
    return "inputs.target order" if isinstance(spec, CalibrationSpec) else "inputs.sample_ids order"


def _non_finite(first: np.ndarray, ids: Sequence[str], unit: str, spec: AttackSpec | CalibrationSpec) -> None:
    bad = ~np.isfinite(first)
    huge = np.isfinite(first) & (np.abs(first) > MAX_ABS_SCORE)
    if huge.any() and not bad.any():
        raise SubmissionRefused("scores", f"{unit}: {int(huge.sum())} of {len(first)} scores of {_noun(spec)} "
                                          f"{spec.name!r} are larger than {MAX_ABS_SCORE:g} in magnitude "
                                          f"({ids_preview([ids[i] for i in np.flatnonzero(huge)])}): a video's mean of "
                                          "such scores overflows; rescale them")
    if bad.any():
        nan = [ids[i] for i in np.flatnonzero(np.isnan(first))]
        inf = [ids[i] for i in np.flatnonzero(np.isinf(first))]
        parts = ([f"NaN for {ids_preview(nan)}"] if nan else []) + ([f"inf for {ids_preview(inf)}"] if inf else [])
        raise SubmissionRefused("scores", f"{unit}: {int(bad.sum())} of {len(first)} scores of {_noun(spec)} "
                                          f"{spec.name!r} are not finite ({'; '.join(parts)}); every sample needs a "
                                          "finite score")


def _over_budget(slowest: float, budget: float, unit: str, spec: AttackSpec | CalibrationSpec) -> None:
    if slowest > budget:
        raise SubmissionRefused("time budget", f"{unit}: one call of {_noun(spec)} {spec.name!r} took {slowest:.3g} s, "
                                               f"over the budget of {budget:g} s per call on the cached features "
                                               "(--time-budget)")


class SandboxScorer:
    """Scores calls in the attack's child process: per (slice, declared inputs) two independently shuffled
    copies with opaque ids, one batch per (target, frame count); results validated in call order as they
    arrive. Call times are measured here, from when each result reaches this process (the child could
    lie about its own); refusals name the opaque ids of the first copy, never a sample id."""

    def __init__(self, proc: sandboxing.SandboxProcess, budget: float, limits: sandboxing.SandboxLimits) -> None:
        self.proc, self.budget, self.limits = proc, budget, limits
        self.rng = np.random.default_rng(secrets.randbits(128))  # unpredictable: an order must not be guessable
        self.slowest = 0.0  # the longest call, as measured here
        self._since = 0.0  # arrival of the previous message (or the command's sending)
        # CPU time of the child's whole tree at the previous result (here: after it declared, imports done). Work
        # between two results — in a thread or process started at an earlier call, while this side evaluated —
        # counts toward the call whose result ends the interval: a call's budget is budget x threads of CPU
        self._cpu_since = proc.cpu_seconds()

    def run(self, calls: list[tuple[AttackSpec, str]], samples, target: str, n_frames: str, model: str | None = None):
        """(scores, inputs) per call, in order; SubmissionRefused at the first failing check. `model` names
        whose features `samples` are when they are not the target's (a shadow model's, the population's)."""
        built: dict[str, object] = {}
        sets: dict[tuple, tuple[str, list[np.ndarray], list[str]]] = {}
        plan, stop = [], None
        for k, (spec, slice_name) in enumerate(calls):
            if slice_name not in built:  # real order, all features; each copy takes the rows and keys it needs
                built[slice_name] = slice_inputs(samples, slice_name)
            inputs = built[slice_name]
            unit = _unit(target, n_frames, slice_name, model)
            stop = _features_refusal(spec, inputs, unit, target, n_frames, slice_name)
            if stop is not None:  # the calls before it are still checked first
                break
            key = (slice_name, tuple(sorted(set(spec.needs))))
            if key not in sets:
                stem, orders, shown = f"u{len(sets)}", [], []
                for copy in range(COPIES):
                    order, ids = self.rng.permutation(inputs.n), opaque_ids(inputs.n, self.rng)
                    self.proc.write_inputs(inputs, key[1], order, ids, f"{stem}-{copy}")
                    orders.append(order)
                    shown = shown or ids  # the first copy's ids name samples in refusals
                sets[key] = (stem, orders, shown)
            plan.append((k, spec, unit, inputs, *sets[key]))
        out = []
        try:
            if plan:
                self._send({"cmd": "score", "calls": [{"call": k, "attack": spec.name, "input": stem}
                                                      for k, spec, _, _, stem, _, _ in plan]})
            for k, spec, unit, inputs, _, orders, shown in plan:
                out.append((self._validated(k, spec, unit, orders, shown), inputs))
        finally:
            for path in self.proc.inputs.glob("u*-*.*"):
                path.unlink(missing_ok=True)
        if stop is not None:
            raise stop
        return out

    def calibrate(self, calls: list[tuple[CalibrationSpec, CalibrationInputs, str]]) -> list[np.ndarray]:
        """Calibrated scores per (calibration, inputs, unit) call, in order (real sample order), validated as
        attacks' are. Each distinct inputs goes out as two copies, the samples and the population shuffled
        independently; a calibration sees arrays only, never an id."""
        sets: dict[int, tuple[str, list[np.ndarray], list[str]]] = {}
        plan = []
        for k, (spec, inputs, unit) in enumerate(calls):
            if id(inputs) not in sets:
                stem, orders = f"c{len(sets)}", []
                for copy in range(COPIES):
                    order = self.rng.permutation(inputs.n)
                    population = (self.rng.permutation(len(inputs.population_target))
                                  if inputs.population_target is not None else None)
                    self.proc.write_calibration_inputs(inputs, order, population, f"{stem}-{copy}")
                    orders.append(order)
                sets[id(inputs)] = (stem, orders, [f"row {j}" for j in range(inputs.n)])
            plan.append((k, spec, unit, *sets[id(inputs)]))
        try:
            if plan:
                self._send({"cmd": "calibrate", "calls": [{"call": k, "calibration": spec.name, "input": stem}
                                                          for k, spec, _, stem, _, _ in plan]})
            return [self._validated(k, spec, unit, orders, shown) for k, spec, unit, _, orders, shown in plan]
        finally:
            for path in self.proc.inputs.glob("c*-*.*"):
                path.unlink(missing_ok=True)

    def _validated(self, k: int, spec: AttackSpec | CalibrationSpec, unit: str, orders: list[np.ndarray],
                   shown: list[str]) -> np.ndarray:
        """Call k's two results: finite, bit-identical once mapped back, within the time budget."""
        first, took = self._result(k, 0, spec, unit, orders[0])
        _non_finite(first[orders[0]], shown, unit, spec)
        second, took_again = self._result(k, 1, spec, unit, orders[1])
        # an attack scores each sample alone: bit-identical; a calibration may pool over samples (a global
        # variance, a population), and a sum in another order can differ in its last bits
        pooled = isinstance(spec, CalibrationSpec)
        differs = (np.abs(first - second) > POOLED_RTOL * np.maximum(1.0, np.abs(first))) if pooled else first != second
        if differs.any():
            position = np.argsort(orders[0])  # sample i sat at row position[i] of the first copy
            differ = [shown[position[i]] for i in np.flatnonzero(differs)]
            same = f"agree to {POOLED_RTOL:g} (relative)" if pooled else "be bit-identical"
            raise SubmissionRefused(
                "determinism", f"{unit}: a second call gave different scores for {len(differ)} of "
                               f"{len(first)} samples ({ids_preview(differ)} of the first call; largest "
                               f"difference {float(np.nanmax(np.abs(first - second))):.3g}); scores must {same} "
                               "on a rerun with the samples in another order (seed any randomness, let no sample's "
                               "score depend on the order of the others, avoid order-dependent parallel reductions)")
        _over_budget(max(took, took_again), self.budget, unit, spec)
        self.slowest = max(self.slowest, took, took_again)
        return first

    def _cpu_check(self, unit: str, spec: AttackSpec | CalibrationSpec) -> None:
        """Refuse a result whose interval (since the previous result) used more CPU time than one call may:
        budget x threads. Wall time per call alone lets work started earlier in the background through."""
        used = self.proc.cpu_seconds()
        if used is None or self._cpu_since is None:
            return
        spent, self._cpu_since = used - self._cpu_since, used
        threads = self.limits.thread_count()
        if spent > self.budget * threads + CPU_SLACK_S:
            raise SubmissionRefused("time budget", f"{unit}: the sandboxed process used {spent:.3g} s of CPU time for "
                                                   f"one result of {_noun(spec)} {spec.name!r}, over the budget of "
                                                   f"{self.budget:g} s x {threads} thread(s) per call: work done "
                                                   "between calls, in a thread or process started earlier, counts "
                                                   "toward the call it returns in (--time-budget)")

    def _send(self, message: dict) -> None:
        try:
            self.proc.send(message)
        except sandboxing.SandboxError as err:
            raise sandbox_refusal(err, "the sandbox stopped taking commands") from None
        self._since = time.monotonic()

    def _wait_for(self, unit: str, spec: AttackSpec | CalibrationSpec, which: str) -> dict:
        """The next message, within the call's budget + grace and the submission's deadline."""
        what = f"{_noun(spec)} {spec.name!r}" if spec is not None else "the submission"
        budget, grace, deadline = self.budget, self.limits.grace_s, self.limits.deadline_s
        left = deadline - (time.monotonic() - self.proc.started_at)
        if left <= 0:
            raise SubmissionRefused("time budget", f"the submission ran past its deadline of {deadline:g} s (every "
                                                   "call of every attack together); the sandbox was stopped")
        try:
            return self.proc.receive(min(budget + grace, left))
        except sandboxing.SandboxError as err:
            if err.kind == "timeout" and left < budget + grace:
                raise SubmissionRefused("time budget", f"{unit}: {which} of {what} ran past the "
                                                       f"submission's deadline of {deadline:g} s; the sandbox was "
                                                       "stopped") from None
            if err.kind == "timeout":
                raise SubmissionRefused("time budget", f"{unit}: {which} of {what} did not return within "
                                                       f"{budget + grace:g} s (the budget of {budget:g} s plus "
                                                       f"{grace:g} s to load its inputs); the sandbox was stopped "
                                                       "(--time-budget)") from None
            if err.kind == "died" and err.signal_name == "SIGXCPU":
                raise SubmissionRefused("time budget", f"{unit}: {which} of {what} used up the "
                                                       "sandbox's CPU-time limit") from None
            if err.kind == "died":
                limits = (f"limits: {self.limits.memory_bytes / sandboxing.GIB:g} GiB of memory, "
                          f"{self.limits.processes()} processes")
                check = "scores" if which == "a call" else "determinism"
                raise SubmissionRefused(check, one_line(f"{unit}: the sandboxed process {err.detail} during {which} "
                                                         f"of {what} ({limits})"
                                                         + (f"; its last output: {err.output}" if err.output else "")
                                                         )) from None
            raise sandbox_refusal(err, f"{unit}, {what}") from None

    def _result(self, k: int, copy: int, spec: AttackSpec | CalibrationSpec, unit: str, order: np.ndarray) -> tuple[np.ndarray, float]:
        """One call's scores, mapped back to the real sample order, and its time (measured here: from the
        previous message's arrival to this one's); refusals name the check."""
        check = "scores" if copy == 0 else "determinism"
        which = "a call" if copy == 0 else "the second call"
        message = self._wait_for(unit, spec, which)
        took, self._since = max(0.0, self.proc.arrived_at - self._since), self.proc.arrived_at
        self._cpu_check(unit, spec)
        if message.get("call") != k or message.get("copy") != copy or message.get("event") not in ("scored", "failed"):
            raise SubmissionRefused("sandbox", f"{unit}: the sandboxed process said {one_line(message, 200)} instead "
                                               f"of the result of call {k}, copy {copy}")
        if message["event"] == "failed":
            if copy == 1:
                raise SubmissionRefused(check, f"{unit}: the second call raised {one_line(message.get('last_line'))}")
            if message.get("kind") == "invalid":
                raise SubmissionRefused(check, f"{unit}: {one_line(message.get('text'))}; return one score per "
                                               f"sample, in {_order_hint(spec)}")
            raise SubmissionRefused(check, f"{unit}: {_noun(spec)} {spec.name!r} raised "
                                           f"{one_line(message.get('last_line'))}")
        try:
            scores = decode_scores(message.get("scores"))
        except (ValueError, TypeError, AttributeError) as err:
            raise SubmissionRefused("sandbox", f"{unit}: the sandboxed process sent unreadable scores "
                                               f"({one_line(err, 200)})") from None
        if len(scores) != len(order):
            if copy == 1:
                raise SubmissionRefused(check, f"{unit}: the second call returned {len(scores)} scores for "
                                               f"{len(order)} samples")
            raise SubmissionRefused(check, f"{unit}: {_noun(spec)} {spec.name!r} returned shape ({len(scores)},), "
                                           f"expected one score per sample ({len(order)},); return one score per "
                                           f"sample, in {_order_hint(spec)}")
        real = np.empty(len(order), dtype=np.float64)
        real[order] = scores  # row j of the copy is sample order[j]
        return real, took


__all__ = ["CPU_SLACK_S", "POOLED_RTOL", "WHY_CHARS", "SandboxScorer", "last_line", "one_line", "sandbox_refusal"]
