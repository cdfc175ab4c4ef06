"""The `vidsme` command line: one entry point, one subcommand per stage.

Each subcommand's module is imported only when it runs, so `vidsme --help` stays fast.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from vidsme import __version__
from vidsme.errors import VidsmeError

ATTACKS_EPILOG = """examples:
  vidsme attacks                         # every registered attack, grouped by family
  vidsme attacks --family vid_sme        # one family
  vidsme attacks vid_sme_mean loss       # details of named attacks
  vidsme attacks --load my_attack.py     # include attacks from a file (or module path)
  vidsme attacks --json > attacks.json   # machine-readable metadata
"""


def _cmd_attacks(args: argparse.Namespace) -> int:
    from vidsme.attack.registry import get_attack, list_attacks, load_attack_source

    for source in args.load:
        load_attack_source(source)
    specs = [get_attack(n) for n in args.names] if args.names else list_attacks(args.family)
    if args.json:
        json.dump([s.describe() for s in specs], sys.stdout, indent=2)
        print()
        return 0
    if args.names:
        for s in specs:
            print(f"{s.name}  (family {s.family}, version {s.version})")
            print(f"  {s.summary}")
            print(f"  direction: {s.direction.value} score = member")
            print(f"  needs:     {', '.join(s.needs)}")
            print(f"  slices:    {', '.join(s.slices)}")
            print(f"  citation:  {s.citation}")
            print(f"  source:    {s.source}")
        return 0
    family = None
    for s in specs:
        if s.family != family:
            family = s.family
            print(f"\n[{family}]  {s.citation}")
        needs = ", ".join(s.needs)
        print(f"  {s.name:<28} {s.direction.value:<6} slices={','.join(s.slices):<24} needs={needs}")
    families = len({s.family for s in specs})
    print(f"\n{len(specs)} attacks in {families} families. Direction: which raw score means member.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for `vidsme` (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="vidsme",
        description="Membership inference attacks against video-understanding LLMs: "
        "train targets, score attacks, benchmark them.",
    )
    parser.add_argument("--version", action="version", version=f"vidsme {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    attacks = sub.add_parser(
        "attacks",
        help="list registered attacks (direction, needed features, citation)",
        description="List the registered membership-inference attacks.",
        epilog=ATTACKS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    attacks.add_argument("names", nargs="*", help="show details of these attacks")
    attacks.add_argument("--family", help="only this family (e.g. vid_sme, renyi, min_k_prob)")
    attacks.add_argument(
        "--load",
        action="append",
        default=[],
        metavar="SOURCE",
        help="also import attacks from a .py file or module path (repeatable)",
    )
    attacks.add_argument("--json", action="store_true", help="print JSON metadata instead of a table")
    attacks.set_defaults(func=_cmd_attacks)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (2 for user errors)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except VidsmeError as err:
        print(f"vidsme {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head`: stop quietly, like other CLI tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
