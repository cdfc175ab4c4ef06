"""The perf scripts stay runnable (tiny sizes; their figures live in docs/PERFORMANCE.md)."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "perf" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and friends look the module up by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration
def test_bench_features_runs_and_checks_values(tmp_path: Path):
    bench = _load("bench_features")
    out = tmp_path / "bench.json"
    args = ["--positions", "16", "--vocab", "512", "--repeats", "1", "--loop-tokens", "16",
            "--check-tokens", "16", "--bf16-check-tokens", "8", "--device", "cpu", "--json", str(out)]
    assert bench.main(args) == 0
    record = json.loads(out.read_text())
    figures = record["figures"]
    assert figures["values_ok"] is True
    assert figures["speedup_per_token"] > 0 and figures["ratio_features_over_floor"] > 0
    assert max(figures["worst_rel_error_float32"].values()) <= 1e-4
    assert record["provenance"]["source_sha256"]["features.py"]


@pytest.mark.integration
def test_bench_train_step_runs(tmp_path: Path, monkeypatch):
    from vidsme.data_splits.build import build_synthetic_split
    from vidsme.data_splits.registry import SPLITS_DIR_ENV

    monkeypatch.setenv(SPLITS_DIR_ENV, str(tmp_path / "splits"))
    build_synthetic_split("synth-mcqa", tmp_path / "videos", n_videos=12, progress=False)
    bench = _load("bench_train_step")
    out = tmp_path / "train.json"
    args = ["--split", "synth-mcqa", "--video-root", str(tmp_path / "videos"), "--n-frames", "4", "--batch", "2",
            "--steps", "1", "--repeats", "1", "--deepspeed", str(ROOT / "configs/deepspeed/zero2.json"),
            "--json", str(out)]
    assert bench.main(args) == 0
    record = json.loads(out.read_text())
    assert set(record["best_s"]) == {"pipeline", "cold", "engine", "bare"}


@pytest.mark.integration
def test_bench_extract_runs(tmp_path: Path):
    bench = _load("bench_extract")
    out = tmp_path / "extract.json"
    args = ["--n-videos", "4", "--n-frames", "4", "--batch-size", "2", "--repeats", "1", "--device", "cpu",
            "--tokenizer-pool", "split", "--set", "model.hidden_size=32", "--set", "model.num_hidden_layers=1",
            "--set", "model.vision_layers=1", "--reference-loop", "--reference-samples", "1",
            "--workdir", str(tmp_path / "work"), "--json", str(out)]
    assert bench.main(args) == 0
    record = json.loads(out.read_text())
    figures = record["figures"]
    for name in ("pipeline", "pipeline_predecoded", "bare_two", "bare_2b", "floor", "backbone_2b", "no_forward", "decode"):
        assert figures["median_s"][name] > 0, name
    assert figures["median_ratio_to_floor"]["pipeline_predecoded"] > 0
    assert figures["reference_loop"]["per_video_s"] > 0
    assert figures["reference_loop"]["speedup_over_pipeline_predecoded_median_per_repeat"] > 0
    assert record["inputs"]["rows"] == 4 and record["inputs"]["n_frames"] == 4
    assert record["provenance"]["source_sha256"]["benchmark/query.py"]
