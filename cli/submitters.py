"""`vidsme submitters add|list`: the names and keys a board accepts submissions from (the host runs this)."""
from __future__ import annotations

import argparse
from pathlib import Path

from vidsme.cli.arguments import add_command

EPILOG = """examples:
  vidsme submitters add ada --results runs/demo/benchmark     # prints ada's key once: hand it to ada
  vidsme submitters add ada --results runs/demo/benchmark --key-out ada.key   # the key in a new file, mode 600
  vidsme submitters add ada --challenge runs/challenge-1      # a challenge has submitters of its own
  vidsme submitters list --results runs/demo/benchmark
Keys are stored hashed (sha256) in RESULTS_DIR/submitters.json (a challenge: DIR/private/submitters.json).
A lost key cannot be shown again: add the submitter under a new name. docs/SECURITY.md
"""


def add_parser(subparsers) -> None:
    parser = add_command(subparsers, "submitters", help="issue submitter names and keys for a results folder or a "
                         "challenge; list them", description="Submitters of a board: every submission names one and "
                         "gives its key; what it names (attacks, families) is then its own.", epilog=EPILOG)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = add_command(actions, "add", help="issue a new submitter's name and key (shown once)")
    add.add_argument("name", metavar="NAME", help="the submitter's name (ASCII letters, digits, _ . -; not 'vidsme', "
                     "the host's)")
    _board(add)
    add.add_argument("--key-out", type=Path, default=None, metavar="FILE",
                     help="write the key to FILE (a new file, mode 600) instead of printing it")
    add.set_defaults(run=run_add)
    listing = add_command(actions, "list", help="the board's submitters and when they were added (never keys)")
    _board(listing)
    listing.set_defaults(run=run_list)


def _board(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--results", type=Path, metavar="RESULTS_DIR", help="a public benchmark's results folder")
    where.add_argument("--challenge", type=Path, metavar="DIR", help="a sealed challenge (its private/ folder)")


def _folder(args: argparse.Namespace) -> Path:
    if args.results is not None:
        return args.results
    from vidsme.challenge.build import ChallengePaths

    return ChallengePaths(args.challenge).private


def run_add(args: argparse.Namespace) -> int:
    from vidsme.benchmark.submissions.submitters import KEY_ENV, SUBMITTERS_FILE, add_submitter, write_key_file
    from vidsme.errors import VidsmeError

    if args.key_out is not None and args.key_out.exists():
        raise VidsmeError(f"--key-out {args.key_out} exists; a key is written to a new file only")
    key = add_submitter(_folder(args), args.name)
    where = f"{_folder(args) / SUBMITTERS_FILE}"
    if args.key_out is not None:
        write_key_file(args.key_out, key)
        print(f"submitter {args.name!r} added to {where}; their key (stored hashed) is in {args.key_out} (mode 600): "
              f"hand it to them. They submit with --submitter {args.name} --key-file FILE.")
        return 0
    print(f"submitter {args.name!r} added to {where}; their key (shown once, stored "
          f"hashed):\n{key}\nThey submit with --submitter {args.name} and the key in a --key-file (mode 600) or "
          f"${KEY_ENV}.")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from vidsme.benchmark.submissions.submitters import read_submitters

    known = read_submitters(_folder(args))
    for name, record in sorted(known.items()):
        print(f"{name:<24} added {record.get('added')}")
    print(f"{len(known)} submitter(s)")
    return 0
