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
    assert record["provenance"]["source_sha256"]["attack/features.py"]


@pytest.mark.integration
def test_bench_train_step_runs(tmp_path: Path, monkeypatch):
    from vidsme.data_splits.build import build_synthetic_split
    from vidsme.paths import SPLITS_DIR_ENV

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


def _record_module():
    return _load("record_gpu_check")


@pytest.mark.integration
def test_gpu_check_dry_run(tmp_path: Path):
    """perf/gpu_check.sh --dry-run: the GPU check's three steps at toy size on CPU, nothing appended."""
    import os
    import subprocess

    doc = ROOT / "docs" / "PERFORMANCE.md"
    before = doc.read_bytes()
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable}
    proc = subprocess.run([str(ROOT / "perf" / "gpu_check.sh"), "--dry-run"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert doc.read_bytes() == before  # a dry run never touches the page
    for name in ("features.json", "extract.json", "train_step.json", "steps.tsv", "section.md", "gpu_check.log"):
        assert (out / name).is_file(), name
    extract = json.loads((out / "extract.json").read_text())
    assert extract["inputs"]["model_vocab"] == 4096 and extract["inputs"]["dtype"] == "bfloat16"
    assert "no_forward" not in extract["figures"]["median_s"]
    train = json.loads((out / "train_step.json").read_text())
    assert train["inputs"]["precision"] == "bf16" and train["inputs"]["zero_stage"] == 2
    assert train["repeats_done"] >= 1 and train["provenance"]["source_sha256"]["train/loop.py"]
    record = _record_module()
    section = (out / "section.md").read_text()
    for fig in record.FIGURES:  # the would-append text names every figure, each measured (at toy size)
        row = next(line for line in section.splitlines() if line.startswith(f"| {fig.row} |"))
        assert "not measured" not in row, row
    assert "Dry run" in section and "toy" in section
    assert section in proc.stdout
    assert "would append" in proc.stdout and "nothing written" in proc.stdout
    assert record.APPEND_MARKER in doc.read_text()  # where a GPU run's record goes


def _fake_gpu_run(folder: Path, *, extract_rc: int = 0) -> None:
    """A GPU run's outputs as gpu_check.sh and the three scripts write them (figures made up)."""
    folder.mkdir()
    gib = 2**30
    (folder / "steps.tsv").write_text("\n".join([
        "meta\tstarted_utc\t2026-12-02 10:00 UTC", "meta\tcommand\tperf/gpu_check.sh", "meta\tdry_run\t0",
        "meta\tgit_commit\tabc123", "meta\tgit_dirty\t0", "meta\ttorch\t2.11.0+cu130", "meta\tcuda\t13.0",
        "meta\tgpu\tNVIDIA H200", "meta\ttotal_budget_s\t470",
        "step\tfeatures\t0\t40.5\t75\t/x/.venv/bin/python perf/bench_features.py --vocab 152064",
        f"step\textract\t{extract_rc}\t190.0\t190\tpython perf/bench_extract.py --device cuda",
        "step\ttrain\t0\t100.2\t165\tpython perf/bench_train_step.py --precision bf16",
        "meta\ttotal_s\t335"]) + "\n")
    errors = {"entropy": 1e-7}
    (folder / "features.json").write_text(json.dumps({
        "figures": {"speedup_per_token": 150.0, "features_s": 0.01, "features_per_token_s": 2e-6,
                    "bf16_features_s": 0.01, "floor_s": 0.005, "ratio_features_over_floor": 2.0,
                    "loop_per_token_best_block_s": 3e-4, "loop_per_token_mean_s": 4e-4,
                    "speedup_per_token_loop_mean": 200.0, "loop_tokens_timed": 4608, "values_ok": True,
                    "worst_rel_error_float32": errors, "worst_rel_error_bf16": errors,
                    "peak_memory_bytes": {"features": 9 * gib, "floor": 8 * gib, "bf16": 7 * gib, "loop": 3 * gib}},
        "inputs": {"logits_shape": [2, 2304, 152064]}}))
    if extract_rc == 0:
        (folder / "extract.json").write_text(json.dumps({
            "figures": {"median_ratio_to_floor": {"pipeline_predecoded": 1.3, "pipeline": 1.4},
                        "median_s": {"pipeline_predecoded": 2.0, "floor": 1.5}, "videos_per_s": {},
                        "peak_memory_bytes": {"pipeline_predecoded": 20 * gib, "bare_two": 12 * gib, "bare_2b": 18 * gib},
                        "repeats_done": 3},
            "inputs": {"model": {"params": 893_000_000}, "model_vocab": 152064, "dtype": "bfloat16", "rows": 8,
                       "n_frames": 16, "video_tokens": 3137, "sequence_tokens_min_max": [3200, 3260],
                       "batch_size": 8, "repeats": 3}}))
    (folder / "train_step.json").write_text(json.dumps({
        "best_s": {"pipeline": 0.31, "bare": 0.30}, "median_ratio": {"pipeline": 1.04, "engine": 1.03, "cold": 1.8},
        "tokens_per_step": 13600, "tokens_per_s_best": {"pipeline": 43870.0},
        "peak_memory_bytes": {"pipeline": 30 * gib, "bare": 28 * gib}, "repeats_done": 3,
        "inputs": {"model": {"params": 893_000_000, "trainable": 496_000_000}, "precision": "bf16",
                   "zero_stage": 2, "batch": 8, "n_frames": 8}}))


def test_record_gpu_check_appends_and_sets_status(tmp_path: Path):
    record = _record_module()
    run = tmp_path / "run"
    _fake_gpu_run(run, extract_rc=124)
    doc = tmp_path / "PERFORMANCE.md"
    original = (ROOT / "docs" / "PERFORMANCE.md").read_text()
    doc.write_text(original)
    assert record.main([str(run), "--doc", str(doc)]) == 0  # print only
    assert doc.read_text() == original
    assert record.main([str(run), "--doc", str(doc), "--append"]) == 0
    text = doc.read_text()
    assert text.split("## GPU check")[0] == original.split("## GPU check")[0]  # only its own section changes
    assert "### GPU run 2026-12-02 10:00 UTC: NVIDIA H200" in text
    status = text.split(record.STATUS_BEGIN)[1].split(record.STATUS_END)[0]
    rows = {line.split("|")[1].strip(): line.split("|")[3].strip() for line in status.splitlines()
            if line.startswith("| ") and not line.startswith("| GPU figure")}
    assert rows[record.FIGURES[0].row].startswith("**measured** 2026-12-02 on NVIDIA H200: 150.00× (met)")
    assert rows[record.FIGURES[1].row] == "awaiting a GPU"  # timed out: left awaiting
    assert "1.04× (missed)" not in rows[record.FIGURES[2].row] and "(met)" in rows[record.FIGURES[2].row]
    assert rows[record.PEAK_ROW].startswith("**measured**")
    section = (run / "section.md").read_text()
    assert "not measured: exit 124 (time limit) after 190 s" in section
    assert "| 150.00× | ≥ 100× faster per token | met | features 9.0 GiB, loop 3.0 GiB | 40 / 75 s |" in section
    # a second run lands after the first, inside the GPU check section
    run2 = tmp_path / "run2"
    _fake_gpu_run(run2)
    assert record.main([str(run2), "--doc", str(doc), "--append"]) == 0
    text = doc.read_text()
    assert text.index("| 1.30× | ≤ 1.15× | **missed**") > text.index("not measured: exit 124")


def test_record_gpu_check_refuses_what_it_cannot_use(tmp_path: Path, capsys):
    record = _record_module()
    assert record.main([str(tmp_path)]) == 1
    assert "steps.tsv: not found" in capsys.readouterr().err
    run = tmp_path / "run"
    _fake_gpu_run(run)
    doc = tmp_path / "PERFORMANCE.md"
    doc.write_text("# Performance\n\nno marker here\n")
    assert record.main([str(run), "--doc", str(doc), "--append"]) == 1
    assert "put it back" in capsys.readouterr().err and doc.read_text() == "# Performance\n\nno marker here\n"
    (run / "steps.tsv").write_text((run / "steps.tsv").read_text().replace("dry_run\t0", "dry_run\t1"))
    doc.write_text((ROOT / "docs" / "PERFORMANCE.md").read_text())
    assert record.main([str(run), "--doc", str(doc), "--append"]) == 1
    assert "never appended" in capsys.readouterr().err


def test_gpu_check_refuses_without_a_gpu(tmp_path: Path):
    """Without --dry-run and no GPU: a one-line error naming the fix, before anything is measured."""
    import os
    import subprocess

    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the script would run the real check")
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable}
    proc = subprocess.run([str(ROOT / "perf" / "gpu_check.sh")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert "no CUDA GPU visible" in proc.stderr and "--dry-run" in proc.stderr
    assert not (tmp_path / "out").exists()
    proc = subprocess.run([str(ROOT / "perf" / "gpu_check.sh"), "--dry"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1 and "unknown argument '--dry'" in proc.stderr


@pytest.mark.integration
def test_bench_video_tied_runs(tmp_path: Path, monkeypatch):
    from vidsme.data_splits.build import build_synthetic_split
    from vidsme.paths import SPLITS_DIR_ENV
    from vidsme.train.tiny_model import build_tiny_vullm, tokenizer_corpus
    from tiny_configs import TINY

    monkeypatch.setenv(SPLITS_DIR_ENV, str(tmp_path / "splits"))
    split, _ = build_synthetic_split("synth-mcqa", tmp_path / "videos", n_videos=8, progress=False)
    model = build_tiny_vullm(TINY, tokenizer_corpus(split.rows()), tmp_path / "model")
    bench = _load("bench_video_tied")
    out = tmp_path / "tied.json"
    assert bench.main([str(model), "--split", "synth-mcqa", "--video-root", str(tmp_path / "videos"), "--frames", "4",
                       "--batch-size", "4", "--repeats", "1", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["rows"] == 8 and record["check_over_extract"] > 0 and isinstance(record["within_target"], bool)
