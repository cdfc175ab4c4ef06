"""`vidsme benchmark SUITE --dry-run`: what is missing, before any weight is loaded or video decoded."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from vidsme.benchmark.config import SuiteConfig, SuiteTarget
from vidsme.benchmark.dry_run import dry_run
from vidsme.errors import VidsmeError
from vidsme.model_files import count
from vidsme.benchmark.suite import run_suite
from vidsme.cli import main
from vidsme.config import config_to_dict
from vidsme.data_splits.build import build_synthetic_split
from vidsme.paths import SPLITS_DIR_ENV
from vidsme.train.tiny_model import build_tiny_vullm, tokenizer_corpus
from tiny_configs import TINY

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("dry")
    mp = pytest.MonkeyPatch()
    mp.setenv(SPLITS_DIR_ENV, str(root / "splits"))
    split, _ = build_synthetic_split("synth-mcqa", root / "videos", n_videos=8, progress=False)
    target = build_tiny_vullm(TINY, tokenizer_corpus(split.rows()), root / "target")
    yield {"root": root, "videos": root / "videos", "split": split, "target": target}
    mp.undo()


def _suite(world, out: Path, target: Path | None = None, video_root: Path | None = None) -> SuiteConfig:
    return SuiteConfig(name="tiny", output_dir=out / "results", cache_dir=out / "cache", frame_counts=[4],
                       targets=[SuiteTarget(name="t", path=target or world["target"], split="synth-mcqa",
                                            video_root=video_root)],
                       n_bootstrap=20, batch_size=4, attacks=["loss"], plots=False, blind_baseline=False,
                       reference_view=False, stats_workers=1)


def test_the_shipped_paper_suite_lists_every_missing_checkpoint_and_video_root(monkeypatch, capsys):
    monkeypatch.delenv(SPLITS_DIR_ENV, raising=False)  # the committed paper splits
    assert main(["benchmark", str(REPO / "configs" / "suites" / "paper.yaml"), "--dry-run"]) == 1
    out = capsys.readouterr().out
    for name, videos in (("cinepile", 851), ("nextqa", 4501)):
        assert f"target {name}: NOT READY" in out
        assert f"MISSING: target model runs/models/paper-{name}-" in out and "-7b does not exist" in out
        assert f"({videos} videos expected)" in out
    assert "not ready: the run would make" in out and "fix the 4 problem(s)" in out
    assert "Traceback" not in out
    # each target's split verdict, from its card, and a warning where a model-free classifier solves it
    assert out.count("split audit: LEAKY") == 2 and out.count("WARNING: a model-free classifier") == 2


def test_a_ready_suite_then_the_cache_counts(world, tmp_path, capsys):
    cfg = _suite(world, tmp_path)
    found = dry_run(cfg)
    report, ok = found.format(), found.ok
    assert ok, report
    assert "target t: ready" in report and "videos: 8 of 8 present" in report
    assert "0 of 8 rows cached; 2 batches to extract" in report and "would make 2 forward passes" in report
    assert "the weight files hold a tensor of the right shape for each of its" in report
    run_suite(cfg, progress=False)
    found = dry_run(cfg)
    report, ok = found.format(), found.ok
    assert ok and "8 of 8 rows cached; 0 batches" in report and "would make 0 forward passes" in report
    # through the CLI: exit 0, nothing written
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(_suite(world, tmp_path / "cli"))), encoding="utf-8")
    assert main(["benchmark", str(path), "--dry-run"]) == 0
    assert not (tmp_path / "cli").exists()


def test_missing_videos_and_misfit_weights_are_listed(world, tmp_path):
    videos = tmp_path / "videos"
    shutil.copytree(world["videos"], videos)
    gone = world["split"].rows()[2]["video"]
    (videos / gone).unlink()
    found = dry_run(_suite(world, tmp_path, video_root=videos))
    report, ok = found.format(), found.ok
    assert not ok and f"1 of 8 videos missing under {videos}: {gone}" in report
    # weights of another architecture under this config: a parameter finds no tensor of its shape
    target = tmp_path / "target"
    shutil.copytree(world["target"], target)
    config = json.loads((target / "config.json").read_text())
    config["text_config"]["intermediate_size"] = 96
    (target / "config.json").write_text(json.dumps(config))
    found = dry_run(_suite(world, tmp_path, target=target))
    report, ok = found.format(), found.ok
    assert not ok and "the weight files do not fit config.json" in report and "[96, 32]" in report


def test_parameter_counts_read_well():
    assert [count(n) for n in (950, 29_056, 1_210_000, 7_615_616_512)] == ["950", "29.1K", "1.21M", "7.62B"]


# ----------------------------------------------------------------------------- frame counts that make no sense
def test_a_frame_count_above_the_longest_video_is_refused_before_anything_loads(world, tmp_path, monkeypatch):
    import dataclasses

    from vidsme.benchmark import suite as suite_module

    assert world["split"].card.frames == {"min": 24, "max": 24, "longest": world["split"].card.frames["longest"]}
    monkeypatch.setattr(suite_module, "load_target_models", lambda *a, **k: pytest.fail("a model was loaded"))
    cfg = dataclasses.replace(_suite(world, tmp_path), frame_counts=[100000])
    with pytest.raises(VidsmeError) as err:
        run_suite(cfg, progress=False)
    text = str(err.value)
    assert f"more than the 24 of the split's longest video ({world['split'].card.frames['longest']}" in text
    assert "allow_repeated_frames=true" in text
    assert "video tokens, over the language model's max_position_embeddings" in text  # 100000 frames
    assert not (tmp_path / "results").exists() and not (tmp_path / "cache").exists()


def test_the_dry_run_reports_repeated_frames_and_video_tokens(world, tmp_path):
    import dataclasses

    report = dry_run(dataclasses.replace(_suite(world, tmp_path), frame_counts=[4, 64]))
    text = report.format()
    assert not report.ok and "64 frames are more than the 24 of the split's longest video" in text
    assert re.search(r"4 frames: \d+ video tokens of the model's [\d,]+ positions", text), text
    allowed = dry_run(dataclasses.replace(_suite(world, tmp_path), frame_counts=[64], allow_repeated_frames=True))
    assert "(allowed: allow_repeated_frames=true)" in allowed.format()
