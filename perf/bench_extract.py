"""Feature extraction wall time: vidsme's query pipeline vs two bare forwards of the same batches.

What it measures, side by side in ONE run on the same model and the same fixed batches
(rows [b*B, (b+1)*B) of a synthetic split, as benchmark/extract.py batches them):

  pipeline            `vidsme.benchmark.query.extract_batch` over every batch (reference view
                      off, all three slices: video, instruction, answer; every token feature,
                      sequence-level Sharma-Mittal on the video slice): read and decode the
                      videos, process natural + reversed frames, collate 2B inputs, one
                      backbone forward, LM head at the slice positions only, token_features.
                      This is what a user pays.
  pipeline_predecoded the same call with the videos already decoded (the dataset's
                      `frames(i)` returns frames decoded before timing): everything but the
                      decoding, i.e. like for like with the floor below except that it still
                      processes the frames (resize/normalise) and collates.
  bare_two            the floor, version 1: the natural and the reversed inputs of each batch,
                      collated and on the device before timing, through the full HF model
                      twice, `model(**inputs, use_cache=False).logits` (full logits over the
                      whole sequence), under torch.inference_mode.
  bare_2b             the floor, version 2: the same, once over the 2B batch.
  floor               per repeat, the cheaper of bare_two and bare_2b (so the ratio is honest).
  backbone_2b         context: the pipeline's own forward alone (query.last_hidden: backbone
                      only, no LM head) on the collated 2B batch.
  no_forward          context: pipeline_predecoded with its forward replaced by hidden states
                      computed before timing (query.last_hidden patched to return them): frame
                      processing, collate, LM head at the slice positions, token_features,
                      bookkeeping, i.e. everything the pipeline does beyond its one forward.
  residual            per repeat, pipeline_predecoded - backbone_2b - no_forward (about 0 when
                      the two parts add up; the spread is the machine's noise).
  decode              context: decoding the batches' videos alone.
  reference_loop      (--reference-loop) the Vid-SME reference's way, per sample: natural and
                      reversed inputs (from decoded frames) at batch 1, two separate forwards
                      with full logits, then over the video positions of each view one
                      softmax + log_softmax and a per-token python loop computing every
                      feature of `get_meta_metrics` (Sharma-Mittal included), reusing
                      perf/bench_features.py's faithful copy (`reference_style_token`). It runs
                      on --reference-samples samples; its time per video is compared with
                      pipeline_predecoded's time per video (the loop starts from decoded
                      frames too, and reads only the video slice: the pipeline does more).

Model: the architecture of --base-config's `model:` section (default configs/base/tiny.yaml,
the demo's tiny base), random init, its tokenizer trained on the texts of --tokenizer-pool
(default synth-pretrain, as for the demo's base; no videos rendered for it).

Each repeat times every variant once over all batches; the order alternates between
repeats (ABCD, DCBA, ...) so drift hits all variants alike. The headline is the median
over repeats of the per-repeat ratio pipeline_predecoded / floor (target <= 1.15);
medians of the absolute times are printed for context (the machine may be shared).
On CUDA it also reports videos/s and the peak memory of each variant. On a CPU shared
with other jobs, pass --threads 1: oversubscribed OpenMP threads slow the many small ops
of feature extraction far more than the GEMMs of the forward, which skews the ratio.

A larger model: --base-config perf/llava-ov-0.5b-shape.yaml (the shape of
llava-onevision-qwen2-0.5b-ov, 0.89 B parameters) with --pad-vocab 152064 (the embedding and
LM head grown to a real checkpoint's vocabulary; the trained tokenizer only uses its own ids).
--budget-s S stops starting timed repeats once the next would end after S seconds from the
start (at least one is run), and SIGTERM (e.g. from `timeout`) ends the run with the repeats
finished so far, so a time-boxed run still reports; --skip drops context variants.
perf/gpu_check.sh runs it that way on a GPU.

Run (from the repository root; the split and its videos are built in a temp folder):

    .venv/bin/python perf/bench_extract.py                                   # defaults
    .venv/bin/python perf/bench_extract.py --repeats 5 --threads 1 --reference-loop --reference-samples 4 --profile 40
    .venv/bin/python perf/bench_extract.py --repeats 5 --reference-loop --json bench_extract.json
    .venv/bin/python perf/bench_extract.py --device cuda --dtype bfloat16 --reference-loop
    .venv/bin/python perf/bench_extract.py --set model.hidden_size=32 --n-videos 4 --n-frames 4   # tiny
    .venv/bin/python perf/bench_extract.py --device cuda --dtype bfloat16 --base-config perf/llava-ov-0.5b-shape.yaml \
        --pad-vocab 152064 --n-videos 8 --skip no_forward --budget-s 150 --json extract.json   # ~1B on a GPU
"""
from __future__ import annotations

import argparse
import cProfile
import dataclasses
import importlib.util
import io
import json
import pstats
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vidsme.provenance import module_sources_sha256, run_provenance
ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.15
SKIPPABLE = ("pipeline", "backbone_2b", "no_forward", "decode")  # context variants; never the headline or floor


class TimeUp(Exception):
    """Raised by the SIGTERM handler: stop timing, report the repeats finished so far."""


def _on_sigterm(signum, frame):
    raise TimeUp()


def catch_sigterm():
    """Make SIGTERM (what `timeout` sends first) raise TimeUp; returns the previous handler."""
    return signal.signal(signal.SIGTERM, _on_sigterm)


def pad_vocab(model, size: int) -> None:
    """Grow the input embedding and the (tied or not) LM head to `size` rows, as a checkpoint
    with a 152k vocabulary has. New rows are random; the trained tokenizer never emits their
    ids, but every logit, softmax and token feature now spans `size` entries."""
    from vidsme.errors import VidsmeError

    have = model.get_input_embeddings().weight.shape[0]
    if size < have:
        raise VidsmeError(f"--pad-vocab {size} is below the trained vocabulary ({have}); pass >= {have} or 0")
    if size > have:
        model.resize_token_embeddings(size, mean_resizing=False)  # mean_resizing: slow and pointless here
    got = (model.get_input_embeddings().weight.shape[0], model.get_output_embeddings().weight.shape[0])
    if got != (size, size):
        raise VidsmeError(f"pad_vocab: embedding / LM head have {got} rows after resizing to {size}; "
                          "transformers' resize_token_embeddings changed, see perf/bench_extract.py")


# ----------------------------------------------------------------------------- helpers
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _bench_features_module():
    """perf/bench_features.py as a module (for its faithful reference-style per-token loop)."""
    name = "bench_features"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / "bench_features.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def measured_sources() -> dict[str, str]:
    """sha256 (first 16 hex digits) of the measured modules: the working tree may differ from the commit."""
    import vidsme.attack.features as features_mod
    import vidsme.benchmark.query as query_mod
    import vidsme.train.data as data_mod
    import vidsme.train.families as families_mod

    return module_sources_sha256(query_mod, features_mod, data_mod, families_mod)


def _to_model_inputs(batch: dict, device: torch.device, dtype: torch.dtype) -> dict:
    """A collated batch as model kwargs on the device (ids/labels dropped, floats in the model dtype)."""
    out = {}
    for key, value in batch.items():
        if key in ("ids", "labels"):
            continue
        value = value.to(device)
        out[key] = value.to(dtype) if value.is_floating_point() else value
    return out


def _tokenizer_rows(pool: str, rows: list[dict]) -> list[dict]:
    """The rows whose texts train the tokenizer: a synthetic pool's (text only) or `rows`."""
    if pool == "split":
        return rows
    from vidsme.data_splits.synthetic import POOLS, rows_for_video, sample_video_spec

    return [row for i in range(POOLS[pool].n_videos) for row in rows_for_video(sample_video_spec(pool, i, 0))]


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__,
        epilog="example: .venv/bin/python perf/bench_extract.py --repeats 5 --reference-loop --json /tmp/extract.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--split", default="synth-mcqa", help="synthetic split to build (default synth-mcqa)")
    parser.add_argument("--n-videos", type=int, default=24, help="videos of the synthetic split (default 24)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the split and its videos are built (default: a temp folder, removed after)")
    parser.add_argument("--n-frames", type=int, default=16, help="frames per video (default 16)")
    parser.add_argument("--batch-size", type=int, default=8, help="rows per extract_batch call (default 8)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per variant (default 3)")
    parser.add_argument("--base-config", type=Path, default=ROOT / "configs/base/tiny.yaml",
                        help="base config whose `model:` section sizes the random-init tiny model")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override of the base config, e.g. model.hidden_size=32 (repeatable)")
    parser.add_argument("--tokenizer-pool", default="synth-pretrain",
                        help="synthetic pool whose texts train the tokenizer (no videos rendered), as for the "
                        "demo's base; `split` = the measured split's own rows (default synth-pretrain)")
    parser.add_argument("--template", default="default", help="prompt template (default: default)")
    parser.add_argument("--max-text-tokens", type=int, default=1024, help="prompt budget besides the video")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto = cuda if available")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads for the run (default: torch's default); on a machine shared "
                        "with other jobs, 1 avoids timing OpenMP oversubscription")
    parser.add_argument("--reference-loop", action="store_true",
                        help="also time the per-sample reference-style loop (batch 1, full logits, per-token python)")
    parser.add_argument("--reference-samples", type=int, default=None,
                        help="samples the reference loop runs on per repeat (default: --batch-size)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="after timing, cProfile one pipeline_predecoded pass and print the top N functions")
    parser.add_argument("--seed", type=int, default=0, help="seed of the Vid-SME orders (q, r)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write all figures and provenance here")
    parser.add_argument("--pad-vocab", type=int, default=0, metavar="N",
                        help="grow the embedding and LM head to N rows (e.g. 152064, a real checkpoint's "
                        "vocabulary); 0 = the trained tokenizer's size (default)")
    parser.add_argument("--budget-s", type=float, default=None, metavar="S",
                        help="stop starting timed repeats once the next would end more than S seconds after "
                        "the start (at least one timed repeat runs); default: no limit")
    parser.add_argument("--skip", action="append", default=[], choices=SKIPPABLE,
                        help="do not time this context variant (repeatable)")
    args = parser.parse_args(argv)
    args.started = time.perf_counter()
    if min(args.n_videos, args.n_frames, args.batch_size, args.repeats) < 1:
        parser.error("need --n-videos, --n-frames, --batch-size, --repeats >= 1")
    from vidsme.paths import using_splits_dir

    old_threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_extract_") as tmp:
        work = args.workdir if args.workdir is not None else Path(tmp)
        try:
            with using_splits_dir(work / "splits"):
                return _run(args, work)
        finally:
            torch.set_num_threads(old_threads)


def _run(args: argparse.Namespace, work: Path) -> int:
    from vidsme.benchmark.extract import batches_of
    import vidsme.benchmark.query as query
    from vidsme.benchmark.query import DTYPES, LoadedModel, extract_batch, last_hidden
    from vidsme.config import load_config
    from vidsme.data_splits.build import build_synthetic_split
    from vidsme.train.config import BaseConfig
    from vidsme.train.data import VideoTextDataset, collate
    from vidsme.train.families import video_inputs
    from vidsme.train.tiny_model import make_tiny_vullm, tokenizer_corpus

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    dtype = DTYPES[args.dtype]
    video_root = work / "videos"
    t0 = time.perf_counter()
    split, _ = build_synthetic_split(args.split, video_root, n_videos=args.n_videos, progress=False)
    rows = split.rows()
    t_build = time.perf_counter() - t0
    model_cfg = load_config(BaseConfig, args.base_config, args.set).model
    model, processor = make_tiny_vullm(model_cfg, tokenizer_corpus(_tokenizer_rows(args.tokenizer_pool, rows)))
    if args.pad_vocab:
        pad_vocab(model, args.pad_vocab)
    model = model.to(device=device, dtype=dtype).eval()
    target = LoadedModel(path=Path("<in memory>"), model=model, processor=processor)
    n_params = sum(p.numel() for p in model.parameters())
    pad = target.pad_token_id

    def dataset() -> VideoTextDataset:
        return VideoTextDataset(rows, video_root, processor, model.config, template=args.template,
                                n_frames=args.n_frames, max_text_tokens=args.max_text_tokens)

    users = dataset()  # decodes every time, as benchmark/extract.py does
    predecoded = dataset()
    frames = {i: users.frames(i) for i in range(len(rows))}
    predecoded.frames = frames.__getitem__  # instance attribute: extract_batch's dataset.frames(i) reads these

    batches = [list(b) for b in batches_of(len(rows), args.batch_size)]
    gen = np.random.default_rng(args.seed)
    q_all = 1.0 + gen.random(len(rows))
    r_all = 1.0 + 0.1 * gen.random(len(rows))

    # The floor's inputs: natural, reversed and 2B batches, collated and on the device up front.
    floor_inputs, batch_ids, seq_lens = [], [], []
    for idx in batches:
        nat, rev = [], []
        for i in idx:
            v_nat = video_inputs(model.config, processor, frames[i])
            v_rev = video_inputs(model.config, processor, np.ascontiguousarray(frames[i][::-1]))
            nat.append(predecoded.item(i, v_nat))
            rev.append(predecoded.item(i, v_rev))
            seq_lens.append(len(nat[-1]["input_ids"]))
        floor_inputs.append(tuple(_to_model_inputs(collate(items, pad), device, dtype)
                                  for items in (nat, rev, nat + rev)))
        batch_ids.append([item["id"] for item in nat + rev])
    video_len = int(np.diff(predecoded.prompt(0, video_inputs(model.config, processor, frames[0]))
                            .slices["video"])[0])
    # For no_forward: each batch's last hidden states (2B rows), computed once, keyed by the sample ids.
    hidden_of = ({tuple(ids): last_hidden(model, both) for ids, (_, _, both) in zip(batch_ids, floor_inputs)}
                 if "no_forward" not in args.skip else {})

    def run_pipeline(ds: VideoTextDataset) -> None:
        for idx in batches:
            extract_batch(target, ds, idx, q_all[idx], r_all[idx])

    @torch.inference_mode()
    def run_bare_two() -> None:
        for nat, rev, _ in floor_inputs:
            _ = model(**nat, use_cache=False).logits
            _ = model(**rev, use_cache=False).logits

    @torch.inference_mode()
    def run_bare_2b() -> None:
        for _, _, both in floor_inputs:
            _ = model(**both, use_cache=False).logits

    def run_backbone_2b() -> None:
        for _, _, both in floor_inputs:
            last_hidden(model, both)

    def run_no_forward() -> None:
        # extract_batch itself, its one forward replaced by hidden states computed before
        # timing (query.last_hidden patched): everything the pipeline does beyond its forward.
        real = query.last_hidden
        query.last_hidden = lambda _model, batch: hidden_of[tuple(batch["ids"])]
        try:
            run_pipeline(predecoded)
        finally:
            query.last_hidden = real

    def run_decode() -> None:
        for i in range(len(rows)):
            users.frames(i)

    variants: dict[str, Callable[[], None]] = {
        "pipeline": lambda: run_pipeline(users),
        "pipeline_predecoded": lambda: run_pipeline(predecoded),
        "bare_two": run_bare_two,
        "bare_2b": run_bare_2b,
        "backbone_2b": run_backbone_2b,
        "no_forward": run_no_forward,
        "decode": run_decode,
    }
    for name in args.skip:
        variants.pop(name, None)
    n_ref = 0
    if args.reference_loop:
        bf = _bench_features_module()
        n_ref = min(len(rows), args.reference_samples or args.batch_size)

        @torch.inference_mode()
        def run_reference() -> None:
            for i in range(n_ref):
                q_i, r_i = float(q_all[i]), float(r_all[i])
                for view in (frames[i], np.ascontiguousarray(frames[i][::-1])):
                    video = video_inputs(model.config, processor, view)
                    item = predecoded.item(i, video)
                    start, end = predecoded.prompt(i, video).slices["video"]
                    logits = model(**_to_model_inputs(collate([item], pad), device, dtype)).logits[0]
                    video_logits = logits[start:end].float()
                    probs, log_probs = torch.softmax(video_logits, -1), torch.log_softmax(video_logits, -1)
                    for k, y in enumerate(probs.argmax(-1).tolist()):  # video slice: target = argmax
                        bf.reference_style_token(probs[k], log_probs[k], y, q_i, r_i)

        variants["reference_loop"] = run_reference

    n_rows = len(rows)
    print(f"# bench_extract: {args.split} ({n_rows} rows, {len(batches)} batches of <= {args.batch_size}), "
          f"{args.n_frames} frames ({video_len} video tokens, sequences {min(seq_lens)}-{max(seq_lens)} tokens), "
          f"model {n_params / 1e6:.2f} M params (vocab {model.config.text_config.vocab_size}, hidden "
          f"{model_cfg.hidden_size}, {model_cfg.num_hidden_layers} layers), {device} {args.dtype}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; split built in {t_build:.1f} s", flush=True)
    sources = measured_sources()
    print("# measured sources (sha256/16): " + ", ".join(f"{k} {v}" for k, v in sources.items()), flush=True)

    times: dict[str, list[float]] = {k: [] for k in variants}
    peak: dict[str, int] = {k: 0 for k in variants}
    peak_over: dict[str, int] = {k: 0 for k in variants}  # peak minus what was allocated before the call
    names = list(variants)
    resident = None
    stopped = None  # why fewer than --repeats were timed
    previous_handler = catch_sigterm()
    try:
        t_warm = time.perf_counter()
        for fn in variants.values():  # warm-up: allocator, thread pool, kernels, the datasets' prompt caches
            fn()
        last = time.perf_counter() - t_warm  # one untimed repeat: the estimate for the budget
        print(f"# warm-up {last:.1f} s ({time.perf_counter() - args.started:.1f} s since start)", flush=True)
        if device.type == "cuda":
            resident = torch.cuda.memory_allocated(device)
        for rep in range(args.repeats):
            elapsed = time.perf_counter() - args.started
            if rep and args.budget_s is not None and elapsed + last > args.budget_s:
                stopped = f"--budget-s {args.budget_s:g}: {elapsed:.0f} s elapsed, a repeat takes {last:.0f} s"
                break
            t_rep = time.perf_counter()
            order = names if rep % 2 == 0 else names[::-1]
            done = {}
            for name in order:
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                    before = torch.cuda.memory_allocated(device)
                _sync(device)
                t0 = time.perf_counter()
                variants[name]()
                _sync(device)
                done[name] = time.perf_counter() - t0
                if device.type == "cuda":
                    peak[name] = max(peak[name], torch.cuda.max_memory_allocated(device))
                    peak_over[name] = max(peak_over[name], torch.cuda.max_memory_allocated(device) - before)
            for name, t in done.items():  # only whole repeats count
                times[name].append(t)
            last = time.perf_counter() - t_rep
            print(f"# repeat {rep + 1}/{args.repeats}: " + ", ".join(f"{k} {times[k][-1]:.3f} s" for k in names),
                  flush=True)
    except TimeUp:
        stopped = "SIGTERM (time limit) during a repeat; that repeat is dropped"
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    repeats_done = len(times[names[0]])
    if stopped:
        print(f"# stopped after {repeats_done} of {args.repeats} timed repeats: {stopped}", flush=True)
    if repeats_done == 0:
        print("bench_extract: no timed repeat finished (warm-up alone exceeded the time limit); "
              "give it more time (--budget-s / the caller's timeout) or smaller sizes", file=sys.stderr)
        return 1

    floor = [min(a, b) for a, b in zip(times["bare_two"], times["bare_2b"])]
    has_residual = all(k in times for k in ("backbone_2b", "no_forward"))
    residual = ([p - b - h for p, b, h in zip(times["pipeline_predecoded"], times["backbone_2b"], times["no_forward"])]
                if has_residual else [])
    med = {k: statistics.median(v) for k, v in times.items()}
    med["floor"] = statistics.median(floor)
    if has_residual:
        med["residual"] = statistics.median(residual)
    ratio = {k: statistics.median([t / f for t, f in zip(series, floor)])
             for k, series in [*((k, times[k]) for k in ("pipeline", "pipeline_predecoded", "bare_two", "bare_2b",
                                                          "backbone_2b", "no_forward", "decode") if k in times),
                               *([("residual", residual)] if has_residual else [])]}
    ratio_of_medians = med["pipeline_predecoded"] / med["floor"]
    per_video = {k: med[k] / n_rows for k in ("pipeline", "pipeline_predecoded", "floor") if k in med}
    ref = None
    if n_ref:
        ref_per_video = med["reference_loop"] / n_ref
        speedups = [(t / n_ref) / (p / n_rows) for t, p in zip(times["reference_loop"], times["pipeline_predecoded"])]
        ref = {"samples": n_ref, "per_video_s": ref_per_video,
               "video_tokens_per_video": 2 * video_len,
               "per_token_s": ref_per_video / (2 * video_len),
               "speedup_over_pipeline_predecoded_median_per_repeat": statistics.median(speedups),
               "speedup_over_pipeline_with_decoding": (ref_per_video / per_video["pipeline"]
                                                       if "pipeline" in per_video else None)}
    ok = ratio["pipeline_predecoded"] <= TARGET_RATIO

    # ------------------------------------------------------------------ report
    w = 50
    print()
    print(f"per pass over {n_rows} rows (median of {repeats_done}), and median of per-repeat ratios to the floor:")
    labels = {
        "pipeline": "pipeline (extract_batch, decoding included)",
        "pipeline_predecoded": "pipeline, pre-decoded frames",
        "bare_two": "bare: natural + reversed forwards",
        "bare_2b": "bare: one 2B forward",
        "floor": "floor = cheaper bare per repeat",
        "backbone_2b": "query.last_hidden on the 2B batch (context)",
        "no_forward": "pipeline, pre-decoded, forward precomputed",
        "decode": "decode only (context)",
        "residual": "residual: predecoded - backbone - no_forward",
    }
    for k, label in labels.items():
        if k not in med:  # skipped (--skip)
            continue
        r_txt = "" if k == "floor" else f"{ratio[k]:8.3f}x floor"
        print(f"  {label:<{w}} {med[k] * 1e3:10.1f} ms  {med[k] / n_rows * 1e3:8.2f} ms/video  {r_txt}")
    if ref is not None:
        print(f"  {'reference-style loop (' + str(n_ref) + ' samples)':<{w}} {med['reference_loop'] * 1e3:10.1f} ms  "
              f"{ref['per_video_s'] * 1e3:8.2f} ms/video  ({ref['per_token_s'] * 1e6:.1f} us per video token)")
        with_decoding = ref["speedup_over_pipeline_with_decoding"]
        print(f"  speed-up of the pipeline over the reference-style loop, per video: "
              f"{ref['speedup_over_pipeline_predecoded_median_per_repeat']:.1f}x pre-decoded (median per repeat)"
              + (f", {with_decoding:.1f}x with decoding (medians)" if with_decoding is not None else ""))
    if device.type == "cuda":
        for k in per_video:
            print(f"  {k}: {1.0 / per_video[k]:.1f} videos/s")
        print(f"  GPU memory resident before timing (model, floor inputs, precomputed hidden states): "
              f"{resident / 2**20:.1f} MiB")
        for k in names:
            print(f"  peak memory {k}: {peak[k] / 2**20:.1f} MiB (+{peak_over[k] / 2**20:.1f} MiB over what was "
                  "allocated before it)")
    print(f"pipeline_predecoded / floor = {ratio['pipeline_predecoded']:.3f} (median per repeat; ratio of medians "
          f"{ratio_of_medians:.3f}) (target <= {TARGET_RATIO}) {'OK' if ok else 'MISSED'}")
    if "pipeline" in ratio:
        print(f"pipeline (decoding included) / floor = {ratio['pipeline']:.3f}")

    profile_top = None
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        variants["pipeline_predecoded"]()
        _sync(device)
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(args.profile)
        profile_top = buf.getvalue()
        print(profile_top)

    if args.json is not None:
        record = {
            "figures": {
                "median_s": med,
                "median_ratio_to_floor": ratio,
                "ratio_of_medians_pipeline_predecoded_over_floor": ratio_of_medians,
                "per_video_s": per_video,
                "videos_per_s": {k: 1.0 / v for k, v in per_video.items()},
                "reference_loop": ref,
                "peak_memory_bytes": peak if device.type == "cuda" else None,
                "peak_memory_over_allocated_bytes": peak_over if device.type == "cuda" else None,
                "memory_resident_bytes": resident,
                "repeats_done": repeats_done,
                "stopped_early": stopped,
                "all_times_s": {**times, "floor": floor, "residual": residual},
                "target_met": ok,
            },
            "targets": {"pipeline_predecoded_over_floor_max": TARGET_RATIO},
            "inputs": {
                "split": args.split, "n_videos": args.n_videos, "rows": n_rows, "batches": len(batches),
                "batch_size": args.batch_size, "n_frames": args.n_frames, "video_tokens": video_len,
                "sequence_tokens_min_max": [min(seq_lens), max(seq_lens)], "repeats": args.repeats,
                "pad_vocab": args.pad_vocab, "skipped": sorted(args.skip), "budget_s": args.budget_s,
                "base_config": str(args.base_config), "overrides": args.set,
                "template": args.template, "tokenizer_pool": args.tokenizer_pool, "dtype": args.dtype, "model": dataclasses.asdict(model_cfg) | {"params": n_params},
                "trained_vocab": model.config.text_config.vocab_size, "seed": args.seed,
                "tokenizer_vocab": len(processor.tokenizer), "model_vocab": model.get_input_embeddings().weight.shape[0],
            },
            "profile_top": profile_top,
            "provenance": run_provenance(str(device), sources) | {"cuda": torch.version.cuda},
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
