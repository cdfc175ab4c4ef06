"""The `vidsme` command line: one module per subcommand, one table (COMMANDS).

Each module holds its examples (EPILOG), `add_parser(subparsers)` and `run(args) -> int`: a few
lines over the library, which it imports only when it runs, so `vidsme --help` stays fast.
A new subcommand is a new module here and a row in COMMANDS.

`key=value` overrides may stand anywhere among the flags. What a run records as its command
(results.json, leaderboards) is the command line as given, shell-quoted: rerun it to reproduce.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence

from vidsme import __version__
from vidsme.cli import attacks, benchmark, challenge, leaderboard, splits, study, submit, submitters, train
from vidsme.cli.arguments import take_overrides
from vidsme.errors import VidsmeError, printable

COMMANDS = (attacks, splits, train, benchmark, leaderboard, submitters, submit, challenge, study)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for `vidsme` (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="vidsme",
        description="Membership inference attacks against video-understanding LLMs: "
        "train targets, score attacks, benchmark them.",
    )
    parser.add_argument("--version", action="version", version=f"vidsme {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.add_parser(subparsers)
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse `argv` (without the program name): flags and `key=value` words in any order.
    `args.command_line` is the line to record: `vidsme` and `argv`, shell-quoted."""
    parser = build_parser()
    args, extras = parser.parse_known_args(list(argv))
    take_overrides(args, extras, parser)
    args.command_line = shlex.join(["vidsme", *argv])
    return args


def _quiet_libraries() -> None:
    """--quiet also silences the bars transformers draws while it loads and saves weights."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (2 for user errors)."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if getattr(args, "quiet", False):
        _quiet_libraries()
    try:
        return args.run(args)
    except VidsmeError as err:
        print(f"vidsme {args.command}: error: {printable(err)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head`: stop quietly, like other CLI tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
