"""`vidsme challenge build|evaluate|reveal|verify`: a sealed, test-only challenge round from a secret."""
from __future__ import annotations

import argparse
from pathlib import Path

from vidsme.cli.arguments import add_command, add_overrides, add_quiet

EPILOG = """examples:
  vidsme challenge build --secret ~/round1.secret --new-secret --out runs/challenge-1     # a new round (size 1334)
  vidsme challenge build --secret ~/round1.secret --out runs/challenge-1                  # resume after a kill
  vidsme challenge build --secret s.bin --new-secret --out /tmp/small --size 100          # a small round (~10 min)
  vidsme challenge build --secret s.bin --out /tmp/tiny --size 6 --pretrain-videos 16 \\
      base.optim.epochs=1 targets.optim.micro_batch_size=2 suite.frame_counts=[4]
  vidsme challenge evaluate runs/challenge-1                          # built-in families, configured on make demo's dev
  vidsme submit my_attack.py --results runs/demo/benchmark            # first on the public dev set...
  vidsme submit my_attack.py --challenge runs/challenge-1             # ...then, at that configuration, on the challenge
  vidsme challenge reveal runs/challenge-1 --secret ~/round1.secret   # end of the round: publish + verify
  vidsme challenge verify runs/challenge-1                            # anyone, after the reveal
Publish only DIR/public; DIR/private (mode 0700) holds the manifests, labels, models and features.
Run from the repository root (the demo's configs/). How a round works: docs/CHALLENGE.md
"""


def add_parser(subparsers) -> None:
    parser = add_command(subparsers, "challenge",
                         help="build a sealed test-only challenge round from a secret; reveal and verify it",
                         description="A sealed challenge: fresh synthetic splits, the demo's base and three targets, "
                         "their features, with every seed derived from a secret; public cards carry commitments "
                         "(docs/CHALLENGE.md).", epilog=EPILOG)
    moves = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = add_command(moves, "build", help="build (or resume) a challenge into --out: private/ and public/")
    build.add_argument("--secret", type=Path, required=True, metavar="FILE",
                       help="file of at least 32 random bytes every seed derives from; kept by you, never copied")
    build.add_argument("--new-secret", action="store_true",
                       help="first write 32 random bytes to --secret (mode 0600; refuses to overwrite)")
    build.add_argument("--out", type=Path, required=True, metavar="DIR", help="the challenge folder")
    build.add_argument("--size", type=int, default=1334,
                       help="member rows and non-member rows per target (default 1334: the final part then keeps 1000 "
                       "non-member rows, so TPR at 1%% FPR rests on 10 false positives)")
    build.add_argument("--pretrain-videos", type=int, default=240,
                       help="videos of the base's pretraining pool (default 240, the demo's)")
    build.add_argument("--feedback-fraction", type=float, default=0.25, metavar="F",
                       help="share of each split's member and non-member videos held out as the feedback part, the "
                       "only challenge data the public board shows before the reveal (default 0.25)")
    build.add_argument("--max-submissions", type=int, default=3, metavar="N",
                       help="code submissions each submitter may make in the round (default 3)")
    build.add_argument("--max-families", type=int, default=2, metavar="N",
                       help="attacks one submitted file may enter in the round (default 2)")
    add_overrides(build, "base.optim.epochs=1 mcqa-full.optim.lr=1e-3: PREFIX base, targets (all three), a "
                  "target name, or suite; recorded, and a rerun must repeat them")
    build.add_argument("--set", action="append", default=[], metavar="PREFIX.KEY=VALUE",
                       help="an override given as a flag (repeatable), applied before the bare key=value words")
    build.add_argument("--configs", type=Path, default=Path("configs"),
                       help="folder of base/tiny.yaml, targets/*.yaml, suites/demo.yaml (default configs)")
    add_quiet(build)
    build.set_defaults(run=run_build)

    reveal = add_command(moves, "reveal", help="end a round: verify, then publish the secret and the manifests")
    reveal.add_argument("dir", type=Path, metavar="DIR", help="the challenge folder")
    reveal.add_argument("--secret", type=Path, required=True, metavar="FILE", help="the round's secret")
    reveal.set_defaults(run=run_reveal)

    evaluate = add_command(moves, "evaluate", help="evaluate every built-in family at its configuration chosen on "
                           "the public dev partition; write DIR/public/leaderboard.*")
    evaluate.add_argument("dir", type=Path, metavar="DIR", help="the challenge folder (its private/ must be here)")
    evaluate.add_argument("--dev-results", type=Path, default=Path("runs/demo/benchmark"), metavar="RESULTS_DIR",
                          help="the public suite's results, the challenge's development set (default "
                          "runs/demo/benchmark, from `make demo`)")
    add_quiet(evaluate)
    evaluate.set_defaults(run=run_evaluate)

    verify = add_command(moves, "verify", help="check a revealed challenge's commitments from its public folder")
    verify.add_argument("dir", type=Path, metavar="DIR", help="the challenge folder (or its public/)")
    verify.set_defaults(run=run_verify)


def run_build(args: argparse.Namespace) -> int:
    from vidsme.challenge.build import ChallengeSettings, build_challenge

    settings = ChallengeSettings(size=args.size, pretrain_videos=args.pretrain_videos,
                                 overrides=(*args.set, *args.overrides), configs=args.configs,
                                 feedback_fraction=args.feedback_fraction, max_submissions=args.max_submissions,
                                 max_families=args.max_families)
    path = build_challenge(args.secret, args.out, settings, create_secret=args.new_secret, progress=not args.quiet)
    print(f"public part: {path.parent}")
    return 0


def run_reveal(args: argparse.Namespace) -> int:
    from vidsme.challenge.build import reveal_challenge

    path = reveal_challenge(args.dir, args.secret)
    print(f"revealed: the secret and the manifests are in {path.parent}; report {path}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from vidsme.challenge.board import evaluate_challenge

    written = evaluate_challenge(args.dir, args.dev_results, progress=not args.quiet, command=args.command_line)
    for path in written.values():
        print(f"leaderboard: {path}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from vidsme.challenge.build import verify_challenge

    for line in verify_challenge(args.dir):
        print(f"ok: {line}")
    print(f"{args.dir}: every commitment holds")
    return 0
