"""The calibration registry: per-sample calibration of a signal by shadow (reference) models.

An attack turns one forward pass of the target into a score per sample. A calibration takes
such a score — the *signal* — under the target AND under shadow models trained like it on
known halves of the data, and returns a calibrated score (LiRA, RMIA: calibrations/):

    @register_calibration("lira_online_global", family="lira", setting="online", min_in=2, min_out=2,
                          citation="Carlini et al., S&P 2022, Sec. IV")
    def lira_online_global(inputs: CalibrationInputs) -> np.ndarray: ...

Signals arrive ORIENTED (higher = member, `Direction.orient`), so every calibrated score is
higher = member too, whatever the signal's own direction. Built-ins live one family per file in
`vidsme/attack/calibrations/`; listing is lazy like the attack registry's.

Settings: an *online* shadow set trains each shadow on a random half of the evaluated pool
itself (every sample is IN for about half of the shadows); an *offline* set trains on halves of
a disjoint population pool (every evaluated sample is OUT of every shadow). A calibration
declares which setting it needs and how many IN/OUT shadows per sample (`min_in`, `min_out`).
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from vidsme.errors import InvalidScoresError, UnknownNameError, VidsmeError
from vidsme.names import did_you_mean

SETTINGS: tuple[str, ...] = ("online", "offline")
CalibrationFn = Callable[["CalibrationInputs"], np.ndarray]

# The signals a suite calibrates unless it lists its own (`shadows.signals`): one plain variant of
# each single-pass family, so the candidates stay a few hundred per target instead of thousands.
DEFAULT_SIGNALS: tuple[str, ...] = (
    "loss", "zlib", "min_k_prob_k30", "min_k_pp_k30", "max_prob_gap", "modified_entropy",
    "max_k_renyi_a1_k100", "vid_sme_mean", "vid_sme_sequence", "ref_calibration",
)


@dataclass(frozen=True)
class CalibrationInputs:
    """One per-sample signal, oriented (higher = member), under the target and M shadow models.

    Attributes:
        signal: what the numbers are, for messages (e.g. "answer/loss, 8 frames, row").
        setting: "online" or "offline": how the shadows were trained.
        target: [N] the evaluated samples' signal under the target.
        shadows: [N, M] their signal under each shadow.
        inclusion: [N, M] bool, True where shadow m was trained on sample n.
        population_target: [Z] population samples (in no target's training set, not evaluated) under
            the target, or None when the suite has no population pool.
        population_shadows: [Z, M] the population samples under each shadow (None with no population).
        population_inclusion: [Z, M] bool (None with no population).
    """

    signal: str
    setting: str
    target: np.ndarray
    shadows: np.ndarray
    inclusion: np.ndarray
    population_target: np.ndarray | None = None
    population_shadows: np.ndarray | None = None
    population_inclusion: np.ndarray | None = None

    def __post_init__(self) -> None:
        where = f"signal {self.signal!r}"
        if self.setting not in SETTINGS:
            raise VidsmeError(f"{where}: unknown shadow setting {self.setting!r}; settings are {SETTINGS}")
        n = np.shape(self.target)[0] if np.ndim(self.target) == 1 else -1
        if n < 1:
            raise VidsmeError(f"{where}: the target's signal must be a non-empty [N] array")
        if np.ndim(self.shadows) != 2 or np.shape(self.shadows)[0] != n or np.shape(self.shadows)[1] < 1:
            raise VidsmeError(f"{where}: shadow signals must be [N={n}, M>=1], got {np.shape(self.shadows)}")
        if np.shape(self.inclusion) != np.shape(self.shadows) or np.asarray(self.inclusion).dtype != bool:
            raise VidsmeError(f"{where}: inclusion must be a bool array shaped like the shadow signals "
                              f"{np.shape(self.shadows)}, got {np.asarray(self.inclusion).dtype} {np.shape(self.inclusion)}")
        population = (self.population_target, self.population_shadows, self.population_inclusion)
        if any(p is None for p in population) and not all(p is None for p in population):
            raise VidsmeError(f"{where}: give the population's target signal, shadow signals and inclusion together")
        if self.population_target is not None:
            z = np.shape(self.population_target)[0] if np.ndim(self.population_target) == 1 else -1
            if z < 1 or np.shape(self.population_shadows) != (z, self.m):
                raise VidsmeError(f"{where}: population signals must be [Z] and [Z, M={self.m}], got "
                                  f"{np.shape(self.population_target)} and {np.shape(self.population_shadows)}")
            if np.shape(self.population_inclusion) != (z, self.m) or np.asarray(self.population_inclusion).dtype != bool:
                raise VidsmeError(f"{where}: population inclusion must be a bool [Z={z}, M={self.m}] array")
        for name, values in (("target", self.target), ("shadow", self.shadows),
                             ("population target", self.population_target),
                             ("population shadow", self.population_shadows)):
            if values is not None and not np.all(np.isfinite(values)):
                bad = int(np.size(values) - np.isfinite(values).sum())
                raise InvalidScoresError(f"{where}: {bad} non-finite {name} value(s); a calibration needs finite "
                                         "signals (the attack returned NaN or inf for some sample)")

    @property
    def n(self) -> int:
        """Number of evaluated samples."""
        return int(np.shape(self.target)[0])

    @property
    def m(self) -> int:
        """Number of shadow models."""
        return int(np.shape(self.shadows)[1])

    @property
    def has_population(self) -> bool:
        """Whether population samples came with the inputs."""
        return self.population_target is not None


@dataclass(frozen=True)
class CalibrationSpec:
    """A registered calibration and the metadata results record.

    Attributes:
        name: unique name (results, command line).
        family: the method it belongs to on the leaderboard ("lira", "rmia").
        setting: "online" or "offline": the shadow sets it runs on.
        min_in, min_out: IN / OUT shadows every evaluated sample needs.
        needs_population: whether it reads population samples.
        params: its fixed parameters (e.g. {"variance": "global"}, {"a": 0.5}).
        citation, summary, version, source: as for attacks.
    """

    name: str
    family: str
    fn: CalibrationFn
    setting: str
    min_in: int
    min_out: int
    needs_population: bool
    params: Mapping[str, object]
    citation: str
    summary: str
    version: int
    source: str

    def unusable(self, inputs: CalibrationInputs) -> str | None:
        """Why this calibration cannot run on `inputs` (None: it can)."""
        if inputs.setting != self.setting:
            return f"needs {self.setting} shadows, the set is {inputs.setting}"
        if self.needs_population and not inputs.has_population:
            return "needs population samples (the suite's shadows.population)"
        if self.needs_population:
            z_out = inputs.m - inputs.population_inclusion.sum(1)
            if (z_out < max(1, self.min_out)).any():
                return (f"needs >= {max(1, self.min_out)} OUT shadows per population sample; "
                        f"{int((z_out < max(1, self.min_out)).sum())} have fewer")
        n_in = inputs.inclusion.sum(1)
        short_in, short_out = int((n_in < self.min_in).sum()), int((inputs.m - n_in < self.min_out).sum())
        if short_in or short_out:
            return (f"needs >= {self.min_in} IN and >= {self.min_out} OUT shadows per sample; {short_in} sample(s) "
                    f"have fewer IN, {short_out} fewer OUT ({inputs.m} shadows)")
        return None

    def calibrate(self, inputs: CalibrationInputs) -> np.ndarray:
        """Calibrated scores [N] (higher = member); errors name the calibration and the signal."""
        why = self.unusable(inputs)
        if why:
            raise VidsmeError(f"calibration {self.name!r} on signal {inputs.signal!r}: {why}")
        scores = np.asarray(self.fn(inputs), dtype=np.float64)
        if scores.shape != (inputs.n,):
            raise InvalidScoresError(f"calibration {self.name!r} returned shape {scores.shape}, expected ({inputs.n},)")
        if np.isnan(scores).any():
            raise InvalidScoresError(f"calibration {self.name!r} on signal {inputs.signal!r}: "
                                     f"{int(np.isnan(scores).sum())} NaN score(s)")
        return scores

    def describe(self) -> dict:
        """JSON-ready metadata (results.json's `calibrations`, `vidsme attacks --json`)."""
        return {"name": self.name, "family": self.family, "setting": self.setting, "min_in": self.min_in,
                "min_out": self.min_out, "needs_population": self.needs_population, "params": dict(self.params),
                "direction": "higher", "citation": self.citation, "summary": self.summary, "version": self.version,
                "source": self.source}


_REGISTRY: dict[str, CalibrationSpec] = {}
_BUILTINS_LOADED = False


def register_calibration(name: str, *, family: str, setting: str, citation: str, min_in: int = 0,
                         min_out: int = 1, needs_population: bool = False,
                         params: Mapping[str, object] | None = None, summary: str | None = None,
                         version: int = 1) -> Callable[[CalibrationFn], CalibrationFn]:
    """Decorator: register `fn(inputs: CalibrationInputs) -> scores [N]` (higher = member) under `name`.

    Can be called directly for parameterised variants:
    `register_calibration(f"rmia_offline_a{a}", ...)(functools.partial(score, a=a))`.
    """
    if setting not in SETTINGS:
        raise VidsmeError(f"calibration {name!r}: unknown setting {setting!r}; settings are {SETTINGS}")
    if min_in < 0 or min_out < 0 or (setting == "offline" and min_in > 0):
        raise VidsmeError(f"calibration {name!r}: min_in/min_out must be >= 0, and an offline calibration sees no IN "
                          "shadows (min_in=0)")

    def decorate(fn: CalibrationFn) -> CalibrationFn:
        target = getattr(fn, "func", fn)
        module = getattr(target, "__module__", None) or "<unknown>"
        doc = inspect.getdoc(target) or ""
        spec = CalibrationSpec(name=name, family=family, fn=fn, setting=setting, min_in=min_in, min_out=min_out,
                               needs_population=needs_population, params=dict(params or {}), citation=citation,
                               summary=summary or (doc.splitlines()[0] if doc else ""), version=version,
                               source=module)
        previous = _REGISTRY.get(name)
        if previous is not None and previous.source != spec.source:
            raise VidsmeError(f"calibration name {name!r} is registered twice: by {previous.source} and by "
                              f"{spec.source}; rename one")
        _REGISTRY[name] = spec
        return fn

    return decorate


def registry_snapshot() -> dict[str, CalibrationSpec]:
    """A copy of what is registered now, name -> spec (asking loads nothing)."""
    return dict(_REGISTRY)


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    from vidsme.attack import calibrations

    for info in pkgutil.iter_modules(calibrations.__path__):
        importlib.import_module(f"{calibrations.__name__}.{info.name}")


def get_calibration(name: str) -> CalibrationSpec:
    """The calibration registered as `name`; unknown names get a did-you-mean."""
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError(f"unknown calibration {name!r}.{did_you_mean(name, _REGISTRY)} Run `vidsme attacks "
                               "--calibrations` to list them.") from None


def list_calibrations(setting: str | None = None) -> list[CalibrationSpec]:
    """Every registered calibration (optionally of one setting), by family, in registration order."""
    _load_builtins()
    return sorted((s for s in _REGISTRY.values() if setting is None or s.setting == setting), key=lambda s: s.family)


def format_calibration_table(specs: list[CalibrationSpec]) -> str:
    """`vidsme attacks --calibrations`: one line per calibration under its family's header."""
    lines: list[str] = []
    family = None
    for s in specs:
        if s.family != family:
            family = s.family
            lines += ["", f"[{family}]  {s.citation}"]
        params = ", ".join(f"{k}={v}" for k, v in s.params.items())
        population = "  needs population" if s.needs_population else ""
        lines.append(f"  {s.name:<26} {s.setting:<8} IN>={s.min_in} OUT>={s.min_out}  {params}{population}")
    lines += ["", f"{len(specs)} calibrations in {len({s.family for s in specs})} families. Each calibrates any "
              "attack's per-sample score (the signal) with shadow models; higher = member."]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- helpers for calibrations
@dataclass(frozen=True)
class MaskedMoments:
    """Per-sample mean and variance of the shadow values a mask selects."""

    count: np.ndarray  # [N]
    mean: np.ndarray  # [N]
    var: np.ndarray  # [N] unbiased (ddof=1); 0 where count < 2
    pooled_var: float  # within-sample variance pooled over samples (the "global" variance)


def masked_moments(values: np.ndarray, mask: np.ndarray) -> MaskedMoments:
    """Moments of `values[n, mask[n]]` per sample n, vectorised over samples and shadows."""
    values = np.asarray(values, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    count = mask.sum(1)
    mean = np.where(mask, values, 0.0).sum(1) / np.maximum(count, 1)
    squares = np.where(mask, (values - mean[:, None]) ** 2, 0.0).sum(1)
    var = np.where(count > 1, squares / np.maximum(count - 1, 1), 0.0)
    dof = int((count - 1).clip(min=0).sum())
    pooled = float(squares.sum() / dof) if dof > 0 else 0.0
    return MaskedMoments(count=count, mean=mean, var=var, pooled_var=pooled)


__all__ = ["DEFAULT_SIGNALS", "SETTINGS", "CalibrationInputs", "CalibrationSpec", "MaskedMoments",
           "format_calibration_table", "get_calibration", "list_calibrations", "masked_moments",
           "register_calibration", "registry_snapshot"]
