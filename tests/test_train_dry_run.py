"""`vidsme train target|base CONFIG --dry-run`: parameters, memory, tokens, steps and what is missing,
from configs alone (meta device), on CPU, writing nothing."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from vidsme.cli import main
from vidsme.config import load_config
from vidsme.data_splits.build import build_synthetic_split
from vidsme.paths import SPLITS_DIR_ENV
from vidsme.errors import VidsmeError
from vidsme.train import dry_run as dr
from vidsme.train.config import BaseConfig, DataConfig, OptimConfig, TargetConfig
from vidsme.train.loop import trainable_counts
from vidsme.train.tiny_model import build_tiny_vullm, make_tiny_vullm, tokenizer_corpus
from tiny_configs import TINY

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny pool and split with their videos, and a tiny base built on them (splits in a temp dir)."""
    root = tmp_path_factory.mktemp("train-dry")
    mp = pytest.MonkeyPatch()
    mp.setenv(SPLITS_DIR_ENV, str(root / "splits"))
    mp.chdir(REPO)  # configs name configs/deepspeed/*.json and configs/models/ relative to the repository
    videos = root / "videos"
    pool, _ = build_synthetic_split("synth-pretrain", videos, n_videos=4, progress=False)
    split, _ = build_synthetic_split("synth-mcqa", videos, n_videos=8, progress=False)
    base = build_tiny_vullm(TINY, tokenizer_corpus(split.rows()), root / "base")
    yield {"root": root, "videos": videos, "pool": pool, "split": split, "base": base}
    mp.undo()


def _target(world, tmp_path: Path, strategy: str = "full", **data) -> TargetConfig:
    settings = {"split": "synth-mcqa", "video_root": world["videos"], "n_frames": 4, "max_text_tokens": 256, **data}
    return TargetConfig(name=f"t-{strategy}", base=world["base"], output_dir=tmp_path / "out", strategy=strategy,
                        data=DataConfig(**settings), optim=OptimConfig(micro_batch_size=2, epochs=1))


def test_the_7b_config_prints_its_table_in_well_under_a_minute_and_lists_what_is_missing(world, tmp_path, capsys):
    config = REPO / "configs" / "targets" / "mcqa-full-7b.yaml"
    start = time.perf_counter()
    code = main(["train", "target", str(config), f"data.video_root={tmp_path / 'videos'}",
                 f"output_dir={tmp_path / 'out'}", "--dry-run", "--world-size", "8"])
    seconds = time.perf_counter() - start
    out = capsys.readouterr().out
    assert code == 1 and seconds < 45, (seconds, out)
    # LLaVA-OneVision-Qwen2-7B from configs/models/ (no weights): 8.03B = Qwen2-7B 7.62B + SigLIP 0.40B + projector
    assert "architecture: configs/models/llava-onevision-qwen2-7b-ov-hf.json" in out
    for group, total, trainable in (("vision_tower", "397,747,744", "0"), ("projector", "16,984,576", "16,984,576"),
                                    ("language_model", "7,616,075,264", "7,616,075,264"),
                                    ("all", "8,030,807,584", "7,633,059,840")):
        assert [group, total, trainable] == next(line.split()[:3] for line in out.splitlines()
                                                 if line.split()[:1] == [group]), out
    assert "ZeRO-3 (configs/deepspeed/zero3.json), bf16, AdamW, world size 8 = 1 node(s) x 8 GPU(s)" in out
    assert "17.86 GiB   vidsme's accounting" in out and "DeepSpeed's estimate:" in out and "estimate_zero3" in out
    assert "activations are NOT estimated" in out
    assert "16 frames x 196 video tokens + 1 separator = 3,137 video tokens, + up to 512 text tokens" in out
    members = sum(r["label"] == "member" for r in world["split"].rows())
    assert (f"steps: {members} samples / (micro batch 1 x grad accum 4 x world 8 = 32 per step) = 0 steps per "
            "epoch") in out
    assert "MISSING: base /path/to/llava-onevision-qwen2-7b-ov-hf does not exist on this machine" in out
    assert f"MISSING: video root {tmp_path / 'videos'} does not exist (" in out
    assert "fewer than one optimizer step" in out  # the tiny test split at world size 8
    assert not (tmp_path / "out").exists() and "Traceback" not in out


def test_a_tiny_target_with_its_split_and_base_is_ready(world, tmp_path, capsys):
    path = tmp_path / "t.yaml"
    path.write_text(f"name: t\nbase: {world['base']}\noutput_dir: {tmp_path / 'out'}\nstrategy: lora\n"
                    f"data:\n  split: synth-mcqa\n  video_root: {world['videos']}\n  n_frames: 4\n"
                    "optim:\n  micro_batch_size: 2\n", encoding="utf-8")
    assert main(["train", "target", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    videos = len({r["video"] for r in world["split"].rows()})
    assert f"videos: {videos} of {videos} present under {world['videos']}; all {videos} decoded, {videos} decode" in out
    assert "the weight files hold a tensor of the right shape for" in out and "the longest prompt has" in out
    assert "DeepSpeed's estimators assume 16-bit mixed precision" in out and out.rstrip().endswith("nothing missing")
    assert not (tmp_path / "out").exists()


class _Trained(Exception):
    """Raised in place of training: carries what finetune_target set trainable."""


@pytest.mark.parametrize("strategy", ["full", "lora", "projector"])
def test_trainable_counts_are_what_finetune_target_sets(world, tmp_path, monkeypatch, strategy):
    from vidsme.train import recipes

    cfg = _target(world, tmp_path, strategy)
    report = dr.dry_run_target(cfg)
    assert report.ok, report.format()

    def stop(model, *args, **kwargs):
        raise _Trained(trainable_counts(model))

    monkeypatch.setattr(recipes, "run_training", stop)  # the real strategy setup on the real model, no training
    with pytest.raises(_Trained) as trained:
        recipes.finetune_target(cfg)
    assert report.figures["counts"] == trained.value.args[0]
    assert not (tmp_path / "out").exists()


def test_missing_and_undecodable_videos_are_listed(world, tmp_path):
    videos = tmp_path / "videos"
    shutil.copytree(world["videos"], videos)
    members = sorted({r["video"] for r in world["split"].rows() if r["label"] == "member"})
    (videos / members[0]).unlink()
    (videos / members[1]).write_bytes(b"not a video")
    report = dr.dry_run_target(_target(world, tmp_path, video_root=videos))
    assert not report.ok
    problems = "\n".join(report.problems)
    assert f"videos missing under {videos}: {members[0]}" in problems
    decoded = len({r["video"] for r in world["split"].rows()}) - 1
    assert f"1 of {decoded} decoded videos do not decode: {members[1]} (" in problems


def test_quick_decodes_a_seeded_sample(world, tmp_path, monkeypatch):
    from vidsme.data_splits import verify

    decoded: list[str] = []
    real = verify.decode_error
    monkeypatch.setattr(verify, "decode_error", lambda path, **kw: decoded.append(path.name) or real(path, **kw))
    monkeypatch.setattr(dr, "QUICK_SAMPLE", 3)
    first = dr.dry_run_target(_target(world, tmp_path), quick=True)
    assert len(decoded) == 3 and "a sample of 3 (seed 0, --quick) decoded, 3 decode" in "\n".join(first.lines)
    again = list(decoded)
    decoded.clear()
    dr.dry_run_target(_target(world, tmp_path), quick=True)
    assert decoded == again  # seeded: the same sample


def test_base_dry_run_counts_the_model_pretraining_builds(world, tmp_path):
    cfg = BaseConfig(name="b", output_dir=tmp_path / "base",
                     data=DataConfig(split="synth-pretrain", video_root=world["videos"], n_frames=4), model=TINY,
                     optim=OptimConfig(micro_batch_size=2))
    report = dr.dry_run_base(cfg)
    assert report.ok, report.format()
    from vidsme.train.families import parameter_counts

    real, _ = make_tiny_vullm(TINY, tokenizer_corpus(world["pool"].rows()))
    expected = {g: {"total": n, "trainable": n} for g, n in parameter_counts(real).items()}
    assert report.figures["counts"] == {**expected, "lora": {"total": 0, "trainable": 0}}
    assert not (tmp_path / "base").exists()


def test_base_dry_run_counts_the_tower_stage_and_the_opening(world, tmp_path):
    from vidsme.train.config import OpeningConfig, TowerStageConfig

    data = DataConfig(split="synth-pretrain", video_root=world["videos"], n_frames=4)
    cfg = BaseConfig(name="b", output_dir=tmp_path / "base", data=data, model=TINY,
                     optim=OptimConfig(micro_batch_size=2, max_steps=9, schedule="cosine"),
                     tower=TowerStageConfig(steps=5, videos=4), opening=OpeningConfig(steps=3, kinds=("colour",)))
    report = dr.dry_run_base(cfg)
    text = report.format()
    assert report.ok, text
    assert report.figures["counts"]["vision_tower"]["trainable"] == 0  # the tower stage froze it
    assert "tower stage first: 5 steps" in text and "an opening of 3 steps over 4 rows" in text  # 1 colour row a video
    assert "optim.max_steps: 9 steps in all" in text and "lr schedule cosine" in text
    bad = BaseConfig(name="b", output_dir=tmp_path / "base", data=data, model=TINY, optim=OptimConfig(micro_batch_size=2),
                     opening=OpeningConfig(steps=3, kinds=("colours",)))
    problems = dr.dry_run_base(bad).problems
    assert [p for p in problems if "opening" in p] == [next(p for p in problems if "unknown perception kind" in p)]


def test_the_paper_target_configs(world, tmp_path, monkeypatch):
    monkeypatch.delenv(SPLITS_DIR_ENV)  # the committed paper splits
    arch = world["base"] / "config.json"  # a small architecture: this test is about the configs and splits
    expected = {"paper-cinepile-full-7b": ("paper-cinepile", "full"), "paper-nextqa-lora-7b": ("paper-nextqa", "lora"),
                "paper-caption-projector-7b": ("paper-caption", "projector")}
    for name, (split, strategy) in expected.items():
        cfg = load_config(TargetConfig, REPO / "configs" / "targets" / f"{name}.yaml")
        assert (cfg.name, cfg.data.split, cfg.strategy, cfg.data.n_frames) == (name, split, strategy, 16)
        assert (cfg.engine.deepspeed, cfg.engine.precision) == (Path("configs/deepspeed/zero3.json"), "bf16")
        report = dr.dry_run_target(cfg, architecture=arch, quick=True)
        problems = "\n".join(report.problems)
        assert "does not exist on this machine" in problems and f"video root {cfg.data.video_root} does not" in problems
        assert "cannot be written with template" not in problems and report.figures.get("counts") is not None
        incomplete = f"split {split!r} is incomplete" in problems
        assert incomplete == (split == "paper-caption"), problems


def test_unknown_split_and_missing_architecture_are_problems_not_crashes(world, tmp_path):
    report = dr.dry_run_target(_target(world, tmp_path, split="synth-mcq"))
    assert "unknown split 'synth-mcq'. Did you mean: synth-mcqa" in "\n".join(report.problems)
    cfg = _target(world, tmp_path, "lora")
    report = dr.dry_run_target(TargetConfig(**{**cfg.__dict__, "train_vision_tower": True,
                                               "optim": OptimConfig(micro_batch_size=2, warmup_steps=50)}))
    lines = "\n".join(report.lines)
    assert "train_vision_tower is not used with strategy lora" in lines and "never reaches optim.lr" in lines
    assert report.ok  # notes, not problems
    cfg = TargetConfig(name="x", base=tmp_path / "nowhere", output_dir=tmp_path / "out", strategy="full",
                       data=DataConfig(split="synth-mcqa", video_root=world["videos"]))
    report = dr.dry_run_target(cfg)
    assert report.figures.get("counts") is None and "pass --architecture FILE" in "\n".join(report.problems)


def test_memory_accounting_matches_deepspeeds_for_zero2_with_everything_trainable(monkeypatch):
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    total = 8_030_807_584
    _, gpu = estimate_zero2_model_states_mem_needs(total, num_gpus_per_node=8, cpu_offload=False)
    ours = dr.model_state_bytes(total, total, stage=2, world=8, bf16=True)
    assert abs(ours["total"] - gpu) <= 1
    frozen = dr.model_state_bytes(total, 0, stage=3, world=8, bf16=True)
    assert frozen == {"parameters": total * 2 / 8, "gradients": 0, "optimizer": 0, "total": total * 2 / 8}
    monkeypatch.setenv("WORLD_SIZE", "16")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert dr.world_layout(None, None) == (16, 8, 2) and dr.world_layout(4, None) == (4, 4, 1)
    with pytest.raises(VidsmeError, match="not a multiple"):
        dr.world_layout(12, 8)


def test_dry_run_flags_need_dry_run(capsys):
    assert main(["train", "target", "configs/targets/mcqa-full.yaml", "--quick"]) == 2
    assert "--quick only apply with --dry-run" in capsys.readouterr().err
