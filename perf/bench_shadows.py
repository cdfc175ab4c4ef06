"""Shadow models: what N shadows cost against N times one target (issue 20's performance targets).

Measured side by side in one process, on one target config:
  train     finetune_target once (a target on its members) vs train_shadows of an online set of N
            (each on half of the split's candidates, about as many rows as the target's members):
            target <= 1.10 x N x the target's time. Reported raw and per optimizer step (the halves are
            not exactly the size of the member set).
  features  extract_to_cache of ONE model over the split's rows (decode + preprocess + forward) vs
            extract_many over the N shadows (decode + preprocess once per batch, N forwards):
            target <= 1.15 x N x one model's extraction.
  calibrate every registered attack as the signal, on every slice, under the target and the N shadows
            (features read from the caches above), through every online calibration (RMIA with the
            population split when it is built): target "seconds, not minutes". `score` is scoring the
            signals under every model, `calibrate` the calibrations themselves (vectorised numpy).
Nothing is reused between the variants (fresh output and cache folders in a temp dir). Needs the
split and its population built, and the base the config names (make demo builds them).

  .venv/bin/python perf/bench_shadows.py configs/targets/mcqa-full.yaml --count 4 \\
      base=runs/demo/models/tiny-base data.video_root=runs/demo/videos --json shadows.json
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

TRAIN_TARGET, FEATURES_TARGET = 1.10, 1.15


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path, help="a target config (its recipe is the shadows')")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the config")
    parser.add_argument("--count", type=int, default=4, help="shadow models (default 4)")
    parser.add_argument("--frames", type=int, default=None, help="frame count of the extraction (default: the config's)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None, metavar="OUT")
    args, extra = parser.parse_known_args()
    if any("=" not in w or w.startswith("-") for w in extra):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = [*args.overrides, *extra]  # key=value words may follow the flags

    import vidsme.benchmark.extract as extract_module
    import vidsme.train.shadows as shadows_module
    from vidsme.attack.calibration import CalibrationInputs, list_calibrations
    from vidsme.attack.registry import list_attacks
    from vidsme.benchmark.cache import CacheKey, FeatureCache
    from vidsme.benchmark.evaluate import slice_inputs
    from vidsme.benchmark.extract import ExtractionJob, extract_many, extract_to_cache
    from vidsme.benchmark.orders import split_orders
    from vidsme.benchmark.query import QuerySettings, load_model
    from vidsme.config import load_config
    from vidsme.data_splits.registry import load_split
    from vidsme.provenance import module_sources_sha256, run_provenance
    from vidsme.train.config import TargetConfig
    from vidsme.train.recipes import finetune_target
    from vidsme.train.shadows import plan_shadows, train_shadows

    tmp = Path(tempfile.mkdtemp(prefix="bench-shadows-"))
    cfg = load_config(TargetConfig, args.config, [*args.overrides, f"output_dir={tmp / 'target'}"])
    n = args.count
    record: dict = {"config": str(args.config), "overrides": args.overrides, "count": n}

    # ---- training
    start = time.perf_counter()
    finetune_target(cfg, progress=False)
    target_s = time.perf_counter() - start
    target_steps = json.loads((tmp / "target" / "target.json").read_text())["steps"]
    plan = plan_shadows(cfg, n, output_dir=tmp / "shadows")
    start = time.perf_counter()
    train_shadows(cfg, plan, list(range(n)), progress=False)
    shadows_s = time.perf_counter() - start
    shadow_steps = sum(json.loads((plan.shadow_dir(k) / "shadow.json").read_text())["steps"] for k in range(n))
    train = {"target_s": round(target_s, 2), "target_steps": target_steps, "shadows_s": round(shadows_s, 2),
             "shadow_steps": shadow_steps, "ratio": round(shadows_s / (n * target_s), 3),
             "ratio_per_step": round((shadows_s / shadow_steps) / (target_s / target_steps), 3), "target": TRAIN_TARGET}
    record["train"] = train
    print(f"train: target {target_s:.1f} s ({target_steps} steps); {n} shadows {shadows_s:.1f} s ({shadow_steps} steps): "
          f"{train['ratio']:.3f} x N x target, {train['ratio_per_step']:.3f} per step (target <= {TRAIN_TARGET})")

    # ---- features
    split = load_split(cfg.data.split)
    rows = split.rows()
    frames = args.frames or cfg.data.n_frames
    orders = split_orders(rows, cfg.data.video_root, n_frames=frames, progress=False)
    q, r = orders.for_rows(rows)
    settings = QuerySettings()

    def cache(name: str, sha: str) -> FeatureCache:
        key = CacheKey(target_card_sha256=sha, split=split.name, split_version=split.card.version,
                       manifest_sha256=split.card.manifest_sha256, n_frames=frames, template=cfg.data.template,
                       beta1=1.0, beta2=0.1, slices=settings.slices, views=("natural", "reversed"),
                       orders_sha256=orders.sha256(), batch_size=args.batch_size, dtype="float32", device_type="cpu")
        return FeatureCache(tmp / "cache" / name, key)

    common = dict(n_frames=frames, template=cfg.data.template, batch_size=args.batch_size,
                  max_text_tokens=cfg.data.max_text_tokens, settings=settings, progress=False)
    models = [load_model(plan.shadow_dir(k)) for k in range(n)]
    one = cache("one", "one")
    start = time.perf_counter()
    extract_to_cache(models[0], rows, cfg.data.video_root, q, r, one, **common)
    one_s = time.perf_counter() - start
    caches = [cache(f"shadow-{k}", f"shadow-{k}") for k in range(n)]
    start = time.perf_counter()
    extract_many([ExtractionJob(m, c) for m, c in zip(models, caches)], rows, cfg.data.video_root, q, r, **common)
    many_s = time.perf_counter() - start
    record["features"] = {"rows": len(rows), "frames": frames, "one_model_s": round(one_s, 2),
                          "n_models_s": round(many_s, 2), "ratio": round(many_s / (n * one_s), 3),
                          "target": FEATURES_TARGET}
    print(f"features: one model {one_s:.1f} s over {len(rows)} rows; {n} shadows {many_s:.1f} s: "
          f"{record['features']['ratio']:.3f} x N x one (target <= {FEATURES_TARGET})")

    # ---- calibration of every signal (row level, online set; RMIA against the split itself is not meaningful,
    # so its population is half the rows' features under the models, labels unused: timing only)
    target_model = load_model(tmp / "target")
    target_cache = cache("target", "target")
    extract_to_cache(target_model, rows, cfg.data.video_root, q, r, target_cache, **common)
    ids = [row["id"] for row in rows]
    features = [target_cache.read(ids)] + [c.read(ids) for c in caches]
    inclusion = plan.inclusion[[plan.videos.index(row["video"]) for row in rows]]
    calibrations = list_calibrations("online")
    score_s = calibrate_s = 0.0
    n_signals = 0
    half = len(rows) // 2
    for slice_name in settings.slices:
        inputs = [slice_inputs(f, slice_name) for f in features]
        for spec in list_attacks():
            if not spec.applies_to(slice_name) or any(k not in inputs[0].available() for k in spec.needs):
                continue
            start = time.perf_counter()
            signals = np.stack([spec.direction.orient(spec.score(x)) for x in inputs], axis=1)
            score_s += time.perf_counter() - start
            start = time.perf_counter()
            ci = CalibrationInputs(signal=spec.name, setting="online", target=signals[:half, 0],
                                   shadows=signals[:half, 1:], inclusion=inclusion[:half],
                                   population_target=signals[half:, 0], population_shadows=signals[half:, 1:],
                                   population_inclusion=np.zeros((len(rows) - half, n), dtype=bool))
            for cal in calibrations:
                if cal.unusable(ci) is None:
                    cal.calibrate(ci)
            calibrate_s += time.perf_counter() - start
            n_signals += 1
    record["calibrate"] = {"signals": n_signals, "calibrations": len(calibrations), "score_s": round(score_s, 2),
                           "calibrate_s": round(calibrate_s, 3)}
    print(f"calibrate: {n_signals} signals (attack x slice) under {n + 1} models scored in {score_s:.1f} s; "
          f"{len(calibrations)} online calibrations of each in {calibrate_s:.2f} s")
    if args.json:
        import vidsme.attack.calibrations.lira as lira
        import vidsme.attack.calibrations.rmia as rmia

        record["provenance"] = run_provenance("cpu", module_sources_sha256(extract_module, shadows_module, lira, rmia))
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
