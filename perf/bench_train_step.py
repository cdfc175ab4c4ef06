"""Training step time: vidsme's pipeline vs a bare PyTorch loop, same model, same batch.

What it measures, side by side in one run (interleaved repeats, best kept):
  pipeline  one optimizer step of vidsme.train.loop.run_training's inner loop: collate a
            micro-batch from the dataset, move it to the engine's device (pixels cast to bf16
            under --precision bf16, as run_training does), forward, DeepSpeed backward + step
            (ZeRO config from --deepspeed); frames cached after first use as in training
            (warm-up runs one pass over the batches first); `cold` is the same with decoding
            every time
  bare      the same model and the same, already collated batch: forward, loss.backward(),
            torch AdamW step — no data work, no engine. Under --precision bf16 its weights
            are bf16 and AdamW steps them directly (no fp32 master copy): the cheapest loop,
            so the ratio is the strictest one
  engine    the pipeline's engine step on the already collated batch (isolates the engine)
Target: pipeline / bare <= 1.10. Needs a built synthetic split (vidsme splits build), or
--build-split N to build one with N videos in a temp folder.

The model is the tiny default (TinyVullmConfig()) unless --base-config names a base config
whose `model:` section sizes it (with --set overrides), e.g. perf/llava-ov-0.5b-shape.yaml
(0.89 B parameters; --pad-vocab 152064 grows its vocabulary to a checkpoint's). On CUDA it
reports tokens/s and each variant's peak GPU memory. --budget-s and SIGTERM end a time-boxed
run with the repeats finished so far (as in bench_extract.py). perf/gpu_check.sh runs it in
bf16 with ZeRO-2 on a GPU.

  .venv/bin/python perf/bench_train_step.py --split synth-mcqa --video-root runs/videos
  .venv/bin/python perf/bench_train_step.py --build-split 32 --base-config perf/llava-ov-0.5b-shape.yaml \\
      --pad-vocab 152064 --precision bf16 --batch 8 --steps 8 --json train_step.json      # on a GPU
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import importlib.util
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

import torch

from vidsme.data_splits.registry import load_split
from vidsme.provenance import module_sources_sha256, run_provenance
from vidsme.train.config import DataConfig, EngineConfig, OptimConfig
from vidsme.train.data import collate
from vidsme.train.loop import ds_config, init_distributed, make_dataset, set_trainable
from vidsme.train.tiny_model import TinyVullmConfig, make_tiny_vullm, tokenizer_corpus

TARGET = 1.10


def _bench_extract_module():
    """perf/bench_extract.py as a module (pad_vocab, TimeUp, catch_sigterm)."""
    name = "bench_extract"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / "bench_extract.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def measured_sources() -> dict[str, str]:
    """sha256 (first 16 hex digits) of the measured modules: the working tree may differ from the commit."""
    import vidsme.train.data as data_mod
    import vidsme.train.families as families_mod
    import vidsme.train.loop as loop_mod

    return module_sources_sha256(loop_mod, data_mod, families_mod)


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
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="engine precision (bf16 on GPU); the bare loop runs in the same dtype")
    parser.add_argument("--base-config", type=Path, default=None,
                        help="base config whose `model:` section sizes the model (default: TinyVullmConfig())")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override of --base-config, e.g. model.hidden_size=32 (repeatable)")
    parser.add_argument("--pad-vocab", type=int, default=0, metavar="N",
                        help="grow the embedding and LM head to N rows (e.g. 152064); 0 = the tokenizer's size")
    parser.add_argument("--build-split", type=int, default=0, metavar="N",
                        help="first build --split with N synthetic videos in a temp folder (--video-root is then "
                        "ignored); default 0: use the split and videos already there")
    parser.add_argument("--budget-s", type=float, default=None, metavar="S",
                        help="stop starting timed repeats once the next would end more than S seconds after the "
                        "start (at least one timed repeat runs); default: no limit")
    args = parser.parse_args(argv)
    args.started = time.perf_counter()
    if args.set and args.base_config is None:
        parser.error("--set needs --base-config (it overrides that file's model: section)")
    if args.build_split <= 0:
        return _run(args)
    from vidsme.data_splits.build import build_synthetic_split
    from vidsme.paths import using_splits_dir

    with tempfile.TemporaryDirectory(prefix="bench_train_step_") as tmp, using_splits_dir(Path(tmp) / "splits"):
        build_synthetic_split(args.split, Path(tmp) / "videos", n_videos=args.build_split, progress=False)
        args.video_root = Path(tmp) / "videos"
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    import deepspeed

    bench_extract = _bench_extract_module()
    init_distributed()
    rows = load_split(args.split).rows()
    members = [r for r in rows if r["label"] == "member"]
    if len(members) <= args.batch:
        print(f"bench_train_step: split {args.split} has {len(members)} members, need more than --batch "
              f"{args.batch}; build it with more videos (--build-split N) or lower --batch", file=sys.stderr)
        return 1
    if args.base_config is None:
        model_cfg = TinyVullmConfig()
    else:
        from vidsme.config import load_config
        from vidsme.train.config import BaseConfig

        model_cfg = load_config(BaseConfig, args.base_config, args.set).model
    model, processor = make_tiny_vullm(model_cfg, tokenizer_corpus(rows))
    if args.pad_vocab:
        bench_extract.pad_vocab(model, args.pad_vocab)
    set_trainable(model, ["language_model", "projector"])
    n_params = sum(p.numel() for p in model.parameters())
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    bare_model = copy.deepcopy(model)
    data = DataConfig(split=args.split, video_root=args.video_root, n_frames=args.n_frames)
    dataset = make_dataset(members, processor, model.config, data)
    cold = make_dataset(members, processor, model.config, DataConfig(split=args.split, video_root=args.video_root,
                                                                     n_frames=args.n_frames, cache_frames=False))
    pad = processor.tokenizer.pad_token_id
    optim = OptimConfig(micro_batch_size=args.batch)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    engine, *_ = deepspeed.initialize(model=model, optimizer=opt,
                                      config=ds_config(EngineConfig(deepspeed=args.deepspeed,
                                                                    precision=args.precision), optim, 1))
    device = engine.device if isinstance(engine.device, torch.device) else torch.device(engine.device)
    bf16 = args.precision == "bf16"
    bare_model.to(device=device, dtype=torch.bfloat16 if bf16 else torch.float32)
    bare_opt = torch.optim.AdamW([p for p in bare_model.parameters() if p.requires_grad], lr=1e-4)

    def on_device(b: dict) -> dict:
        """What run_training feeds the engine: everything but ids on its device, pixels in bf16 under bf16."""
        out = {k: v.to(device) for k, v in b.items() if k != "ids"}
        if bf16:
            out["pixel_values_videos"] = out["pixel_values_videos"].to(torch.bfloat16)
        return out

    batch = collate([dataset[i] for i in range(args.batch)], pad)
    inputs = on_device(batch)
    tokens_per_step = int(batch["attention_mask"].sum())

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def step_on(ds, step: int) -> None:
        lo = (step * args.batch) % (len(ds) - args.batch)
        b = collate([ds[i] for i in range(lo, lo + args.batch)], pad)
        loss = engine(**on_device(b)).loss
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
    times: dict[str, list[float]] = {k: [] for k in variants}
    peak: dict[str, int] = {k: 0 for k in variants}
    peak_over: dict[str, int] = {k: 0 for k in variants}  # peak minus what was allocated before the variant
    resident = None
    stopped = None
    previous_handler = bench_extract.catch_sigterm()
    try:
        t_warm = time.perf_counter()
        for fn in variants.values():  # warm-up
            fn(0)
        for s in range(args.steps):  # fill the frame cache, as the first epoch of training does
            pipeline_step(s)
        sync()
        print(f"# warm-up {time.perf_counter() - t_warm:.1f} s ({time.perf_counter() - args.started:.1f} s since "
              "start)", flush=True)
        if device.type == "cuda":
            resident = torch.cuda.memory_allocated(device)
        last = None
        for rep in range(args.repeats):
            elapsed = time.perf_counter() - args.started
            if rep and args.budget_s is not None and elapsed + last > args.budget_s:
                stopped = f"--budget-s {args.budget_s:g}: {elapsed:.0f} s elapsed, a repeat takes {last:.0f} s"
                break
            t_rep = time.perf_counter()
            done = {}
            for name, fn in variants.items():
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                    before = torch.cuda.memory_allocated(device)
                sync()
                t0 = time.perf_counter()
                for s in range(args.steps):
                    fn(s)
                sync()
                done[name] = (time.perf_counter() - t0) / args.steps
                if device.type == "cuda":
                    peak[name] = max(peak[name], torch.cuda.max_memory_allocated(device))
                    peak_over[name] = max(peak_over[name], torch.cuda.max_memory_allocated(device) - before)
            for name, t in done.items():  # only whole repeats count
                times[name].append(t)
            last = time.perf_counter() - t_rep
            print(f"# repeat {rep + 1}/{args.repeats}: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in done.items()),
                  flush=True)
    except bench_extract.TimeUp:
        stopped = "SIGTERM (time limit) during a repeat; that repeat is dropped"
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    repeats_done = len(times["bare"])
    if stopped:
        print(f"# stopped after {repeats_done} of {args.repeats} timed repeats: {stopped}", flush=True)
    if repeats_done == 0:
        print("bench_train_step: no timed repeat finished (warm-up alone exceeded the time limit); give it more "
              "time (--budget-s / the caller's timeout) or smaller sizes", file=sys.stderr)
        return 1
    best = {k: min(v) for k, v in times.items()}
    print(f"per step (best of {repeats_done} x {args.steps} steps, batch {args.batch}, {args.n_frames} frames, "
          f"{tokens_per_step} tokens, {args.precision}, {n_params / 1e6:.2f} M params, {n_trainable / 1e6:.2f} M "
          f"trainable, {device}):")
    for name in variants:
        print(f"  {name:<9} {best[name] * 1e3:8.1f} ms   {best[name] / best['bare']:.3f}x bare   "
              f"{tokens_per_step / best[name]:10.0f} tokens/s")
    # Each repeat times the variants back to back: the median of per-repeat ratios is the
    # noise-robust figure on a shared machine.
    median = {k: sorted(a / b for a, b in zip(times[k], times["bare"]))[repeats_done // 2] for k in variants}
    print("median of per-repeat ratios to bare: " + ", ".join(f"{k} {v:.3f}" for k, v in median.items()))
    if device.type == "cuda":
        print(f"GPU memory resident before timing (engine + bare model, weights and optimizer states): "
              f"{resident / 2**20:.1f} MiB")
        for name in variants:
            print(f"  peak memory {name}: {peak[name] / 2**20:.1f} MiB (+{peak_over[name] / 2**20:.1f} MiB over "
                  "what was allocated before it)")
    ok = median["pipeline"] <= TARGET
    print(f"pipeline / bare (median) = {median['pipeline']:.3f} (target <= {TARGET}) {'OK' if ok else 'MISSED'}")
    if args.json:
        cuda = device.type == "cuda"
        record = {
            "best_s": best, "median_ratio": median, "all_s": times, "argv": sys.argv, "torch": torch.__version__,
            "tokens_per_step": tokens_per_step,
            "tokens_per_s_best": {k: tokens_per_step / v for k, v in best.items()},
            "peak_memory_bytes": peak if cuda else None,
            "peak_memory_over_allocated_bytes": peak_over if cuda else None,
            "memory_resident_bytes": resident,
            "repeats_done": repeats_done, "stopped_early": stopped,
            "target": {"pipeline_over_bare_max": TARGET}, "target_met": ok,
            "inputs": {
                "split": args.split, "members": len(members), "batch": args.batch, "n_frames": args.n_frames,
                "steps": args.steps, "repeats": args.repeats, "precision": args.precision,
                "deepspeed": str(args.deepspeed), "zero_stage": json.loads(Path(args.deepspeed).read_text())
                .get("zero_optimization", {}).get("stage"),
                "base_config": str(args.base_config) if args.base_config else None, "overrides": args.set,
                "model": dataclasses.asdict(model_cfg) | {"params": n_params, "trainable": n_trainable},
                "pad_vocab": args.pad_vocab, "tokenizer_vocab": len(processor.tokenizer),
                "budget_s": args.budget_s, "device": str(device),
            },
            "provenance": run_provenance(str(device), measured_sources()) | {"cuda": torch.version.cuda},
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
