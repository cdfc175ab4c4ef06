"""Training step time: vidsme's pipeline vs a bare PyTorch loop, same tiny model, same batch.

What it measures, side by side in one run (interleaved repeats, best kept):
  pipeline  one optimizer step of vidsme.train.loop.run_training's inner loop: collate a
            micro-batch from the dataset, forward, DeepSpeed backward + step (ZeRO config
            from --deepspeed); frames cached after first use as in training (warm-up runs
            one pass over the batches first); `cold` is the same with decoding every time

  bare      the same model and the same, already collated batch: forward, loss.backward(),
            torch AdamW step — no data work, no engine
  engine    the pipeline's engine step on the already collated batch (isolates the engine)
Target: pipeline / bare <= 1.10. Needs a built synthetic split (vidsme splits build).

  .venv/bin/python perf/bench_train_step.py --split synth-mcqa --video-root runs/videos
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

from vidsme.data_splits.registry import load_split
from vidsme.train.config import DataConfig, EngineConfig, OptimConfig
from vidsme.train.data import collate
from vidsme.train.loop import ds_config, init_distributed, make_dataset, set_trainable
from vidsme.train.tiny_model import TinyVullmConfig, make_tiny_vullm, tokenizer_corpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="synth-mcqa")
    parser.add_argument("--video-root", type=Path, default=Path("runs/videos"))
    parser.add_argument("--n-frames", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant and repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--deepspeed", type=Path, default=Path("configs/deepspeed/zero2.json"))
    parser.add_argument("--json", type=Path, default=None, metavar="OUT")
    args = parser.parse_args(argv)
    import deepspeed

    init_distributed()
    rows = load_split(args.split).rows()
    members = [r for r in rows if r["label"] == "member"]
    model, processor = make_tiny_vullm(TinyVullmConfig(), tokenizer_corpus(rows))
    set_trainable(model, ["language_model", "projector"])
    bare_model = copy.deepcopy(model)
    data = DataConfig(split=args.split, video_root=args.video_root, n_frames=args.n_frames)
    dataset = make_dataset(members, processor, model.config, data)
    cold = make_dataset(members, processor, model.config, DataConfig(split=args.split, video_root=args.video_root,
                                                                     n_frames=args.n_frames, cache_frames=False))
    pad = processor.tokenizer.pad_token_id
    batch = collate([dataset[i] for i in range(args.batch)], pad)
    inputs = {k: v for k, v in batch.items() if k != "ids"}
    optim = OptimConfig(micro_batch_size=args.batch)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    engine, *_ = deepspeed.initialize(model=model, optimizer=opt,
                                      config=ds_config(EngineConfig(deepspeed=args.deepspeed), optim, 1))
    bare_opt = torch.optim.AdamW([p for p in bare_model.parameters() if p.requires_grad], lr=1e-4)

    def step_on(ds, step: int) -> None:
        lo = (step * args.batch) % (len(ds) - args.batch)
        b = collate([ds[i] for i in range(lo, lo + args.batch)], pad)
        loss = engine(**{k: v for k, v in b.items() if k != "ids"}).loss
        engine.backward(loss)
        engine.step()

    def pipeline_step(step: int) -> None:
        step_on(dataset, step)

    def cold_step(step: int) -> None:
        step_on(cold, step)

    def engine_step(_: int) -> None:
        loss = engine(**inputs).loss
        engine.backward(loss)
        engine.step()

    def bare_step(_: int) -> None:
        loss = bare_model(**inputs).loss
        loss.backward()
        bare_opt.step()
        bare_opt.zero_grad(set_to_none=True)

    variants = {"pipeline": pipeline_step, "cold": cold_step, "engine": engine_step, "bare": bare_step}
    for fn in variants.values():  # warm-up
        fn(0)
    for s in range(args.steps):  # fill the frame cache, as the first epoch of training does
        pipeline_step(s)
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            for s in range(args.steps):
                fn(s)
            times[name].append((time.perf_counter() - t0) / args.steps)
    best = {k: min(v) for k, v in times.items()}
    print(f"per step (best of {args.repeats} x {args.steps} steps, batch {args.batch}, {args.n_frames} frames):")
    for name in variants:
        print(f"  {name:<9} {best[name] * 1e3:8.1f} ms   {best[name] / best['bare']:.3f}x bare")
    # Each repeat times the variants back to back: the median of per-repeat ratios is the
    # noise-robust figure on a shared machine.
    median = {k: sorted(a / b for a, b in zip(times[k], times["bare"]))[args.repeats // 2] for k in variants}
    print("median of per-repeat ratios to bare: " + ", ".join(f"{k} {v:.3f}" for k, v in median.items()))
    target = 1.10
    ok = median["pipeline"] <= target
    print(f"pipeline / bare (median) = {median['pipeline']:.3f} (target <= {target}) {'OK' if ok else 'MISSED'}")
    if args.json:
        args.json.write_text(json.dumps({"best_s": best, "median_ratio": median, "all_s": times, "argv": sys.argv,
                                         "torch": torch.__version__}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
