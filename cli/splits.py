"""`vidsme splits list|build|verify|create|audit`: the member/non-member splits under data_splits/."""
from __future__ import annotations

import argparse
from pathlib import Path

from vidsme.cli.arguments import add_command
from vidsme.data_splits.registry import SYNTHETIC_SPLITS

EPILOG = """examples:
  vidsme splits list
  vidsme splits build synth-mcqa --video-root runs/videos
  vidsme splits verify synth-mcqa --video-root runs/videos
  vidsme splits create my-split --annotations qa.json --video-root ~/videos --member-fraction 0.5 --seed 0
  vidsme splits create my-split --members train.json --nonmembers test.json --video-root ~/videos
  vidsme splits audit synth-mcqa --video-root runs/videos
  vidsme splits audit paper-cinepile paper-nextqa          # no videos: text and manifest metadata
"""


def add_parser(subparsers) -> None:
    parser = add_command(subparsers, "splits", help="list, build, verify, create and audit member/non-member splits",
                         description="Member/non-member splits: manifests + split cards under data_splits/.",
                         epilog=EPILOG)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add_command(actions, "list", help="every known split with its counts and status").set_defaults(run=run_list)

    build = add_command(actions, "build", help="generate synthetic videos and draw the split")
    build.add_argument("names", nargs="+", metavar="NAME", help="synthetic splits and pools: " + ", ".join(SYNTHETIC_SPLITS))
    build.add_argument("--video-root", type=Path, default=Path("runs/videos"), help="where videos are written")
    build.add_argument("--seed", type=int, default=0,
                       help="seeds the generator, the member draw and the dev/test partition (default 0)")
    build.add_argument("--n-videos", type=int, default=None, help="override the pool's default size")
    build.set_defaults(run=run_build)

    verify = add_command(actions, "verify", help="check checksums, disjointness, the dev/test partition, presence "
                         "and decodability")
    verify.add_argument("names", nargs="+", metavar="NAME", help="splits to verify (`vidsme splits list`)")
    verify.add_argument("--video-root", type=Path, default=None,
                        help="folder the manifest's video paths are under (synthetic splits: where they were built)")
    verify.add_argument("--no-decode", action="store_true", help="check presence and checksums only")
    verify.add_argument("--thorough", action="store_true", help="decode every frame (slow on long videos)")
    verify.set_defaults(run=run_verify)

    create = add_command(actions, "create", help="a split from your own videos and reference-format JSON")
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
    create.set_defaults(run=run_create)

    audit = add_command(actions, "audit", help="blind (model-free) baseline: can metadata or text alone predict membership?")
    audit.add_argument("names", nargs="+", metavar="NAME", help="splits to audit (`vidsme splits list`)")
    audit.add_argument("--video-root", type=Path, default=None,
                       help="folder the manifest's video paths are under (default: where a synthetic split was built; "
                       "without videos the audit reads the text and the manifest's metadata, and says what it "
                       "could not use)")
    audit.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    audit.add_argument("--seed", type=int, default=0, help="seeds the folds, the model and the bootstrap (default 0)")
    audit.add_argument("--cache-dir", type=Path, default=None,
                       help="cache video statistics and blind scores here (a suite's cache_dir reuses them)")
    audit.set_defaults(run=run_audit)


def run_list(args: argparse.Namespace) -> int:
    from vidsme.data_splits.listing import format_listing, split_summaries

    print(format_listing(split_summaries()))
    return 0


def run_build(args: argparse.Namespace) -> int:
    from vidsme.data_splits.build import build_synthetic_split

    for name in args.names:
        split, rebuilt = build_synthetic_split(name, args.video_root, seed=args.seed, n_videos=args.n_videos)
        what = "built" if rebuilt else "up to date"
        print(f"{name}: {what} at {split.path} ({split.card.counts}); videos under {args.video_root}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from vidsme.data_splits.registry import load_split
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


def run_create(args: argparse.Namespace) -> int:
    from vidsme.data_splits.create import create_split

    split = create_split(args.name, args.video_root, annotations=args.annotations,
                         member_fraction=args.member_fraction, seed=args.seed, members=args.members,
                         nonmembers=args.nonmembers, task=args.task, force=args.force)
    print(f"created {split.name} at {split.path}: {split.card.counts}")
    return 0


def run_audit(args: argparse.Namespace) -> int:
    from vidsme.data_splits.audit import audit_split
    from vidsme.data_splits.registry import load_split

    for name in args.names:
        split = load_split(name)
        video_root = args.video_root or (split.card.source or {}).get("video_root")
        result = audit_split(split, video_root and Path(video_root), folds=args.folds, seed=args.seed,
                             cache_dir=args.cache_dir)
        print(result.format())
    return 0
