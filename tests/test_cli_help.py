"""CLI hygiene: every option and positional of every subcommand says what it is for, and every
`--seed` defaults to 0 and says so. One test per (sub)command, so a failure names where to look."""
from __future__ import annotations

import argparse

import pytest

from vidsme.cli import build_parser


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, its parser) for `parser` and every subcommand under it, depth first."""
    yield path, parser
    for action in parser._actions:  # argparse offers no public walk over subparsers
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


def _own_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The arguments a user types, without argparse's own -h/--help and --version."""
    return [a for a in parser._actions
            if not isinstance(a, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction))]


def _name(action: argparse.Action) -> str:
    return "/".join(action.option_strings) or action.metavar or action.dest


COMMANDS = dict(_commands(build_parser()))


def test_every_subcommand_is_walked():
    walked = {" ".join(path) for path in COMMANDS}
    assert {"attacks", "train", "benchmark", "leaderboard", "submit", "splits", "splits create",
            "splits audit"} <= walked


@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda p: " ".join(p) or "vidsme")
def test_every_argument_has_help(path):
    """Fails listing each option or positional of `vidsme <path>` that lacks a help string
    (the `splits ...` cases cover the splits sub-actions too)."""
    parser = COMMANDS[path]
    lacking = [_name(a) for a in _own_actions(parser) if not (a.help or "").strip() or a.help == argparse.SUPPRESS]
    for action in parser._actions:  # each subcommand's one-line summary in this command's --help
        if isinstance(action, argparse._SubParsersAction):
            listed = {c.dest: c.help for c in action._choices_actions}
            lacking += [f"subcommand {name}" for name in action.choices if not (listed.get(name) or "").strip()]
    assert not lacking, f"`vidsme {' '.join(path)}`: no help for {', '.join(lacking)}"
    parser.format_help()  # a stray % in a help string fails here, not when a user asks for --help


@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda p: " ".join(p) or "vidsme")
def test_seeds_default_to_zero_and_say_so(path):
    seeds = [a for a in _own_actions(COMMANDS[path]) if a.dest == "seed"]
    for action in seeds:
        assert action.default == 0, f"`vidsme {' '.join(path)} --seed` defaults to {action.default!r}, not 0"
        assert "default 0" in (action.help or "") or "%(default)" in (action.help or ""), (
            f"`vidsme {' '.join(path)} --seed`: its help does not say it defaults to 0: {action.help!r}")
