"""The video-tied check's cost against the feature extraction it follows (issue 27's performance target).

Side by side in one process, on one target and its split, at one frame count:
  extract   the benchmark's extraction of every row (decode, preprocess, one forward over natural +
            reversed frames, every token feature of every slice, Vid-SME on the video slice)
  check     the video-tied check's one extra forward per row (each row with a deranged video of its
            label: decode, preprocess, forward, answer-slice log-probabilities), nothing cached
Target: check <= 1.1 x extract. Each is timed `--repeats` times; the medians are reported.

  .venv/bin/python perf/bench_video_tied.py runs/demo/models/mcqa-full --split synth-mcqa \\
      --video-root runs/demo/videos --frames 8 --json video_tied.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

TARGET_RATIO = 1.1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a target model directory")
    parser.add_argument("--split", required=True, help="its split (data_splits/<name>)")
    parser.add_argument("--video-root", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-rows", type=int, default=None, help="the first rows only (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, metavar="OUT")
    args = parser.parse_args(argv)

    from vidsme.benchmark.query import extract_batch, load_model
    from vidsme.benchmark.video_tied import VideoTiedSettings, answer_losses
    from vidsme.data_splits.registry import load_split
    from vidsme.provenance import run_provenance
    from vidsme.swaps import derangement
    from vidsme.train.data import VideoTextDataset

    rows = load_split(args.split).rows()[: args.max_rows]
    target = load_model(args.model)
    settings = VideoTiedSettings(n_frames=args.frames, template="default", batch_size=args.batch_size,
                                 max_text_tokens=1024, seed=0, n_bootstrap=1, dtype="float32", device_type="cpu")
    swap = derangement([r["video"] for r in rows], [r["label"] for r in rows])
    swapped = [{**r, "video": swap[r["video"]]} for r in rows]
    ones = np.ones(len(rows))

    def extract() -> None:
        dataset = VideoTextDataset(rows, args.video_root, target.processor, target.config, template="default",
                                   n_frames=args.frames, max_text_tokens=1024)
        for lo in range(0, len(rows), args.batch_size):
            idx = list(range(lo, min(lo + args.batch_size, len(rows))))
            extract_batch(target, dataset, idx, ones[idx], ones[idx])

    def check() -> None:
        answer_losses(target, swapped, args.video_root, settings)

    times: dict[str, list[float]] = {"extract": [], "check": []}
    for _ in range(args.repeats):  # interleaved, so drift in the machine's load hits both alike
        for name, run in (("extract", extract), ("check", check)):
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    ratio = medians["check"] / medians["extract"]
    record = {"rows": len(rows), "frames": args.frames, "batch_size": args.batch_size, "seconds": times,
              "median_seconds": medians, "check_over_extract": ratio, "target": TARGET_RATIO,
              "within_target": ratio <= TARGET_RATIO, "provenance": run_provenance("cpu")}
    print(f"{len(rows)} rows, {args.frames} frames: extraction {medians['extract']:.2f} s, video-tied check "
          f"{medians['check']:.2f} s -> check / extraction {ratio:.2f} (target <= {TARGET_RATIO})")
    if args.json:
        args.json.write_text(json.dumps(record, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
