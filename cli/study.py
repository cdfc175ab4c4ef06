"""`vidsme study NAME CONFIG [key=value ...]`: train and benchmark a grid of targets that answers one question."""
from __future__ import annotations

import argparse
from pathlib import Path

from vidsme.cli.arguments import add_command, add_overrides, add_quiet

EPILOG = """examples:
  vidsme study video-signal configs/studies/video_signal.yaml               # the whole grid (docs/FINDINGS.md)
  vidsme study video-signal configs/studies/video_signal.yaml --size tiny   # the toy grid CI runs (about 30 s)
  vidsme study video-signal configs/studies/video_signal.yaml only=[center,lora] n_bootstrap=200
  vidsme study video-signal configs/studies/video_signal.yaml output_dir=runs/study/results  # not docs/findings
  vidsme study video-signal configs/studies/video_signal.yaml --report-only # table + figure from the cell files
A cell whose <output_dir>/<cell>.json holds the current settings hash is skipped; a killed run
resumes (training from its last checkpoint, extraction from its last batch, then the evaluation).
"""


def add_parser(subparsers) -> None:
    parser = add_command(subparsers, "study",
                         help="train and benchmark a grid of targets that answers one question; write a table and a "
                         "figure",
                         description="Studies over trained targets. video-signal: where does the video-slice "
                         "membership signal live (capacity, strategy, epochs, frames, content; docs/FINDINGS.md).",
                         epilog=EPILOG)
    studies = parser.add_subparsers(dest="study", metavar="STUDY", required=True)
    signal = add_command(studies, "video-signal", help="the video-signal study (issue 12): cells cached, resumable",
                         epilog=EPILOG)
    signal.add_argument("config", type=Path, metavar="CONFIG", help="study YAML (its header says how to launch it)")
    add_overrides(signal, "only=[center,lora] n_bootstrap=200 center.epochs=20")
    signal.add_argument("--size", default=None, metavar="NAME",
                        help="apply the config's `sizes.NAME` preset first (tiny: the toy grid CI runs), then the "
                        "key=value overrides")
    signal.add_argument("--report-only", action="store_true",
                        help="train nothing: rewrite table.md and figure.png from the current cell files")
    add_quiet(signal)
    signal.set_defaults(run=run_video_signal)


def run_video_signal(args: argparse.Namespace) -> int:
    from vidsme.study.config import load_study
    from vidsme.study.video_signal import report, run_study

    cfg = load_study(args.config, args.overrides, size=args.size)
    if args.report_only:
        written = report(cfg)
    else:
        where = f"{args.config}" + (f" (--size {args.size})" if args.size else "")
        run = run_study(cfg, where=where, progress=not args.quiet)
        print(f"study {cfg.name}: {len(run.computed)} cell(s) computed, {len(run.reused)} reused, "
              f"{run.seconds / 60:.1f} min wall-clock")
        written = run.written
    for what, path in written.items():
        print(f"{what}: {path}")
    print(f"cells: {cfg.output_dir}/<cell>.json")
    return 0
