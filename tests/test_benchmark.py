"""The benchmark: querying, cache, suite runner end to end, resume after a kill, sharding, exclusions."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vidsme.benchmark.cache import FeatureCache
from vidsme.benchmark.config import SuiteConfig, SuiteTarget
from vidsme.benchmark.evaluate import slice_inputs, video_scores
from vidsme.benchmark.query import extract_batch, load_model, slice_positions
from vidsme.benchmark.suite import check_suite, run_suite
from vidsme.cli import main
from vidsme.config import config_to_dict
from vidsme.data_splits.build import build_synthetic_split
from vidsme.paths import SPLITS_DIR_ENV
from vidsme.errors import UnknownNameError, VidsmeError
from vidsme.prompts import encode_prompt
from vidsme.train.data import VideoTextDataset
from vidsme.train.tiny_model import build_tiny_vullm, tokenizer_corpus
from tiny_configs import TINY

FEW_ATTACKS = ["loss", "zlib", "vid_sme_min_k10", "vid_sme_frame_mean", "vid_sme_sequence", "ref_calibration"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A 12-video synthetic MCQA split and a tiny model: the target is the untrained base itself
    (no training needed to test the plumbing), with a perturbed copy as its reference."""
    root = tmp_path_factory.mktemp("bench")
    mp = pytest.MonkeyPatch()
    mp.setenv(SPLITS_DIR_ENV, str(root / "splits"))
    videos = root / "videos"
    split, _ = build_synthetic_split("synth-mcqa", videos, n_videos=12, progress=False)
    target = build_tiny_vullm(TINY, tokenizer_corpus(split.rows()), root / "target")
    from transformers import AutoModelForImageTextToText

    ref = AutoModelForImageTextToText.from_pretrained(target, local_files_only=True)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.01 * torch.randn_like(p))
    shutil.copytree(target, root / "reference")  # processor files; the weights are replaced below
    ref.save_pretrained(root / "reference")
    yield {"root": root, "videos": videos, "split": split, "target": target, "reference": root / "reference"}
    mp.undo()


def _suite(world, out: Path, **overrides) -> SuiteConfig:
    fields = dict(name="tiny", output_dir=out / "results", cache_dir=out / "cache", frame_counts=[4],
                  targets=[SuiteTarget(name="t", path=world["target"], split="synth-mcqa",
                                       reference=world["reference"])],
                  n_bootstrap=50, batch_size=4, attacks=FEW_ATTACKS, plots=False, blind_baseline=False,
                  stats_workers=1)
    fields.update(overrides)
    return SuiteConfig(**fields)


def _write_yaml(cfg: SuiteConfig, path: Path) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(config_to_dict(cfg)), encoding="utf-8")
    return path


def _metrics(results_path: Path) -> list[dict]:
    """results.json rows without run-specific provenance."""
    rows = json.loads(Path(results_path).read_text())["rows"]
    return [{k: v for k, v in r.items() if k != "provenance"} for r in rows]


# ----------------------------------------------------------------------------- querying
def test_slice_positions_follow_the_next_token_shift(world):
    model = load_model(world["target"])
    row = world["split"].rows()[0]
    video = [model.config.video_token_index] * 3
    enc = encode_prompt(model.processor.tokenizer, row, "default", video, [0, 1, -1])
    (v0, v1), (a0, a1) = enc.slices["video"], enc.slices["answer"]
    assert slice_positions(enc, "video") == (list(range(v0, v1)), None)  # logits AT the video, argmax target
    positions, targets = slice_positions(enc, "answer")
    assert positions == list(range(a0 - 1, a1 - 1)) and targets == enc.input_ids[a0:a1]


def test_batched_features_match_a_per_sample_forward(world):
    """One batched, padded forward of natural + reversed gives each sample's own numbers; the
    answer log-probs equal a plain full-model forward's log-softmax at the shifted positions."""
    model = load_model(world["target"])
    rows = world["split"].rows()[:3]
    ds = VideoTextDataset(rows, world["videos"], model.processor, model.config, template="default", n_frames=4,
                          max_text_tokens=512)
    q, r = np.array([1.2, 1.5, 1.9]), np.array([1.0, 1.05, 1.1])
    batched = extract_batch(model, ds, [0, 1, 2], q, r)
    for i in range(3):
        alone = extract_batch(model, ds, [i], q[i:i + 1], r[i:i + 1])[0]
        for s in batched[i].token:
            for key, value in batched[i].token[s].items():
                torch.testing.assert_close(value, alone.token[s][key], rtol=1e-4, atol=1e-4)
        item = ds[i]
        with torch.no_grad():
            logits = model.model(**{k: v.unsqueeze(0) if k != "video" else None for k, v in item.items()
                                    if k in ("input_ids",)}, pixel_values_videos=item["video"].model_kwargs[
                "pixel_values_videos"].unsqueeze(0)).logits[0]
        prompt = ds.prompt(i, item["video"])
        a0, a1 = prompt.slices["answer"]
        expected = torch.log_softmax(logits[a0 - 1:a1 - 1].double(), -1)[torch.arange(a1 - a0),
                                                                          torch.tensor(prompt.input_ids[a0:a1])]
        torch.testing.assert_close(batched[i].token["answer"]["natural.target_logprob"].double(), expected,
                                   rtol=1e-4, atol=1e-4)
        # reversed frames change the video positions' distributions, not the text of the prompt
        assert not torch.equal(batched[i].token["video"]["natural.entropy"], batched[i].token["video"]["reversed.entropy"])


def test_slice_inputs_pad_and_mask():
    from vidsme.benchmark.cache import SampleFeatures

    a = SampleFeatures("a", {"video": {"natural.entropy": torch.tensor([1.0, 2.0, 3.0])}}, {}, [0, 1, -1], {})
    b = SampleFeatures("b", {"video": {"natural.entropy": torch.tensor([4.0])}}, {}, [0], {})
    inputs = slice_inputs([a, b], "video")
    assert inputs.mask.tolist() == [[True, True, True], [True, False, False]]
    assert torch.isnan(inputs.tokens("natural.entropy")[1, 1:]).all()
    assert inputs.frame_slot.tolist() == [[0, 1, -1], [0, -1, -1]]


def test_video_level_is_the_mean_of_a_videos_rows():
    order, scores = video_scores(np.array([1.0, 3.0, 10.0]), ["v2", "v2", "v1"])
    assert order == ["v1", "v2"] and scores.tolist() == [10.0, 2.0]


def test_suite_checks_names_before_any_work(world, tmp_path):
    with pytest.raises(UnknownNameError, match="Did you mean"):
        check_suite(_suite(world, tmp_path, attacks=["vid_sme_mim_k10"]))
    t = _suite(world, tmp_path).targets[0]
    with pytest.raises(VidsmeError, match="unique"):
        check_suite(_suite(world, tmp_path, targets=[t, t]))
    with pytest.raises(VidsmeError, match="unknown slice"):
        check_suite(_suite(world, tmp_path, slices=["answr"]))


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def uninterrupted(world, tmp_path_factory):
    """The reference run: one process, never interrupted, through the CLI."""
    out = tmp_path_factory.mktemp("whole")
    cfg = _write_yaml(_suite(world, out, attacks=[], plots=True, blind_baseline=True), out / "suite.yaml")
    assert main(["benchmark", str(cfg), "--quiet"]) == 0
    return out


def test_end_to_end_through_the_cli(uninterrupted, world):
    from vidsme.attack.registry import list_attacks

    results = json.loads((uninterrupted / "results" / "results.json").read_text())
    (target,) = results["targets"]
    assert target["n_rows"] == {"member": 6, "nonmember": 6} and target["excluded"]["n_rows"] == 0
    assert target["split"]["manifest_sha256"] == world["split"].card.manifest_sha256
    assert results["provenance"]["libraries"]["torch"] and "git_commit" in results["provenance"]
    rows = results["rows"]
    # one question per video: the row and video levels are the same numbers, evaluated once
    assert target["levels"] == ["row=video"]
    assert {(r["kind"], r["level"]) for r in rows} == {("reproduced", "row=video"), ("blind", "row=video")}
    # every configuration on both halves of the partition, recorded in the target entry
    assert {r["partition"] for r in rows} == {"dev", "test"}
    configs = {}
    for r in rows:
        configs.setdefault((r["attack"], r["slice"], r["level"], r["n_frames"]), []).append(r["partition"])
    assert all(sorted(p) == ["dev", "test"] for p in configs.values())
    part = target["partition"]
    assert part["seed"] == 0 and part["dev"]["videos"] == {"member": 3, "nonmember": 3}
    assert part["test"]["videos"] == {"member": 3, "nonmember": 3}
    # 3 non-members per half resolve no TPR: null, with the reason
    assert all(r["tpr@5%fpr"]["value"] is None and "needs ≥ 200 non-members (has 3)" == r["tpr@5%fpr"]["reason"]
               for r in rows)
    applicable = {(s.name, sl) for s in list_attacks() for sl in ("video", "instruction", "answer") if s.applies_to(sl)}
    ran = {(r["attack"], r["slice"]) for r in rows if r["kind"] == "reproduced"}
    assert ran == applicable  # every registered attack on every slice it is defined on
    for r in rows:
        assert 0.0 <= r["auc"]["ci_low"] <= r["auc"]["value"] <= r["auc"]["ci_high"] <= 1.0
    # per-sample scores: the CSV's test rows reproduce the reported test AUC and its CI (videos resampled)
    from vidsme.metrics import evaluate_scores

    loss = next(r for r in rows if r["attack"] == "loss" and r["slice"] == "answer" and r["partition"] == "test")
    lines = (uninterrupted / "results" / loss["scores_file"]).read_text().splitlines()
    header = lines[0].split(",")
    assert header[:4] == ["sample_id", "video", "label", "partition"]
    col = header.index(loss["scores_column"])
    table = [t for t in (line.split(",") for line in lines[1:]) if t[3] == "test"]
    scores = np.array([float(t[col]) for t in table])
    labels = np.array([int(t[2]) for t in table])
    again = evaluate_scores(scores, labels, direction=loss["direction"], attack="loss",
                            sample_ids=[t[0] for t in table], n_bootstrap=50, clusters=[t[1] for t in table])
    assert (again.auc.value, again.auc.ci_low, again.auc.ci_high) == tuple(loss["auc"][k] for k in
                                                                           ("value", "ci_low", "ci_high"))
    # the verdicts: one dev-selected, test-reported entry per method, with a rank band
    (verdict,) = results["verdicts"]["targets"]
    methods = [e["method"] for e in verdict["entries"]]
    assert "blind baseline" in methods and "vid_sme" in methods and len(methods) == len(set(methods))
    assert all(e["partition"] == "test" and e["selected_on"] == "dev" and e["rank_band"] for e in verdict["entries"])
    assert verdict["primary_metric"] == "auc" and "1000" in verdict["why"]
    plots = uninterrupted / "results" / "plots" / "t"
    assert (plots / "f4-answer-row=video-roc.png").is_file() and (plots / "qr-f4.png").is_file()
    assert (plots / "f4-row=video-hist.png").is_file()
    for name in ("leaderboard.json", "leaderboard.md", "leaderboard.html"):
        assert (uninterrupted / "results" / name).is_file()
    # the video-tied check, at the sweep's frame count, on the target's record and its leaderboard section
    tied = target["video_tied"]
    assert tied["n_frames"] == 4 and tied["slice"] == "answer" and tied["attack"] == "loss"
    assert tied["derangement"] == {"within": "label", "seed": 0} and isinstance(tied["video_tied"], bool)
    every = [line.split(",") for line in lines[1:]]  # own videos: the loss attack's answer scores, dev and test
    own = evaluate_scores(np.array([float(t[col]) for t in every]), np.array([int(t[2]) for t in every]),
                          direction="lower", attack="loss", sample_ids=[t[0] for t in every], n_bootstrap=50)
    assert tied["auc_own"]["value"] == pytest.approx(own.auc.value, abs=1e-12)
    assert "video-tied: " in (uninterrupted / "results" / "leaderboard.md").read_text()


def test_a_rerun_reuses_the_cache_and_gives_identical_results(uninterrupted, world, tmp_path):
    cfg = _suite(world, uninterrupted, attacks=[], plots=False, blind_baseline=True,
                 output_dir=tmp_path / "again")
    cache = next((uninterrupted / "cache" / "features").iterdir())
    before = {p: p.stat().st_mtime_ns for p in cache.glob("shard-*")}
    path = run_suite(cfg, progress=False)
    assert {p: p.stat().st_mtime_ns for p in cache.glob("shard-*")} == before  # nothing re-extracted
    assert _metrics(path) == _metrics(uninterrupted / "results" / "results.json")


def test_changing_beta1_invalidates_the_cache(world, tmp_path):
    base = run_suite(_suite(world, tmp_path, attacks=["vid_sme_mean"]), progress=False)
    changed = run_suite(_suite(world, tmp_path, attacks=["vid_sme_mean"], beta1=0.5,
                               output_dir=tmp_path / "b1"), progress=False)
    folders = sorted((tmp_path / "cache" / "features").iterdir())
    assert len(folders) == 2
    keys = [json.loads((f / "key.json").read_text()) for f in folders]
    assert sorted(k["beta1"] for k in keys) == [0.5, 1.0]
    a, b = (json.loads(Path(p).read_text())["rows"][0]["auc"] for p in (base, changed))
    ids = [r["id"] for r in world["split"].rows()]
    first, second = (FeatureCache.from_folder(f).read(ids)[0].token["video"]["natural.sharma_mittal"]
                     for f in folders)
    assert not torch.equal(first, second) and a is not None and b is not None


def test_missing_view_is_reported_with_the_command_that_extracts_it(world, tmp_path):
    path = run_suite(_suite(world, tmp_path, reference_view=False, attacks=["loss", "ref_calibration"]),
                     progress=False)
    results = json.loads(Path(path).read_text())
    skipped = [s for s in results["skipped"] if s["attack"] == "ref_calibration"]
    assert len(skipped) == 3 and "reference.target_logprob" in skipped[0]["reason"]
    assert "reference_view=true" in skipped[0]["reason"]
    assert {r["attack"] for r in results["rows"]} == {"loss"}


# ----------------------------------------------------------------------------- robustness
def _env(world) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR",
                                                           "MASTER_PORT")}
    env.update({SPLITS_DIR_ENV: str(world["root"] / "splits"), "OMP_NUM_THREADS": "1"})
    return env


@pytest.mark.integration
def test_kill_during_extraction_then_rerun_gives_identical_results(world, uninterrupted, tmp_path):
    cfg = _write_yaml(_suite(world, tmp_path, attacks=[], blind_baseline=True, batch_size=2), tmp_path / "s.yaml")
    cmd = [sys.executable, "-m", "vidsme.cli", "benchmark", str(cfg), "--quiet"]
    proc = subprocess.Popen(cmd, env=_env(world), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    features = tmp_path / "cache" / "features"
    deadline = time.time() + 300
    while time.time() < deadline and not list(features.glob("*/shard-000001.json")):
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    shards = list(features.glob("*/shard-*.json"))
    assert 1 <= len(shards) < 6, "the kill should land mid-extraction (6 batches of 2)"
    resumed = subprocess.run(cmd, env=_env(world), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # batch size differs from the uninterrupted run's (2 vs 4), so compare against a clean batch-2 run
    clean = run_suite(_suite(world, tmp_path / "clean", attacks=[], blind_baseline=True, batch_size=2),
                      progress=False)
    assert _metrics(tmp_path / "results" / "results.json") == _metrics(clean)


@pytest.mark.integration
def test_two_processes_shard_extraction_like_one(world, uninterrupted, tmp_path):
    import socket

    cfg = _write_yaml(_suite(world, tmp_path, attacks=[], blind_baseline=True), tmp_path / "s.yaml")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(2):
        env = dict(_env(world), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable, "-m", "vidsme.cli", "benchmark", str(cfg), "--quiet"],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    assert results["provenance"]["world_size"] == 2
    assert _metrics(tmp_path / "results" / "results.json") == _metrics(uninterrupted / "results" / "results.json")


def test_a_corrupt_video_stops_the_run_unless_exclusions_are_allowed(world, tmp_path):
    # a copy of the videos with one file broken: the other tests keep theirs
    videos = tmp_path / "videos"
    shutil.copytree(world["videos"], videos)
    rows = world["split"].rows()
    bad = rows[3]
    (videos / bad["video"]).write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    target = SuiteTarget(name="t", path=world["target"], split="synth-mcqa", video_root=videos,
                         reference=world["reference"])
    with pytest.raises(VidsmeError, match=rf"{bad['id']}.*allow_exclusions=true"):
        run_suite(_suite(world, tmp_path, targets=[target]), progress=False)
    path = run_suite(_suite(world, tmp_path, targets=[target], allow_exclusions=True), progress=False)
    results = json.loads(Path(path).read_text())
    excluded = results["targets"][0]["excluded"]
    lost = [r["id"] for r in rows if r["video"] == bad["video"]]
    assert excluded["rows"] == lost and excluded["videos"] == [bad["video"]] and excluded["n_rows"] == len(lost)
    n = results["targets"][0]["n_rows"]
    assert n["member"] + n["nonmember"] == len(rows) - len(lost)


def test_shipped_suites_load_and_name_existing_splits(monkeypatch):
    from vidsme.config import load_config
    from vidsme.data_splits.registry import known_split_names

    monkeypatch.delenv(SPLITS_DIR_ENV, raising=False)  # the shipped splits, not a test's temp folder
    root = Path(__file__).resolve().parents[1] / "configs" / "suites"
    for path in sorted(root.glob("*.yaml")):
        assert path.read_text().splitlines()[1].startswith("# Launch:"), f"{path}: header must say how to launch it"
        cfg = load_config(SuiteConfig, path)
        check_suite(cfg)
        assert all(t.split in known_split_names() for t in cfg.targets), path
    paper = load_config(SuiteConfig, root / "paper.yaml", ["targets.1.path=/ckpt/nextqa"])
    assert paper.template == "reference" and paper.targets[1].path == Path("/ckpt/nextqa")


def test_reversing_processed_frames_equals_processing_reversed_frames(world):
    """LLaVA families process frames one by one, so the reversed view can reuse the natural one."""
    from vidsme.train.families import reversed_video_inputs, video_inputs
    from vidsme.video import read_frames

    model = load_model(world["target"])
    frames = read_frames(world["videos"] / world["split"].rows()[0]["video"], 4)
    natural = video_inputs(model.config, model.processor, frames)
    fast = reversed_video_inputs(model.config, model.processor, frames, natural)
    slow = video_inputs(model.config, model.processor, np.ascontiguousarray(frames[::-1]))
    assert fast.token_ids == slow.token_ids and fast.frame_slot == slow.frame_slot
    assert torch.equal(fast.model_kwargs["pixel_values_videos"], slow.model_kwargs["pixel_values_videos"])


def test_a_finished_suite_is_not_re_evaluated(world, tmp_path, capsys):
    """Same suite, code, models and splits: results.json is kept as it is (submissions included)."""
    target = tmp_path / "target"
    shutil.copytree(world["target"], target)
    (target / "target.json").write_text(json.dumps({"name": "t", "strategy": "full"}))
    t = SuiteTarget(name="t", path=target, split="synth-mcqa", reference=world["reference"])
    cfg = _suite(world, tmp_path, targets=[t], attacks=["loss"])
    path = run_suite(cfg, progress=False)
    stamp = path.stat().st_mtime_ns
    assert run_suite(cfg, progress=False) == path and path.stat().st_mtime_ns == stamp
    assert "up to date" in capsys.readouterr().out
    (target / "target.json").write_text(json.dumps({"name": "t", "strategy": "full", "retrained": True}))
    run_suite(cfg, progress=False)  # a new model: evaluated again
    assert path.stat().st_mtime_ns != stamp


def test_bad_suite_inputs_are_named(world, tmp_path):
    with pytest.raises(VidsmeError, match="frame_counts must be distinct positive integers"):
        check_suite(_suite(world, tmp_path, frame_counts=[8, 8]))
    with pytest.raises(VidsmeError, match="unknown prompt template 'refrence'"):
        check_suite(_suite(world, tmp_path, template="refrence"))
    with pytest.raises(VidsmeError, match=r"not a Hugging Face model directory \(no config.json\)"):
        load_model(tmp_path)
    # a card naming a base that is not there: say where, and how to go on without it
    target = tmp_path / "target"
    shutil.copytree(world["target"], target)
    (target / "target.json").write_text(json.dumps({"name": "t", "base": {"path": str(tmp_path / "gone")}}))
    t = SuiteTarget(name="t", path=target, split="synth-mcqa")
    with pytest.raises(VidsmeError, match=r"names base model .*gone.*reference_view=false"):
        run_suite(_suite(world, tmp_path, targets=[t]), progress=False)
