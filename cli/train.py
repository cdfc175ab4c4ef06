"""`vidsme train base|target|shadows CONFIG [key=value ...]`: pretrain the tiny base, fine-tune targets,
train a target's shadow models; --dry-run."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vidsme.cli.arguments import add_command, add_overrides, add_quiet
from vidsme.errors import VidsmeError

EPILOG = """examples:
  vidsme train base configs/base/tiny.yaml
  vidsme train target configs/targets/mcqa-full.yaml
  vidsme train target configs/targets/oeqa-lora.yaml optim.epochs=2 seed=1
  deepspeed --num_gpus 8 -m vidsme.cli train target configs/targets/mcqa-full-7b.yaml base=/models/llava-ov-7b
  vidsme train target configs/targets/mcqa-full-7b.yaml --dry-run --world-size 8   # before allocating GPUs
  vidsme train target configs/targets/paper-nextqa-lora-7b.yaml --dry-run --quick --world-size 16 --gpus-per-node 8
  vidsme train shadows configs/targets/mcqa-full.yaml --count 16            # online: halves of the target's split
  vidsme train shadows configs/targets/mcqa-full.yaml --count 4 --offline   # halves of synth-mcqa-population
  vidsme train shadows configs/targets/mcqa-full.yaml --count 16 --index 3  # one shadow (a cluster job each) ...
  vidsme train shadows configs/targets/mcqa-full.yaml --count 16 --assemble # ... then the set's card from all 16
  vidsme train shadows configs/targets/mcqa-full-7b.yaml --count 16 --dry-run --world-size 8   # total cost
Shadows copy the target config's recipe exactly (base, strategy, epochs, lr, frames, engine); their folder
is <output_dir>-shadows-<online|offline>-<N> unless --shadows-dir says otherwise (docs/ATTACKS.md, LiRA/RMIA).
A dry run loads no weights and writes nothing: parameters per module group (total, trainable),
model-state memory per GPU for the ZeRO stage and world size, tokens per sample, steps per epoch;
it checks the base, the split and that every video is present and decodes; exit 1 lists what is missing.
key=value overrides may come before, between or after the flags.
"""
DRY_RUN_ONLY = ("quick", "world_size", "gpus_per_node", "architecture")
SHADOWS_ONLY = ("count", "offline", "population", "index", "shadows_dir", "assemble")


def add_parser(subparsers) -> None:
    parser = add_command(subparsers, "train",
                         help="build and pretrain the tiny base; fine-tune targets (full | lora | projector)",
                         description="Train target models with DeepSpeed. CONFIG is a YAML file; key=value "
                         "overrides go anywhere after it.", epilog=EPILOG)
    parser.add_argument("what", choices=("base", "target", "shadows"),
                        help="base: tiny base pretraining; target: fine-tuning; shadows: N shadow models of a target")
    parser.add_argument("config", type=Path, help="YAML config (its header says how to launch it)")
    add_overrides(parser, "optim.epochs=2 seed=1")
    parser.add_argument("--dry-run", action="store_true",
                        help="print parameters, memory per GPU, tokens and steps; check base, split and videos; load "
                        "no weights, write nothing; exit 1 listing what is missing")
    parser.add_argument("--quick", action="store_true",
                        help="with --dry-run: decode a seeded sample of 20 videos instead of all")
    parser.add_argument("--world-size", type=int, default=None, metavar="N",
                        help="with --dry-run: processes (GPUs) in all (default: $WORLD_SIZE, else 1)")
    parser.add_argument("--gpus-per-node", type=int, default=None, metavar="N",
                        help="with --dry-run: processes per node (default: $LOCAL_WORLD_SIZE, else the world size)")
    parser.add_argument("--architecture", type=Path, default=None, metavar="CONFIG_JSON",
                        help="with --dry-run: a config.json describing a base that is not on this machine "
                        "(default: configs/models/<base folder name>.json)")
    shadows = parser.add_argument_group("shadows (vidsme train shadows TARGET_CONFIG)")
    shadows.add_argument("--count", type=int, default=None, metavar="N", help="how many shadow models in the set")
    shadows.add_argument("--offline", action="store_true",
                         help="train on halves of a disjoint population pool instead of the target's own split")
    shadows.add_argument("--population", default=None, metavar="SPLIT",
                         help="with --offline: the population split (default: <split>-population)")
    shadows.add_argument("--index", default=None, metavar="K|A-B",
                         help="train only shadow K (or A to B): one cluster job per shadow")
    shadows.add_argument("--shadows-dir", type=Path, default=None, metavar="DIR",
                         help="the set's folder (default: <output_dir>-shadows-<setting>-<N>)")
    shadows.add_argument("--assemble", action="store_true",
                         help="train nothing: write the set's card from its finished shadows (refused if one is "
                         "missing or mismatched)")
    add_quiet(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from vidsme.config import load_config
    from vidsme.train.config import BaseConfig, TargetConfig

    _check_flags(args)
    cfg = load_config(BaseConfig if args.what == "base" else TargetConfig, args.config, args.overrides)
    if args.what == "shadows":
        return _run_shadows(args, cfg)
    if args.dry_run:
        from vidsme.train.dry_run import dry_run_base, dry_run_target

        layout = {"world_size": args.world_size, "gpus_per_node": args.gpus_per_node, "quick": args.quick,
                  "progress": sys.stderr.isatty()}
        report = (dry_run_base(cfg, **layout) if args.what == "base"
                  else dry_run_target(cfg, architecture=args.architecture, **layout))
        print(report.format())
        return 0 if report.ok else 1
    from vidsme.train.recipes import finetune_target, pretrain_base

    if args.what == "base":
        print(f"base model written to {pretrain_base(cfg, progress=not args.quiet)}")
    else:
        out = finetune_target(cfg, progress=not args.quiet)
        print(f"target written to {out} (card: {out / 'target.json'})")
    return 0


def _run_shadows(args: argparse.Namespace, cfg) -> int:
    from vidsme.train.shadows import assemble_set, parse_indices, plan_shadows, train_shadows

    plan = plan_shadows(cfg, args.count, offline=args.offline, population=args.population,
                        output_dir=args.shadows_dir)
    indices = parse_indices(args.index, args.count)
    if args.dry_run:
        from vidsme.train.dry_run import dry_run_shadows

        report = dry_run_shadows(cfg, plan, indices, world_size=args.world_size, gpus_per_node=args.gpus_per_node,
                                 quick=args.quick, architecture=args.architecture, progress=sys.stderr.isatty())
        print(report.format())
        return 0 if report.ok else 1
    if not args.assemble:
        train_shadows(cfg, plan, indices, progress=not args.quiet)
    if args.index is not None and not args.assemble:
        from vidsme.train.shadows import missing_shadows

        left = missing_shadows(plan)
        if left:
            print(f"{plan.folder}: {plan.count - len(left)} of {plan.count} shadows finished; the set's card is written "
                  f"once all are (then, or with --assemble)")
            return 0
    card = assemble_set(plan)
    print(f"shadow set written to {plan.folder} ({card['count']} {card['setting']} shadows of {cfg.name}; "
          f"card: {plan.folder / 'shadows.json'})")
    return 0


def _check_flags(args: argparse.Namespace) -> None:
    if args.what == "shadows" and (args.count is None or args.count < 2):
        raise VidsmeError("`train shadows` needs --count N (N >= 2: every sample must be IN for some shadows and "
                          "OUT for others)")
    if args.what != "shadows":
        given = [f"--{name.replace('_', '-')}" for name in SHADOWS_ONLY if getattr(args, name) not in (None, False)]
        if given:
            raise VidsmeError(f"{', '.join(given)} only apply to `vidsme train shadows`")
    if not args.dry_run:
        given = [f"--{name.replace('_', '-')}" for name in DRY_RUN_ONLY if getattr(args, name) not in (None, False)]
        if given:
            raise VidsmeError(f"{', '.join(given)} only apply with --dry-run (a training run takes its world size "
                              "from the launcher)")
    elif args.what == "base" and args.architecture is not None:
        raise VidsmeError("--architecture describes a target's base; `train base` builds the tiny base from its "
                          "config")
