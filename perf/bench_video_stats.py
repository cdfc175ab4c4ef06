"""Benchmark of vidsme.video_stats: exact (reference) statistics against fast mode.

What it measures, in ONE run on the SAME videos:

1. decode  - `read_frames(path, n_frames)` for every video, inline (context: the cost
             both modes share and fast mode cannot remove; also warms the page cache).
2. exact   - `compute_video_stats(videos, StatsConfig(n_frames))`: the reference
             computation (Farneback flow on full-size grey frames).
3. fast    - the same with `StatsConfig(n_frames, downscale=D)` (default D = 32): grey
             frames shrunk so the longer side is <= D pixels before flow/brightness.
   Both run without a cache, with the same --workers, --repeats times, interleaved
   (exact/fast, then fast/exact, ...) so machine noise hits them alike; the best time
   of each is kept. Headline: time ratio exact / fast.
4. agreement - Vid-SME only uses the statistics through their ranking over the pool
   (min-max normalisation), so: Spearman rank correlation of k1 and of k3 between modes,
   and of the (q, r) orders from `vidsme.attack.vid_sme_orders.orders_from_stats`.
   q and r are monotone in k1 and k3 within a mode, so their Spearman equals that of k1
   and k3 by construction; the figure that says more is the absolute difference of the
   orders between modes (max and mean |dq|, |dr|), also reported.

Videos: --video-root DIR --pool NAME reads DIR/NAME/*.mp4 (as
vidsme.data_splits.synthetic.generate_pool writes a pool); --videos GLOB takes any glob;
--make-demo-videos DIR first writes --demo-count seeded synthetic videos with varied
motion, camera pan and flicker into DIR and uses them (when no other selection is given).

Run (from the repository root):

    .venv/bin/python perf/bench_video_stats.py --video-root data/synthetic --pool members --json /tmp/vs.json
    .venv/bin/python perf/bench_video_stats.py --make-demo-videos /tmp/vs_demo --repeats 2
    .venv/bin/python perf/bench_video_stats.py --videos '/data/clips/*.mp4' --downscale 64 --workers 1
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from vidsme.attack.vid_sme_orders import orders_from_stats
from vidsme.provenance import git_commit
from vidsme.video_stats import StatsConfig, compute_video_stats


# ----------------------------------------------------------------------------- demo videos
def make_demo_videos(out_dir: Path, count: int, width: int, height: int, frames: int, seed: int) -> list[Path]:
    """`count` seeded mp4s: textured background, 1-3 textured objects at 0-6 px/frame,
    optional camera pan, global flicker of 0-30 grey levels (sinusoidal or random)."""
    import cv2

    from vidsme.video import write_mp4

    def texture(rng: np.random.Generator, h: int, w: int, lo: int, hi: int, cell: int) -> np.ndarray:
        coarse = rng.integers(lo, hi, (max(2, h // cell), max(2, w // cell), 3)).astype(np.uint8)
        return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for v in range(count):
        rng = np.random.default_rng([seed, v])
        pan = rng.uniform(-3, 3, 2) if rng.random() < 0.3 else np.zeros(2)
        margin = int(np.ceil(np.abs(pan).max() * frames)) + 1
        background = texture(rng, height + margin, width + margin, 20, 230, int(rng.integers(4, 24)))
        objects = []
        for _ in range(int(rng.integers(1, 4))):
            size = int(rng.integers(height // 8, height // 3))
            speed = rng.uniform(0, 6) * rng.choice([-1, 1], 2) * (rng.random() < 0.85)
            start = rng.uniform([0, 0], [width - size, height - size])
            objects.append((texture(rng, size, size, 0, 256, 3), start, speed))
        amp = rng.uniform(0, 30) if rng.random() < 0.6 else 0.0
        sinus, period = rng.random() < 0.5, rng.uniform(2, 12)
        clip = []
        for t in range(frames):
            ox, oy = (np.abs(pan) * t).astype(int)
            ox = ox if pan[0] >= 0 else margin - 1 - ox
            oy = oy if pan[1] >= 0 else margin - 1 - oy
            img = background[oy:oy + height, ox:ox + width].copy()
            for tex, start, speed in objects:
                s = tex.shape[0]
                # bounce inside the frame
                x, y = (start + speed * t) % (2 * np.array([width - s, height - s]))
                x = int(x if x <= width - s else 2 * (width - s) - x)
                y = int(y if y <= height - s else 2 * (height - s) - y)
                img[y:y + s, x:x + s] = tex
            delta = amp * (math.sin(2 * math.pi * t / period) if sinus else rng.uniform(-1, 1))
            clip.append(np.clip(img.astype(np.float32) + delta, 0, 255).astype(np.uint8))
        paths.append(write_mp4(out_dir / f"demo_{v:03d}.mp4", np.stack(clip)))
    return paths


# ----------------------------------------------------------------------------- helpers
def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman rank correlation; None when either side is constant (undefined)."""
    from scipy.stats import spearmanr

    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(spearmanr(a, b).statistic)


def timed_stats(paths: list[Path], config: StatsConfig, workers: int | None) -> tuple[float, list]:
    t0 = time.perf_counter()
    stats = compute_video_stats(paths, config, cache_dir=None, workers=workers, progress=False)
    return time.perf_counter() - t0, stats


def measured_sources() -> dict[str, str]:
    """sha256 (first 16 hex digits) of the measured modules: the working tree may differ from the commit."""
    from vidsme.provenance import module_sources_sha256
    import vidsme.attack.vid_sme_orders as orders_mod
    import vidsme.video as video_mod
    import vidsme.video_stats as stats_mod

    return module_sources_sha256(stats_mod, video_mod, orders_mod)


def versions() -> dict[str, str | None]:
    import cv2

    out: dict[str, str | None] = {"python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__}
    for name in ("decord", "av", "scipy"):
        try:
            out[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001  (absent or broken: recorded as None)
            out[name] = None
    return out


def fmt(x: float | None, spec: str = ".4f") -> str:
    return "n/a (constant)" if x is None else format(x, spec)


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time vidsme.video_stats in exact mode against fast mode (frames downscaled) "
        "on the same videos, and measure how well fast mode preserves the ranking of k1, k3 "
        "and of the Vid-SME orders (q, r).",
        epilog="example: .venv/bin/python perf/bench_video_stats.py --video-root data/synthetic "
        "--pool members --downscale 32 --json /tmp/video_stats.json",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sel = parser.add_argument_group("videos (one of)")
    sel.add_argument("--video-root", type=Path, metavar="DIR", help="root of generated pools; with --pool")
    sel.add_argument("--pool", metavar="NAME", help="pool name: videos are DIR/NAME/*.mp4")
    sel.add_argument("--videos", metavar="GLOB", help="glob of video files (quote it)")
    sel.add_argument("--make-demo-videos", type=Path, metavar="DIR",
                     help="write --demo-count synthetic videos into DIR first (and use them if no other selection)")
    parser.add_argument("--demo-count", type=int, default=40, help="demo videos to write")
    parser.add_argument("--demo-size", default="320x240", metavar="WxH", help="demo video size (even numbers)")
    parser.add_argument("--demo-frames", type=int, default=48, help="frames per demo video")
    parser.add_argument("--seed", type=int, default=0, help="seed of the demo videos")
    parser.add_argument("--n-frames", type=int, default=16, help="frames sampled per video (the paper: 16)")
    parser.add_argument("--downscale", type=int, default=32, help="fast mode: longer side at most this many px")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: one per core, capped by #videos)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per mode, interleaved; best is kept")
    parser.add_argument("--beta1", type=float, default=1.0, help="Vid-SME beta1 for the q orders")
    parser.add_argument("--beta2", type=float, default=0.1, help="Vid-SME beta2 for the r orders")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write figures and provenance here")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.n_frames < 1 or args.downscale < 1:
        parser.error("need --repeats, --n-frames, --downscale >= 1")

    if args.make_demo_videos is not None:
        try:
            w, h = (int(x) for x in args.demo_size.lower().split("x"))
        except ValueError:
            parser.error(f"--demo-size must be WxH, got {args.demo_size!r}")
        t0 = time.perf_counter()
        demo = make_demo_videos(args.make_demo_videos, args.demo_count, w, h, args.demo_frames, args.seed)
        print(f"# wrote {len(demo)} demo videos ({w}x{h}, {args.demo_frames} frames) to "
              f"{args.make_demo_videos} in {time.perf_counter() - t0:.1f} s", flush=True)
    if args.videos is not None:
        paths, source = sorted(Path(p) for p in glob.glob(args.videos)), f"glob {args.videos}"
    elif args.video_root is not None or args.pool is not None:
        if args.video_root is None or args.pool is None:
            parser.error("--video-root and --pool go together")
        paths, source = sorted((args.video_root / args.pool).glob("*.mp4")), f"pool {args.video_root / args.pool}"
    elif args.make_demo_videos is not None:
        paths, source = sorted(args.make_demo_videos.glob("demo_*.mp4")), f"demo videos in {args.make_demo_videos}"
    else:
        parser.error("give --video-root DIR --pool NAME, --videos GLOB or --make-demo-videos DIR")
    if len(paths) < 2:
        parser.error(f"need at least 2 videos to rank, found {len(paths)} ({source}); "
                     "a synthetic pool is written by vidsme.data_splits.synthetic.generate_pool")

    import cv2

    from vidsme.video import read_frames

    exact_cfg = StatsConfig(n_frames=args.n_frames)
    fast_cfg = StatsConfig(n_frames=args.n_frames, downscale=args.downscale)
    sources = measured_sources()
    print(f"# bench_video_stats: {len(paths)} videos ({source}), n_frames {args.n_frames}, downscale "
          f"{args.downscale}, workers {args.workers or 'auto'}, {os.cpu_count()} cpus, opencv {cv2.__version__}",
          flush=True)
    print("# measured sources (sha256/16): " + ", ".join(f"{k} {v}" for k, v in sources.items()), flush=True)

    # decode only (shared cost; warms the page cache for both modes)
    t0 = time.perf_counter()
    shapes = [read_frames(p, args.n_frames).shape for p in paths]
    t_decode = time.perf_counter() - t0
    sizes = sorted({f"{s[2]}x{s[1]}" for s in shapes})
    print(f"# decode only (inline): {t_decode:.2f} s; frame sizes {', '.join(sizes)}", flush=True)

    times: dict[str, list[float]] = {"exact": [], "fast": []}
    results: dict[str, list] = {}
    for k in range(args.repeats):
        order = ("exact", "fast") if k % 2 == 0 else ("fast", "exact")
        for mode in order:
            t, stats = timed_stats(paths, exact_cfg if mode == "exact" else fast_cfg, args.workers)
            times[mode].append(t)
            if mode in results and [(s.k1, s.k3) for s in stats] != [(s.k1, s.k3) for s in results[mode]]:
                print(f"WARNING: {mode} statistics differ between repeats (non-deterministic)", flush=True)
            results[mode] = stats
        print(f"# repeat {k + 1}/{args.repeats}: exact {times['exact'][-1]:.2f} s, fast {times['fast'][-1]:.2f} s",
              flush=True)
    t_exact, t_fast = min(times["exact"]), min(times["fast"])

    ids = [p.name for p in paths]
    k1 = {m: np.array([s.k1 for s in results[m]]) for m in results}
    k3 = {m: np.array([s.k3 for s in results[m]]) for m in results}
    orders = {m: orders_from_stats(k1[m], k3[m], ids, beta1=args.beta1, beta2=args.beta2) for m in results}
    fig = {
        "videos": len(paths),
        "n_frames": args.n_frames,
        "downscale": args.downscale,
        "workers": args.workers,
        "frame_sizes": sizes,
        "decode_s": t_decode,
        "exact_s": t_exact,
        "fast_s": t_fast,
        "exact_s_per_video": t_exact / len(paths),
        "fast_s_per_video": t_fast / len(paths),
        "ratio_exact_over_fast": t_exact / t_fast,
        "spearman_k1": spearman(k1["exact"], k1["fast"]),
        "spearman_k3": spearman(k3["exact"], k3["fast"]),
        "spearman_q": spearman(orders["exact"].q, orders["fast"].q),
        "spearman_r": spearman(orders["exact"].r, orders["fast"].r),
        "max_abs_dq": float(np.max(np.abs(orders["exact"].q - orders["fast"].q))),
        "mean_abs_dq": float(np.mean(np.abs(orders["exact"].q - orders["fast"].q))),
        "max_abs_dr": float(np.max(np.abs(orders["exact"].r - orders["fast"].r))),
        "mean_abs_dr": float(np.mean(np.abs(orders["exact"].r - orders["fast"].r))),
        "beta1": args.beta1,
        "beta2": args.beta2,
    }

    w = 46
    print()
    print(f"{'figure':<{w}} {'value':>14}")
    print("-" * (w + 15))
    print(f"{'decode only, all videos, inline':<{w}} {t_decode:13.2f}s")
    print(f"{'exact mode, all videos (best of ' + str(args.repeats) + ')':<{w}} {t_exact:13.2f}s")
    print(f"{'fast mode (downscale ' + str(args.downscale) + '), all videos':<{w}} {t_fast:13.2f}s")
    print(f"{'ratio exact / fast':<{w}} {fig['ratio_exact_over_fast']:13.2f}x")
    for name in ("k1", "k3", "q", "r"):
        print(f"{'Spearman ' + name + ' exact vs fast':<{w}} {fmt(fig['spearman_' + name]):>14}")
    print(f"{'|q exact - q fast|: max / mean (beta1 ' + str(args.beta1) + ')':<{w}} "
          f"{fig['max_abs_dq']:.4f} / {fig['mean_abs_dq']:.4f}")
    print(f"{'|r exact - r fast|: max / mean (beta2 ' + str(args.beta2) + ')':<{w}} "
          f"{fig['max_abs_dr']:.4f} / {fig['mean_abs_dr']:.4f}")

    if args.json is not None:
        record = {
            "figures": fig,
            "times": times,
            "per_video": [
                {"video": str(p), "sha256": results["exact"][i].sha256,
                 "exact": {"k1": float(k1["exact"][i]), "k3": float(k3["exact"][i]),
                           "q": float(orders["exact"].q[i]), "r": float(orders["exact"].r[i])},
                 "fast": {"k1": float(k1["fast"][i]), "k3": float(k3["fast"][i]),
                          "q": float(orders["fast"].q[i]), "r": float(orders["fast"].r[i])}}
                for i, p in enumerate(paths)
            ],
            "provenance": {
                "command": [sys.executable, *sys.argv] if argv is None else ["bench_video_stats.py", *argv],
                "source": source,
                "config_keys": {"exact": exact_cfg.key(), "fast": fast_cfg.key()},
                "git_commit": git_commit(),
                "source_sha256": sources,
                "versions": versions(),
                "platform": platform.platform(),
                "cpu_count": os.cpu_count(),
                "utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1))
        print(f"# wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
