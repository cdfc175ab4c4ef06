"""`vidsme submit`: a new attack (code or a scores file) onto a finished benchmark's leaderboard, or a challenge."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from vidsme.cli.arguments import add_command

EPILOG = """examples:
  # the host first issues you a name and a key: vidsme submitters add ada --results DIR
  export VIDSME_SUBMITTER_KEY=...        # or --key-file FILE; never the key itself on the command line
  vidsme submit docs/examples/frame_contrast_attack.py --submitter ada --results runs/demo/benchmark  # a .py file
  vidsme submit mypkg.my_attacks --submitter ada --results runs/demo/benchmark                       # a module path
  vidsme submit my_attack --submitter ada --results runs/demo/benchmark   # an entry point (group vidsme.attacks)
  vidsme submit --scores scores.csv --target mcqa-full --attack-name my_blackbox --direction higher \\
      --submitter ada --results runs/demo/benchmark [--level row|video] [--slice answer] [--n-frames 16]
  vidsme submit docs/examples/robust_out_calibration.py --submitter ada --results runs/demo/benchmark  # a
      # calibration (@register_calibration): run on the shadow models' signals (suites with targets[].shadows)
  vidsme submit docs/examples/frame_contrast_attack.py --submitter ada --challenge runs/challenge-1  # a sealed
      # challenge, after the same file went on the public results (its configuration is chosen on their dev part)
Checks, in order: submitter, sandbox, import, declaration, name, features, scores, determinism, time budget
(scores files: submitter, format, target, name, ids, finite). A refused submission changes nothing. A name
(attack, family, scores file) is its first submitter's; replacing your own entry keeps the old one in history.
Where targets have shadow models, submitted attacks are also scored under every shadow (in the sandbox) and
calibrated by the suite's LiRA/RMIA (methods lira+FAMILY, rmia+FAMILY).
Code runs in a sandbox (bubblewrap, else unshare): no network, no data, limited memory/CPU/processes;
--no-sandbox runs it in-process for local development only (rows marked "sandboxed": false).
results.json records the command line as given: rerun it to evaluate the same submission with the same limits.
Walk-through: docs/SUBMITTING.md
"""


def add_parser(subparsers) -> None:
    parser = add_command(subparsers, "submit",
                         help="validate a new attack (or a scores file) and add it to a benchmark's leaderboard",
                         description="Add an attack to a finished benchmark: validated, evaluated on every target from "
                         "the feature caches (no model runs), its rows added to results.json and the leaderboard "
                         "(docs/SUBMITTING.md).", epilog=EPILOG)
    parser.add_argument("source", nargs="?", default=None, metavar="PATH_OR_ENTRY_POINT",
                        help="attack .py file, module path, or installed entry-point name (group vidsme.attacks)")
    parser.add_argument("--submitter", default=None, metavar="NAME",
                        help="your submitter name, as the host issued it (`vidsme submitters add NAME`)")
    parser.add_argument("--key-file", type=Path, default=None, metavar="FILE",
                        help="file holding your submitter key (default: $VIDSME_SUBMITTER_KEY)")
    parser.add_argument("--results", type=Path, default=None, metavar="RESULTS_DIR",
                        help="the benchmark's output folder (holds results.json)")
    parser.add_argument("--challenge", type=Path, default=None, metavar="DIR",
                        help="a sealed challenge instead (built and evaluated here): the file must already be on the "
                        "public results it was evaluated against, whose dev partition fixed its configuration")
    parser.add_argument("--time-budget", type=float, default=30.0, metavar="SECONDS",
                        help="most seconds one call of the attack may take per (target, frame count, slice) "
                        "(default 30)")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="run the attack inside this process instead of the sandbox (local development only: "
                        "its rows are marked \"sandboxed\": false and never enter a challenge leaderboard)")
    parser.add_argument("--memory-limit", type=float, default=8.0, metavar="GIB",
                        help="address-space limit of the sandboxed attack process, in GiB (default 8; "
                        "`import torch` alone takes about 3.5)")
    files = parser.add_argument_group("scores-file submissions (attacks that cannot run here)")
    files.add_argument("--scores", type=Path, default=None, metavar="FILE.csv", help="CSV with header sample_id,score")
    files.add_argument("--target", help="the suite target the scores are for")
    files.add_argument("--attack-name", help="name shown on the leaderboard")
    files.add_argument("--direction", choices=("higher", "lower"), help="which raw score means member")
    files.add_argument("--level", choices=("row", "video"), default="row",
                       help="row: ids are sample ids; video: ids are the manifest's video paths (default row)")
    files.add_argument("--slice", choices=("video", "instruction", "answer"), default="answer",
                       help="the slice the scores come from (default answer)")
    files.add_argument("--n-frames", type=int, default=None, help="frames per video the scores used, if any")
    files.add_argument("--citation", default=None, help="what the scores implement (paper, equation)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from vidsme.benchmark.submissions.common import format_result
    from vidsme.benchmark.submissions.request import SubmitRequest, submit
    from vidsme.benchmark.submissions.submitters import read_key

    request = SubmitRequest(
        submitter=args.submitter, source=args.source, scores=args.scores, results=args.results, challenge=args.challenge,
        time_budget_s=args.time_budget, memory_gib=args.memory_limit, sandbox=not args.no_sandbox,
        target=args.target, attack_name=args.attack_name, direction=args.direction, level=args.level,
        slice_name=args.slice, n_frames=args.n_frames, citation=args.citation).check()
    request = dataclasses.replace(request, key=read_key(args.key_file))
    if request.kind == "challenge":
        from vidsme.challenge.board import submit_to_challenge

        result = submit_to_challenge(request.source, request.challenge, submitter=request.submitter,
                                     key=request.key, time_budget_s=request.time_budget_s,
                                     command=args.command_line, limits=request.limits())
    else:
        result = submit(request, command=args.command_line)
    print(format_result(result))
    return 0
