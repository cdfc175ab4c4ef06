"""`vidsme benchmark SUITE [key=value ...]`: query targets, cache features, evaluate, write results + leaderboard."""
from __future__ import annotations

import argparse
from pathlib import Path

from vidsme.cli.arguments import add_command, add_overrides, add_quiet

EPILOG = """examples:
  vidsme benchmark configs/suites/demo.yaml                       # the embedded default (after make demo's training)
  vidsme benchmark configs/suites/demo.yaml frame_counts=[16]     # one frame count
  vidsme benchmark configs/suites/demo.yaml attacks=[loss,vid_sme_min_k10] plots=false
  vidsme benchmark configs/suites/demo.yaml allow_exclusions=true # leave undecodable videos out (listed in results)
  vidsme benchmark configs/suites/paper.yaml --dry-run           # what is missing, before any GPU is held
  torchrun --nproc_per_node 8 -m vidsme.cli benchmark configs/suites/paper.yaml   # sharded extraction
  (accelerate launch and deepspeed work the same: each rank extracts its own batches)
Reruns reuse the feature cache (keyed by every parameter that changes a number), so an
interrupted run continues where it stopped and a finished one only re-evaluates.
key=value overrides may come before, between or after the flags.
"""


def add_parser(subparsers) -> None:
    parser = add_command(subparsers, "benchmark",
                         help="query targets, cache features, evaluate every attack, write results and the leaderboard",
                         description="Run a benchmark suite. SUITE_CONFIG is a YAML file (configs/suites/); "
                         "key=value overrides go anywhere after it.", epilog=EPILOG)
    parser.add_argument("config", type=Path, metavar="SUITE_CONFIG",
                        help="suite YAML (its header says how to launch it)")
    add_overrides(parser, "frame_counts=[8] batch_size=4")
    add_quiet(parser)
    parser.add_argument("--dry-run", action="store_true",
                        help="check targets, references, splits, videos and caches, count the forwards; load no "
                        "weights, decode no video; exit 1 listing what is missing")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from vidsme.benchmark.config import SuiteConfig
    from vidsme.benchmark.leaderboard import write_leaderboard
    from vidsme.benchmark.suite import run_suite, summarize
    from vidsme.config import load_config

    cfg = load_config(SuiteConfig, args.config, args.overrides)
    if args.dry_run:
        from vidsme.benchmark.dry_run import dry_run

        report = dry_run(cfg)
        print(report.format())
        return 0 if report.ok else 1
    path = run_suite(cfg, command=args.command_line, progress=not args.quiet)
    if path is None:  # not rank 0: rank 0 evaluates and writes
        return 0
    print(summarize(path))
    written = write_leaderboard(path.parent)
    print(f"results: {path}\nper-sample scores: {path.parent / 'scores'}\nplots: {path.parent / 'plots'}")
    print("leaderboard: " + ", ".join(str(p) for p in written.values()))
    return 0
