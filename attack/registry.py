"""The attack registry: one decorator records every attack and what it needs.

    @register_attack("loss", direction=Direction.LOWER, needs=("natural.target_logprob",),
                     citation="Yeom et al., CSF 2018")
    def loss(inputs: AttackInputs) -> torch.Tensor: ...

Built-in attacks live one family per file in `vidsme/attack/attacks/`. Third parties
register without editing this repository, either through the entry-point group
`vidsme.attacks` (any importable object; importing its module runs the decorators) or
by module path / file path with `load_attack_source`. Listing is lazy: nothing is
imported until the registry is first asked for.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import pkgutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidsme.direction import Direction
from vidsme.attack.inputs import SLICES, AttackInputs, check_input_names
from vidsme.errors import InvalidScoresError, MissingFeatureError, UnknownNameError, VidsmeError
from vidsme.names import did_you_mean

ENTRY_POINT_GROUP = "vidsme.attacks"
ScoreFn = Callable[[AttackInputs], "torch.Tensor | np.ndarray"]


@dataclass(frozen=True)
class AttackSpec:
    """A registered attack: its scoring function and the metadata results record.

    Attributes:
        name: unique name, used on the command line and in results.
        family: group shown in listings (e.g. "min_k_prob").
        direction: which way the raw score points (metrics orient it).
        needs: input keys the score reads, e.g. ("natural.target_logprob",).
        slices: the slices it may be applied to.
        citation: the paper (and equation) it implements.
        summary: one line describing the score.
        version: bump when the score's definition changes (results record it).
        source: module (or file) that registered it.
    """

    name: str
    family: str
    fn: ScoreFn
    direction: Direction
    needs: tuple[str, ...]
    slices: tuple[str, ...]
    citation: str
    summary: str
    version: int
    source: str

    def applies_to(self, slice_name: str) -> bool:
        """Whether this attack is defined on `slice_name`."""
        return slice_name in self.slices

    def score(self, inputs: AttackInputs) -> np.ndarray:
        """Raw scores, one finite-or-inf float64 per sample (NaN is left to metrics to report)."""
        if not self.applies_to(inputs.slice):
            raise VidsmeError(f"attack {self.name!r} is not defined on slice {inputs.slice!r} (only {self.slices})")
        missing = [k for k in self.needs if k not in inputs.available()]
        if missing:
            raise MissingFeatureError(
                f"attack {self.name!r} needs {missing} on slice {inputs.slice!r}, which the inputs lack "
                f"(they have: {', '.join(sorted(inputs.available())) or 'nothing'})"
            )
        raw = self.fn(inputs)
        scores = raw.detach().cpu().numpy() if isinstance(raw, torch.Tensor) else np.asarray(raw)
        if scores.shape != (inputs.n,):
            raise InvalidScoresError(
                f"attack {self.name!r} returned shape {tuple(np.shape(raw))}, expected one score per sample ({inputs.n},)"
            )
        return scores.astype(np.float64, copy=False)

    def describe(self) -> dict:
        """JSON-ready metadata (what results and `vidsme attacks --json` record)."""
        return {
            "name": self.name,
            "family": self.family,
            "direction": self.direction.value,
            "needs": list(self.needs),
            "slices": list(self.slices),
            "citation": self.citation,
            "summary": self.summary,
            "version": self.version,
            "source": self.source,
        }


_REGISTRY: dict[str, AttackSpec] = {}
_BUILTINS_LOADED = False
_PLUGINS_LOADED = False


def register_attack(
    name: str,
    *,
    direction: Direction | str,
    needs: Sequence[str],
    citation: str,
    slices: Sequence[str] = SLICES,
    family: str | None = None,
    summary: str | None = None,
    version: int = 1,
) -> Callable[[ScoreFn], ScoreFn]:
    """Decorator: register `fn(inputs: AttackInputs) -> scores [N]` under `name`.

    Args:
        name: unique attack name.
        direction: Direction.HIGHER if a higher raw score means member, else LOWER.
        needs: input keys read by the function (validated against known features).
        citation: paper (and equation) the score comes from.
        slices: slices the attack is defined on (default: all).
        family: listing group (default: the defining module's last name part).
        summary: one line (default: the function docstring's first line).
        version: definition version, recorded with results.

    Can be called directly in a loop for parameterised families:
    `register_attack(f"min_k_prob_k{k}", ...)(functools.partial(score, k=k))`.
    """
    direction = Direction(direction)
    bad_slices = [s for s in slices if s not in SLICES]
    if bad_slices:
        raise VidsmeError(f"attack {name!r}: unknown slices {bad_slices}; slices are {SLICES}")
    check_input_names(needs, f"attack {name!r}")

    def decorate(fn: ScoreFn) -> ScoreFn:
        target = getattr(fn, "func", fn)  # functools.partial keeps the docstring on .func
        module = getattr(target, "__module__", None) or "<unknown>"
        doc = inspect.getdoc(target) or ""
        spec = AttackSpec(
            name=name,
            family=family or module.rsplit(".", 1)[-1],
            fn=fn,
            direction=direction,
            needs=tuple(needs),
            slices=tuple(slices),
            citation=citation,
            summary=summary or (doc.splitlines()[0] if doc else ""),
            version=version,
            source=module,
        )
        previous = _REGISTRY.get(name)
        if previous is not None and previous.source != spec.source:
            raise VidsmeError(
                f"attack name {name!r} is registered twice: by {previous.source} and by {spec.source}; rename one"
            )
        _REGISTRY[name] = spec
        return fn

    return decorate


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    from vidsme.attack import attacks

    for info in pkgutil.iter_modules(attacks.__path__):
        importlib.import_module(f"{attacks.__name__}.{info.name}")


def _load_entry_points() -> None:
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as err:  # a broken plugin must say which one it is
            dist = ep.dist.name if ep.dist is not None else "unknown distribution"
            raise VidsmeError(
                f"attack plugin {ep.name!r} ({ep.value}, from {dist}) failed to import: {err!r}. "
                f"Fix or uninstall that package."
            ) from err


def _ensure_loaded() -> None:
    _load_builtins()
    _load_entry_points()


def load_builtins_only() -> None:
    """Register the built-in attacks and never the installed plugins (inside the sandbox, which has no
    plugins: the parent checks names against them)."""
    global _PLUGINS_LOADED
    _load_builtins()
    _PLUGINS_LOADED = True


def registry_snapshot() -> dict[str, AttackSpec]:
    """A copy of what is registered now, name -> spec (asking loads nothing)."""
    return dict(_REGISTRY)


def restore_registry(snapshot: dict[str, AttackSpec]) -> None:
    """Put the registry back to `snapshot`: a submitted file's attacks leave no trace."""
    _REGISTRY.clear()
    _REGISTRY.update(snapshot)


def load_attack_source(source: str) -> list[str]:
    """Import attacks from a module name ("pkg.my_attacks") or a .py file path.

    Returns the names the import registered (already-registered names are not
    returned again). Raises VidsmeError naming the source when the import fails.
    """
    _ensure_loaded()
    before = set(_REGISTRY)
    path = Path(source)
    try:
        if source.endswith(".py") or path.is_file():
            if not path.is_file():
                raise VidsmeError(f"attack file {source!r} does not exist")
            module_name = f"vidsme_user_attacks.{path.stem}_{abs(hash(path.resolve()))}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise VidsmeError(f"cannot import {source!r} as a Python file")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        else:
            importlib.import_module(source)
    except VidsmeError:
        raise
    except Exception as err:
        raise VidsmeError(f"importing attacks from {source!r} failed: {err!r}") from err
    return sorted(set(_REGISTRY) - before)


def get_attack(name: str) -> AttackSpec:
    """The attack registered as `name`; unknown names get a did-you-mean."""
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown attack {name!r}.{did_you_mean(name, _REGISTRY)} Run `vidsme attacks` to list them."
        ) from None


def list_attacks(family: str | None = None) -> list[AttackSpec]:
    """All registered attacks (optionally one family): grouped by family, in registration order."""
    _ensure_loaded()
    specs = [s for s in _REGISTRY.values() if family is None or s.family == family]
    if family is not None and not specs:
        families = {s.family for s in _REGISTRY.values()}
        raise UnknownNameError(f"unknown attack family {family!r}.{did_you_mean(family, families)}")
    return sorted(specs, key=lambda s: s.family)  # stable: keeps k0, k5, k10 ... order


def format_attack_table(specs: list[AttackSpec]) -> str:
    """`vidsme attacks`: one line per attack under its family's header, then the counts."""
    lines: list[str] = []
    family = None
    for s in specs:
        if s.family != family:
            family = s.family
            lines += ["", f"[{family}]  {s.citation}"]
        needs = ", ".join(s.needs)
        lines.append(f"  {s.name:<28} {s.direction.value:<6} slices={','.join(s.slices):<24} needs={needs}")
    families = len({s.family for s in specs})
    lines += ["", f"{len(specs)} attacks in {families} families. Direction: which raw score means member."]
    return "\n".join(lines)


def format_attack_details(specs: list[AttackSpec]) -> str:
    """`vidsme attacks NAME ...`: everything recorded about each attack."""
    lines: list[str] = []
    for s in specs:
        lines += [f"{s.name}  (family {s.family}, version {s.version})", f"  {s.summary}",
                  f"  direction: {s.direction.value} score = member", f"  needs:     {', '.join(s.needs)}",
                  f"  slices:    {', '.join(s.slices)}", f"  citation:  {s.citation}", f"  source:    {s.source}"]
    return "\n".join(lines)
