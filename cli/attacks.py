"""`vidsme attacks`: the registered attacks, their directions, needed features and citations."""
from __future__ import annotations

import argparse
import json
import sys

from vidsme.cli.arguments import add_command

EPILOG = """examples:
  vidsme attacks                         # every registered attack, grouped by family
  vidsme attacks --family vid_sme        # one family
  vidsme attacks vid_sme_mean loss       # details of named attacks
  vidsme attacks --load my_attack.py     # include attacks from a file (or module path)
  vidsme attacks --json > attacks.json   # machine-readable metadata
  vidsme attacks --calibrations          # the shadow-model calibrations (LiRA, RMIA) any attack's score can go through
  vidsme attacks --load docs/examples/robust_out_calibration.py --calibrations robust_out_z   # a file's calibration
"""


def add_parser(subparsers) -> None:
    parser = add_command(subparsers, "attacks", help="list registered attacks (direction, needed features, citation)",
                         description="List the registered membership-inference attacks.", epilog=EPILOG)
    parser.add_argument("names", nargs="*", help="show details of these attacks")
    parser.add_argument("--family", help="only this family (e.g. vid_sme, renyi, min_k_prob)")
    parser.add_argument("--load", action="append", default=[], metavar="SOURCE",
                        help="also import attacks from a .py file or module path (repeatable)")
    parser.add_argument("--json", action="store_true", help="print JSON metadata instead of a table")
    parser.add_argument("--calibrations", action="store_true",
                        help="list the registered calibrations (LiRA, RMIA: shadow models) instead of the attacks")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from vidsme.attack.registry import (
        format_attack_details,
        format_attack_table,
        get_attack,
        list_attacks,
        load_attack_source,
    )

    for source in args.load:  # a file may register attacks, calibrations or both
        load_attack_source(source)
    if args.calibrations:
        from vidsme.attack.calibration import format_calibration_table, get_calibration, list_calibrations

        specs = [get_calibration(n) for n in args.names] if args.names else list_calibrations()
        print(json.dumps([s.describe() for s in specs], indent=2) if args.json else format_calibration_table(specs))
        return 0
    specs = [get_attack(n) for n in args.names] if args.names else list_attacks(args.family)
    if args.json:
        json.dump([s.describe() for s in specs], sys.stdout, indent=2)
        print()
    else:
        print(format_attack_details(specs) if args.names else format_attack_table(specs))
    return 0
