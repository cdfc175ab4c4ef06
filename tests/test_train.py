"""Training: prompts and labels, strategies touch exactly their parameters, members only, CLI."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from vidsme.config import load_config
from vidsme.data_splits.build import build_synthetic_split
from vidsme.paths import SPLITS_DIR_ENV
from vidsme.prompts import IGNORE_INDEX, encode_prompt
from vidsme.train.config import DataConfig, OptimConfig, TargetConfig
from vidsme.train.families import module_groups
from vidsme.train.loop import apply_lora, make_dataset, run_training, set_trainable
from vidsme.train.tiny_model import build_tiny_vullm, load_tiny_vullm, tokenizer_corpus
from tiny_configs import TINY

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny synthetic split (members + non-members) and a tiny base built on a tiny pool."""
    root = tmp_path_factory.mktemp("train")
    mp = pytest.MonkeyPatch()
    mp.setenv(SPLITS_DIR_ENV, str(root / "splits"))
    videos = root / "videos"
    pool, _ = build_synthetic_split("synth-pretrain", videos, n_videos=4, progress=False)
    split, _ = build_synthetic_split("synth-oeqa", videos, n_videos=8, progress=False)
    base = build_tiny_vullm(TINY, tokenizer_corpus(pool.rows() + split.rows()), root / "base")
    yield {"root": root, "videos": videos, "split": split, "base": base}
    mp.undo()


def _data(world) -> DataConfig:
    return DataConfig(split="synth-oeqa", video_root=world["videos"], n_frames=4, max_text_tokens=160)


def test_prompt_slices_and_answer_only_labels(world):
    model, processor = load_tiny_vullm(world["base"])
    row = world["split"].rows()[0]
    tok = processor.tokenizer
    enc = encode_prompt(tok, row, "default", [model.config.video_token_index] * 5, [0, 0, 1, 1, -1])
    (v0, v1), (i0, i1), (a0, a1) = enc.slices["video"], enc.slices["instruction"], enc.slices["answer"]
    assert enc.input_ids[v0:v1] == [model.config.video_token_index] * 5 and v1 - v0 == 5
    assert tok.decode(enc.input_ids[i0:i1]) == f"Question: {row['question']}"
    assert tok.decode(enc.input_ids[a0:a1]) == row["answer"]
    trained = [i for i, label in enumerate(enc.labels) if label != IGNORE_INDEX]
    assert trained[: a1 - a0] == list(range(a0, a1))  # the answer ...
    assert tok.decode([enc.input_ids[i] for i in trained[a1 - a0 :]]) == "<|im_end|>"  # ... and its end token
    with pytest.raises(Exception, match=rf"{row['id']}.*max_length"):
        encode_prompt(tok, row, "default", [model.config.video_token_index] * 5, [0] * 5, max_length=10)


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _groups_by_name(model) -> dict[str, str]:
    return {name: group for group, params in module_groups(model).items() for name, _ in params}


@pytest.mark.parametrize("strategy", ["full", "projector", "lora"])
def test_each_strategy_changes_exactly_its_parameters(world, strategy):
    model, processor = load_tiny_vullm(world["base"])
    members = [r for r in world["split"].rows() if r["label"] == "member"]
    nonmember_ids = {r["id"] for r in world["split"].rows() if r["label"] == "nonmember"}
    before = _snapshot(model)
    group_of = _groups_by_name(model)
    if strategy == "lora":
        trained_model = apply_lora(model, TargetConfig.__dataclass_fields__["lora"].default_factory(), False)
    else:
        set_trainable(model, {"full": ["language_model", "projector"], "projector": ["projector"]}[strategy])
        trained_model = model
    dataset = make_dataset(members, processor, model.config, _data(world))
    optim = OptimConfig(lr=1e-2, epochs=1, micro_batch_size=2)
    _, result = run_training(trained_model, dataset, optim, load_config(TargetConfig, None, [
        "name=t", "base=x", "output_dir=y", "strategy=full", "data.split=s"]).engine,
        seed=0, pad_token_id=processor.tokenizer.pad_token_id, desc="test")
    assert set(result.trained_ids) <= {r["id"] for r in members}
    assert not set(result.trained_ids) & nonmember_ids
    base = trained_model.get_base_model() if strategy == "lora" else trained_model
    after = {n.replace(".base_layer", ""): p for n, p in base.named_parameters() if "lora_" not in n}
    changed = {group_of[n] for n, p in after.items() if not torch.equal(p, before[n])}
    unchanged = {group_of[n] for n, p in after.items() if torch.equal(p, before[n])}
    expected = {"full": {"language_model", "projector"}, "projector": {"projector"}, "lora": set()}[strategy]
    assert changed == expected, changed
    assert "vision_tower" in unchanged
    if strategy == "lora":
        lora = [p for n, p in trained_model.named_parameters() if "lora_B" in n]
        assert lora and any(p.abs().sum() > 0 for p in lora)  # adapters did learn
        adapted = [n for n, _ in trained_model.named_parameters() if "lora_" in n]
        assert all("language_model" in n for n in adapted)  # no adapter on vision or projector


def test_target_cli_writes_a_card(world, tmp_path, capsys):
    from transformers.utils import logging as hf_logging

    from vidsme.cli import main

    cfg = tmp_path / "t.yaml"
    cfg.write_text(
        f"name: tiny-target\nbase: {world['base']}\noutput_dir: {tmp_path / 'out'}\nstrategy: full\n"
        f"data:\n  split: synth-oeqa\n  video_root: {world['videos']}\n  n_frames: 4\n  max_text_tokens: 160\n"
        f"  heldout_nonmembers: 4\noptim:\n  epochs: 1\n  micro_batch_size: 2\n"
        f"engine:\n  deepspeed: {ROOT / 'configs/deepspeed/zero2.json'}\n")
    try:
        assert main(["train", "target", str(cfg), "optim.lr=5e-3", "--quiet"]) == 0
    finally:
        hf_logging.enable_progress_bar()  # --quiet silenced transformers' bars for this process
    assert "train tiny-target" not in capsys.readouterr().err  # --quiet: no training bar
    card = json.loads((tmp_path / "out" / "target.json").read_text())
    assert card["strategy"] == "full" and card["config"]["optim"]["lr"] == 5e-3
    assert card["split"]["manifest_sha256"] == world["split"].card.manifest_sha256
    assert card["n_trained_samples"] == 8 and card["n_heldout_nonmembers"] == 4
    assert card["trainable_parameters"]["vision_tower"]["trainable"] == 0
    for key in ("trained_ids_sha256", "final_train_loss", "loss_heldout_nonmembers", "git_commit", "libraries",
                "base"):
        assert card[key] is not None, key
    assert main(["train", "target", str(cfg), "optim.lr_rate=5e-3"]) == 2  # typo: did-you-mean, exit 2
    mtime = (tmp_path / "out" / "target.json").stat().st_mtime_ns
    assert main(["train", "target", str(cfg), "optim.lr=5e-3"]) == 0  # same config: reused, not retrained
    assert (tmp_path / "out" / "target.json").stat().st_mtime_ns == mtime
    # same config, but its base's card changed (the base retrained): trained again, the card records the new one
    import shutil

    base = shutil.copytree(world["base"], tmp_path / "base-copy")
    moved = cfg.with_name("t2.yaml")
    moved.write_text(cfg.read_text().replace(str(world["base"]), str(base)))
    assert main(["train", "target", str(moved), "optim.lr=5e-3", "--quiet"]) == 0
    first = json.loads((tmp_path / "out" / "target.json").read_text())["base"]["card_sha256"]
    (base / "base.json").write_text(json.dumps({"kind": "base", "retrained": True}))
    capsys.readouterr()
    assert main(["train", "target", str(moved), "optim.lr=5e-3", "--quiet"]) == 0
    assert "changed; training again" in capsys.readouterr().out
    again = json.loads((tmp_path / "out" / "target.json").read_text())["base"]["card_sha256"]
    assert again != first and again is not None


def _spawn(world_size: int, program: list[str], splits_dir: Path, *, quiet: bool = False) -> list:
    """Start `python PROGRAM...` as `world_size` CPU processes (gloo), like a launcher would."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = subprocess.DEVNULL if quiet else subprocess.PIPE
    procs = []
    for rank in range(world_size):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), DS_ACCELERATOR="cpu",
                   OMP_NUM_THREADS="1", **{SPLITS_DIR_ENV: str(splits_dir)})
        procs.append(subprocess.Popen([sys.executable, *program], env=env, stdout=out,
                                      stderr=subprocess.STDOUT, text=True))
    return procs


def _launch(world_size: int, config: Path, overrides: list[str], splits_dir: Path,
            program: list[str] | None = None) -> list[str]:
    """Run `vidsme train target` (or `program`) as `world_size` CPU processes; their outputs."""
    program = program or ["-m", "vidsme.cli", "train", "target"]
    procs = _spawn(world_size, [*program, str(config), *overrides], splits_dir)
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    return outputs


def _zero3_sharded(tmp_path: Path) -> Path:
    """configs/deepspeed/zero3.json with every parameter sharded: the tiny model's weights are all
    below the shipped persistence threshold, which would keep them whole on every rank."""
    config = json.loads((ROOT / "configs/deepspeed/zero3.json").read_text())
    config["zero_optimization"]["stage3_param_persistence_threshold"] = 0
    path = tmp_path / "zero3-sharded.json"
    path.write_text(json.dumps(config))
    return path


@pytest.mark.integration
@pytest.mark.parametrize("zero", ["zero2", "zero3"])
def test_two_cpu_processes_match_one(world, tmp_path, zero):
    """Same global batch (1 x 4 vs 2 x 2), same data order: the same loss curve within tolerance."""
    cfg = tmp_path / "t.yaml"
    cfg.write_text(
        f"name: tiny-target\nbase: {world['base']}\noutput_dir: {tmp_path / 'out'}\nstrategy: full\n"
        f"data:\n  split: synth-oeqa\n  video_root: {world['videos']}\n  n_frames: 4\n  max_text_tokens: 160\n"
        f"  heldout_nonmembers: 2\noptim:\n  epochs: 2\n  lr: 5.0e-3\n"
        f"engine:\n  deepspeed: {ROOT / 'configs/deepspeed' / (zero + '.json')}\n")
    splits_dir = world["split"].path.parent
    _launch(1, cfg, [f"output_dir={tmp_path / 'one'}", "optim.micro_batch_size=4"], splits_dir)
    _launch(2, cfg, [f"output_dir={tmp_path / 'two'}", "optim.micro_batch_size=2"], splits_dir)
    one = json.loads((tmp_path / "one" / "target.json").read_text())
    two = json.loads((tmp_path / "two" / "target.json").read_text())
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert one["trained_ids_sha256"] == two["trained_ids_sha256"]  # same samples, same order
    curve1, curve2 = one["train_loss_per_step"], two["train_loss_per_step"]
    assert len(curve1) == len(curve2) == 4  # 8 member rows, 4 per step, 2 epochs
    # Per-rank means weigh answer tokens differently from one global mean (answers of 5-9 tokens: 5e-4
    # relative on the first step here), so curves agree closely, not bitwise.
    assert curve1[0] == pytest.approx(curve2[0], rel=2e-3)
    assert curve1 == pytest.approx(curve2, rel=0.05)


@pytest.mark.integration
@pytest.mark.parametrize(("zero", "n_procs"), [("zero2", 1), ("zero3", 2)])
def test_kill_and_resume_reproduces_the_uninterrupted_run(world, tmp_path, zero, n_procs):
    """SIGKILL every process mid-epoch after a checkpoint; the same command resumes it to the
    uninterrupted run's loss curve. ZeRO-3 with 2 processes and every weight sharded, so each
    rank's checkpoint holds only its own partitions."""
    import signal
    import time

    deepspeed_json = _zero3_sharded(tmp_path) if zero == "zero3" else ROOT / "configs/deepspeed/zero2.json"
    cfg = tmp_path / "t.yaml"
    # 8 members, 2 samples per step: 4 steps an epoch, 16 in all; checkpoints after steps 5, 10, 15,
    # each in the middle of an epoch
    cfg.write_text(
        f"name: tiny-target\nbase: {world['base']}\noutput_dir: {tmp_path / 'out'}\nstrategy: full\n"
        f"data:\n  split: synth-oeqa\n  video_root: {world['videos']}\n  n_frames: 4\n  max_text_tokens: 160\n"
        f"  heldout_nonmembers: 2\noptim:\n  epochs: 4\n  lr: 5.0e-3\n  micro_batch_size: {2 // n_procs}\n"
        f"engine:\n  deepspeed: {deepspeed_json}\n  save_every_steps: 5\n")
    splits_dir = world["split"].path.parent
    # the reference: an uninterrupted run (checkpoints written, never read)
    _launch(n_procs, cfg, [f"output_dir={tmp_path / 'whole'}"], splits_dir)
    whole = json.loads((tmp_path / "whole" / "target.json").read_text())
    # killed once a checkpoint is complete (mid-epoch), then rerun with the same config
    procs = _spawn(n_procs, ["-m", "vidsme.cli", "train", "target", str(cfg)], splits_dir, quiet=True)
    checkpoints = tmp_path / "out" / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and not any((p / "COMPLETE").is_file() for p in checkpoints.glob("step-*")):
        time.sleep(0.05)
    for proc in procs:
        proc.send_signal(signal.SIGKILL)
    for proc in procs:
        proc.wait()
    assert not (tmp_path / "out" / "target.json").exists(), "the run finished before it could be killed"
    kept = [p for p in checkpoints.glob("step-*") if (p / "COMPLETE").is_file()]
    if zero == "zero3":  # each rank wrote its own partition; no whole-model file exists under ZeRO-3
        assert kept and all((p / f"optim-rank{r}.safetensors").is_file() for p in kept for r in range(n_procs))
        assert not any((p / "model.safetensors").exists() for p in kept)
    assert not list(checkpoints.rglob("*.pt")) and not list(checkpoints.rglob("*.bin"))
    outputs = _launch(n_procs, cfg, [], splits_dir)
    resumed_at = re.search(r"resuming from .* \(step (\d+) of 16\)", outputs[0])
    assert resumed_at and int(resumed_at.group(1)) % 4 != 0, outputs[0][-2000:]  # mid-epoch
    card = json.loads((tmp_path / "out" / "target.json").read_text())
    assert card["trained_ids_sha256"] == whole["trained_ids_sha256"]
    assert card["train_loss_per_step"] == pytest.approx(whole["train_loss_per_step"], rel=1e-6, abs=1e-7)
    assert not checkpoints.exists()  # cleaned up once the model is written


# Runs the real `vidsme train target` recipe, and after training (before the final save) has
# every rank run the ZeRO-3 engine's module on two members: each layer's weights gathered from
# the ranks' shards. Rank 0 dumps those logits and their inputs for the test to compare.
PROBE = """
import sys

import torch
from safetensors.torch import save_file

from vidsme.config import load_config
from vidsme.train import recipes
from vidsme.train.config import TargetConfig
from vidsme.train.data import collate

dump, config, overrides = sys.argv[1], sys.argv[2], sys.argv[3:]
train = recipes.run_training


def train_then_probe(model, dataset, optim, engine_cfg, **kwargs):
    trained, result = train(model, dataset, optim, engine_cfg, **kwargs)
    params = list(trained.parameters())
    sharded = sum(p.data.numel() == 0 and p.ds_tensor.numel() < p.ds_numel for p in params)
    batch = collate([dataset[0], dataset[1]], kwargs["pad_token_id"])
    inputs = {k: v for k, v in batch.items() if k not in ("ids", "labels")}
    trained.eval()
    with torch.no_grad():
        logits = trained(**inputs).logits
    trained.train()
    if torch.distributed.get_rank() == 0:
        save_file({"logits": logits.contiguous(), "sharded": torch.tensor([sharded, len(params)]),
                   **{f"input.{k}": v.contiguous() for k, v in inputs.items()}}, dump)
    return trained, result


recipes.run_training = train_then_probe
recipes.finetune_target(load_config(TargetConfig, config, overrides))
"""


@pytest.mark.integration
@pytest.mark.parametrize("strategy", ["full", "lora"])
def test_zero3_final_save_gathers_full_weights(world, tmp_path, strategy):
    """2 processes train under ZeRO-3 with every weight sharded; the target directory holds full
    weights (HF safetensors + target.json, no shards) that one plain process loads to the logits
    the trained engine computed from its gathered shards."""
    from safetensors.torch import load_file

    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    dump = tmp_path / "engine-logits.safetensors"
    cfg = tmp_path / "t.yaml"
    cfg.write_text(
        f"name: tiny-target\nbase: {world['base']}\noutput_dir: {tmp_path / 'out'}\nstrategy: {strategy}\n"
        f"data:\n  split: synth-oeqa\n  video_root: {world['videos']}\n  n_frames: 4\n  max_text_tokens: 160\n"
        f"  heldout_nonmembers: 2\noptim:\n  epochs: 1\n  lr: 1.0e-2\n  micro_batch_size: 2\n"
        f"engine:\n  deepspeed: {_zero3_sharded(tmp_path)}\n")
    _launch(2, cfg, [], world["split"].path.parent, program=[str(probe), str(dump)])
    out = tmp_path / "out"
    card = json.loads((out / "target.json").read_text())
    assert card["world_size"] == 2 and card["strategy"] == strategy
    assert (out / "model.safetensors").is_file() and not list(out.rglob("*.pt")) and not (out / "checkpoints").exists()
    engine = load_file(str(dump))
    sharded, n_params = engine["sharded"].tolist()
    assert sharded == n_params  # every weight was split over the two ranks, none whole on either
    model, _ = load_tiny_vullm(out)
    base, _ = load_tiny_vullm(world["base"])
    inputs = {k.removeprefix("input."): v for k, v in engine.items() if k.startswith("input.")}
    with torch.no_grad():
        logits = model(**inputs).logits
        base_logits = base(**inputs).logits
    assert not torch.allclose(logits, base_logits, atol=1e-3)  # training changed the weights ...
    torch.testing.assert_close(logits, engine["logits"], rtol=1e-5, atol=1e-5)  # ... and the save kept all of them


def test_checkpoint_state_round_trips_without_pickle(tmp_path):
    import enum

    from vidsme.errors import VidsmeError
    from vidsme.train.checkpoint import load_state, save_state

    class Stage(enum.IntEnum):
        two = 2

    state = {"state": {0: {"exp_avg": torch.arange(3.0), "step": torch.tensor(4.0)}}, "param_groups": [
        {"lr": 1e-3, "betas": (0.9, 0.999), "params": [0]}], "zero_stage": Stage.two, "loss_scaler": object(),
        "ds_version": "x", "nothing": None}
    save_state(tmp_path / "s", state)
    back = load_state(tmp_path / "s")
    assert torch.equal(back["state"][0]["exp_avg"], torch.arange(3.0)) and back["param_groups"][0]["betas"] == (0.9, 0.999)
    assert back["zero_stage"] == 2 and "loss_scaler" not in back and back["nothing"] is None
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.pkl"))
    with pytest.raises(VidsmeError, match=r"s\.bad holds a set"):
        save_state(tmp_path / "s", {"bad": {1, 2}})


def test_zero3_checkpoint_files_are_checked_before_the_engine(tmp_path):
    """A ZeRO-3 checkpoint: each rank's partition file is checked (headers of the others'), and a
    run under another ZeRO stage is refused with the fix, before anything is applied."""
    from types import SimpleNamespace

    from safetensors.torch import save_file

    from vidsme.errors import ModelFileError, VidsmeError
    from vidsme.train.checkpoint import load_checkpoint, save_state

    folder = tmp_path / "step-000005"
    folder.mkdir()
    save_state(folder / "state", {"config_hash": "h", "world_size": 2, "zero_stage": 3, "scheduler": {},
                                  "trainable": [["w", [4]]], "steps_done": 5})
    save_file({"torch": torch.get_rng_state()}, str(folder / "rng.safetensors"))
    for r in range(2):
        save_state(folder / f"optim-rank{r}", {"fp32_flat_groups": [torch.zeros(2)], "zero_stage": 3})
    assert not (folder / "model.safetensors").exists()  # ZeRO-3 has none: the partitions are the weights
    zero2 = SimpleNamespace(zero_optimization_stage=lambda: 2, device="cpu")
    with pytest.raises(VidsmeError, match=r"written under ZeRO stage 3, this run uses stage 2: set engine\.deepspeed"):
        load_checkpoint(folder, zero2, world=2, config_hash="h")
    (folder / "optim-rank1.safetensors").write_bytes(b"\x00" * 5)  # the other rank's file: its header is checked
    with pytest.raises(ModelFileError, match=rf"{folder / 'optim-rank1.safetensors'}: is 5 bytes long.*delete"):
        load_checkpoint(folder, zero2, world=2, config_hash="h")


def test_missing_and_corrupt_videos_are_named(world, tmp_path):
    import shutil

    from vidsme.errors import VidsmeError

    model, processor = load_tiny_vullm(world["base"])
    members = [r for r in world["split"].rows() if r["label"] == "member"]
    videos = tmp_path / "videos"
    shutil.copytree(world["videos"], videos)
    (videos / members[0]["video"]).unlink()
    data = DataConfig(split="synth-oeqa", video_root=videos, n_frames=4, max_text_tokens=160)
    with pytest.raises(VidsmeError, match=rf"no video under .*{members[0]['id']}"):
        make_dataset(members, processor, model.config, data)
    (videos / members[0]["video"]).write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    dataset = make_dataset(members, processor, model.config, data)
    with pytest.raises(VidsmeError, match=rf"sample '{members[0]['id']}'"):
        dataset[0]


def test_missing_base_is_a_clear_error(world, tmp_path):
    from vidsme.cli import main

    cfg = tmp_path / "t.yaml"
    cfg.write_text(f"name: t\nbase: {tmp_path / 'nope'}\noutput_dir: {tmp_path / 'o'}\nstrategy: full\n"
                   f"data:\n  split: synth-oeqa\n  video_root: {world['videos']}\n")
    assert main(["train", "target", str(cfg)]) == 2


def test_cpu_distributed_start_compiles_no_deepspeed_op(tmp_path):
    """On CPU, starting torch.distributed through DeepSpeed must not JIT-build its shared-memory all-reduce
    (~35 s of C++ on a fresh machine, for a speed-up gloo does not need)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env.update(TORCH_EXTENSIONS_DIR=str(tmp_path / "ext"), CUDA_VISIBLE_DEVICES="")
    code = "from vidsme.train.loop import init_distributed; print(init_distributed())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(0, 1)" in out.stdout
    built = list((tmp_path / "ext").rglob("*.so")) if (tmp_path / "ext").exists() else []
    assert built == [], f"DeepSpeed compiled {built}"
    assert "shm_comm_op built" not in out.stdout + out.stderr
