"""`vidsme benchmark SUITE_CONFIG`: every target x frame count x slice x attack, at row and video level.

Per target: read the split, settle which videos can be used (a video that cannot be
decoded stops the run, or with allow_exclusions is excluded and listed), compute Vid-SME's
(q, r) over the remaining pool, extract features into the cache (resumable, sharded over
ranks), then — on rank 0, from the cache only — score every registered attack, evaluate
with CIs, write per-sample scores and plots. results.json ends the run (its format:
docs/RESULTS.md), and the leaderboard is written from it.
"""
from __future__ import annotations

import csv
import datetime
import io
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vidsme import __version__
from vidsme.atomic import write_json_atomic, write_text_atomic
from vidsme.attack.inputs import SLICES
from vidsme.metrics import Evaluation
from vidsme.attack.registry import AttackSpec, get_attack, list_attacks
from vidsme.benchmark.cache import CacheKey, FeatureCache
from vidsme.benchmark.calibrated import (
    CalibratedResult,
    calibrate_frame_count,
    CalibrationSetup,
    calibration_caches_of,
    calibration_setup,
    calibration_signals,
    chosen_calibrations,
    extract_calibration_features,
    setup_sha256,
)
from vidsme.benchmark.config import SuiteConfig, SuiteTarget
from vidsme.benchmark.evaluate import (
    EvalSet,
    LevelView,
    SliceResult,
    evaluate_level_scores,
    evaluate_slice,
    slice_inputs,
    video_scores,
)
from vidsme.benchmark.extract import ExtractionJob, World, extract_to_cache, join_world
from vidsme.benchmark.frame_checks import check_frame_counts
from vidsme.benchmark.leaderboard_format import video_tied_text
from vidsme.benchmark.orders import SplitOrders, split_orders
from vidsme.benchmark.query import LoadedModel, QuerySettings, load_model
from vidsme.benchmark.results_schema import RESULTS_FILE, SCHEMA_VERSION
from vidsme.benchmark.verdicts import METRIC_LABELS, PRIMARY_METRICS, compute_verdicts
from vidsme.benchmark.video_tied import VideoTiedSettings, cached_answer_losses, video_tied_check
from vidsme.config import config_hash, config_to_dict
from vidsme.data_splits.partition import PARTITIONS, Partition
from vidsme.data_splits.registry import load_split
from vidsme.data_splits.synthetic import strip_title
from vidsme.errors import SplitError, VideoError, VidsmeError
from vidsme.names import did_you_mean
from vidsme.prompts import TEMPLATES
from vidsme.provenance import git_commit, ids_sha256, library_versions, tree_sha256

STATS_SUBDIR, FEATURES_SUBDIR = "video-stats", "features"


# ----------------------------------------------------------------------------- checks
def check_suite(cfg: SuiteConfig) -> list[AttackSpec]:
    """Validate the suite before any work; returns the attacks to run."""
    names = [t.name for t in cfg.targets]
    if not names:
        raise VidsmeError(f"suite {cfg.name!r} has no targets")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise VidsmeError(f"suite {cfg.name!r}: target names must be unique, repeated: {dupes}")
    for s in cfg.slices:
        if s not in SLICES:
            raise VidsmeError(f"unknown slice {s!r} in `slices`.{did_you_mean(s, SLICES)} Slices: {SLICES}")
    if not cfg.frame_counts or any(n < 1 for n in cfg.frame_counts) or len(set(cfg.frame_counts)) != len(
            cfg.frame_counts):
        raise VidsmeError(f"frame_counts must be distinct positive integers, got {cfg.frame_counts}")
    if cfg.video_tied and "answer" not in cfg.slices:
        raise VidsmeError("video_tied needs the answer slice in `slices` (its own-video losses come from the feature "
                          "cache); add \"answer\" or set video_tied=false")
    if cfg.video_tied and cfg.video_tied_frames is not None and cfg.video_tied_frames not in cfg.frame_counts:
        raise VidsmeError(f"video_tied_frames {cfg.video_tied_frames} is not one of frame_counts {cfg.frame_counts}")
    for template in {cfg.template, *(t.template for t in cfg.targets if t.template)}:
        if template not in TEMPLATES:
            raise VidsmeError(f"unknown prompt template {template!r}.{did_you_mean(template, TEMPLATES)}")
    if cfg.batch_size < 1 or cfg.n_bootstrap < 1:
        raise VidsmeError("batch_size and n_bootstrap must be >= 1")
    if cfg.primary_metric not in PRIMARY_METRICS:
        raise VidsmeError(f"unknown primary_metric {cfg.primary_metric!r}.{did_you_mean(cfg.primary_metric, PRIMARY_METRICS)}"
                          f" Choose one of {', '.join(PRIMARY_METRICS)}")
    if cfg.min_false_positives < 1:
        raise VidsmeError(f"min_false_positives must be >= 1, got {cfg.min_false_positives}")
    if any(t.shadows for t in cfg.targets):
        calibration_signals(cfg)  # did-you-mean on typos, before any work
        chosen_calibrations(cfg)
        if cfg.shadow_models_per_pass < 0:
            raise VidsmeError(f"shadow_models_per_pass must be >= 0 (0: every shadow of a set at once), got "
                              f"{cfg.shadow_models_per_pass}")
    if cfg.attacks:
        return [get_attack(name) for name in cfg.attacks]  # did-you-mean on typos
    return list_attacks()


def target_split_rows(target: SuiteTarget):
    """(split, rows) of a suite target: a labelled split with both members and non-members, else SplitError."""
    split = load_split(target.split)
    if split.is_pool:
        raise SplitError(f"target {target.name!r}: split {split.name!r} is a pool (no members/non-members)")
    if not split.card.members_available:
        raise SplitError(f"target {target.name!r}: split {split.name!r} has no member list; it cannot be evaluated")
    rows = split.rows()
    labels = {r["label"] for r in rows}
    if labels != {"member", "nonmember"}:
        raise SplitError(f"target {target.name!r}: split {split.name!r} needs both members and non-members")
    return split, rows


def target_video_root(target: SuiteTarget, split) -> Path:
    """Where a target's videos are: targets[].video_root, else the folder the split's card records."""
    if target.video_root is not None:
        return Path(target.video_root)
    own = split.card.source.get("video_root") if isinstance(split.card.source, dict) else None
    if not own:
        raise VidsmeError(f"target {target.name!r}: split {split.name!r} records no video folder; "
                          f"set targets[].video_root in the suite config")
    return Path(own)


# ----------------------------------------------------------------------------- videos
@dataclass
class Exclusions:
    """Videos left out (allow_exclusions only), why, and the rows they took with them."""

    reasons: dict[str, str] = field(default_factory=dict)  # video -> error
    rows: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"n_videos": len(self.reasons), "n_rows": len(self.rows), "videos": sorted(self.reasons),
                "rows": self.rows, "reasons": dict(sorted(self.reasons.items()))}


def usable_rows(rows: list[dict], video_root: Path, cfg: SuiteConfig, target: str,
                progress: bool) -> tuple[list[dict], Exclusions]:
    """Rows whose video decodes at every frame count; stops at the first bad video unless
    cfg.allow_exclusions. Decoding is the video statistics' (cached), so it is not wasted."""
    from vidsme.video_stats import StatsConfig, compute_video_stats

    videos = sorted({r["video"] for r in rows})
    excluded = Exclusions()
    by_path = {str(Path(video_root) / v): v for v in videos}
    for n_frames in cfg.frame_counts:
        while True:
            remaining = [v for v in videos if v not in excluded.reasons]
            try:
                compute_video_stats([Path(video_root) / v for v in remaining], StatsConfig(n_frames=n_frames),
                                    cache_dir=Path(cfg.cache_dir) / STATS_SUBDIR, workers=cfg.stats_workers,
                                    progress=progress)
                break
            except VideoError as err:
                video = by_path.get(str(err.path), str(err.path))
                ids = [r["id"] for r in rows if r["video"] == video]
                if not cfg.allow_exclusions:
                    raise VidsmeError(
                        f"target {target!r}: video {video} of sample(s) {', '.join(ids[:5])} cannot be used: {err}. "
                        "Fix or restore the file; or rerun with allow_exclusions=true to leave its rows out "
                        "(they are then listed in results.json)") from err
                if video not in by_path.values():
                    raise
                excluded.reasons[video] = str(err)
                print(f"excluding {video} ({len(ids)} rows): {err}", file=sys.stderr)
    kept = [r for r in rows if r["video"] not in excluded.reasons]
    excluded.rows = [r["id"] for r in rows if r["video"] in excluded.reasons]
    if {r["label"] for r in kept} != {"member", "nonmember"}:
        raise VidsmeError(f"target {target!r}: after exclusions one class is empty; nothing to evaluate")
    return kept, excluded


# ----------------------------------------------------------------------------- models
def _device_and_dtype(cfg: SuiteConfig) -> tuple[torch.device, str]:
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return device, "bfloat16" if cfg.dtype == "auto" else cfg.dtype
    return torch.device("cpu"), "float32" if cfg.dtype == "auto" else cfg.dtype


def read_target_card(path: Path) -> dict | None:
    """The target.json card of a model directory (None: not trained by vidsme); a damaged card is
    a one-line error naming it."""
    from vidsme.errors import ModelFileError
    from vidsme.model_files import model_fix, read_json_file

    card = Path(path) / "target.json"
    if not card.is_file():
        return None
    fix = model_fix(Path(path), "the suite's targets[].path")
    data = read_json_file(card, fix)
    if not isinstance(data, dict) or not isinstance(data.get("base", {}), dict):
        raise ModelFileError(card, "is not a target card (a JSON object whose 'base' is an object)", fix)
    return data


def model_sha256(path: Path) -> str:
    """Identity of a model directory: its target.json card's sha256 (rewritten by every training
    run), else a hash of its weights and configs."""
    from vidsme.provenance import sha256_file

    card = Path(path) / "target.json"
    return sha256_file(card) if card.is_file() else tree_sha256(Path(path))


def reference_model(target: SuiteTarget, card: dict | None) -> tuple[Path | None, str | None]:
    """(reference model dir, its sha256) — the suite's, else the base the card names."""
    if target.reference is not None:
        return Path(target.reference), model_sha256(Path(target.reference))
    if card and card.get("base", {}).get("path"):
        path = Path(card["base"]["path"])
        if not (path / "config.json").is_file():
            raise VidsmeError(f"target {target.name!r}: its card names base model {path}, which is not there; set "
                              f"targets[].reference to its location, or reference_view=false to skip calibration")
        return path, card["base"].get("sha256") or tree_sha256(path)
    return None, None


# ----------------------------------------------------------------------------- outputs
def metric_row(target: str, spec_meta: dict, kind: str, slice_name: str, level: str, n_frames: int | None,
               partition: str, ev: Evaluation, scores_file: str, column: str, commit: str | None) -> dict:
    """One results.json row: an attack's metrics on one target, slice, level, frame count and partition."""
    row = {"target": target, "attack": spec_meta["name"], "family": spec_meta["family"],
           "attack_version": spec_meta["version"], "kind": kind, "slice": slice_name, "level": level,
           "n_frames": n_frames, "partition": partition}
    metrics = ev.to_dict()
    for key in ("direction", "n_members", "n_nonmembers", "auc", "balanced_accuracy"):
        row[key] = metrics[key]
    row.update({k: v for k, v in metrics.items() if k.startswith("tpr@")})
    row.update(n_posinf_clipped=ev.n_posinf_clipped, n_neginf_clipped=ev.n_neginf_clipped,
               bootstrap_clusters=metrics.get("bootstrap_clusters"), scores_file=scores_file, scores_column=column,
               provenance={"source": spec_meta["source"], "file_sha256": spec_meta.get("file_sha256"),
                           "git_commit": commit})
    return row


def scores_path(target: str, n_frames: int, level: str) -> str:
    """Where a target's per-sample scores of one frame count and level go (relative to output_dir)."""
    return f"scores/{target}/f{n_frames}-{level}.csv"


def write_scores_csv(path: Path, view: LevelView, columns: dict[str, np.ndarray]) -> None:
    """Per-sample raw scores: sample_id, video, label, partition, then one column per `<slice>/<attack>`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["sample_id", "video", "label", "partition", *columns])
    values = list(columns.values())
    for i, (sid, video, label, part) in enumerate(zip(view.ids, view.videos, view.labels, view.partitions)):
        writer.writerow([sid, video, int(label), part, *(repr(float(v[i])) for v in values)])
    write_text_atomic(path, text.getvalue())


def calibrated_rows(target: str, calibrated: CalibratedResult, samples: EvalSet, n_frames: int, out: Path,
                    commit: str | None) -> list[dict]:
    """results.json rows of one frame count's calibrated attacks (kind "calibrated"), their scores written to
    scores/<target>/f<n>-<level>-calibrated.csv; each row records its calibration, signal, shadow set."""
    rows = []
    columns: dict[str, dict[str, np.ndarray]] = {level: {} for level in samples.levels}
    for (name, slice_name, level), scores in calibrated.level_scores.items():
        columns[level][f"{slice_name}/{name}"] = scores
    for level, view in samples.views.items():
        if columns[level]:
            write_scores_csv(out / calibrated_scores_path(target, n_frames, level), view, columns[level])
    for (name, slice_name, level, part), ev in calibrated.evaluations.items():
        meta = calibrated.meta[name]
        row = metric_row(target, {"name": name, "family": meta["family"], "version": meta["version"],
                                  "source": meta["source"]}, "calibrated", slice_name, level, n_frames, part, ev,
                         calibrated_scores_path(target, n_frames, level), f"{slice_name}/{name}", commit)
        row["calibration"] = {k: meta[k] for k in ("calibration", "signal", "signal_version", "shadows")}
        rows.append(row)
    return rows


def calibrated_scores_path(target: str, n_frames: int, level: str) -> str:
    """Where a target's calibrated per-sample scores of one frame count and level go (relative to output_dir)."""
    return f"scores/{target}/f{n_frames}-{level}-calibrated.csv"


@dataclass
class TargetRun:
    """What one target contributes to results.json."""

    entry: dict
    rows: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)


def _plots(out: Path, target: str, n_frames: int, results: list[SliceResult], samples: EvalSet,
           orders: SplitOrders, specs: dict[str, AttackSpec], calibrated: CalibratedResult | None = None) -> None:
    """ROC per slice and level (one curve per family, lira and rmia included: its variant with the best DEV AUC
    at this slice, level and frame count, drawn from TEST scores), histograms of each slice's dev-best
    attack on test, and the q/r histograms (every video: q and r use no labels)."""
    from vidsme.benchmark.plots import Curve, HistPanel, qr_histograms, roc_plot, score_histograms

    folder = out / "plots" / target
    panels: dict[str, list[HistPanel]] = {level: [] for level in samples.levels}
    for res in results:
        for level, view in samples.views.items():
            test = view.partitions == "test"
            y = view.labels[test]
            best: dict[str, tuple[float, str]] = {}  # family -> (dev AUC, attack)
            for name in res.scores:
                auc = res.evaluations[(name, level, "dev")].auc.value
                family = specs[name].family
                if family not in best or auc > best[family][0] or (auc == best[family][0] and name < best[family][1]):
                    best[family] = (auc, name)
            chosen = [name for _, name in sorted(best.values(), key=lambda t: (-t[0], t[1]))]
            if not chosen:
                continue
            curves = [Curve(f"{specs[name].family}: {name}", res.level_scores[(name, level)][test], y,
                            specs[name].direction.value) for name in chosen]
            if calibrated is not None:
                curves += _calibrated_curves(calibrated, res.slice, level, test, y)
            roc_plot(curves, folder / f"f{n_frames}-{res.slice}-{level}-roc.png",
                     f"{target}: {res.slice} slice, {level} level, {n_frames} frames — "
                     "per family the dev-selected variant, test partition")
            panels[level].append(HistPanel(f"{res.slice}: {chosen[0]} (dev-selected)",
                                           res.level_scores[(chosen[0], level)][test], y))
    for level, level_panels in panels.items():
        if level_panels:
            score_histograms(level_panels, folder / f"f{n_frames}-{level}-hist.png",
                             f"{target}: per slice the dev-selected attack, test partition, {level} level, "
                             f"{n_frames} frames")
    qr_histograms(orders.orders.q, orders.orders.r, samples.video_labels, folder / f"qr-f{n_frames}.png",
                  f"{target}: Vid-SME orders per video, {n_frames} frames")


def _calibrated_curves(calibrated: CalibratedResult, slice_name: str, level: str, test: np.ndarray,
                       y: np.ndarray) -> list:
    """ROC curves of the calibrated families (lira, rmia) on one slice and level: each its dev-best candidate."""
    from vidsme.benchmark.plots import Curve

    best: dict[str, tuple[float, str]] = {}
    for (name, sl, lv, part), ev in calibrated.evaluations.items():
        if sl != slice_name or lv != level or part != "dev":
            continue
        family = calibrated.meta[name]["family"]
        if family not in best or (-ev.auc.value, name) < (-best[family][0], best[family][1]):
            best[family] = (ev.auc.value, name)
    return [Curve(f"{family}: {name}", calibrated.level_scores[(name, slice_name, level)][test], y, "higher")
            for family, (_, name) in sorted(best.items())]


def _partition_entry(partition: Partition, rows: list[dict]) -> dict:
    record = partition.record(rows)
    return {k: record[k] for k in ("version", "seed", "method", *PARTITIONS)}


@dataclass
class TargetModels:
    """A suite target's loaded model and reference, and what identifies them in a cache key."""

    card: dict | None  # target.json (None: not trained by vidsme)
    card_sha256: str
    ref_path: Path | None
    ref_sha256: str | None
    device: torch.device
    dtype: str
    target: LoadedModel
    reference: LoadedModel | None
    views: tuple[str, ...]
    settings: QuerySettings


def load_target_models(t: SuiteTarget, cfg: SuiteConfig) -> TargetModels:
    """Load a suite target (and its reference, with reference_view) for extraction."""
    card = read_target_card(t.path)
    ref_path, ref_sha = reference_model(t, card) if cfg.reference_view else (None, None)
    device, dtype = _device_and_dtype(cfg)
    target = load_model(t.path, dtype=dtype, device=device, setting="the suite's targets[].path")
    reference: LoadedModel | None = load_model(
        ref_path, dtype=dtype, device=device,
        setting="the suite's targets[].reference (or set reference_view=false)") if ref_path else None
    views = ("natural", "reversed") + (("reference",) if reference else ())
    return TargetModels(card=card, card_sha256=model_sha256(t.path), ref_path=ref_path, ref_sha256=ref_sha,
                        device=device, dtype=dtype, target=target, reference=reference, views=views,
                        settings=QuerySettings(slices=tuple(cfg.slices)))


def extract_features(t: SuiteTarget, cfg: SuiteConfig, models: TargetModels, split, rows: list[dict],
                     video_root: Path, n_frames: int, *, world: World, progress: bool,
                     setup: CalibrationSetup | None = None) -> tuple[FeatureCache, SplitOrders, int]:
    """Extract one frame count's features of `rows` into the suite's cache (what this rank owns and the
    cache lacks); returns (cache, Vid-SME orders over the rows' videos, batches written). With a calibration
    `setup`, the shadow models' features of the rows and the population's come too (every batch decoded once
    for the target, its reference and the shadows): read them back with `calibration_caches`."""
    template = t.template or cfg.template
    orders = split_orders(rows, video_root, n_frames=n_frames, beta1=cfg.beta1, beta2=cfg.beta2,
                          cache_dir=Path(cfg.cache_dir) / STATS_SUBDIR, progress=False)
    q, r = orders.for_rows(rows)
    key = CacheKey(target_card_sha256=models.card_sha256, split=split.name, split_version=split.card.version,
                   manifest_sha256=split.card.manifest_sha256, n_frames=n_frames, template=template,
                   beta1=cfg.beta1, beta2=cfg.beta2, slices=models.settings.slices, views=models.views,
                   orders_sha256=orders.sha256(), batch_size=cfg.batch_size, dtype=models.dtype,
                   device_type=models.device.type, reference_sha256=models.ref_sha256)
    cache = FeatureCache(Path(cfg.cache_dir) / FEATURES_SUBDIR, key)
    if setup is not None:
        written = extract_calibration_features(
            setup, key, models, cfg, rows, video_root, q, r, n_frames, features_dir=Path(cfg.cache_dir) / FEATURES_SUBDIR,
            stats_dir=Path(cfg.cache_dir) / STATS_SUBDIR, world=world, progress=progress, target_name=t.name,
            target_job=ExtractionJob(models.target, cache, reference=models.reference))
        return cache, orders, written
    written = extract_to_cache(models.target, rows, video_root, q, r, cache, n_frames=n_frames, template=template,
                               batch_size=cfg.batch_size, max_text_tokens=cfg.max_text_tokens,
                               reference=models.reference, settings=models.settings, world=world, progress=progress,
                               desc=f"{t.name} {n_frames} frames" + (f" rank {world.rank}" if world.size > 1 else ""))
    return cache, orders, written


def eval_set(split, rows: list[dict]) -> EvalSet:
    """The evaluated rows of a split with their sides (dev/test; all test for a test-only split)."""
    return EvalSet(ids=[r["id"] for r in rows], videos=[r["video"] for r in rows],
                   labels=np.array([r["label"] == "member" for r in rows], dtype=int), partitions=split.sides(rows))


def target_entry(t: SuiteTarget, split, rows: list[dict], samples: EvalSet, video_root: Path, template: str,
                 models: TargetModels, excluded: Exclusions) -> dict:
    """A target's record in results.json (docs/RESULTS.md), `caches` still empty."""
    labels = samples.labels
    member_of_video = {r["video"]: int(r["label"] == "member") for r in rows}
    if split.test_only:  # every row a test row, but a sealed challenge's feedback part, reported apart
        counts = {}
        for side in sorted(set(samples.partitions)):
            on = np.array([p == side for p in samples.partitions])
            videos = {v: member_of_video[v] for v, keep in zip(samples.videos, on) if keep}
            counts[side] = {"rows": {"member": int(labels[on].sum()), "nonmember": int(on.sum() - labels[on].sum())},
                            "videos": {"member": sum(videos.values()), "nonmember": len(videos) - sum(videos.values())}}
        partition = {"test_only": True, **counts}
    else:
        partition = _partition_entry(split.partition(), rows)
    return {
        "name": t.name, "path": str(t.path), "card_sha256": models.card_sha256,
        "strategy": (models.card or {}).get("strategy"), "task": rows[0]["task"],
        "split": {"name": split.name, "version": split.card.version, "manifest_sha256": split.card.manifest_sha256},
        "video_root": str(video_root), "template": template,
        "reference": None if models.ref_path is None else {"path": str(models.ref_path), "sha256": models.ref_sha256},
        "n_rows": {"member": int(labels.sum()), "nonmember": int(len(labels) - labels.sum())},
        "n_videos": {"member": sum(member_of_video.values()),
                     "nonmember": len(member_of_video) - sum(member_of_video.values())},
        "levels": list(samples.levels), "partition": partition,
        "excluded": excluded.to_dict(), "evaluated_ids_sha256": ids_sha256(samples.ids), "caches": {},
    }


def run_target(t: SuiteTarget, cfg: SuiteConfig, specs: list[AttackSpec], world: World, *,
               progress: bool, commit: str | None) -> TargetRun:
    """Extract (all ranks) and evaluate (rank 0) one target; returns its results (rank 0)."""
    split, all_rows = target_split_rows(t)
    if split.test_only:
        raise VidsmeError(f"target {t.name!r}: split {split.name!r} is test-only (a sealed challenge's): there is no "
                          "dev partition to choose on; evaluate it with `vidsme challenge evaluate`")
    split.partition()  # checked against the manifest: a tampered card stops here, before any work
    video_root = target_video_root(t, split)
    template = t.template or cfg.template
    # rank 0 decodes and caches the statistics first; the others then read them from the cache
    if not world.is_main:
        world.barrier()
    rows, excluded = usable_rows(all_rows, video_root, cfg, t.name, progress and world.is_main)
    if world.is_main:
        world.barrier()
    models = load_target_models(t, cfg)
    setup = calibration_setup(t, models.card, split, all_rows)
    samples = eval_set(split, rows)
    _check_sides(samples, t.name)
    ids = samples.ids
    run = TargetRun(entry=target_entry(t, split, rows, samples, video_root, template, models, excluded))
    if setup is not None:
        run.entry["calibration"] = setup.describe()
    out = Path(cfg.output_dir)
    by_name = {s.name: s for s in specs}
    for n_frames in cfg.frame_counts:
        cache, orders, _ = extract_features(t, cfg, models, split, rows, video_root, n_frames, world=world,
                                            progress=progress, setup=setup)
        world.barrier()
        if not world.is_main:
            continue
        calibration_caches = None if setup is None else calibration_caches_of(
            setup, cache.key, cfg, n_frames, features_dir=Path(cfg.cache_dir) / FEATURES_SUBDIR,
            stats_dir=Path(cfg.cache_dir) / STATS_SUBDIR)
        run.entry["caches"][str(n_frames)] = str(cache.folder.resolve())
        cached = cache.read(ids)
        hint = ("set reference_view=true (and targets[].reference if the card names no base), then rerun "
                "`vidsme benchmark` to extract the missing view")
        results = []
        columns: dict[str, dict[str, np.ndarray]] = {level: {} for level in samples.levels}
        for slice_name in tqdm(cfg.slices, desc=f"evaluate {t.name} {n_frames} frames", unit="slice",
                               disable=not progress):
            res = evaluate_slice(slice_inputs(cached, slice_name), specs, samples, n_bootstrap=cfg.n_bootstrap,
                                 seed=cfg.seed, extract_hint=hint, min_false_positives=cfg.min_false_positives)
            results.append(res)
            for name, reason in res.skipped.items():
                run.skipped.append({"target": t.name, "attack": name, "slice": slice_name, "n_frames": n_frames,
                                    "reason": reason})
            for (name, level, part), ev in res.evaluations.items():
                column = f"{slice_name}/{name}"
                run.rows.append(metric_row(t.name, by_name[name].describe(), "reproduced", slice_name, level,
                                           n_frames, part, ev, scores_path(t.name, n_frames, level), column, commit))
                columns[level][column] = res.level_scores[(name, level)]
        for level, view in samples.views.items():
            write_scores_csv(out / scores_path(t.name, n_frames, level), view, columns[level])
        calibrated = None
        if calibration_caches is not None:
            calibrated = calibrate_frame_count(setup, calibration_caches, cfg, samples, cached, target_name=t.name)
            run.rows += calibrated_rows(t.name, calibrated, samples, n_frames, out, commit)
            run.skipped += [{**item, "n_frames": n_frames} for item in calibrated.skipped]
        if cfg.video_tied and n_frames == video_tied_frames(cfg):
            run.entry["video_tied"] = target_video_tied(t, cfg, models, split, rows, samples, cached, video_root,
                                                        n_frames, progress=progress)
            print(f"{t.name}: {video_tied_text(run.entry['video_tied'])}")
        if cfg.plots and (cfg.plot_every_frame_count or n_frames == max(cfg.frame_counts)):
            _plots(out, t.name, n_frames, results, samples, orders, by_name, calibrated)
    if world.is_main and cfg.blind_baseline:
        run.rows += blind_rows(t.name, rows, samples, video_root, cfg, out, commit)
    return run


def video_tied_frames(cfg: SuiteConfig) -> int:
    """The frame count of the video-tied check: the suite's `video_tied_frames`, else the sweep's largest."""
    return cfg.video_tied_frames if cfg.video_tied_frames is not None else max(cfg.frame_counts)


def target_video_tied(t: SuiteTarget, cfg: SuiteConfig, models: TargetModels, split, rows: list[dict],
                      samples: EvalSet, cached: list, video_root: Path, n_frames: int, *, progress: bool) -> dict:
    """The target's video-tied record (benchmark/video_tied.py) from its cached own-video answer losses."""
    settings = VideoTiedSettings(n_frames=n_frames, template=t.template or cfg.template, batch_size=cfg.batch_size,
                                 max_text_tokens=cfg.max_text_tokens, seed=cfg.seed, n_bootstrap=cfg.n_bootstrap,
                                 dtype=models.dtype, device_type=models.device.type)
    titled = bool((split.card.source or {}).get("text_keys"))
    return video_tied_check(models.target, rows, samples.labels, cached_answer_losses(cached), video_root, settings,
                            model_sha256=models.card_sha256, manifest_sha256=split.card.manifest_sha256,
                            strip_title=strip_title if titled else None, cache_dir=Path(cfg.cache_dir),
                            progress=progress)


def _check_sides(samples: EvalSet, target: str) -> None:
    """Both partitions must hold members and non-members (after any exclusions)."""
    for side in PARTITIONS:
        labels = {int(y) for y, p in zip(samples.labels, samples.partitions) if p == side}
        if labels != {0, 1}:
            raise VidsmeError(f"target {target!r}: the {side} partition has no "
                              f"{'members' if 1 not in labels else 'non-members'} (after exclusions); "
                              "nothing can be selected or reported there")


BLIND_CANDIDATES = {"metadata": "metadata/blind_metadata", "text": "text/blind_text",
                    "metadata+text": "metadata+text/blind_both"}  # slice -> scores column of the blind family


def blind_rows(target: str, rows: list[dict], samples: EvalSet, video_root: Path, cfg: SuiteConfig, out: Path,
               commit: str | None) -> list[dict]:
    """The split's blind (model-free) baselines at each level and partition — metadata (per video), text
    (per row: data_splits/text_blind.py) and both (their mean) — fitted on dev videos (out-of-fold within dev
    for the dev rows), predicting the test videos; on a test-only split (a sealed challenge, whose labels
    only the evaluator holds) out-of-fold over all of it. The verdicts choose the strongest on dev, like
    any family's variant."""
    from vidsme.data_splits.audit import blind_dev_test_scores, blind_scores, video_features
    from vidsme.data_splits.text_blind import ALL_TEXT, row_texts, text_blind_scores, text_dev_test_scores

    videos, x, y = video_features(rows, video_root, cache_dir=Path(cfg.cache_dir) / STATS_SUBDIR,
                                  workers=cfg.stats_workers, progress=False)
    side = dict(zip(samples.videos, samples.partitions))
    is_dev = np.array([side[v] == "dev" for v in videos])
    where = f"target {target!r}"
    by_id = {r["id"]: r for r in rows}
    docs = row_texts([by_id[i] for i in samples.ids])[ALL_TEXT]
    rows_dev = np.array([p == "dev" for p in samples.partitions])
    if is_dev.any():
        per_video = blind_dev_test_scores(x, y, is_dev, seed=cfg.seed, where=where, cache_dir=Path(cfg.cache_dir))
        text = text_dev_test_scores(docs, samples.labels, samples.videos, rows_dev, seed=cfg.seed, where=where,
                                    cache_dir=Path(cfg.cache_dir))
    else:  # a small split gets fewer folds rather than no baseline (blind_scores refuses under 2)
        folds = max(2, min(5, int(y.sum()), int(len(y) - y.sum())))
        per_video = blind_scores(x, y, folds=folds, seed=cfg.seed, where=where, cache_dir=Path(cfg.cache_dir))
        text = text_blind_scores(docs, samples.labels, samples.videos, folds=folds, seed=cfg.seed, where=where,
                                 cache_dir=Path(cfg.cache_dir))
    at = {v: i for i, v in enumerate(videos)}
    metadata = np.array([per_video[at[v]] for v in samples.videos])
    candidates = {"metadata": metadata, "text": text, "metadata+text": (metadata + text) / 2}
    out_rows = []
    for level, view in samples.views.items():
        columns = {BLIND_CANDIDATES[kind]: samples.at_level(scores, level) for kind, scores in candidates.items()}
        scores_file = f"scores/{target}/blind-{level}.csv"
        write_scores_csv(out / scores_file, view, columns)
        for kind, column in BLIND_CANDIDATES.items():
            name = column.split("/")[1]
            meta = {"name": name, "family": "blind", "version": 3, "source": "vidsme.data_splits.audit"}
            for part in samples.sides:
                ev = evaluate_level_scores(columns[column], view, part, direction="higher", attack=name,
                                           n_bootstrap=cfg.n_bootstrap, seed=cfg.seed,
                                           min_false_positives=cfg.min_false_positives)
                out_rows.append(metric_row(target, meta, "blind", kind, level, None, part, ev, scores_file, column,
                                           commit))
    return out_rows


def suite_fingerprint(cfg: SuiteConfig, specs: Sequence[AttackSpec], commit: str | None) -> str:
    """Everything a finished results.json depends on, hashed: the suite config, the code
    (commit + version + attack definitions), each target's model, reference and split."""
    parts: list[object] = [config_hash(cfg), commit, __version__, [s.describe() for s in specs]]
    for t in cfg.targets:
        split = load_split(t.split)
        card = read_target_card(t.path) if (Path(t.path) / "config.json").is_file() else None
        reference = reference_model(t, card)[1] if cfg.reference_view and card is not None else None
        shadows = setup_sha256(calibration_setup(t, card, split, split.rows())) if t.shadows and card else None
        parts.append([t.name, model_sha256(t.path) if card else None, reference, split.card.manifest_sha256,
                      split.card.partition, shadows])
    return ids_sha256([json.dumps(parts, sort_keys=True, default=str)])


def _up_to_date(path: Path, fingerprint: str, commit: str | None) -> bool:
    # Without a commit (not a git checkout) the code cannot be told apart: always rerun.
    if commit is None or not path.is_file():
        return False
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return previous.get("provenance", {}).get("fingerprint") == fingerprint


def run_suite(cfg: SuiteConfig, *, progress: bool = True, command: str | None = None) -> Path | None:
    """Run the whole suite; returns results.json's path on rank 0 (None on other ranks).

    A results.json already written by this very suite, code and models is kept as it is
    (with any submissions added since): rerunning a finished benchmark costs nothing.
    """
    specs = check_suite(cfg)
    check_frame_counts(cfg)  # before any model is loaded or video decoded
    world = join_world()
    commit = git_commit()
    path = Path(cfg.output_dir) / RESULTS_FILE
    fingerprint = suite_fingerprint(cfg, specs, commit) if all(
        (Path(t.path) / "target.json").is_file() for t in cfg.targets) else None
    if fingerprint is not None and _up_to_date(path, fingerprint, commit):
        if world.is_main:
            print(f"{path}: up to date (same suite, code, models and splits); not re-evaluated")
        return path if world.is_main else None
    runs = [run_target(t, cfg, specs, world, progress=progress, commit=commit) for t in cfg.targets]
    if not world.is_main:
        return None
    if path.is_file():
        try:
            submitted = json.loads(path.read_text(encoding="utf-8")).get("submissions") or []
        except (OSError, json.JSONDecodeError):
            submitted = []
        if submitted:
            print(f"note: {path} is rewritten; its {len(submitted)} submission(s) are not carried over "
                  "(the targets or code changed): submit them again with `vidsme submit`", file=sys.stderr)
    results = {
        "schema_version": SCHEMA_VERSION,
        "suite": {"name": cfg.name, "config": config_to_dict(cfg), "config_hash": config_hash(cfg)},
        "provenance": {"git_commit": commit, "vidsme": __version__, "libraries": library_versions(),
                       "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "command": command, "world_size": world.size, "fingerprint": fingerprint},
        "attacks": {s.name: s.describe() for s in specs},
        "calibrations": ({c.name: c.describe() for c in chosen_calibrations(cfg)}
                         if any(t.shadows for t in cfg.targets) else {}),
        "targets": [r.entry for r in runs],
        "rows": [row for r in runs for row in r.rows],
        "skipped": [s for r in runs for s in r.skipped],
    }
    results["verdicts"] = compute_verdicts(results, path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, results)
    return path


def summarize(results_path: Path) -> str:
    """Per target: every method's dev-selected configuration with its TEST number, CI, rank interval
    and distance to the blind baseline (results.json's verdicts)."""
    data = json.loads(Path(results_path).read_text(encoding="utf-8"))
    lines = [f"Verdicts (each method's configuration chosen on the dev partition, numbers from the test partition; "
             f"{int(data['verdicts']['confidence'] * 100)}% CIs, paired bootstrap over test videos):"]
    entries_of = {v["target"]: v for v in data["verdicts"]["targets"]}
    for entry in data["targets"]:
        verdict = entries_of[entry["name"]]
        metric = verdict["primary_metric"]
        test = entry["partition"]["test"]
        lines.append(f"{entry['name']} ({entry['split']['name']}, {entry['strategy'] or 'untracked'}; test partition "
                     f"{test['rows']['member']}+{test['rows']['nonmember']} rows, "
                     f"{test['videos']['member']}+{test['videos']['nonmember']} videos)")
        lines.append(f"  ranked by {METRIC_LABELS[metric]}: {verdict['why']}")
        lines.append(f"  {'rank':<6}{'method':<20}{'test ' + METRIC_LABELS[metric]:<24}"
                     f"{'vs blind':<31}chosen on dev: slice / attack / frames / level (candidates)")
        for e in verdict["entries"]:
            vs = "" if e["vs_blind"] is None else _fmt_diff(e["vs_blind"]) + ("" if e["above_blind"] else " n.s.")
            chosen = "" if e["blind"] else (f"{e['slice']} / {e['attack']} / {e['n_frames'] or '-'} / {e['level']}"
                                            f" ({e['n_candidates']})")
            rank = e["rank_band"] + ("^" if e.get("ceiling") else "")
            lines.append(f"  {rank:<6}{e['method']:<20}{_fmt(e[metric]):<24}{vs:<31}{chosen}".rstrip())
    lines.append("(n.s. = not above blind: the paired CI of the difference to the blind baseline includes 0; "
                 "^ = the target's ceiling, its strongest method chosen on dev)")
    return "\n".join(lines)


def _fmt(metric: dict) -> str:
    if metric.get("value") is None:
        return f"n/a ({metric.get('reason')})"
    return f"{metric['value']:.3f} [{metric['ci_low']:.3f}, {metric['ci_high']:.3f}]"


def _fmt_diff(metric: dict) -> str:
    return f"{metric['value']:+.3f} [{metric['ci_low']:+.3f}, {metric['ci_high']:+.3f}]"


__all__ = ["TargetModels", "check_suite", "extract_features", "load_target_models", "run_suite",
           "summarize", "usable_rows", "video_scores"]
