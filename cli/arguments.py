"""What every subcommand's parser shares: its shape, and `key=value` overrides anywhere on the line."""
from __future__ import annotations

import argparse


def add_command(subparsers, name: str, *, help: str, description: str | None = None,
                epilog: str | None = None) -> argparse.ArgumentParser:
    """A (sub)command's parser, its examples (`epilog`) printed as written under --help. It is also
    the parser that reports this command's leftover words."""
    parser = subparsers.add_parser(name, help=help, description=description, epilog=epilog,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(command_parser=parser)
    return parser


def add_overrides(parser: argparse.ArgumentParser, example: str) -> None:
    """The `key=value ...` words of a command that takes a config: they may stand anywhere on the
    line, before, between or after the flags (`take_overrides` collects the ones argparse leaves)."""
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help=f"config overrides, anywhere on the line, applied in order (e.g. {example})")


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def is_override(word: str) -> bool:
    """A `key=value` word (not a flag: `--x=1` is argparse's)."""
    return not word.startswith("-") and "=" in word[1:]


def take_overrides(args: argparse.Namespace, extras: list[str], parser: argparse.ArgumentParser) -> None:
    """Append the `key=value` words argparse could not place (the ones after a flag) to
    `args.overrides`, keeping their order; any other leftover word is an error of the command's
    parser (else `parser`), as argparse would report it."""
    if hasattr(args, "overrides"):
        args.overrides = [*args.overrides, *(w for w in extras if is_override(w))]
        extras = [w for w in extras if not is_override(w)]
    if extras:
        getattr(args, "command_parser", parser).error(f"unrecognized arguments: {' '.join(extras)}")
