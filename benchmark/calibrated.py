"""Calibrated attacks: every signal's per-sample score under the target AND its shadow models, through
every registered calibration (LiRA, RMIA: vidsme/attack/calibrations/), evaluated like any attack.

A target's suite entry names its shadow sets (`targets[].shadows`: `vidsme train shadows`) and, for
RMIA, a population split (`targets[].population`: in no target's training set, not evaluated). Per
frame count this module
  1. extracts features of the evaluated rows under every shadow, and of the population rows under the
     target and every shadow, into the feature cache (each keyed by its model's card); every batch is
     decoded once and fed to every model (`extract.extract_many`). Shadows skip the reference view: the
     reference is the base, the same for every model, so the target's reference features are joined in;
  2. scores every signal attack (`calibration_signals`) on every slice under every model, orients it
     (higher = member), and at each level (row, video) hands it with the set's inclusion bits to every
     calibration of the set's setting; the calibrated scores are evaluated on dev and test like any
     attack's. A row's `attack` is "<calibration>(<signal>)", its `family` the calibration's ("lira",
     "rmia"): dev chooses signal, slice, frame count, level and calibration, test reports.
Each calibrated row records the shadow set (path, card sha256, N, setting) and population it used.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vidsme.attack.calibration import CalibrationInputs, CalibrationSpec, get_calibration, list_calibrations
from vidsme.attack.registry import AttackSpec, get_attack
from vidsme.benchmark.cache import CacheKey, FeatureCache, SampleFeatures
from vidsme.benchmark.evaluate import EvalSet, evaluate_level_scores, group_by_video, slice_inputs
from vidsme.errors import VidsmeError
from vidsme.metrics import Evaluation
from vidsme.provenance import ids_sha256
from vidsme.train.shadows import ShadowSet, load_shadow_set, pool_rows_sha256, recipe_hash


@dataclass
class Population:
    """A target's population samples: rows, their videos' folder, and what identifies them."""

    name: str
    version: int
    manifest_sha256: str
    rows: list[dict]
    video_root: Path

    @property
    def ids(self) -> list[str]:
        return [r["id"] for r in self.rows]

    def describe(self) -> dict:
        return {"name": self.name, "manifest_sha256": self.manifest_sha256, "n_rows": len(self.rows),
                "n_videos": len({r["video"] for r in self.rows})}


@dataclass
class CalibrationSetup:
    """A target's shadow sets and population, checked against the target, with the shadow models once loaded."""

    sets: list[ShadowSet]
    population: Population | None
    loaded: dict[Path, object] = field(default_factory=dict)  # shadow dir -> LoadedModel (kept across frame counts)

    def describe(self) -> dict:
        """What the target's results.json entry records."""
        return {"sets": [s.describe() for s in self.sets],
                "population": None if self.population is None else self.population.describe()}


def calibration_setup(target, card: dict | None, split, all_rows: list[dict]) -> CalibrationSetup | None:
    """The shadow sets and population of suite target `target` (None when it names no shadows).

    Refused with a message naming the set: two sets of one setting, a set trained with another recipe
    than the target's card, an online set trained on another pool, a population that shares a video
    with the split."""
    from vidsme.data_splits.registry import load_split
    from vidsme.data_splits.verify import shared_videos

    if not target.shadows:
        return None
    where = f"target {target.name!r}"
    sets = [load_shadow_set(Path(p)) for p in target.shadows]
    settings = [s.setting for s in sets]
    if len(set(settings)) != len(settings):
        raise VidsmeError(f"{where}: targets[].shadows lists two {settings[0]} sets; give at most one online and one "
                          "offline set")
    if card is None:
        raise VidsmeError(f"{where}: shadow sets need the target's card (target.json) to check they copy its recipe; "
                          "train the target with `vidsme train target`")
    own = recipe_hash(card["config"])
    for s in sets:
        if s.recipe_hash != own:
            raise VidsmeError(f"{where}: shadow set {s.folder} was trained with another recipe than the target's card "
                              f"records (recipe {s.recipe_hash[:12]} vs {own[:12]}); train it from the target's config")
        if s.setting == "online" and s.pool.get("rows_sha256") != pool_rows_sha256(all_rows):
            raise VidsmeError(f"{where}: online shadow set {s.folder} was trained on halves of another pool than split "
                              f"{split.name!r} (its candidates changed since); train it again")
    name = target.population or next((s.pool["name"] for s in sets if s.setting == "offline"), None)
    population = None
    if name is not None:
        pool = load_split(name)
        rows = pool.rows()
        shared = shared_videos(rows, all_rows)
        if shared:
            raise VidsmeError(f"{where}: population {name!r} shares {len(shared)} video(s) with split {split.name!r} "
                              f"(e.g. {shared[0]}): population samples must be in no training set and not evaluated")
        own = pool.card.source.get("video_root") if isinstance(pool.card.source, dict) else None
        if target.population_video_root is None and not own:
            raise VidsmeError(f"{where}: population {name!r} records no video folder; set "
                              "targets[].population_video_root in the suite config")
        root = Path(target.population_video_root or own)
        population = Population(pool.name, pool.card.version, pool.card.manifest_sha256, rows, root)
    return CalibrationSetup(sets=sets, population=population)


# ----------------------------------------------------------------------------- extraction
@dataclass
class CalibrationCaches:
    """One frame count's caches: the target on the population, every shadow on the evaluated rows and on the
    population (per set, in shadow order)."""

    target_population: FeatureCache | None
    shadows: list[list[FeatureCache]]
    shadows_population: list[list[FeatureCache] | None]


def _shadow_models(setup: CalibrationSetup, dirs: Sequence[Path], dtype: str, device: torch.device) -> list:
    from vidsme.benchmark.query import load_model

    out = []
    for d in dirs:
        if d not in setup.loaded:
            setup.loaded[d] = load_model(d, dtype=dtype, device=device, setting="the suite's targets[].shadows")
        out.append(setup.loaded[d])
    return out


def _population_orders(pop: Population, n_frames: int, cfg, stats_dir: Path):
    from vidsme.benchmark.orders import split_orders

    return split_orders(pop.rows, pop.video_root, n_frames=n_frames, beta1=cfg.beta1, beta2=cfg.beta2,
                        cache_dir=Path(stats_dir), progress=False)


def calibration_caches_of(setup: CalibrationSetup, key: CacheKey, cfg, n_frames: int, *, features_dir: Path,
                          stats_dir: Path, existing: bool = False) -> CalibrationCaches:
    """The caches one frame count's calibration reads: `key` is the target's own cache key of the evaluated rows
    (a shadow's differs in the model and views, the population's in the split and its Vid-SME orders).
    `existing`: open caches a benchmark wrote, for reading only (a missing one is an error naming its folder)."""
    from dataclasses import replace

    root = Path(features_dir)

    def cache(k: CacheKey) -> FeatureCache:
        return FeatureCache.from_folder(root / k.digest()[:20]) if existing else FeatureCache(root, k)

    shadow_views = ("natural", "reversed")  # the reference view is the target's (the base), joined in when read
    pop_key = None
    if setup.population is not None:
        orders = _population_orders(setup.population, n_frames, cfg, stats_dir)
        pop_key = replace(key, split=setup.population.name, split_version=setup.population.version,
                          manifest_sha256=setup.population.manifest_sha256, orders_sha256=orders.sha256())
    return CalibrationCaches(
        target_population=cache(pop_key) if pop_key is not None else None,
        shadows=[[cache(replace(key, target_card_sha256=sha, views=shadow_views, reference_sha256=None))
                  for sha in s.shadow_card_sha256] for s in setup.sets],
        shadows_population=[[cache(replace(pop_key, target_card_sha256=sha, views=shadow_views, reference_sha256=None))
                             for sha in s.shadow_card_sha256]
                            if pop_key is not None else None for s in setup.sets])


def extract_calibration_features(setup: CalibrationSetup, key: CacheKey, models, cfg, rows: list[dict], video_root: Path,
                                 q: np.ndarray, r: np.ndarray, n_frames: int, *, features_dir: Path, stats_dir: Path,
                                 world, progress: bool, target_name: str, target_job=None) -> int:
    """Extract (all ranks) one frame count's features of the evaluated rows under `target_job` (the target and its
    reference) and every shadow, and of the population under the target and every shadow: every batch of rows is
    decoded once for all the models of a pass (all of them unless `shadow_models_per_pass` bounds it). Returns the
    (model, batch) pairs written."""
    from vidsme.benchmark.extract import ExtractionJob, extract_many

    caches = calibration_caches_of(setup, key, cfg, n_frames, features_dir=features_dir, stats_dir=stats_dir)
    common = dict(n_frames=n_frames, template=key.template, batch_size=cfg.batch_size,
                  max_text_tokens=cfg.max_text_tokens, settings=models.settings, world=world, progress=progress)
    pop = setup.population
    pop_q = pop_r = None
    if pop is not None:
        pop_q, pop_r = _population_orders(pop, n_frames, cfg, stats_dir).for_rows(pop.rows)
    written = 0
    first = [target_job] if target_job is not None else []  # joins the first pass over the rows
    first_pop = ([ExtractionJob(models.target, caches.target_population, reference=models.reference)]
                 if pop is not None else [])
    per_pass = cfg.shadow_models_per_pass
    for s, eval_caches, pop_caches in zip(setup.sets, caches.shadows, caches.shadows_population):
        step = per_pass if per_pass > 0 else s.count
        for lo in range(0, s.count, step):
            chunk = range(lo, min(lo + step, s.count))
            loaded = _shadow_models(setup, [s.shadow_dirs[k] for k in chunk], models.dtype, models.device)
            for m in loaded:
                _check_same_processor(models.target, m)
            label = f"{target_name} {n_frames} frames: {s.setting} shadows {chunk.start + 1}-{chunk.stop}/{s.count}"
            written += extract_many(first + [ExtractionJob(m, eval_caches[k]) for m, k in zip(loaded, chunk)], rows,
                                    video_root, q, r, desc=label + (" + target" if first else ""), **common)
            if pop_caches is not None:
                written += extract_many(first_pop + [ExtractionJob(m, pop_caches[k]) for m, k in zip(loaded, chunk)],
                                        pop.rows, pop.video_root, pop_q, pop_r, desc=f"{label}, population", **common)
            first = first_pop = []
            if per_pass > 0:  # a bounded pass frees its models before the next one loads
                for k in chunk:
                    setup.loaded.pop(s.shadow_dirs[k], None)
    if first or first_pop:  # no set had shadows to run with (cannot happen for a finished set): the target alone
        written += extract_many(first, rows, video_root, q, r, desc=f"{target_name} {n_frames} frames", **common)
        if first_pop:
            written += extract_many(first_pop, pop.rows, pop.video_root, pop_q, pop_r,
                                    desc=f"{target_name} {n_frames} frames, population", **common)
    return written


def _check_same_processor(target, shadow) -> None:
    """Shadows are fed the target's preprocessed inputs: their tokenizer and video layout must be the same."""
    a, b = target.processor.tokenizer, shadow.processor.tokenizer
    if len(a) != len(b) or a.pad_token_id != b.pad_token_id or target.config.to_dict().get("video_token_index") != \
            shadow.config.to_dict().get("video_token_index"):
        raise VidsmeError(f"shadow model {shadow.path} has another tokenizer or video layout than the target "
                          f"{target.path}; shadows must be fine-tuned from the target's base")


# ----------------------------------------------------------------------------- scoring
def with_reference(samples: list[SampleFeatures], source: list[SampleFeatures]) -> list[SampleFeatures]:
    """`samples` (a shadow's, no reference view) with the reference view of `source` (the target's features of
    the same rows: the reference model is the base, whichever model is attacked) joined in."""
    out = []
    for mine, theirs in zip(samples, source):
        if mine.sample_id != theirs.sample_id:
            raise VidsmeError(f"joining reference features: sample {mine.sample_id!r} against {theirs.sample_id!r}")
        token = {sl: {**feats, **{k: v for k, v in theirs.token.get(sl, {}).items() if k.startswith("reference.")}}
                 for sl, feats in mine.token.items()}
        sequence = {sl: {**feats, **{k: v for k, v in theirs.sequence.get(sl, {}).items()
                                     if k.startswith("reference.")}} for sl, feats in mine.sequence.items()}
        out.append(SampleFeatures(mine.sample_id, token, sequence, mine.frame_slot, mine.texts))
    return out


def calibration_signals(cfg) -> list[AttackSpec]:
    """The suite's signals (did-you-mean on a typo)."""
    return [get_attack(name) for name in cfg.calibration_signals]


def chosen_calibrations(cfg) -> list[CalibrationSpec]:
    """The suite's calibrations (empty list: every registered one)."""
    return [get_calibration(n) for n in cfg.calibrations] if cfg.calibrations else list_calibrations()


@dataclass
class CalibratedResult:
    """One frame count's calibrated scores and evaluations of a target."""

    level_scores: dict[tuple[str, str, str], np.ndarray] = field(default_factory=dict)  # (attack, slice, level)
    evaluations: dict[tuple[str, str, str, str], Evaluation] = field(default_factory=dict)  # + partition
    meta: dict[str, dict] = field(default_factory=dict)  # attack -> {calibration, signal, set}
    skipped: list[dict] = field(default_factory=list)


def _video_means(values: np.ndarray, videos: Sequence[str]) -> np.ndarray:
    order, index = group_by_video(videos)
    weights = np.bincount(index, minlength=len(order))
    if values.ndim == 1:
        return np.bincount(index, weights=values, minlength=len(order)) / weights
    return np.stack([np.bincount(index, weights=values[:, j], minlength=len(order)) / weights
                     for j in range(values.shape[1])], axis=1)


@dataclass
class CalibrationCase:
    """One signal on one slice at one level under one shadow set: what every calibration of the set's
    setting is given (the signal oriented, higher = member), and the level's samples it is evaluated on."""

    signal: AttackSpec
    slice: str
    level: str
    shadow_set: ShadowSet
    inputs: CalibrationInputs
    view: object  # evaluate.LevelView of the level


SignalScorer = Callable[[str, list[SampleFeatures], list[tuple[AttackSpec, str]]], list[np.ndarray]]


def score_in_process(model: str, features: list[SampleFeatures], calls: list[tuple[AttackSpec, str]]
                     ) -> list[np.ndarray]:
    """Raw scores of (signal, slice) `calls` on one model's `features`, computed here (vidsme's own signals;
    a submitted signal is scored in its sandbox instead). Calls come grouped by slice: one slice's inputs
    are built at a time."""
    out, built = [], {}
    for spec, slice_name in calls:
        if slice_name not in built:
            built = {slice_name: slice_inputs(features, slice_name)}
        out.append(spec.score(built[slice_name]))
    return out


def calibration_cases(setup: CalibrationSetup, caches: CalibrationCaches, samples: EvalSet,
                      target_features: list[SampleFeatures], *, slices: Sequence[str], signals: Sequence[AttackSpec],
                      settings: Sequence[str], target_name: str, skipped: list[dict] | None = None,
                      score: SignalScorer = score_in_process):
    """Yield every CalibrationCase of one frame count: each signal of `signals` that applies to a slice of
    `slices`, scored under the target and every shadow of each set whose setting is in `settings` (and on the
    population), at every level of `samples`. A signal whose inputs the caches lack is appended to `skipped`.
    `score(model, features, calls)` gives the raw scores of (signal, slice) calls on one model's features."""
    pop = setup.population
    pop_target = caches.target_population.read(pop.ids) if caches.target_population is not None else None
    calls = []  # (signal, slice) pairs the target's features can feed, grouped by slice
    for slice_name in slices:
        available = slice_inputs(target_features, slice_name).available()
        for spec in signals:
            if not spec.applies_to(slice_name):
                continue
            missing = [k for k in spec.needs if k not in available]
            if missing:
                if skipped is not None:
                    skipped.append({"target": target_name, "attack": f"calibrated({spec.name})",
                                    "slice": slice_name, "reason": f"the signal needs {', '.join(missing)}"})
                continue
            calls.append((spec, slice_name))
    sets = [(s, e, p) for s, e, p in zip(setup.sets, caches.shadows, caches.shadows_population) if s.setting in settings]
    if not calls or not sets:
        return
    target_raw = score("the target", target_features, calls)
    pop_target_raw = score("the target on the population", pop_target, calls) if pop_target is not None else None
    pop_videos = [r["video"] for r in pop.rows] if pop is not None else []
    for s, eval_caches, pop_caches in sets:
        shadow_raw = [score(f"{s.setting} shadow {k + 1}/{s.count}", with_reference(c.read(samples.ids), target_features),
                            calls) for k, c in enumerate(eval_caches)]
        pop_shadow_raw = ([score(f"{s.setting} shadow {k + 1}/{s.count} on the population",
                                 with_reference(c.read(pop.ids), pop_target), calls) for k, c in enumerate(pop_caches)]
                          if pop_caches is not None else None)
        inclusion = {"row": s.inclusion_of(samples.videos, where=f"target {target_name!r}")}
        inclusion["video"] = s.inclusion_of(samples.video_order, where=f"target {target_name!r}")
        inclusion["row=video"] = inclusion["row"]
        pop_inclusion = None
        if pop is not None:  # IN only where an offline set trained on halves of this very pool
            rows_in = s.inclusion_of(pop_videos)
            pop_inclusion = {"row": rows_in, "row=video": rows_in, "video": s.inclusion_of(group_by_video(pop_videos)[0])}
        for j, (spec, slice_name) in enumerate(calls):
            orient = spec.direction.orient
            t_sig = orient(target_raw[j])
            sh_sig = np.stack([orient(raw[j]) for raw in shadow_raw], axis=1)
            tp_sig = orient(pop_target_raw[j]) if pop_target_raw is not None else None
            sp_sig = np.stack([orient(raw[j]) for raw in pop_shadow_raw], axis=1) if pop_shadow_raw is not None else None
            for level, view in samples.views.items():
                per_video = level == "video"
                args = dict(
                    target=samples.at_level(t_sig, level),
                    shadows=_video_means(sh_sig, samples.videos) if per_video else sh_sig,
                    inclusion=inclusion[level])
                if tp_sig is not None and sp_sig is not None:
                    args.update(population_target=_video_means(tp_sig, pop_videos) if per_video else tp_sig,
                                population_shadows=_video_means(sp_sig, pop_videos) if per_video else sp_sig,
                                population_inclusion=pop_inclusion[level])
                inputs = CalibrationInputs(signal=f"{slice_name}/{spec.name}, {level} level", setting=s.setting,
                                           **args)
                yield CalibrationCase(spec, slice_name, level, s, inputs, view)


def evaluate_calibrated(jobs: Sequence[tuple[tuple, np.ndarray, object]], *, n_bootstrap: int, seed: int,
                        min_false_positives: int) -> dict[tuple, Evaluation]:
    """Evaluate calibrated scores (higher = member): jobs of ((attack, slice, level, partition), scores, view),
    on threads (the bootstrap is numpy; each evaluation seeds its own generator)."""
    def run(job):
        key, scores, view = job
        return key, evaluate_level_scores(scores, view, key[3], direction="higher", attack=key[0],
                                          n_bootstrap=n_bootstrap, seed=seed, min_false_positives=min_false_positives)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return dict(pool.map(run, jobs))  # map keeps the order


def calibrated_meta(cal: CalibrationSpec, case: CalibrationCase) -> dict:
    """What a calibrated row records of its calibration, signal and shadow set."""
    return {"calibration": cal.name, "family": cal.family, "version": cal.version, "source": cal.source,
            "signal": case.signal.name, "signal_version": case.signal.version, "shadows": case.shadow_set.describe()}


def calibrate_frame_count(setup: CalibrationSetup, caches: CalibrationCaches, cfg, samples: EvalSet,
                          target_features: list[SampleFeatures], *, target_name: str) -> CalibratedResult:
    """Score every signal under every model, calibrate it with every shadow set's calibrations, evaluate."""
    result = CalibratedResult()
    calibrations = chosen_calibrations(cfg)
    jobs = []
    for case in calibration_cases(setup, caches, samples, target_features, slices=cfg.slices,
                                  signals=calibration_signals(cfg), settings={c.setting for c in calibrations},
                                  target_name=target_name, skipped=result.skipped):
        for cal in (c for c in calibrations if c.setting == case.shadow_set.setting):
            why = cal.unusable(case.inputs)
            if why:
                result.skipped.append({"target": target_name, "attack": f"{cal.name}({case.signal.name})",
                                       "slice": case.slice, "reason": why})
                continue
            name = f"{cal.name}({case.signal.name})"
            scores = cal.calibrate(case.inputs)
            result.level_scores[(name, case.slice, case.level)] = scores
            result.meta[name] = calibrated_meta(cal, case)
            jobs += [((name, case.slice, case.level, part), scores, case.view) for part in samples.sides]
    result.evaluations = evaluate_calibrated(jobs, n_bootstrap=cfg.n_bootstrap, seed=cfg.seed,
                                             min_false_positives=cfg.min_false_positives)
    _dedupe_skipped(result)
    return result


def _dedupe_skipped(result: CalibratedResult) -> None:
    seen, kept = set(), []
    for item in result.skipped:
        key = (item["attack"], item["slice"], item["reason"])
        if key not in seen:
            seen.add(key)
            kept.append(item)
    result.skipped = kept


def setup_sha256(setup: CalibrationSetup | None) -> str | None:
    """What a target's calibrated numbers depend on beyond the target: the sets' cards and the population."""
    if setup is None:
        return None
    return ids_sha256([s.card_sha256 for s in setup.sets]
                      + ([setup.population.manifest_sha256] if setup.population is not None else []))


__all__ = ["CalibratedResult", "CalibrationCase", "CalibrationCaches", "CalibrationSetup", "Population",
           "calibrate_frame_count", "calibrated_meta", "calibration_cases", "calibration_caches_of", "calibration_setup",
           "evaluate_calibrated", "calibration_signals", "chosen_calibrations", "extract_calibration_features",
           "score_in_process", "setup_sha256", "with_reference"]
