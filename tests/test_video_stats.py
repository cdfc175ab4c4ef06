"""Per-video Vid-SME statistics: k1 (flow variance), k3 (brightness std), cache, pool, errors."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import vidsme.video_stats as vs
from vidsme.errors import VideoError, VideoNotFoundError, VidsmeError
from vidsme.video import read_frames, write_mp4
from vidsme.video_stats import FlowParams, StatsConfig, VideoStats, compute_video_stats, motion_brightness

H = W = 64
N = 16  # frames per test video = frames sampled: consecutive pairs are one frame apart
STILL_K1 = 1e-3  # "no motion": 100x below a square moving 1 px/frame


def _rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=-1)


def _texture(seed: int, shape=(H, W), lo=40, hi=200) -> np.ndarray:
    """Smooth random texture: flow has something to lock on to, compression keeps it."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(lo, hi, (shape[0] // 4, shape[1] // 4)).astype(np.uint8)
    return cv2.resize(coarse, shape[::-1], interpolation=cv2.INTER_LINEAR)


def static_video(seed: int = 0, n: int = N) -> np.ndarray:
    return np.stack([_rgb(_texture(seed))] * n)


def moving_square(speed: float, n: int = N, size: int = 12, seed: int = 1) -> np.ndarray:
    """A textured square sliding right at `speed` px/frame over a flat background."""
    tex = _texture(seed, (size, size), 150, 255)
    frames = []
    for t in range(n):
        img = np.full((H, W), 60, np.uint8)
        x = int(round(4 + speed * t))
        img[26:26 + size, x:x + size] = tex
        frames.append(_rgb(img))
    return np.stack(frames)


def flicker_video(amplitude: int, n: int = N, seed: int = 2) -> np.ndarray:
    """A static scene whose global brightness alternates by +-amplitude."""
    base = _texture(seed).astype(np.int16)
    return np.stack([_rgb(np.clip(base + (amplitude if t % 2 else -amplitude), 0, 255).astype(np.uint8))
                     for t in range(n)])


def reference_k1_k3(frames: np.ndarray) -> tuple[float, float]:
    """The Vid-SME reference formula, written out independently of the module."""
    greys = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    variances = []
    for i in range(len(greys) - 1):
        flow = cv2.calcOpticalFlowFarneback(greys[i], greys[i + 1], None, 0.5, 3, 15, 3, 5, 1.2, 0)
        variances.append(np.var(flow))
    k1 = np.mean(variances) if variances else 0.0
    k3 = np.std([np.mean(g) for g in greys])
    return float(k1), float(k3)


@pytest.fixture
def videos(tmp_path: Path) -> dict[str, Path]:
    return {
        "static": write_mp4(tmp_path / "static.mp4", static_video()),
        "slow": write_mp4(tmp_path / "slow.mp4", moving_square(1.0)),
        "fast": write_mp4(tmp_path / "fast.mp4", moving_square(3.0)),
        "flicker": write_mp4(tmp_path / "flicker.mp4", flicker_video(30)),
    }


def _count_calls(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = vs.motion_brightness

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(vs, "motion_brightness", counting)
    return calls


# ----------------------------------------------------------------------------- the statistics
def test_static_video_has_no_motion_and_no_flicker(videos):
    (stats,) = compute_video_stats([videos["static"]], workers=1, progress=False)
    # not exactly 0: x264 P-frames differ from the I-frame by a grey level here and there,
    # and Farneback returns a tiny flow (~1e-5 variance) even for two identical textured
    # frames. Motion of 1 px/frame gives ~0.1, see the next test.
    assert stats.k1 < STILL_K1
    assert stats.k3 < 0.05
    k1, k3 = motion_brightness(static_video())
    assert k1 < STILL_K1 and k3 == 0.0


def test_faster_motion_gives_larger_k1(videos):
    slow, fast = compute_video_stats([videos["slow"], videos["fast"]], workers=1, progress=False)
    assert fast.k1 > 2 * slow.k1 > 0
    # in memory too, and for the same square standing still
    still, k1_slow, k1_fast = (motion_brightness(moving_square(s))[0] for s in (0.0, 1.0, 3.0))
    assert still < STILL_K1 < k1_slow < k1_fast


def test_flicker_gives_larger_k3(videos):
    steady, flicker = compute_video_stats([videos["static"], videos["flicker"]], workers=1, progress=False)
    assert flicker.k3 > 20 and steady.k3 < 0.05
    # global brightness change alternating by +-30 grey levels: std about 30
    assert motion_brightness(flicker_video(30))[1] == pytest.approx(30.0, abs=1.0)


def test_single_frame_has_k1_zero():
    k1, k3 = motion_brightness(moving_square(2.0)[:1])
    assert k1 == 0.0 and k3 == 0.0


def test_motion_brightness_is_the_reference_formula_exactly(videos):
    for frames in (moving_square(2.0), flicker_video(20), static_video()):
        assert motion_brightness(frames) == reference_k1_k3(frames)
    # and on a file: the frames read back, bit for bit
    (stats,) = compute_video_stats([videos["fast"]], workers=1, progress=False)
    assert (stats.k1, stats.k3) == reference_k1_k3(read_frames(videos["fast"], N))


def test_file_matches_frames_in_memory_within_compression(videos):
    frames = moving_square(3.0)
    (stats,) = compute_video_stats([videos["fast"]], workers=1, progress=False)
    k1, k3 = motion_brightness(frames)
    assert stats.k1 == pytest.approx(k1, rel=0.15)
    assert stats.k3 == pytest.approx(k3, abs=0.5)


def test_fast_mode_shrinks_and_never_enlarges():
    frames = moving_square(3.0)
    assert vs._shrink(frames[0, ..., 0], 32).shape == (32, 32)
    assert vs._shrink(np.zeros((48, 64), np.uint8), 32).shape == (24, 32)
    assert vs._shrink(np.zeros((20, 30), np.uint8), 32).shape == (20, 30)  # never enlarged
    # downscale at or above the frame size is the exact computation
    assert motion_brightness(frames, downscale=64) == motion_brightness(frames)
    fast = motion_brightness(frames, downscale=32)
    assert fast != motion_brightness(frames) and fast[0] > 0
    k1, k3 = motion_brightness(static_video(), downscale=32)
    assert k1 < STILL_K1 and k3 == 0.0


def test_motion_brightness_rejects_bad_frames():
    with pytest.raises(VidsmeError, match="uint8"):
        motion_brightness(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(VidsmeError, match="uint8"):
        motion_brightness(np.zeros((0, 8, 8, 3), np.uint8))


# ----------------------------------------------------------------------------- config keys
def test_config_key_covers_every_field_and_is_stable():
    base = StatsConfig()
    # pinned: a change here silently invalidates every cache; bump STATS_VERSION on purpose
    assert base.key() == "9e5ac06113ce2850"
    assert base.key() == StatsConfig(16, FlowParams(pyr_scale=0.5), None).key()
    assert base.key() == StatsConfig(flow=FlowParams(pyr_scale=1 / 2, levels=3)).key()
    variants = [StatsConfig(n_frames=8), StatsConfig(downscale=32)] + [
        StatsConfig(flow=FlowParams(**{name: value}))
        for name, value in [("pyr_scale", 0.4), ("levels", 2), ("winsize", 13), ("iterations", 2),
                            ("poly_n", 7), ("poly_sigma", 1.5), ("flags", cv2.OPTFLOW_FARNEBACK_GAUSSIAN)]
    ]
    keys = {c.key() for c in variants}
    assert len(keys) == len(variants) and base.key() not in keys
    assert len(base.key()) == 16 and int(base.key(), 16) >= 0


def test_config_key_depends_on_stats_version(monkeypatch):
    before = StatsConfig().key()
    monkeypatch.setattr(vs, "STATS_VERSION", vs.STATS_VERSION + 1)
    assert StatsConfig().key() != before


@pytest.mark.parametrize("kwargs", [{"n_frames": 0}, {"n_frames": 2.5}, {"downscale": 0}, {"flow": {"levels": 3}}])
def test_bad_config_is_refused(kwargs):
    with pytest.raises(VidsmeError):
        StatsConfig(**kwargs)


# ----------------------------------------------------------------------------- cache
def test_second_call_hits_the_cache(videos, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    paths = [videos["slow"], videos["flicker"]]
    first = compute_video_stats(paths, cache_dir=cache, workers=1, progress=False)
    files = sorted(cache.rglob("*.json"))
    assert len(files) == 2
    record = json.loads(files[0].read_text())
    assert record["config"] == StatsConfig().as_dict() and "opencv" in record["versions"]

    def boom(*args, **kwargs):
        raise AssertionError("recomputed despite a valid cache entry")

    monkeypatch.setattr(vs, "motion_brightness", boom)
    second = compute_video_stats(paths, cache_dir=cache, workers=1, progress=False)
    assert second == first  # same floats, bit for bit, through JSON


def test_cache_hit_is_by_content_not_by_path(videos, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    (a,) = compute_video_stats([videos["fast"]], cache_dir=cache, workers=1, progress=False)
    copy = tmp_path / "elsewhere" / "copy.mp4"
    copy.parent.mkdir()
    copy.write_bytes(videos["fast"].read_bytes())
    calls = _count_calls(monkeypatch)
    (b,) = compute_video_stats([copy], cache_dir=cache, workers=1, progress=False)
    assert not calls and (b.k1, b.k3, b.sha256) == (a.k1, a.k3, a.sha256) and b.path == str(copy)


@pytest.mark.parametrize("config", [StatsConfig(n_frames=8), StatsConfig(flow=FlowParams(winsize=9)),
                                    StatsConfig(downscale=32)])
def test_changed_config_recomputes(videos, tmp_path, monkeypatch, config):
    cache = tmp_path / "cache"
    (a,) = compute_video_stats([videos["fast"]], cache_dir=cache, workers=1, progress=False)
    calls = _count_calls(monkeypatch)
    (b,) = compute_video_stats([videos["fast"]], config, cache_dir=cache, workers=1, progress=False)
    assert len(calls) == 1 and b.config_key == config.key() != a.config_key
    assert (b.k1, b.k3) == motion_brightness(read_frames(videos["fast"], config.n_frames), config.flow,
                                             config.downscale)
    assert len(list(cache.rglob("*.json"))) == 2


def test_changed_file_recomputes(videos, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    path = videos["slow"]
    (a,) = compute_video_stats([path], cache_dir=cache, workers=1, progress=False)
    write_mp4(path, moving_square(3.0))  # same path, new content
    calls = _count_calls(monkeypatch)
    (b,) = compute_video_stats([path], cache_dir=cache, workers=1, progress=False)
    assert len(calls) == 1 and b.sha256 != a.sha256 and b.k1 > a.k1


@pytest.mark.parametrize("damage", ["not json", "truncated", "wrong config", "nan"])
def test_corrupt_cache_entry_is_recomputed(videos, tmp_path, monkeypatch, damage):
    cache = tmp_path / "cache"
    (a,) = compute_video_stats([videos["fast"]], cache_dir=cache, workers=1, progress=False)
    (entry,) = cache.rglob("*.json")
    text = entry.read_text()
    if damage == "not json":
        entry.write_text("{{{ garbage")
    elif damage == "truncated":
        entry.write_text(text[: len(text) // 2])
    else:
        record = json.loads(text)
        if damage == "wrong config":
            record["config"]["flow"]["winsize"] = 9  # name says one config, content another
        else:
            record["k1"] = float("nan")
        entry.write_text(json.dumps(record))
    calls = _count_calls(monkeypatch)
    (b,) = compute_video_stats([videos["fast"]], cache_dir=cache, workers=1, progress=False)
    assert len(calls) == 1 and b == a
    assert json.loads(entry.read_text())["k1"] == a.k1  # rewritten, valid again
    assert not [p for p in cache.rglob("*") if p.name.endswith(".tmp")]  # no temp files left


# ----------------------------------------------------------------------------- pool, order
def test_pool_matches_inline_and_keeps_input_order(videos):
    paths = [videos[k] for k in ("fast", "static", "flicker", "slow")]
    inline = compute_video_stats(paths, workers=1, progress=False)
    pooled = compute_video_stats(paths, workers=2, progress=False)
    assert pooled == inline
    assert [s.path for s in pooled] == [str(p) for p in paths]
    assert all(isinstance(s, VideoStats) for s in pooled)


# ----------------------------------------------------------------------------- errors
def test_missing_video_raises_naming_the_path(videos, tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(VideoNotFoundError, match="nope.mp4") as info:
        compute_video_stats([videos["static"], missing], workers=1, progress=False)
    assert info.value.path == str(missing)


@pytest.mark.parametrize("workers", [1, 2])
def test_corrupt_video_raises_naming_the_path(videos, tmp_path, workers):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(videos["fast"].read_bytes()[:300])  # truncated container
    with pytest.raises(VideoError, match="broken.mp4") as info:
        compute_video_stats([videos["static"], bad, videos["slow"]], workers=workers, progress=False)
    assert info.value.path == str(bad)


def test_non_finite_statistics_raise_naming_the_path(videos, monkeypatch):
    monkeypatch.setattr(vs, "motion_brightness", lambda *a, **k: (float("nan"), 1.0))
    with pytest.raises(VidsmeError, match="fast.mp4.*not finite"):
        compute_video_stats([videos["fast"]], workers=1, progress=False)


def test_failure_does_not_cache_and_does_not_skip(videos, tmp_path):
    cache = tmp_path / "cache"
    bad = tmp_path / "zero.mp4"
    bad.write_bytes(b"")
    with pytest.raises(VideoError, match="zero.mp4"):
        compute_video_stats([bad, videos["slow"]], cache_dir=cache, workers=1, progress=False)
    assert not cache.exists() or not list(cache.rglob("*.json"))


# ----------------------------------------------------------------------------- perf script
@pytest.mark.integration
def test_bench_video_stats_runs(tmp_path: Path):
    """perf/bench_video_stats.py stays runnable (tiny demo videos; figures live in docs/PERFORMANCE.md)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(
        "bench_video_stats", Path(__file__).resolve().parents[1] / "perf" / "bench_video_stats.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_video_stats"] = bench
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    args = ["--make-demo-videos", str(tmp_path / "demo"), "--demo-count", "4", "--demo-size", "64x48",
            "--demo-frames", "10", "--workers", "1", "--downscale", "16", "--json", str(out)]
    assert bench.main(args) == 0
    record = json.loads(out.read_text())
    figures = record["figures"]
    assert figures["videos"] == 4 and figures["ratio_exact_over_fast"] > 0
    assert figures["spearman_k3"] is None or -1 <= figures["spearman_k3"] <= 1
    assert len(record["per_video"]) == 4 and record["provenance"]["source_sha256"]["vidsme/video_stats.py"]
    assert record["provenance"]["config_keys"]["exact"] == StatsConfig().key()


def test_pool_fails_fast(videos, tmp_path):
    """A video that cannot be read stops the run: queued videos are cancelled, not computed."""
    cache = tmp_path / "cache"
    bad = tmp_path / "text.mp4"
    bad.write_text("not a video\n")
    good = [write_mp4(tmp_path / f"good_{i}.mp4", moving_square(1.0 + 0.1 * i)) for i in range(12)]
    with pytest.raises(VideoError, match="text.mp4"):
        compute_video_stats([bad, *good], cache_dir=cache, workers=2, progress=False)
    # at most the few tasks already handed to the workers finish (and are cached)
    assert len(list(cache.rglob("*.json"))) <= 6
