"""Typed configs: dataclasses filled from a YAML file plus ``key=value`` overrides.

Every hyper-parameter is a field of a (possibly frozen, possibly nested) dataclass
with a type and a comment; a YAML file gives values for some of them, the command
line overrides any of them with dotted keys::

    vidsme train target configs/targets/mcqa-full.yaml train.lr=1e-4 model.lora=null

    cfg = load_config(TargetConfig, "configs/targets/mcqa-full.yaml", ["train.lr=1e-4"])

Rules (see tests/test_config.py):

* A field whose type is a dataclass is a section: built from a nested mapping.
  Supported field types: int, float, str, bool, Path, ``Optional[X]`` / ``X | None``,
  other unions (first alternative that fits), ``list[X]``, ``tuple[X, ...]``,
  ``tuple[X, Y]``, ``dict[str, X]``, ``Literal[...]``, Enum, Any and nested dataclasses.
* Values are checked, not guessed: an int is accepted for a float field (converted),
  but a bool is not a number and a string is not converted to a number. Path fields
  take strings. Every error names the file (or the override), the full dotted key,
  what was expected and what was found.
* Unknown keys raise with a did-you-mean and the valid keys at that level; missing
  required fields (no default) raise naming them.
* A list of sections is indexed by position: ``targets.0.path=/ckpt`` sets one entry's
  field; the entry must exist in the YAML.
* Overrides are applied in order. A value is parsed as YAML (``1e-3``, ``true``, ``null``,
  ``[1, 2]``, ``{a: 1}``); a mapping value replaces the whole section (fields it does
  not give take their defaults). For str / Path / string-Literal fields the override's
  text is taken literally when YAML would make it a number, bool or date, so
  ``run_name=2024-05-01`` or ``revision=1234`` stay strings.
* YAML is read as YAML 1.2 for numbers and bools: ``3e-4`` is a float (PyYAML alone
  reads it as a string) and only true/false are bools (``yes``/``no``/``on``/``off`` stay
  strings). Duplicate keys in a mapping are an error.
* :func:`config_to_dict` gives a plain JSON/YAML-serialisable dict (Paths as strings,
  tuples as lists) that :func:`config_from_dict` turns back into an equal object;
  :func:`config_hash` hashes its canonical JSON, for provenance and caching.
"""
from __future__ import annotations

import copy
import dataclasses
import datetime
import enum
import hashlib
import json
import re
import types
import typing
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path, PurePath
from typing import Any, Literal, TypeVar, Union

import yaml

from vidsme.errors import VidsmeError
from vidsme.names import did_you_mean

__all__ = [
    "ConfigError",
    "config_from_dict",
    "config_hash",
    "config_to_dict",
    "load_config",
    "parse_override",
]

T = TypeVar("T")

OVERRIDE_EXAMPLE = "train.lr=3e-4 (dotted key for a nested section; value parsed as YAML: 1e-3, true, null, [1, 2])"


class ConfigError(VidsmeError):
    """A config that cannot be built: bad YAML, unknown key, wrong type, missing value."""


# --------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 floats/bools and an error on duplicate mapping keys."""

    def construct_mapping(self, node, deep=False):  # PyYAML hook
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # unhashable key: the base class reports it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"found duplicate key {key!r}", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


# Bools: YAML 1.2 (true/false only), not YAML 1.1's yes/no/on/off.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
# Floats: also without a dot (1e-3, 3E+4), which PyYAML's YAML 1.1 resolver reads as strings.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"))


def _yaml_load(text: str, name: str):
    """Parse YAML text; errors become ConfigError naming `name` and the line."""
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader: safe
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        detail = f"{context}: {problem}" if context and context not in problem else problem
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{name}: invalid YAML{at}: {detail}") from exc


# --------------------------------------------------------------------------- helpers


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_dataclass_type(tp: object) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _is_union(tp: object) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _init_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.init]


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """Resolved field types of a dataclass (string annotations included)."""
    if cls not in _HINTS:
        try:
            _HINTS[cls] = typing.get_type_hints(cls)
        except Exception as exc:  # NameError for a name defined only locally, ...
            raise TypeError(f"cannot resolve the field types of config class {cls.__qualname__}: {exc}. "
                            "Define the class and the types it uses at module level.") from exc
    return _HINTS[cls]


def _strip_none(tp: object) -> object:
    """Optional[X] -> X (unions of several types are returned unchanged)."""
    if _is_union(tp):
        rest = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return tp


def _type_name(tp: object, top: bool = True) -> str:
    """How an expected type reads in an error message."""
    if tp is Any:
        return "any value"
    if tp is type(None):
        return "null"
    if _is_union(tp):
        return " or ".join(_type_name(a, top) for a in typing.get_args(tp))
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        choices = ", ".join(_show(a) for a in args)
        return f"one of {choices}" if top else f"Literal[{choices}]"
    if _is_dataclass_type(tp):
        return f"a mapping (section {tp.__name__})" if top else tp.__name__
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        choices = ", ".join(_show(m.value) for m in tp)
        return f"one of {choices}" if top else tp.__name__
    if isinstance(tp, type) and issubclass(tp, PurePath):
        return "path (a string)" if top else "path"
    if origin in (list, tuple, dict):
        inner = ", ".join("..." if a is Ellipsis else _type_name(a, top=False) for a in args)
        return f"{origin.__name__}[{inner}]" if args else origin.__name__
    if isinstance(tp, type):
        return tp.__name__
    return str(tp)


class _Mismatch(Exception):
    """Internal: the value at `path` does not fit the expected type (formatted later)."""

    def __init__(self, path: tuple, expected: str, value: object, hint: str = "") -> None:
        super().__init__(path, expected, value, hint)
        self.path, self.expected, self.value, self.hint = path, expected, value, hint


def _mismatch_hint(tp: object, value: object) -> str:
    numeric = tp in (int, float)
    if numeric and isinstance(value, bool):
        return " (true/false is not a number)"
    if numeric and isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        return " (a string: write the number without quotes)"
    if tp is int and isinstance(value, float):
        return " (not a whole number)"
    if tp is str and isinstance(value, (bool, int, float, datetime.date)):
        kind = {bool: "a bool", int: "an int", float: "a float"}.get(type(value), "a date")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        return f" ({kind}: quote it to keep it a string, e.g. '{text}')"
    if tp is bool and isinstance(value, str):
        return " (write true or false)"
    return ""


class _Context:
    """Where values came from: the file (or label) by default, overrides by dotted prefix."""

    def __init__(self, where: str, overrides: dict[tuple, str] | None = None) -> None:
        self.where = where
        self.overrides = overrides or {}

    def override_for(self, path: Sequence[str | int]) -> str | None:
        for n in range(len(path), 0, -1):
            text = self.overrides.get(tuple(path[:n]))
            if text is not None:
                return text
        return None

    def error(self, path: Sequence[str | int], message: str, tail: str = "") -> ConfigError:
        text = self.override_for(path)
        if text is not None:
            return ConfigError(f"{message} (in override '{text}'){tail}")
        return ConfigError(f"{self.where}: {message}{tail}")

    def section_error(self, path: Sequence[str | int], message: str) -> ConfigError:
        """An error about a whole section: name the source and every override that touched it."""
        path = tuple(path)
        texts = [t for p, t in self.overrides.items() if p[: len(path)] == path or path[: len(p)] == p]
        after = f" (after override{'s' if len(texts) > 1 else ''} {', '.join(repr(t) for t in texts)})" if texts else ""
        return ConfigError(f"{self.where}: {message}{after}")


def _unknown_key(section: Sequence[str | int], key: str, known: Sequence[str]) -> tuple[str, str]:
    """(message, tail) for an unknown key: did-you-mean and the valid keys at that level."""
    level = f"under '{_dotted(section)}'" if section else "at the top level"
    valid = ", ".join(known) if known else "(none)"
    hint = did_you_mean(key, known)
    if not hint:  # difflib misses abbreviations and extensions: lr_rate -> lr, epoch_count -> epochs
        close = [k for k in known if min(len(k), len(key)) >= 2 and (key.startswith(k) or k.startswith(key))]
        hint = f" Did you mean: {', '.join(close[:3])}?" if close else ""
    return f"unknown key '{_dotted([*section, key])}'", f".{hint} Valid keys {level}: {valid}."


# --------------------------------------------------------------------------- building


def _build(cls: type, data: object, path: tuple, ctx: _Context):
    """Construct dataclass `cls` from mapping `data` (the section at `path`)."""
    if not isinstance(data, Mapping):
        raise _Mismatch(path, _type_name(cls), data)
    hints = _hints(cls)
    fields = _init_fields(cls)
    known = [f.name for f in fields]
    for key in data:
        if not isinstance(key, str):
            level = f"under '{_dotted(path)}'" if path else "at the top level"
            raise ctx.error(path, f"key {_show(key)} {level} is not a string", f". Valid keys: {', '.join(known)}.")
        if key not in known:
            message, tail = _unknown_key(path, key, known)
            raise ctx.error((*path, key), message, tail)
    missing = [f.name for f in fields if f.name not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        keys = ", ".join(repr(_dotted((*path, m))) for m in missing)
        example = f"{_dotted((*path, missing[0]))}=VALUE"
        raise ctx.error(path, f"missing required key{'s' if len(missing) > 1 else ''} {keys} (no default)",
                        f"; set it in the YAML file or on the command line ({example}).")
    kwargs = {name: _convert(hints[name], value, (*path, name), ctx) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ValueError as exc:  # __post_init__ validation
        raise ctx.section_error(path, f"{_dotted(path)}: {exc}" if path else str(exc)) from exc


def _convert(tp: object, value: object, path: tuple, ctx: _Context):
    """Check `value` against type `tp` and return it converted (tuples, Paths, dataclasses)."""
    if tp is Any:
        return copy.deepcopy(value)
    if tp is type(None):
        if value is None:
            return None
        raise _Mismatch(path, "null", value)
    if _is_union(tp):
        alternatives = typing.get_args(tp)
        if value is None and type(None) in alternatives:
            return None
        for alt in alternatives:
            if alt is type(None):
                continue
            try:
                return _convert(alt, value, path, ctx)
            except _Mismatch as exc:
                if exc.path != path:  # a problem inside the value, not with the value itself
                    raise
        raise _Mismatch(path, _type_name(tp), value, _mismatch_hint(_strip_none(tp), value))
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        for choice in args:
            if value == choice and type(value) is type(choice):
                return choice
        hint = did_you_mean(value, [a for a in args if isinstance(a, str)]) if isinstance(value, str) else ""
        raise _Mismatch(path, _type_name(tp), value, f".{hint}" if hint else "")
    if _is_dataclass_type(tp):
        if isinstance(value, tp):
            return value
        return _build(tp, value, path, ctx)
    if origin in (list, Sequence) or tp in (list, Sequence):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch(path, _type_name(tp), value)
        item = args[0] if args else Any
        return [_convert(item, v, (*path, i), ctx) for i, v in enumerate(value)]
    if origin is tuple or tp is tuple:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch(path, _type_name(tp), value)
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            item = args[0] if args else Any
            return tuple(_convert(item, v, (*path, i), ctx) for i, v in enumerate(value))
        if args == ((),):  # tuple[()]
            args = ()
        if len(value) != len(args):
            raise _Mismatch(path, _type_name(tp), value, f" ({len(value)} items, need {len(args)})")
        return tuple(_convert(a, v, (*path, i), ctx) for i, (a, v) in enumerate(zip(args, value)))
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _Mismatch(path, _type_name(tp), value)
        key_tp, item = args if args else (str, Any)
        if key_tp not in (str, Any):
            raise TypeError(f"{_dotted(path)}: config dict keys must be str, not {key_tp}")
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise _Mismatch((*path, str(k)), "a string key", k)
            out[k] = _convert(item, v, (*path, k), ctx)
        return out
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(tp, type) and issubclass(tp, PurePath):
        if isinstance(value, PurePath) or (isinstance(value, str) and value):
            return tp(value)
    elif isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return value
        for member in tp:
            if value == member.value and type(value) is type(member.value):
                return member
    else:
        raise TypeError(f"{_dotted(path)}: unsupported config field type {tp!r} "
                        "(use int, float, str, bool, Path, Optional, list, tuple, dict, Literal, Enum or a dataclass)")
    raise _Mismatch(path, _type_name(tp), value, _mismatch_hint(tp, value))


def _build_top(cls: type[T], data: object, ctx: _Context) -> T:
    if not _is_dataclass_type(cls):
        raise TypeError(f"config class must be a dataclass type, got {cls!r}")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{ctx.where}: the top level must be a mapping of keys to values, "
                          f"got {type(data).__name__} {_show(data)}")
    try:
        return _build(cls, data, (), ctx)
    except _Mismatch as exc:
        message = f"{_dotted(exc.path)}: expected {exc.expected}, got {_show(exc.value)}"
        if exc.hint.startswith("."):  # a did-you-mean goes after the override note
            raise ctx.error(exc.path, message, exc.hint) from None
        raise ctx.error(exc.path, message + exc.hint) from None


def config_from_dict(cls: type[T], data: Mapping, *, where: str = "config") -> T:
    """Build dataclass `cls` (sections recursively) from a mapping, checking every key and type.

    `where` names the source in error messages (a file path, or "config").
    Raises ConfigError for unknown keys, missing required keys and values of the wrong type.
    """
    return _build_top(cls, data, _Context(where))


# --------------------------------------------------------------------------- overrides


def _split_override(text: str) -> tuple[list[str], str]:
    if not isinstance(text, str):
        raise ConfigError(f"override {text!r} is not a string; expected key=value, e.g. {OVERRIDE_EXAMPLE}")
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        why = "has no '='" if not sep else "has an empty key"
        raise ConfigError(f"override '{text}' {why}; expected key=value, e.g. {OVERRIDE_EXAMPLE}")
    parts = [p.strip() for p in key.split(".")]
    if any(not p for p in parts):
        raise ConfigError(f"override '{text}': key '{key}' has an empty part; expected key=value, "
                          f"e.g. {OVERRIDE_EXAMPLE}")
    return parts, raw


def parse_override(text: str) -> tuple[list[str], object]:
    """Split ``"train.lr=3e-4"`` into ``(["train", "lr"], 3e-4)``.

    The value is parsed as YAML (1.2 numbers and bools): ``1e-3`` -> float, ``true`` -> bool,
    ``null`` -> None, ``[1, 2]`` -> list, ``{a: 1}`` -> dict, ``foo`` -> "foo". An empty
    value (``key=``) is the empty string. Raises ConfigError without '=' or with an empty key.
    """
    parts, raw = _split_override(text)
    if not raw.strip():
        return parts, ""
    return parts, _yaml_load(raw, f"override '{text}'")


def _wants_text(tp: object) -> bool:
    """Whether a field of type `tp` holds text (so an override's raw text is the value)."""
    tp = _strip_none(tp)
    if typing.get_origin(tp) is Literal:
        return all(isinstance(a, str) for a in typing.get_args(tp))
    return tp is str or (isinstance(tp, type) and issubclass(tp, PurePath))


def _target_type(cls: type, parts: list[str], text: str) -> object:
    """Check an override's dotted key against the config classes; return the type it sets."""
    tp: object = cls
    for i, key in enumerate(parts):
        section = _strip_none(tp)
        if _is_dataclass_type(section):
            known = [f.name for f in _init_fields(section)]
            if key not in known:
                message, tail = _unknown_key(parts[:i], key, known)
                raise ConfigError(f"{message} (in override '{text}'){tail}")
            tp = _hints(section)[key]
        elif typing.get_origin(section) in (dict, Mapping) or section in (dict, Mapping):
            args = typing.get_args(section)
            tp = args[1] if args else Any
        elif section is Any:
            tp = Any
        elif typing.get_origin(section) is list and key.isdigit():  # targets.0.path=...: one list entry
            tp = typing.get_args(section)[0] if typing.get_args(section) else Any
        else:
            where = _dotted(parts[:i])
            raise ConfigError(f"override '{text}': '{where}' is a {_type_name(tp, top=False)}, not a section, "
                              f"so '{_dotted(parts[: i + 1])}' cannot be set; set it whole, e.g. {where}=VALUE")
    return tp


def _apply_override(cls: type, data: MutableMapping, text: str) -> list[str]:
    parts, value = parse_override(text)
    raw = text.partition("=")[2].strip()
    tp = _target_type(cls, parts, text)
    if _wants_text(tp) and isinstance(value, (bool, int, float, datetime.date)):
        value = raw  # run_name=2024-05-01, revision=1234: the text is what was meant
    node = data
    for i, key in enumerate(parts):
        if isinstance(node, list):  # an index into a list the YAML gave: it must exist
            if not key.isdigit() or int(key) >= len(node):
                raise ConfigError(f"override '{text}': '{_dotted(parts[:i])}' has {len(node)} entries, "
                                  f"so there is no entry {key}")
            key = int(key)
        if i == len(parts) - 1:
            node[key] = value
            break
        child = node[key] if isinstance(node, list) else node.get(key)
        if isinstance(child, list):
            child = list(child)
        elif not isinstance(child, MutableMapping):
            child = dict(child) if isinstance(child, Mapping) else {}
        node[key] = child
        node = child
    return parts


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Read YAML `path` (a mapping; optional), apply `overrides` ("a.b=value") in order, build `cls`.

    Keys an override names that the YAML leaves out are added (other fields keep their
    defaults); a mapping value replaces a whole section. Raises ConfigError for unreadable
    or invalid YAML, unknown keys (with did-you-mean), wrong types and missing values.
    """
    if isinstance(overrides, str):
        raise TypeError("overrides must be a sequence of 'key=value' strings, not a single string")
    where = str(path) if path is not None else "config"
    data: object = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{where}: config file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{where}: cannot read config file: {exc}") from exc
        data = _yaml_load(text, where)
        if data is None:  # empty file, or comments only
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: the top level must be a mapping of keys to values, "
                              f"got {type(data).__name__} {_show(data)}")
    data = dict(data)
    origins: dict[tuple, str] = {}
    for text in overrides:
        parts = tuple(_apply_override(cls, data, text))
        for key in [k for k in origins if k[: len(parts)] == parts]:
            del origins[key]  # replaced by this override
        origins[parts] = text
    return _build_top(cls, data, _Context(where, origins))


# --------------------------------------------------------------------------- provenance


def _plain(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in _init_fields(type(value))}
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    raise TypeError(f"cannot serialise config value {_show(value)} of type {type(value).__name__}")


def config_to_dict(obj) -> dict:
    """A plain, JSON/YAML-serialisable dict of a config (recursively): Paths -> str, tuples -> lists.

    ``config_from_dict(type(obj), config_to_dict(obj)) == obj``.
    """
    if not (dataclasses.is_dataclass(obj) and not isinstance(obj, type)) and not isinstance(obj, Mapping):
        raise TypeError(f"config_to_dict expects a dataclass instance or a mapping, got {type(obj).__name__}")
    return _plain(obj)


def config_hash(obj) -> str:
    """sha256 (hex) of the canonical JSON (sorted keys, no spaces) of ``config_to_dict(obj)``."""
    text = json.dumps(config_to_dict(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
