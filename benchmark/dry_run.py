"""`vidsme benchmark SUITE --dry-run`: what a suite run would need and do, checked before any GPU is held.

No weights are loaded and no video is decoded. Per target it checks the model directory
(config, weight files against their headers, tokenizer, target card), counts parameters per
module group from the config alone (a skeleton on the meta device), finds the reference
model, loads the split (manifest, card, dev/test partition), stats every video the split
names under its video root, looks up the feature caches already extracted for this target
and counts the forwards the run would make. Everything missing is listed — every target,
every split — and the command exits non-zero when anything is.
"""
from __future__ import annotations

import json
from pathlib import Path

from vidsme.benchmark.config import SuiteConfig, SuiteTarget
from vidsme.dry_run import DryRunReport, shown
from vidsme.errors import VidsmeError
from vidsme.model_files import count, shape_mismatches, skeleton


def _model_lines(what: str, path: Path, fix: str, check: DryRunReport) -> bool:
    """Check one model directory; lines and problems go to `check`. True when it looks loadable."""
    from vidsme.model_files import check_model_dir

    try:
        check_model_dir(path, fix)
    except VidsmeError as err:
        check.problems.append(f"{what}: {err}")
        return False
    try:
        from vidsme.train.families import parameter_counts

        model = skeleton(path)
        counts = parameter_counts(model)
    except Exception as err:  # an architecture transformers does not know, a config it rejects
        check.problems.append(f"{what} {path}: config.json does not build a model ({type(err).__name__}: {err})")
        return False
    compared, bad = shape_mismatches(model, path)
    if bad:
        check.problems.append(f"{what} {path}: the weight files do not fit config.json: {shown(bad, '; ')}")
        return False
    groups = ", ".join(f"{g} {count(n)}" for g, n in counts.items() if n)
    check.lines.append(f"{what} {path}: {count(sum(counts.values()))} parameters ({groups}); the weight files "
                       f"hold a tensor of the right shape for each of its {compared} parameters")
    return True


def _videos(rows: list[dict], video_root: Path) -> tuple[int, list[str]]:
    videos = sorted({r["video"] for r in rows})
    missing = [v for v in videos if not (video_root / v).is_file()]
    return len(videos), missing


def _cached_rows(cfg: SuiteConfig, target_sha: str | None, split, n_frames: int, template: str) -> int:
    """Rows already extracted for this target, split and frame count (any cache folder whose key matches
    them; the batch size and the q/r table are decided at run time)."""
    from vidsme.benchmark.cache import FeatureCache
    from vidsme.benchmark.suite import FEATURES_SUBDIR

    root = Path(cfg.cache_dir) / FEATURES_SUBDIR
    if target_sha is None or not root.is_dir():
        return 0
    best = 0
    for key_file in root.glob("*/key.json"):
        try:
            key = json.loads(key_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if (key.get("target_card_sha256"), key.get("manifest_sha256"), key.get("n_frames"), key.get("template"),
                key.get("beta1"), key.get("beta2")) == (target_sha, split.card.manifest_sha256, n_frames, template,
                                                        cfg.beta1, cfg.beta2):
            best = max(best, len(FeatureCache.from_folder(key_file.parent).done_ids()))
    return best


def split_audit_line(split) -> str:
    """What the split card records of its blind audit, and a warning when the split itself separates members."""
    audit = split.card.audit
    if not isinstance(audit, dict):
        return f"split audit: none recorded (run `vidsme splits audit {split.name}`)"
    auc = audit.get("auc") or {}
    line = (f"split audit: {audit.get('verdict')} — blind AUC {auc.get('value', float('nan')):.3f} "
            f"[{auc.get('ci_low', float('nan')):.3f}, {auc.get('ci_high', float('nan')):.3f}] ({audit.get('strongest')})")
    if audit.get("verdict") == "LEAKY":
        line += ("; WARNING: a model-free classifier separates this split's members from its non-members, so an "
                 "attack's AUC here is no evidence of leakage from the model (docs/PAPER_SPLITS.md)")
    return line


def check_target(t: SuiteTarget, cfg: SuiteConfig) -> DryRunReport:
    """Everything the run needs for target `t`, checked without loading weights or decoding video;
    `figures["forwards"]`: the forward passes its extraction would make."""
    from vidsme.benchmark.suite import (
        model_sha256,
        read_target_card,
        reference_model,
        target_split_rows,
        target_video_root,
    )
    from vidsme.model_files import model_fix

    check = DryRunReport(f"target {t.name}", figures={"forwards": 0})
    path = Path(t.path)
    card, target_sha = None, None
    if not path.exists():
        check.problems.append(f"target model {path} does not exist: train it (`vidsme train target CONFIG`) or set "
                              f"targets[].path for {t.name!r}")
    elif _model_lines("target", path, model_fix(path, "the suite's targets[].path"), check):
        try:
            card = read_target_card(path)
        except VidsmeError as err:
            check.problems.append(str(err))
        target_sha = model_sha256(path)
        check.lines.append(f"card: {'strategy ' + str(card.get('strategy')) if card else 'none (not trained by vidsme)'}")
    if cfg.reference_view and path.exists():
        try:
            ref, _ = reference_model(t, card)
        except VidsmeError as err:
            check.problems.append(str(err))
        else:
            if ref is None:
                check.lines.append("reference: none (calibration attacks will be skipped)")
            elif not ref.exists():
                check.problems.append(f"reference model {ref} does not exist; set targets[].reference, or "
                                      "reference_view=false")
            else:
                _model_lines("reference", ref, model_fix(ref, "the suite's targets[].reference"), check)
    try:
        split, rows = target_split_rows(t)
        partition = split.partition()
        video_root = target_video_root(t, split)
    except VidsmeError as err:
        check.problems.append(str(err))
        return check
    check.lines.append(split_audit_line(split))
    dev = partition.videos("dev")
    check.lines.append(f"split {split.name} v{split.card.version}: {len(rows)} rows "
                       f"({sum(r['label'] == 'member' for r in rows)} member), partition seed {partition.seed} "
                       f"({len(dev)} dev / {len(partition.of_video) - len(dev)} test videos)")
    n_videos, missing = _videos(rows, video_root)
    if not video_root.is_dir():
        check.problems.append(f"video root {video_root} does not exist ({n_videos} videos expected); set "
                              f"targets[].video_root for {t.name!r}")
    elif missing:
        check.problems.append(f"{len(missing)} of {n_videos} videos missing under {video_root}: {shown(missing)}")
    else:
        check.lines.append(f"videos: {n_videos} of {n_videos} present under {video_root} (not decoded)")
    from vidsme.benchmark.frame_checks import frame_problems

    problems, notes = frame_problems(cfg, t, split, rows, video_root)
    check.problems += problems
    check.lines += notes
    if t.shadows:
        _shadow_lines(t, card, split, rows, cfg, check)
    template = t.template or cfg.template
    for n_frames in cfg.frame_counts:
        done = _cached_rows(cfg, target_sha, split, n_frames, template)
        todo = len(rows) - done
        batches = -(-todo // cfg.batch_size)
        check.figures["forwards"] += batches * (2 if cfg.reference_view else 1)
        check.lines.append(f"{n_frames} frames: {done} of {len(rows)} rows cached; {batches} batches to extract "
                           f"({batches} forwards of {2 * cfg.batch_size} inputs"
                           + (f" + {batches} reference forwards)" if cfg.reference_view else ")"))
    return check


def _shadow_lines(t: SuiteTarget, card: dict | None, split, rows: list[dict], cfg: SuiteConfig,
                  check: DryRunReport) -> None:
    """The target's shadow sets and population: present, finished, fitting the target (benchmark/calibrated.py's
    checks); their extraction forwards are counted like the target's (every shadow over the rows and the population,
    the target over the population)."""
    from vidsme.benchmark.calibrated import calibration_setup

    try:
        setup = calibration_setup(t, card, split, rows)
    except VidsmeError as err:
        check.problems.append(f"shadows: {err}")
        return
    for s in setup.sets:
        check.lines.append(f"shadows: {s.count} {s.setting} shadow models in {s.folder} (on halves of "
                           f"{s.pool.get('name')}), every one finished and matching the set's card")
    pop = setup.population
    check.lines.append(f"population: {pop.name} ({len(pop.rows)} rows) under {pop.video_root}" if pop is not None
                       else "population: none (RMIA will be skipped; set targets[].population)")
    models = sum(s.count for s in setup.sets)
    per_frames = -(-len(rows) // cfg.batch_size) * models
    if pop is not None:
        per_frames += -(-len(pop.rows) // cfg.batch_size) * (models + 1)
    check.figures["forwards"] += per_frames * len(cfg.frame_counts)
    check.lines.append(f"calibration: {len(cfg.calibration_signals)} signals; at most {per_frames} shadow/population "
                       f"forwards per frame count (fewer where cached)")


def dry_run(cfg: SuiteConfig) -> DryRunReport:
    """The suite's attacks and settings, then one section of checks per target."""
    from vidsme.benchmark.suite import check_suite

    specs = check_suite(cfg)
    report = DryRunReport(f"suite {cfg.name}: {len(cfg.targets)} target(s), {len(specs)} attacks, frame counts "
                          f"{cfg.frame_counts}, slices {cfg.slices}, template {cfg.template}, batch size "
                          f"{cfg.batch_size}, output {cfg.output_dir}, cache {cfg.cache_dir}")
    report.sections = [check_target(t, cfg) for t in cfg.targets]
    total = sum(c.figures["forwards"] for c in report.sections)
    report.figures["forwards"] = total
    report.summary = f"the run would make {total} forward passes"
    return report


__all__ = ["check_target", "dry_run"]
