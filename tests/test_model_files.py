"""Damaged inputs a user hands over — model directories, training checkpoints, feature-cache
shards — give one line naming the file and the fix (exit code 2 on the command line), never a
traceback from inside safetensors, transformers or tokenizers."""
from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from vidsme.benchmark.cache import CacheKey, FeatureCache, SampleFeatures
from vidsme.benchmark.config import SuiteConfig, SuiteTarget
from vidsme.benchmark.query import load_model
from vidsme.cli import main
from vidsme.config import config_to_dict
from vidsme.data_splits.build import build_synthetic_split
from vidsme.paths import SPLITS_DIR_ENV
from vidsme.errors import CacheFileError, ModelFileError, VidsmeError
from vidsme.train.checkpoint import load_checkpoint, load_state, save_state
from vidsme.model_files import check_safetensors
from vidsme.train.tiny_model import build_tiny_vullm, tokenizer_corpus
from tiny_configs import TINY

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A 4-video synthetic MCQA split and an untrained tiny model built on its texts."""
    root = tmp_path_factory.mktemp("model_files")
    mp = pytest.MonkeyPatch()
    mp.setenv(SPLITS_DIR_ENV, str(root / "splits"))
    split, _ = build_synthetic_split("synth-mcqa", root / "videos", n_videos=4, progress=False)
    model = build_tiny_vullm(TINY, tokenizer_corpus(split.rows()), root / "model")
    yield {"root": root, "videos": root / "videos", "split": split, "model": model}
    mp.undo()


# ----------------------------------------------------------------------------- damages
def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _rewrite_weights(change: Callable[[dict[str, torch.Tensor]], None]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        tensors = load_file(str(path))
        change(tensors)
        save_file(tensors, str(path), metadata={"format": "pt"})
    return damage


def _drop_one(tensors: dict[str, torch.Tensor]) -> None:
    del tensors[sorted(tensors)[0]]


def _shrink_one(tensors: dict[str, torch.Tensor]) -> None:
    name = next(n for n in sorted(tensors) if tensors[n].dim() == 2)
    tensors[name] = tensors[name][:1].clone()


# case -> (file damaged, damage, what the message says about it)
DAMAGES: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "weights truncated": ("model.safetensors", _truncate, "is truncated"),
    "weights tail cut": ("model.safetensors", lambda p: p.write_bytes(p.read_bytes()[:-100]), "is truncated"),
    "weights garbage": ("model.safetensors", lambda p: p.write_bytes(b"garbage" * 1000), "not a safetensors file"),
    "weights empty": ("model.safetensors", lambda p: p.write_bytes(b""), "too short for a safetensors file"),
    "weights missing": ("model.safetensors", Path.unlink, "is missing"),
    "weights lack a tensor": ("model.safetensors", _rewrite_weights(_drop_one), "lacks 1 weight(s)"),
    "weights of another shape": ("model.safetensors", _rewrite_weights(_shrink_one), "at another shape"),
    "config not JSON": ("config.json", lambda p: p.write_text("{not json"), "is not valid JSON (line 1"),
    "config a list": ("config.json", lambda p: p.write_text("[1, 2]"), "is not a JSON object"),
    "tokenizer truncated": ("tokenizer.json", _truncate, "is not valid JSON"),
    "tokenizer missing": ("tokenizer.json", Path.unlink, "is missing"),
    "tokenizer config binary": ("tokenizer_config.json", lambda p: p.write_bytes(b"\xff\xfe\x00\x01"), "not UTF-8"),
    "processor config empty": ("processor_config.json", lambda p: p.write_text(""), "is empty"),
}


def _damaged_copy(source: Path, dest: Path, case: str, card: str | None = None) -> Path:
    """A copy of model `source` at `dest` with DAMAGES[case] applied (and a training card, if named)."""
    shutil.copytree(source, dest)
    if card is not None:
        (dest / card).write_text(json.dumps({"name": "tiny-run"}))
    filename, damage, _ = DAMAGES[case]
    damage(dest / filename)
    return dest


def _one_line_error(err: str, must_name: str) -> str:
    """The CLI's stderr holds exactly one error line, naming `must_name`, and no traceback."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1, err
    assert must_name in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("case", DAMAGES)
def test_load_model_names_the_damaged_file_and_the_fix(world, tmp_path, case):
    filename, _, problem = DAMAGES[case]
    model = _damaged_copy(world["model"], tmp_path / "target", case, card="target.json")
    with pytest.raises(ModelFileError) as info:
        load_model(model)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{model / filename}: ") and problem in message, message
    assert "retrain it with `vidsme train target CONFIG` (its target.json names the run 'tiny-run')" in message
    assert "targets[].path" in message


def test_an_external_checkpoint_is_restored_not_retrained(world, tmp_path):
    model = _damaged_copy(world["model"], tmp_path / "ckpt", "weights tail cut")  # no vidsme card
    with pytest.raises(ModelFileError, match=r"model\.safetensors: is truncated: .*restore the file \(copy or "
                                             r"download the checkpoint again\)"):
        load_model(model)


def test_a_shard_the_index_lists_must_be_there(world, tmp_path):
    model = tmp_path / "sharded"
    shutil.copytree(world["model"], model)
    names = sorted(load_file(str(model / "model.safetensors")))
    (model / "model.safetensors").rename(model / "model-00001-of-00002.safetensors")
    weight_map = {n: "model-00001-of-00002.safetensors" for n in names}
    weight_map[names[0]] = "model-00002-of-00002.safetensors"
    (model / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    with pytest.raises(ModelFileError, match=r"model-00002-of-00002\.safetensors: is missing; "
                                             r"model\.safetensors\.index\.json lists it"):
        load_model(model)


def test_a_sound_model_still_loads(world):
    loaded = load_model(world["model"])
    assert loaded.model.config.model_type == "llava_onevision"


def test_safetensors_check_reads_headers_only(tmp_path):
    path = tmp_path / "x.safetensors"
    save_file({"a": torch.zeros(3, 4), "b": torch.ones(2, dtype=torch.bfloat16)}, str(path))
    assert set(check_safetensors(path, "fix")) == {"a", "b"}
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ModelFileError, match=r"x\.safetensors: is truncated: \d+ bytes, its header describes \d+; fix"):
        check_safetensors(path, "fix")


# ----------------------------------------------------------------------------- command line
def _suite_yaml(world, tmp_path: Path, target: Path, reference: Path | None = None) -> Path:
    import yaml

    cfg = SuiteConfig(name="tiny", output_dir=tmp_path / "results", cache_dir=tmp_path / "cache", frame_counts=[4],
                      targets=[SuiteTarget(name="t", path=target, split="synth-mcqa", reference=reference)],
                      n_bootstrap=20, batch_size=4, attacks=["loss"], plots=False, blind_baseline=False,
                      reference_view=reference is not None, stats_workers=1)
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(cfg)), encoding="utf-8")
    return path


@pytest.mark.integration
def test_benchmark_cli_names_a_damaged_target(world, tmp_path, capsys):
    target = _damaged_copy(world["model"], tmp_path / "target", "weights tail cut", card="target.json")
    assert main(["benchmark", str(_suite_yaml(world, tmp_path, target)), "--quiet"]) == 2
    line = _one_line_error(capsys.readouterr().err, str(target / "model.safetensors"))
    assert "is truncated" in line and "vidsme train target CONFIG" in line


@pytest.mark.integration
def test_benchmark_cli_names_a_damaged_reference(world, tmp_path, capsys):
    reference = _damaged_copy(world["model"], tmp_path / "base", "tokenizer truncated", card="base.json")
    suite = _suite_yaml(world, tmp_path, world["model"], reference=reference)
    assert main(["benchmark", str(suite), "--quiet"]) == 2
    line = _one_line_error(capsys.readouterr().err, str(reference / "tokenizer.json"))
    assert "is not valid JSON" in line and "vidsme train base CONFIG" in line


def _target_yaml(world, tmp_path: Path, base: Path) -> Path:
    cfg = tmp_path / "t.yaml"
    cfg.write_text(
        f"name: tiny-target\nbase: {base}\noutput_dir: {tmp_path / 'out'}\nstrategy: full\n"
        f"data:\n  split: synth-mcqa\n  video_root: {world['videos']}\n  n_frames: 4\n  max_text_tokens: 160\n"
        f"optim:\n  epochs: 1\n  micro_batch_size: 2\nengine:\n  deepspeed: {ROOT / 'configs/deepspeed/zero2.json'}\n")
    return cfg


@pytest.mark.integration
def test_train_target_cli_names_a_damaged_base(world, tmp_path, capsys):
    base = _damaged_copy(world["model"], tmp_path / "base", "config not JSON", card="base.json")
    assert main(["train", "target", str(_target_yaml(world, tmp_path, base))]) == 2
    line = _one_line_error(capsys.readouterr().err, str(base / "config.json"))
    assert "vidsme train base CONFIG" in line and "the target config's `base`" in line
    assert not (tmp_path / "out" / "target.json").exists()


def test_a_finished_target_with_a_damaged_file_is_not_reused(world, tmp_path, capsys):
    """`vidsme train target` skips a finished run of the same config — unless a file of it is damaged,
    so the fix a damaged target's error gives (retrain with the same command) works."""
    from vidsme.config import config_hash, load_config
    from vidsme.train.config import TargetConfig
    from vidsme.train.recipes import CARD_FILE, _up_to_date

    out = tmp_path / "out"
    shutil.copytree(world["model"], out)
    cfg = load_config(TargetConfig, None, ["name=t", "base=x", f"output_dir={out}", "strategy=full", "data.split=s"])
    (out / CARD_FILE).write_text(json.dumps({"name": "t", "config_hash": config_hash(cfg)}))
    assert _up_to_date(out, CARD_FILE, cfg)
    _truncate(out / "model.safetensors")
    assert not _up_to_date(out, CARD_FILE, cfg)
    assert f"{out / 'model.safetensors'}: is truncated" in capsys.readouterr().out
    (out / CARD_FILE).write_text("{")  # a damaged card: trained again as well
    assert not _up_to_date(out, CARD_FILE, cfg)


# ----------------------------------------------------------------------------- checkpoints
def _checkpoint(folder: Path) -> Path:
    folder.mkdir(parents=True)
    save_state(folder / "state", {"config_hash": "h", "world_size": 1, "scheduler": {"last_epoch": 3},
                                  "steps_done": 3, "x": torch.zeros(3)})
    save_file({"w": torch.ones(2)}, str(folder / "model.safetensors"))
    save_file({"torch": torch.get_rng_state()}, str(folder / "rng.safetensors"))
    return folder


@pytest.mark.parametrize(("filename", "damage", "problem"), [
    ("model.safetensors", _truncate, "is not a safetensors file or is truncated"),
    ("rng.safetensors", Path.unlink, "is missing"),
    ("state.json", lambda p: p.write_text('{"config_hash": '), "is not valid JSON"),
    ("state.safetensors", lambda p: p.write_bytes(b"\x00" * 5), "is 5 bytes long, too short"),
])
def test_a_damaged_checkpoint_names_its_file(tmp_path, filename, damage, problem):
    folder = _checkpoint(tmp_path / "checkpoints" / "step-000003")
    assert load_state(folder / "state")["steps_done"] == 3
    damage(folder / filename)
    with pytest.raises(ModelFileError) as info:
        load_checkpoint(folder, engine=None, world=1, config_hash="h")  # fails before the engine is touched
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{folder / filename}: {problem}"), message
    assert f"delete {folder} and rerun the same command" in message


# ----------------------------------------------------------------------------- feature cache
KEY = CacheKey(target_card_sha256="a" * 64, split="synth-mcqa", split_version=1, manifest_sha256="b" * 64,
               n_frames=8, template="default", beta1=1.0, beta2=0.1, slices=("video", "answer"),
               views=("natural", "reversed"), orders_sha256="e" * 64, batch_size=4, dtype="float32",
               device_type="cpu")


def _sample(i: int) -> SampleFeatures:
    g = torch.Generator().manual_seed(i)
    return SampleFeatures(sample_id=f"s{i}", token={"video": {"natural.entropy": torch.rand(5, generator=g)},
                                                    "answer": {"natural.target_logprob": -torch.rand(3, generator=g)}},
                          sequence={}, frame_slot=[0, 0, 1, 1, -1], texts={"answer": f"answer {i}"})


def _short_lengths(path: Path) -> None:
    meta = json.loads(path.read_text())
    meta["samples"][0]["lengths"]["video"] = 4
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize(("suffix", "damage", "problem"), [
    (".safetensors", _truncate, "is not a safetensors file or is truncated"),
    (".safetensors", lambda p: p.write_bytes(p.read_bytes()[:-8]), "is truncated"),
    (".safetensors", lambda p: p.write_bytes(b"\x07" * 64), "is not a safetensors file"),
    (".json", _truncate, "is not valid JSON"),
    (".json", lambda p: p.write_text('{"rows": []}'), "is not a cache shard's metadata"),
    (".json", _short_lengths, None),  # the tensors no longer line up with the metadata
])
def test_a_damaged_cache_shard_is_named_with_its_fix(tmp_path, suffix, damage, problem):
    cache = FeatureCache(tmp_path, KEY)
    cache.write([_sample(0), _sample(1)], batch=0)
    stem = cache.write([_sample(2)], batch=1)
    damage(stem.with_suffix(suffix))
    with pytest.raises(CacheFileError) as info:
        FeatureCache.from_folder(cache.folder).read(["s0", "s1", "s2"])
    message = str(info.value)
    assert "\n" not in message and str(stem) in message, message
    if problem is not None:
        assert message.startswith(f"{stem.with_suffix(suffix)}: {problem}"), message
    assert (f"delete shard-000001.json and shard-000001.safetensors in {cache.folder} and rerun `vidsme benchmark "
            "SUITE`, which extracts that batch again") in message
    # the fix works: without the shard's files the batch counts as not done, so a rerun extracts it again
    for leftover in (".json", ".safetensors"):
        stem.with_suffix(leftover).unlink()
    assert cache.done_batches() == {0}
    cache.write([_sample(2)], batch=1)
    assert [s.sample_id for s in cache.read(["s0", "s1", "s2"])] == ["s0", "s1", "s2"]


def test_a_damaged_shard_index_stops_a_resume(tmp_path):
    cache = FeatureCache(tmp_path, KEY)
    stem = cache.write([_sample(0)], batch=0)
    stem.with_suffix(".json").write_bytes(b"\x89PNG\r\n")
    with pytest.raises(CacheFileError, match=r"shard-000000\.json: is not UTF-8 text"):
        cache.done_ids()
    (cache.folder / "key.json").write_text("{")
    with pytest.raises(CacheFileError, match=r"key\.json: is not valid JSON .*delete the folder"):
        FeatureCache(tmp_path, KEY)


@pytest.mark.integration
def test_submit_cli_names_a_damaged_cache_shard(world, tmp_path, capsys, monkeypatch):
    from vidsme.benchmark.submissions.submitters import KEY_ENV, add_submitter
    from vidsme.benchmark.suite import run_suite
    from vidsme.config import load_config

    cfg = load_config(SuiteConfig, _suite_yaml(world, tmp_path, world["model"]), [])
    results = run_suite(cfg, progress=False).parent
    monkeypatch.setenv(KEY_ENV, add_submitter(results, "tester"))
    capsys.readouterr()
    shards = sorted((tmp_path / "cache").rglob("shard-*.safetensors"))
    assert shards
    _truncate(shards[0])
    example = ROOT / "docs" / "examples" / "frame_contrast_attack.py"
    assert main(["submit", "--submitter", "tester", str(example), "--results", str(results)]) == 2
    line = _one_line_error(capsys.readouterr().err, str(shards[0]))
    assert "rerun `vidsme benchmark SUITE`" in line


def test_every_damaged_file_error_is_a_vidsme_error():
    assert issubclass(ModelFileError, VidsmeError) and issubclass(CacheFileError, VidsmeError)
    err = ModelFileError("/m/config.json", "is empty", "restore it")
    assert str(err) == "/m/config.json: is empty; restore it"
