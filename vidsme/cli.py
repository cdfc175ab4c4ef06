"""The `vidsme` command line: one entry point, one subcommand per stage.

Each subcommand's module is imported only when it runs, so `vidsme --help` stays fast.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

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


SPLITS_EPILOG = """examples:
  vidsme splits list
  vidsme splits build synth-mcqa --video-root runs/videos
  vidsme splits verify synth-mcqa --video-root runs/videos
  vidsme splits create my-split --annotations qa.json --video-root ~/videos --member-fraction 0.5 --seed 0
  vidsme splits create my-split --members train.json --nonmembers test.json --video-root ~/videos
  vidsme splits audit synth-mcqa --video-root runs/videos
"""


def _cmd_splits(args: argparse.Namespace) -> int:
    from vidsme.data_splits.registry import SYNTHETIC_SPLITS, known_split_names, load_split
    from vidsme.errors import SplitError

    if args.action == "list":
        print(f"{'split':<18} {'kind':<6} {'status':<11} {'rows (member/non-member)':<26} "
              f"{'videos (member/non-member)':<28} dev | test videos")
        for name in known_split_names():
            try:
                split = load_split(name)
            except SplitError:
                print(f"{name:<18} {'':<6} {'not built':<11} run `vidsme splits build {name}`")
                continue
            rows, videos = split.card.counts["rows"], split.card.counts["videos"]
            status = "built" if name in SYNTHETIC_SPLITS else ("incomplete" if not split.card.members_available
                                                                else "ready")
            if split.is_pool:
                counts, vids = f"{rows.get('pool', 0)} (pool)", f"{videos.get('pool', 0)} (pool)"
            else:
                counts = f"{rows.get('member', 0)}/{rows.get('nonmember', 0)}"
                vids = f"{videos.get('member', 0)}/{videos.get('nonmember', 0)}"
            # the card's record as written; `vidsme splits verify` checks it against the manifest
            part = split.card.partition
            if isinstance(part, dict) and all(isinstance(part.get(s), dict) for s in ("dev", "test")):
                dev, test = part["dev"].get("videos", {}), part["test"].get("videos", {})
                sides = (f"{dev.get('member', 0)}/{dev.get('nonmember', 0)} | "
                         f"{test.get('member', 0)}/{test.get('nonmember', 0)}")
            elif split.is_pool or not split.card.members_available:
                sides = "-"
            elif split.test_only:
                sides = "test only"
            else:
                sides = f"none: run `vidsme splits build {name}`" if name in SYNTHETIC_SPLITS else "none: re-create it"
            print(f"{name:<18} {split.card.kind:<6} {status:<11} {counts:<26} {vids:<28} {sides}")
        return 0
    if args.action == "build":
        from vidsme.data_splits.build import build_synthetic_split

        for name in args.names:
            split, rebuilt = build_synthetic_split(name, args.video_root, seed=args.seed, n_videos=args.n_videos)
            what = "built" if rebuilt else "up to date"
            print(f"{name}: {what} at {split.path} ({split.card.counts}); videos under {args.video_root}")
        return 0
    if args.action == "verify":
        from vidsme.data_splits.verify import verify_split

        failed = 0
        for name in args.names:
            split = load_split(name)
            # synthetic splits remember where their videos were generated
            video_root = args.video_root or split.card.source.get("video_root")
            report = verify_split(split, video_root and Path(video_root), decode=not args.no_decode,
                                  thorough=args.thorough)
            print(report.format())
            failed += not report.ok
        return 1 if failed else 0
    if args.action == "create":
        from vidsme.data_splits.create import create_split

        split = create_split(args.name, args.video_root, annotations=args.annotations,
                             member_fraction=args.member_fraction, seed=args.seed, members=args.members,
                             nonmembers=args.nonmembers, task=args.task, force=args.force)
        print(f"created {split.name} at {split.path}: {split.card.counts}")
        return 0
    if args.action == "audit":
        from vidsme.data_splits.audit import audit_split

        for name in args.names:
            result = audit_split(load_split(name), args.video_root, folds=args.folds, seed=args.seed,
                                 cache_dir=args.cache_dir)
            print(result.format())
        return 0
    raise AssertionError(args.action)


TRAIN_EPILOG = """examples:
  vidsme train base configs/base/tiny.yaml
  vidsme train target configs/targets/mcqa-full.yaml
  vidsme train target configs/targets/oeqa-lora.yaml optim.epochs=2 seed=1
  deepspeed --num_gpus 8 -m vidsme.cli train target configs/targets/mcqa-full-7b.yaml base=/models/llava-ov-7b
  vidsme train target configs/targets/mcqa-full-7b.yaml --dry-run --world-size 8   # before allocating GPUs
  vidsme train target configs/targets/paper-nextqa-lora-7b.yaml --dry-run --quick --world-size 16 --gpus-per-node 8
A dry run loads no weights and writes nothing: parameters per module group (total, trainable),
model-state memory per GPU for the ZeRO stage and world size, tokens per sample, steps per epoch;
it checks the base, the split and that every video is present and decodes; exit 1 lists what is missing.
"""


def _cmd_train(args: argparse.Namespace) -> int:
    from vidsme.config import load_config
    from vidsme.train.config import BaseConfig, TargetConfig

    if not args.dry_run:
        given = [flag for flag, value in (("--quick", args.quick), ("--world-size", args.world_size),
                                          ("--gpus-per-node", args.gpus_per_node),
                                          ("--architecture", args.architecture)) if value not in (None, False)]
        if given:
            raise VidsmeError(f"{', '.join(given)} only apply with --dry-run (a training run takes its world size "
                              "from the launcher)")
    else:
        from vidsme.train.dry_run import dry_run_base, dry_run_target

        layout = {"world_size": args.world_size, "gpus_per_node": args.gpus_per_node, "quick": args.quick,
                  "progress": sys.stderr.isatty()}
        if args.what == "base":
            if args.architecture is not None:
                raise VidsmeError("--architecture describes a target's base; `train base` builds the tiny base "
                                  "from its config")
            report = dry_run_base(load_config(BaseConfig, args.config, args.overrides), **layout)
        else:
            report = dry_run_target(load_config(TargetConfig, args.config, args.overrides),
                                    architecture=args.architecture, **layout)
        print(report.format())
        return 0 if report.ok else 1
    from vidsme.train.recipes import finetune_target, pretrain_base

    if args.what == "base":
        out = pretrain_base(load_config(BaseConfig, args.config, args.overrides), progress=not args.quiet)
        print(f"base model written to {out}")
    else:
        out = finetune_target(load_config(TargetConfig, args.config, args.overrides), progress=not args.quiet)
        print(f"target written to {out} (card: {out / 'target.json'})")
    return 0


BENCHMARK_EPILOG = """examples:
  vidsme benchmark configs/suites/demo.yaml                       # the embedded default (after make demo's training)
  vidsme benchmark configs/suites/demo.yaml frame_counts=[16]     # one frame count
  vidsme benchmark configs/suites/demo.yaml attacks=[loss,vid_sme_min_k10] plots=false
  vidsme benchmark configs/suites/demo.yaml allow_exclusions=true # leave undecodable videos out (listed in results)
  vidsme benchmark configs/suites/paper.yaml --dry-run           # what is missing, before any GPU is held
  torchrun --nproc_per_node 8 -m vidsme.cli benchmark configs/suites/paper.yaml   # sharded extraction
  (accelerate launch and deepspeed work the same: each rank extracts its own batches)
Reruns reuse the feature cache (keyed by every parameter that changes a number), so an
interrupted run continues where it stopped and a finished one only re-evaluates.
"""

LEADERBOARD_EPILOG = """examples:
  vidsme leaderboard runs/demo/benchmark              # writes leaderboard.{json,md,html} next to results.json
  vidsme leaderboard runs/demo/benchmark --out site/  # somewhere else
"""


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from vidsme.benchmark.config import SuiteConfig
    from vidsme.benchmark.suite import run_suite, summarize
    from vidsme.config import load_config

    cfg = load_config(SuiteConfig, args.config, args.overrides)
    if args.dry_run:
        from vidsme.benchmark.dry_run import dry_run

        report, ok = dry_run(cfg)
        print(report)
        return 0 if ok else 1
    command = " ".join(["vidsme", "benchmark", str(args.config), *args.overrides])
    path = run_suite(cfg, command=command, progress=not args.quiet)
    if path is None:  # not rank 0: rank 0 evaluates and writes
        return 0
    print(summarize(path))
    written = _write_leaderboard(path.parent, None)
    print(f"results: {path}\nper-sample scores: {path.parent / 'scores'}\nplots: {path.parent / 'plots'}")
    print("leaderboard: " + ", ".join(str(p) for p in written.values()))
    return 0


def _write_leaderboard(results_dir: Path, out: Path | None) -> dict:
    from vidsme.benchmark.leaderboard import write_leaderboard

    return write_leaderboard(results_dir, out)


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    written = _write_leaderboard(args.results_dir, args.out)
    for path in written.values():
        print(path)
    return 0


SUBMIT_EPILOG = """examples:
  vidsme submit docs/examples/frame_contrast_attack.py --results runs/demo/benchmark   # a .py file
  vidsme submit mypkg.my_attacks --results runs/demo/benchmark                        # a module path
  vidsme submit my_attack --results runs/demo/benchmark     # an installed entry point (group vidsme.attacks)
  vidsme submit --scores scores.csv --target mcqa-full --attack-name my_blackbox --direction higher \\
      --results runs/demo/benchmark [--level row|video] [--slice answer] [--n-frames 16]
  vidsme submit docs/examples/frame_contrast_attack.py --challenge runs/challenge-1   # a sealed challenge, after
      # the same file went on the public results (its configuration is chosen on their dev partition)
Checks, in order: sandbox, import, declaration, name, features, scores, determinism, time budget
(scores files: format, target, name, ids, finite). A refused submission changes nothing.
Code runs in a sandbox (bubblewrap, else unshare): no network, no data, limited memory/CPU/processes;
--no-sandbox runs it in-process for local development only (rows marked "sandboxed": false).
Walk-through: docs/SUBMITTING.md
"""


def _cmd_submit(args: argparse.Namespace) -> int:
    from vidsme.benchmark.submission import format_result
    from vidsme.benchmark.submit import submit_attack
    from vidsme.benchmark.submit_scores import submit_scores_file

    if (args.source is None) == (args.scores is None):
        raise VidsmeError("give either SOURCE (an attack .py file, module path or entry-point name) or "
                          "--scores FILE.csv, not both")
    if (args.results is None) == (args.challenge is None):
        raise VidsmeError("give either --results RESULTS_DIR (a public benchmark) or --challenge DIR (a sealed "
                          "challenge), not both")
    if args.challenge is not None:
        from vidsme.benchmark.challenge_board import submit_to_challenge
        from vidsme.benchmark.sandbox import GIB, SandboxLimits

        if args.scores is not None or args.no_sandbox:
            raise VidsmeError("a challenge takes sandboxed code only: no --scores file (you have neither its labels "
                              "nor its features) and no --no-sandbox")
        command = f"vidsme submit {args.source} --challenge {args.challenge}"
        result = submit_to_challenge(args.source, args.challenge, time_budget_s=args.time_budget, command=command,
                                     limits=SandboxLimits(memory_bytes=int(args.memory_limit * GIB)))
        print(format_result(result))
        return 0
    if args.scores is None:
        from vidsme.benchmark.sandbox import GIB, SandboxLimits

        if not 0 < args.memory_limit < float("inf"):
            raise VidsmeError(f"--memory-limit must be a positive number of GiB, got {args.memory_limit}")
        command = f"vidsme submit {args.source} --results {args.results}" + (" --no-sandbox" if args.no_sandbox else "")
        result = submit_attack(args.source, args.results, time_budget_s=args.time_budget, command=command,
                               sandbox=not args.no_sandbox,
                               limits=SandboxLimits(memory_bytes=int(args.memory_limit * GIB)))
    else:
        lacking = [flag for flag, value in (("--target", args.target), ("--attack-name", args.attack_name),
                                            ("--direction", args.direction)) if value is None]
        if lacking:
            raise VidsmeError(f"a scores-file submission also needs {', '.join(lacking)}")
        command = (f"vidsme submit --scores {args.scores} --target {args.target} --attack-name {args.attack_name} "
                   f"--direction {args.direction} --level {args.level} --slice {args.slice} --results {args.results}"
                   + (f" --n-frames {args.n_frames}" if args.n_frames is not None else ""))
        result = submit_scores_file(args.scores, args.results, target=args.target, attack_name=args.attack_name,
                                    direction=args.direction, level=args.level, slice_name=args.slice,
                                    n_frames=args.n_frames, citation=args.citation or "", command=command)
    print(format_result(result))
    return 0


CHALLENGE_EPILOG = """examples:
  vidsme challenge build --secret ~/round1.secret --new-secret --out runs/challenge-1     # a new round (size 1000)
  vidsme challenge build --secret ~/round1.secret --out runs/challenge-1                  # resume after a kill
  vidsme challenge build --secret s.bin --new-secret --out /tmp/small --size 100          # a small round (~10 min)
  vidsme challenge build --secret s.bin --out /tmp/tiny --size 6 --pretrain-videos 16 \\
      --set base.optim.epochs=1 --set targets.optim.micro_batch_size=2 --set suite.frame_counts=[4]
  vidsme challenge evaluate runs/challenge-1                          # built-in families, configured on make demo's dev
  vidsme submit my_attack.py --results runs/demo/benchmark            # first on the public dev set...
  vidsme submit my_attack.py --challenge runs/challenge-1             # ...then, at that configuration, on the challenge
  vidsme challenge reveal runs/challenge-1 --secret ~/round1.secret   # end of the round: publish + verify
  vidsme challenge verify runs/challenge-1                            # anyone, after the reveal
Publish only DIR/public; DIR/private (mode 0700) holds the manifests, labels, models and features.
Run from the repository root (the demo's configs/). How a round works: docs/CHALLENGE.md
"""


def _cmd_challenge(args: argparse.Namespace) -> int:
    from vidsme.benchmark.challenge import ChallengeSettings, build_challenge, reveal_challenge, verify_challenge

    if args.action == "build":
        settings = ChallengeSettings(size=args.size, pretrain_videos=args.pretrain_videos,
                                     overrides=tuple(args.set), configs=args.configs)
        path = build_challenge(args.secret, args.out, settings, create_secret=args.new_secret,
                               progress=not args.quiet)
        print(f"public part: {path.parent}")
    elif args.action == "reveal":
        path = reveal_challenge(args.dir, args.secret)
        print(f"revealed: the secret and the manifests are in {path.parent}; report {path}")
    elif args.action == "evaluate":
        from vidsme.benchmark.challenge_board import evaluate_challenge

        for path in evaluate_challenge(args.dir, args.dev_results, progress=not args.quiet).values():
            print(f"leaderboard: {path}")
    else:
        for line in verify_challenge(args.dir):
            print(f"ok: {line}")
        print(f"{args.dir}: every commitment holds")
    return 0


STUDY_EPILOG = """examples:
  vidsme study video-signal configs/studies/video_signal.yaml               # the whole grid (docs/FINDINGS.md)
  vidsme study video-signal configs/studies/video_signal.yaml --size tiny   # the toy grid CI runs (about 30 s)
  vidsme study video-signal configs/studies/video_signal.yaml only=[center,lora] n_bootstrap=200
  vidsme study video-signal configs/studies/video_signal.yaml output_dir=runs/study/results  # not docs/findings
  vidsme study video-signal configs/studies/video_signal.yaml --report-only # table + figure from the cell files
A cell whose <output_dir>/<cell>.json holds the current settings hash is skipped; a killed run
resumes (training from its last checkpoint, extraction from its last batch, then the evaluation).
"""


def _cmd_study(args: argparse.Namespace) -> int:
    from vidsme.study.config import load_study
    from vidsme.study.video_signal import report, run_study

    cfg = load_study(args.config, args.overrides, size=args.size)
    where = f"{args.config}" + (f" (--size {args.size})" if args.size else "")
    if args.report_only:
        written = report(cfg)
    else:
        run = run_study(cfg, where=where, progress=not args.quiet)
        print(f"study {cfg.name}: {len(run.computed)} cell(s) computed, {len(run.reused)} reused, "
              f"{run.seconds / 60:.1f} min wall-clock")
        written = run.written
    for what, path in written.items():
        print(f"{what}: {path}")
    print(f"cells: {cfg.output_dir}/<cell>.json")
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

    splits = sub.add_parser(
        "splits",
        help="list, build, verify, create and audit member/non-member splits",
        description="Member/non-member splits: manifests + split cards under data_splits/.",
        epilog=SPLITS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = splits.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="every known split with its counts and status")
    build = actions.add_parser("build", help="generate synthetic videos and draw the split")
    build.add_argument("names", nargs="+", metavar="NAME", help="synth-mcqa, synth-oeqa, synth-caption, synth-pretrain")
    build.add_argument("--video-root", type=Path, default=Path("runs/videos"), help="where videos are written")
    build.add_argument("--seed", type=int, default=0,
                       help="seeds the generator, the member draw and the dev/test partition (default 0)")
    build.add_argument("--n-videos", type=int, default=None, help="override the pool's default size")
    verify = actions.add_parser("verify", help="check checksums, disjointness, the dev/test partition, presence "
                                "and decodability")
    verify.add_argument("names", nargs="+", metavar="NAME", help="splits to verify (`vidsme splits list`)")
    verify.add_argument("--video-root", type=Path, default=None,
                        help="folder the manifest's video paths are under (synthetic splits: where they were built)")
    verify.add_argument("--no-decode", action="store_true", help="check presence and checksums only")
    verify.add_argument("--thorough", action="store_true", help="decode every frame (slow on long videos)")
    create = actions.add_parser("create", help="a split from your own videos and reference-format JSON")
    create.add_argument("name", help="name of the new split (its folder under the splits dir)")
    create.add_argument("--video-root", type=Path, required=True,
                        help="folder the annotations' video paths are relative to")
    create.add_argument("--annotations", type=Path, help="one JSON list, split i.i.d. by video")
    create.add_argument("--member-fraction", type=float, help="with --annotations: share of videos that are members")
    create.add_argument("--seed", type=int, default=0,
                        help="seeds the member draw of --annotations and the dev/test partition (default 0; "
                        "with --members/--nonmembers only the partition)")
    create.add_argument("--members", type=Path, help="JSON list of member rows")
    create.add_argument("--nonmembers", type=Path, help="JSON list of non-member rows")
    create.add_argument("--task", choices=("mcqa", "oeqa", "caption"), help="force a task (default: from candidates)")
    create.add_argument("--force", action="store_true", help="replace an existing split of that name")
    audit = actions.add_parser("audit", help="blind (model-free) baseline: can metadata alone predict membership?")
    audit.add_argument("names", nargs="+", metavar="NAME", help="splits to audit (`vidsme splits list`)")
    audit.add_argument("--video-root", type=Path, required=True, help="folder the manifest's video paths are under")
    audit.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    audit.add_argument("--seed", type=int, default=0, help="seeds the folds, the model and the bootstrap (default 0)")
    audit.add_argument("--cache-dir", type=Path, default=None,
                       help="cache video statistics and blind scores here (a suite's cache_dir reuses them)")
    splits.set_defaults(func=_cmd_splits)

    train = sub.add_parser(
        "train",
        help="build and pretrain the tiny base; fine-tune targets (full | lora | projector)",
        description="Train target models with DeepSpeed. CONFIG is a YAML file; key=value overrides follow it.",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("what", choices=("base", "target"), help="base: tiny base pretraining; target: fine-tuning")
    train.add_argument("config", type=Path, help="YAML config (its header says how to launch it)")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. optim.epochs=2 seed=1")
    train.add_argument("--dry-run", action="store_true",
                       help="print parameters, memory per GPU, tokens and steps; check base, split and videos; load "
                       "no weights, write nothing; exit 1 listing what is missing")
    train.add_argument("--quick", action="store_true",
                       help="with --dry-run: decode a seeded sample of 20 videos instead of all")
    train.add_argument("--world-size", type=int, default=None, metavar="N",
                       help="with --dry-run: processes (GPUs) in all (default: $WORLD_SIZE, else 1)")
    train.add_argument("--gpus-per-node", type=int, default=None, metavar="N",
                       help="with --dry-run: processes per node (default: $LOCAL_WORLD_SIZE, else the world size)")
    train.add_argument("--architecture", type=Path, default=None, metavar="CONFIG_JSON",
                       help="with --dry-run: a config.json describing a base that is not on this machine "
                       "(default: configs/models/<base folder name>.json)")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.set_defaults(func=_cmd_train)

    bench = sub.add_parser(
        "benchmark",
        help="query targets, cache features, evaluate every attack, write results and the leaderboard",
        description="Run a benchmark suite. SUITE_CONFIG is a YAML file (configs/suites/); key=value overrides follow.",
        epilog=BENCHMARK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument("config", type=Path, metavar="SUITE_CONFIG", help="suite YAML (its header says how to launch it)")
    bench.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. frame_counts=[8] batch_size=4")
    bench.add_argument("--quiet", action="store_true", help="no progress bars")
    bench.add_argument("--dry-run", action="store_true",
                       help="check targets, references, splits, videos and caches, count the forwards; load no "
                       "weights, decode no video; exit 1 listing what is missing")
    bench.set_defaults(func=_cmd_benchmark)

    board = sub.add_parser(
        "leaderboard",
        help="write leaderboard.json, .md and a self-contained .html from a results directory",
        description="Rank a benchmark's results: TPR@1%%FPR, then AUC (docs/LEADERBOARD.md).",
        epilog=LEADERBOARD_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    board.add_argument("results_dir", type=Path, metavar="RESULTS_DIR", help="folder holding results.json")
    board.add_argument("--out", type=Path, default=None, help="output folder (default: RESULTS_DIR)")
    board.set_defaults(func=_cmd_leaderboard)

    submit = sub.add_parser(
        "submit",
        help="validate a new attack (or a scores file) and add it to a benchmark's leaderboard",
        description="Add an attack to a finished benchmark: validated, evaluated on every target from the "
        "feature caches (no model runs), its rows added to results.json and the leaderboard (docs/SUBMITTING.md).",
        epilog=SUBMIT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    submit.add_argument("source", nargs="?", default=None, metavar="PATH_OR_ENTRY_POINT",
                        help="attack .py file, module path, or installed entry-point name (group vidsme.attacks)")
    submit.add_argument("--results", type=Path, default=None, metavar="RESULTS_DIR",
                        help="the benchmark's output folder (holds results.json)")
    submit.add_argument("--challenge", type=Path, default=None, metavar="DIR",
                        help="a sealed challenge instead (built and evaluated here): the file must already be on the "
                        "public results it was evaluated against, whose dev partition fixed its configuration")
    submit.add_argument("--time-budget", type=float, default=30.0, metavar="SECONDS",
                        help="most seconds one call of the attack may take per (target, frame count, slice) "
                        "(default 30)")
    submit.add_argument("--no-sandbox", action="store_true",
                        help="run the attack inside this process instead of the sandbox (local development only: "
                        "its rows are marked \"sandboxed\": false and never enter a challenge leaderboard)")
    submit.add_argument("--memory-limit", type=float, default=8.0, metavar="GIB",
                        help="address-space limit of the sandboxed attack process, in GiB (default 8; "
                        "`import torch` alone takes about 3.5)")
    files = submit.add_argument_group("scores-file submissions (attacks that cannot run here)")
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
    submit.set_defaults(func=_cmd_submit)

    challenge = sub.add_parser(
        "challenge",
        help="build a sealed test-only challenge round from a secret; reveal and verify it",
        description="A sealed challenge: fresh synthetic splits, the demo's base and three targets, their "
        "features, with every seed derived from a secret; public cards carry commitments (docs/CHALLENGE.md).",
        epilog=CHALLENGE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    moves = challenge.add_subparsers(dest="action", metavar="ACTION", required=True)
    cbuild = moves.add_parser("build", help="build (or resume) a challenge into --out: private/ and public/")
    cbuild.add_argument("--secret", type=Path, required=True, metavar="FILE",
                        help="file of at least 32 random bytes every seed derives from; kept by you, never copied")
    cbuild.add_argument("--new-secret", action="store_true",
                        help="first write 32 random bytes to --secret (mode 0600; refuses to overwrite)")
    cbuild.add_argument("--out", type=Path, required=True, metavar="DIR", help="the challenge folder")
    cbuild.add_argument("--size", type=int, default=1000,
                        help="member rows and non-member rows per target (default 1000: TPR at 1%% FPR then rests "
                        "on 10 false positives)")
    cbuild.add_argument("--pretrain-videos", type=int, default=240,
                        help="videos of the base's pretraining pool (default 240, the demo's)")
    cbuild.add_argument("--set", action="append", default=[], metavar="PREFIX.KEY=VALUE",
                        help="override a recipe: PREFIX base, targets (all three), a target name, or suite; "
                        "repeatable; recorded, and a rerun must repeat it")
    cbuild.add_argument("--configs", type=Path, default=Path("configs"),
                        help="folder of base/tiny.yaml, targets/*.yaml, suites/demo.yaml (default configs)")
    cbuild.add_argument("--quiet", action="store_true", help="no progress bars")
    creveal = moves.add_parser("reveal", help="end a round: verify, then publish the secret and the manifests")
    creveal.add_argument("dir", type=Path, metavar="DIR", help="the challenge folder")
    creveal.add_argument("--secret", type=Path, required=True, metavar="FILE", help="the round's secret")
    cevaluate = moves.add_parser("evaluate", help="evaluate every built-in family at its configuration chosen on the "
                                 "public dev partition; write DIR/public/leaderboard.*")
    cevaluate.add_argument("dir", type=Path, metavar="DIR", help="the challenge folder (its private/ must be here)")
    cevaluate.add_argument("--dev-results", type=Path, default=Path("runs/demo/benchmark"), metavar="RESULTS_DIR",
                           help="the public suite's results, the challenge's development set (default "
                           "runs/demo/benchmark, from `make demo`)")
    cevaluate.add_argument("--quiet", action="store_true", help="no progress bars")
    cverify = moves.add_parser("verify", help="check a revealed challenge's commitments from its public folder")
    cverify.add_argument("dir", type=Path, metavar="DIR", help="the challenge folder (or its public/)")
    challenge.set_defaults(func=_cmd_challenge)

    study = sub.add_parser(
        "study",
        help="train and benchmark a grid of targets that answers one question; write a table and a figure",
        description="Studies over trained targets. video-signal: where does the video-slice membership signal "
        "live (capacity, strategy, epochs, frames, content; docs/FINDINGS.md).",
        epilog=STUDY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    studies = study.add_subparsers(dest="study", metavar="STUDY", required=True)
    signal = studies.add_parser("video-signal", help="the video-signal study (issue 12): cells cached, resumable",
                                epilog=STUDY_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    signal.add_argument("config", type=Path, metavar="CONFIG", help="study YAML (its header says how to launch it)")
    signal.add_argument("overrides", nargs="*", metavar="key=value",
                        help="e.g. only=[center,lora] n_bootstrap=200 center.epochs=20")
    signal.add_argument("--size", default=None, metavar="NAME",
                        help="apply the config's `sizes.NAME` preset first (tiny: the toy grid CI runs); put key=value "
                        "overrides before the flags")
    signal.add_argument("--report-only", action="store_true",
                        help="train nothing: rewrite table.md and figure.png from the current cell files")
    signal.add_argument("--quiet", action="store_true", help="no progress bars")
    study.set_defaults(func=_cmd_study)
    return parser


def _quiet_libraries() -> None:
    """--quiet also silences the bars transformers draws while it loads and saves weights."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (2 for user errors)."""
    args = build_parser().parse_args(argv)
    if getattr(args, "quiet", False):
        _quiet_libraries()
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
