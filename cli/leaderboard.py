"""`vidsme leaderboard RESULTS_DIR`: leaderboard.json, .md and a self-contained .html from results.json."""
from __future__ import annotations

import argparse
from pathlib import Path

from vidsme.cli.arguments import add_command

EPILOG = """examples:
  vidsme leaderboard runs/demo/benchmark              # writes leaderboard.{json,md,html} next to results.json
  vidsme leaderboard runs/demo/benchmark --out site/  # somewhere else
"""


def add_parser(subparsers) -> None:
    parser = add_command(subparsers, "leaderboard",
                         help="write leaderboard.json, .md and a self-contained .html from a results directory",
                         description="Rank a benchmark's results: TPR@1%%FPR, then AUC (docs/LEADERBOARD.md).",
                         epilog=EPILOG)
    parser.add_argument("results_dir", type=Path, metavar="RESULTS_DIR", help="folder holding results.json")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RESULTS_DIR)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from vidsme.benchmark.leaderboard import write_leaderboard

    for path in write_leaderboard(args.results_dir, args.out).values():
        print(path)
    return 0
