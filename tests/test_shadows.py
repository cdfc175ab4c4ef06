"""Shadow models: the plan (who is IN, seeds), training alone or together, the set's card and what it refuses."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tiny_configs import TINY

from vidsme.cli import main
from vidsme.data_splits.build import build_synthetic_split
from vidsme.data_splits.create import draw_members
from vidsme.data_splits.manifest import write_split
from vidsme.errors import VidsmeError
from vidsme.paths import SPLITS_DIR_ENV
from vidsme.train.config import DataConfig, OptimConfig, TargetConfig
from vidsme.train.shadows import (
    SET_CARD,
    assemble_set,
    inclusion_matrix,
    missing_shadows,
    parse_indices,
    plan_shadows,
    shadow_seed,
    train_shadows,
)
from vidsme.train.tiny_model import build_tiny_vullm, tokenizer_corpus

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny split (8 videos), its population pool (6 videos) and a tiny base (splits in a temp dir)."""
    root = tmp_path_factory.mktemp("shadows")
    mp = pytest.MonkeyPatch()
    mp.setenv(SPLITS_DIR_ENV, str(root / "splits"))
    mp.chdir(REPO)  # configs/deepspeed/*.json are named relative to the repository
    videos = root / "videos"
    split, _ = build_synthetic_split("synth-mcqa", videos, n_videos=8, progress=False)
    population, _ = build_synthetic_split("synth-mcqa-population", videos, n_videos=6, progress=False)
    base = build_tiny_vullm(TINY, tokenizer_corpus(split.rows() + population.rows()), root / "base")
    yield {"root": root, "videos": videos, "split": split, "population": population, "base": base}
    mp.undo()


def _cfg(world, out: Path, split: str = "synth-mcqa", strategy: str = "lora", seed: int = 0) -> TargetConfig:
    return TargetConfig(name="t", base=world["base"], output_dir=out, strategy=strategy, seed=seed,
                        data=DataConfig(split=split, video_root=world["videos"], n_frames=4, max_text_tokens=256),
                        optim=OptimConfig(micro_batch_size=2, epochs=1))


def test_every_video_is_in_for_half_the_shadows_and_shadows_hold_about_half():
    videos = [f"v{i:03d}.mp4" for i in range(400)]
    inclusion = inclusion_matrix(videos, 16, seed=3)
    assert inclusion.shape == (400, 16)
    assert (inclusion.sum(1) == 8).all()
    assert np.all(np.abs(inclusion.sum(0) - 200) < 40)  # each shadow a random half (binomial sd 10)
    assert np.array_equal(inclusion, inclusion_matrix(videos, 16, seed=3))
    assert not np.array_equal(inclusion, inclusion_matrix(videos, 16, seed=4))
    # a video's column does not depend on which other videos are in the pool
    assert np.array_equal(inclusion_matrix(videos[:10], 16, seed=3), inclusion[:10])
    assert (inclusion_matrix(videos, 5, seed=0).sum(1) == 2).all()


def test_seeds_and_indices():
    assert shadow_seed(0, 1) == shadow_seed(0, 1) != shadow_seed(0, 2) != shadow_seed(1, 2)
    assert parse_indices(None, 4) == [0, 1, 2, 3] and parse_indices("2", 4) == [2] and parse_indices("1-3", 4) == [1, 2, 3]
    for bad in ("4", "3-1", "x"):
        with pytest.raises(VidsmeError, match="--index"):
            parse_indices(bad, 4)


def test_redrawing_the_target_membership_changes_no_shadow_training_set(world, tmp_path):
    """Same candidates, other member draw: every shadow trains on the same rows with the same seed."""
    rows = world["split"].rows()
    redrawn = [dict(r) for r in rows]
    draw_members(redrawn, 0.5, seed=99)
    assert [r["label"] for r in redrawn] != [r["label"] for r in rows]
    splits = Path(world["root"]) / "splits"
    write_split(splits / "redrawn", redrawn, partition_seed=0, name="redrawn", kind="split", version=1,
                description="test", drawn={"method": "iid_by_video", "seed": 99}, source={}, notes=[])
    first = plan_shadows(_cfg(world, tmp_path / "a"), 4)
    second = plan_shadows(_cfg(world, tmp_path / "a", split="redrawn"), 4)
    for k in range(4):
        trained = [first.rows[i]["id"] for i in first.row_indices(k, True)]
        assert trained == [second.rows[i]["id"] for i in second.row_indices(k, True)]
        assert first.seed(k) == second.seed(k)
    assert first.pool["manifest_sha256"] != second.pool["manifest_sha256"]


def test_offline_plans_halve_the_population_and_refuse_a_shared_video(world, tmp_path):
    plan = plan_shadows(_cfg(world, tmp_path / "t"), 2, offline=True)
    assert plan.pool["name"] == "synth-mcqa-population" and plan.setting == "offline"
    assert {r["video"] for r in plan.rows}.isdisjoint({r["video"] for r in world["split"].rows()})
    with pytest.raises(VidsmeError, match="shares 8 video"):
        plan_shadows(_cfg(world, tmp_path / "t"), 2, offline=True, population="synth-mcqa")
    with pytest.raises(VidsmeError, match="add --offline"):
        plan_shadows(_cfg(world, tmp_path / "t"), 2, population="synth-mcqa-population")


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_a_shadow_trained_alone_equals_the_same_shadow_trained_with_the_set(world, tmp_path):
    together = plan_shadows(_cfg(world, tmp_path / "t"), 2, output_dir=tmp_path / "together")
    assert train_shadows(together.cfg, together, [0, 1], progress=False) == [0, 1]
    card = assemble_set(together)
    assert card["count"] == 2 and len(card["inclusion"]) == 8 and card["setting"] == "online"
    alone = plan_shadows(_cfg(world, tmp_path / "t"), 2, output_dir=tmp_path / "alone")
    train_shadows(alone.cfg, alone, [1], progress=False)
    a, b = _weights(together.shadow_dir(1)), _weights(alone.shadow_dir(1))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], _weights(together.shadow_dir(0))[k]) for k in a)  # another half, another seed
    # a set with a missing shadow is refused, naming it; a rerun trains nothing finished again
    assert missing_shadows(alone) == [0]
    with pytest.raises(VidsmeError, match=r"shadow\(s\) 0 of 2 are missing"):
        assemble_set(alone)
    assert train_shadows(together.cfg, together, [0, 1], progress=False) == []
    # a shadow trained for another plan (another seed) does not count as this plan's
    other = plan_shadows(_cfg(world, tmp_path / "t", seed=5), 2, output_dir=tmp_path / "together")
    with pytest.raises(VidsmeError, match=r"shadow\(s\) 0-1 of 2"):
        assemble_set(other)


def test_the_cli_trains_one_index_then_assembles(world, tmp_path, capsys):
    config = tmp_path / "t.yaml"
    config.write_text(f"name: t\nbase: {world['base']}\noutput_dir: {tmp_path / 'target'}\nstrategy: projector\n"
                      f"data: {{split: synth-mcqa, video_root: {world['videos']}, n_frames: 4, max_text_tokens: 256}}\n"
                      "optim: {micro_batch_size: 2, epochs: 1}\n")
    folder = tmp_path / "target-shadows-offline-2"
    assert main(["train", "shadows", str(config), "--count", "2", "--offline", "--dry-run", "--quiet"]) == 0
    assert "2 offline shadow models on halves of synth-mcqa-population" in capsys.readouterr().out
    assert not folder.exists()
    assert main(["train", "shadows", str(config), "--offline", "--index", "0", "--count", "2", "--quiet"]) == 0
    assert "1 of 2 shadows finished" in capsys.readouterr().out and not (folder / SET_CARD).exists()
    assert main(["train", "shadows", str(config), "--count", "2", "--offline", "--assemble"]) == 2
    assert "shadow(s) 1 of 2 are missing" in capsys.readouterr().err
    assert main(["train", "shadows", str(config), "--count", "2", "--offline", "--index", "1", "--quiet"]) == 0
    card = json.loads((folder / SET_CARD).read_text())
    assert card["setting"] == "offline" and card["pool"]["name"] == "synth-mcqa-population"
    assert [s["index"] for s in card["shadows"]] == [0, 1]
    shutil.rmtree(folder)
    assert main(["train", "target", str(config), "--count", "2"]) == 2
    assert "only apply to `vidsme train shadows`" in capsys.readouterr().err
    assert main(["train", "shadows", str(config)]) == 2
    assert "needs --count N" in capsys.readouterr().err


# ----------------------------------------------------------------------------- shadows in the benchmark
@pytest.fixture(scope="module")
def shadowed(world, tmp_path_factory):
    """A tiny target with 2 online and 2 offline shadows, benchmarked with its calibrated attacks."""
    from vidsme.benchmark.config import SuiteConfig, SuiteTarget
    from vidsme.benchmark.suite import run_suite
    from vidsme.train.recipes import finetune_target

    out = tmp_path_factory.mktemp("shadowed")
    cfg = _cfg(world, out / "target", strategy="full")
    finetune_target(cfg, progress=False)
    sets = {}
    for offline in (False, True):
        plan = plan_shadows(cfg, 2 if offline else 4, offline=offline)
        train_shadows(cfg, plan, list(range(plan.count)), progress=False)
        assemble_set(plan)
        sets[plan.setting] = plan.folder
    suite = SuiteConfig(name="s", output_dir=out / "results", cache_dir=out / "cache", frame_counts=[4],
                        targets=[SuiteTarget(name="t", path=out / "target", split="synth-mcqa",
                                             shadows=[sets["online"], sets["offline"]])],
                        n_bootstrap=20, batch_size=4, attacks=["loss", "vid_sme_mean"], plots=False,
                        blind_baseline=False, stats_workers=1,
                        calibration_signals=["loss", "ref_calibration", "vid_sme_mean"])
    path = run_suite(suite, progress=False)
    return {"cfg": cfg, "suite": suite, "sets": sets, "results": json.loads(path.read_text()), "out": out}


def test_the_suite_ranks_lira_and_rmia_with_the_shadows_they_used(shadowed):
    from vidsme.train.shadows import load_shadow_set

    results = shadowed["results"]
    calibrated = [r for r in results["rows"] if r["kind"] == "calibrated"]
    assert {r["family"] for r in calibrated} == {"lira", "rmia"}
    names = {r["calibration"]["calibration"] for r in calibrated}
    assert {"lira_online_global", "lira_online_per_sample", "lira_offline_global", "rmia_online",
            "rmia_offline_a0.5"} <= names
    sha = {setting: load_shadow_set(folder).card_sha256 for setting, folder in shadowed["sets"].items()}
    for r in calibrated:
        shadows = r["calibration"]["shadows"]
        assert shadows["count"] == (4 if shadows["setting"] == "online" else 2)
        assert shadows["card_sha256"] == sha[shadows["setting"]]
        assert r["calibration"]["calibration"].split("_")[1].startswith(shadows["setting"])
        assert r["attack"] == f"{r['calibration']['calibration']}({r['calibration']['signal']})"
    # the reference view of the shadows is the target's (the base): ref_calibration is calibrated too
    assert {r["calibration"]["signal"] for r in calibrated} == {"loss", "ref_calibration", "vid_sme_mean"}
    assert results["targets"][0]["calibration"]["population"]["name"] == "synth-mcqa-population"
    (verdict,) = results["verdicts"]["targets"]
    methods = {e["method"]: e for e in verdict["entries"]}
    assert {"lira", "rmia", "loss", "vid_sme"} <= set(methods)
    assert methods["lira"]["calibration"]["shadows"]["count"] in (2, 4)
    # one ceiling, the highest dev selection metric, chosen on dev
    ceilings = [e for e in verdict["entries"] if e["ceiling"]]
    assert len(ceilings) == 1 and verdict["ceiling"]["method"] == ceilings[0]["method"]
    metric = verdict["selection_metric"]
    best = max(e["dev"][metric]["value"] for e in verdict["entries"] if not e["blind"])
    assert ceilings[0]["dev"][metric]["value"] == best


def test_shadow_features_are_those_of_the_model_alone(shadowed):
    """Decoding once for every shadow (extract_many) stores the numbers a shadow's own extraction stores."""
    from dataclasses import replace

    from vidsme.benchmark.cache import FeatureCache
    from vidsme.benchmark.extract import extract_to_cache
    from vidsme.benchmark.query import QuerySettings, load_model
    from vidsme.benchmark.suite import STATS_SUBDIR
    from vidsme.benchmark.orders import split_orders
    from vidsme.train.shadows import load_shadow_set

    out, suite = shadowed["out"], shadowed["suite"]
    rows = load_split_rows("synth-mcqa")
    orders = split_orders(rows, shadowed["cfg"].data.video_root, n_frames=4, cache_dir=Path(suite.cache_dir) / STATS_SUBDIR,
                          progress=False)
    q, r = orders.for_rows(rows)
    shadow = load_shadow_set(shadowed["sets"]["online"])
    stored = [FeatureCache.from_folder(p) for p in (Path(suite.cache_dir) / "features").iterdir()
              if json.loads((p / "key.json").read_text())["target_card_sha256"] == shadow.shadow_card_sha256[1]
              and json.loads((p / "key.json").read_text())["split"] == "synth-mcqa"]
    (cache,) = stored
    alone = FeatureCache(out / "alone", replace(cache.key))
    model = load_model(shadow.shadow_dirs[1])
    extract_to_cache(model, rows, shadowed["cfg"].data.video_root, q, r, alone, n_frames=4, template="default",
                     batch_size=4, max_text_tokens=suite.max_text_tokens, settings=QuerySettings(), progress=False)
    ids = [row["id"] for row in rows]
    for a, b in zip(cache.read(ids), alone.read(ids)):
        assert a.token.keys() == b.token.keys()
        assert all(torch.equal(a.token[s][k], b.token[s][k]) for s in a.token for k in a.token[s])
        assert a.sequence == b.sequence
    # the target, extracted in the same pass as its shadows, stores what its own extraction (with its
    # reference) stores
    (target_cache,) = [FeatureCache.from_folder(p) for p in (Path(suite.cache_dir) / "features").iterdir()
                       if "reference" in json.loads((p / "key.json").read_text())["views"]
                       and json.loads((p / "key.json").read_text())["split"] == "synth-mcqa"]
    target_alone = FeatureCache(out / "target-alone", replace(target_cache.key))
    extract_to_cache(load_model(out / "target"), rows, shadowed["cfg"].data.video_root, q, r, target_alone,
                     n_frames=4, template="default", batch_size=4, max_text_tokens=suite.max_text_tokens,
                     reference=load_model(shadowed["cfg"].base), settings=QuerySettings(), progress=False)
    for a, b in zip(target_cache.read(ids), target_alone.read(ids)):
        assert "reference.target_logprob" in a.token["answer"]
        assert all(torch.equal(a.token[s][k], b.token[s][k]) for s in a.token for k in a.token[s])
        assert a.sequence == b.sequence


def load_split_rows(name: str) -> list[dict]:
    from vidsme.data_splits.registry import load_split

    return load_split(name).rows()


def test_shadow_sets_that_do_not_fit_the_target_are_refused(shadowed, world, tmp_path):
    from dataclasses import replace

    from vidsme.benchmark.config import SuiteTarget
    from vidsme.benchmark.suite import run_suite

    suite, sets = shadowed["suite"], shadowed["sets"]

    def run(**target):
        fields = dict(name="t", path=shadowed["out"] / "target", split="synth-mcqa")
        cfg = replace(suite, output_dir=tmp_path / "r", targets=[SuiteTarget(**{**fields, **target})])
        return run_suite(cfg, progress=False)

    with pytest.raises(VidsmeError, match="two online sets"):
        run(shadows=[sets["online"], sets["online"]])
    with pytest.raises(VidsmeError, match="shares 8 video"):
        run(shadows=[sets["online"]], population="synth-mcqa")
    other = _cfg(world, tmp_path / "other", strategy="lora")  # another recipe than the target's (full)
    plan = plan_shadows(other, 2, output_dir=tmp_path / "other-shadows")
    train_shadows(other, plan, [0, 1], progress=False)
    assemble_set(plan)
    with pytest.raises(VidsmeError, match="another recipe"):
        run(shadows=[plan.folder])
    with pytest.raises(VidsmeError, match="not a finished shadow set"):
        run(shadows=[tmp_path])


# ----------------------------------------------------------------------------- submitted calibrations and signals
SUBMITTED = '''
import numpy as np
from vidsme.attack import Direction, register_attack
from vidsme.attack.aggregate import masked_mean
from vidsme.attack.calibration import register_calibration


@register_attack("mean_logprob", family="mine", direction=Direction.HIGHER, needs=("natural.target_logprob",),
                 slices=("answer",), citation="a test signal: the loss, negated")
def mean_logprob(inputs):
    """Mean log p_y of the answer."""
    return masked_mean(inputs.tokens("natural.target_logprob"), inputs.mask)


@register_calibration("as_is", family="mycal", setting="online", min_in=0, min_out=1,
                      citation="a test calibration: the target's signal unchanged")
def as_is(inputs):
    """The target's signal."""
    return inputs.target


@register_calibration("my_lira", family="mycal", setting="offline", min_out=2,
                      citation="a test calibration: vidsme's offline LiRA with the global variance, resubmitted")
def my_lira(inputs):
    """lira_offline_global, run in the sandbox."""
    from vidsme.attack.calibrations.lira import lira_offline

    return lira_offline(inputs, "global")
'''


@pytest.fixture
def shadowed_results(shadowed, tmp_path) -> Path:
    """A copy of the shadowed suite's results folder (its caches stay where the benchmark wrote them)."""
    out = tmp_path / "results"
    shutil.copytree(shadowed["suite"].output_dir, out)
    return out


def _submit(source: str, results: Path, tmp_path: Path, name: str = "mine.py"):
    from vidsme.benchmark.submissions import sandbox
    from vidsme.benchmark.submissions.attack_code import submit_attack

    path = tmp_path / name
    path.write_text(source, encoding="utf-8")
    return submit_attack(str(path), results, submitter="tester", sandbox=sandbox.detect_isolation() is not None)


def _column(results: Path, row: dict) -> dict[str, float]:
    import csv

    with (results / row["scores_file"]).open() as fh:
        return {t["sample_id"]: float(t[row["scores_column"]]) for t in csv.DictReader(fh)}


def test_submitted_calibrations_and_signals_go_through_the_shadows(shadowed, shadowed_results, tmp_path):
    """A submitted calibration runs (sandboxed) on the suite's signals and the submitted one; the suite's
    calibrations run on the submitted signal as the method lira+mine; shuffled copies map back exactly."""
    result = _submit(SUBMITTED, shadowed_results, tmp_path)
    assert result.status == "added" and set(result.attacks) == {"mean_logprob", "as_is", "my_lira"}
    after = json.loads((shadowed_results / "results.json").read_text())
    calibrated = [r for r in after["rows"] if r["kind"] == "calibrated" and "submission" in r["calibration"]]
    families = {r["family"] for r in calibrated}
    assert {"mycal", "lira+mine", "rmia+mine"} <= families and not families & {"lira", "rmia"}
    as_is = {r["calibration"]["signal"] for r in calibrated if r["calibration"]["calibration"] == "as_is"}
    assert as_is == {"loss", "ref_calibration", "vid_sme_mean", "mean_logprob"}
    assert after["calibrations"]["as_is"]["submission"]["submitter"] == "tester"
    # the identity calibration gives back the oriented signal, sample by sample: the shuffled copies mapped back
    row = next(r for r in calibrated if r["attack"] == "as_is(loss)" and r["slice"] == "answer")
    raw = next(r for r in after["rows"] if r["attack"] == "loss" and r["slice"] == "answer"
               and r["kind"] == "reproduced")
    mine, loss = _column(shadowed_results, row), _column(shadowed_results, raw)
    assert mine.keys() == loss.keys() and all(mine[k] == -loss[k] for k in mine)
    # vidsme's own offline LiRA, submitted: the same numbers as the suite's (the population and shadows too)
    for slice_name in ("answer", "video"):  # one row per video here: level row=video
        row = next(r for r in calibrated if r["attack"] == "my_lira(loss)" and r["slice"] == slice_name)
        suite = next(r for r in after["rows"] if r["attack"] == "lira_offline_global(loss)"
                     and r["slice"] == slice_name and r["kind"] == "calibrated")
        mine, theirs = _column(shadowed_results, row), _column(shadowed_results, suite)
        assert mine.keys() == theirs.keys() and all(mine[k] == pytest.approx(theirs[k], rel=1e-9) for k in mine)
    lira_mine = [r for r in calibrated if r["family"] == "lira+mine"]
    assert lira_mine and all(r["calibration"]["signal"] == "mean_logprob" for r in lira_mine)
    (verdict,) = after["verdicts"]["targets"]
    entries = {e["method"]: e for e in verdict["entries"]}
    assert entries["mycal"]["submitted"] and entries["lira+mine"]["submitted"] and not entries["lira"]["submitted"]
    # the suite's own calibrated rows are untouched
    before = json.loads((shadowed["suite"].output_dir / "results.json").read_text())
    assert [r for r in after["rows"] if r in before["rows"]] == before["rows"]
    # the same file again changes nothing; a changed one replaces every calibrated row it gave
    assert _submit(SUBMITTED, shadowed_results, tmp_path).status == "unchanged"
    again = _submit(SUBMITTED.replace("a test calibration: the target's signal unchanged", "unchanged signal"),
                    shadowed_results, tmp_path)
    assert again.status == "replaced"
    final = json.loads((shadowed_results / "results.json").read_text())
    assert len(final["rows"]) == len(after["rows"]) and final["history"][-1]["calibration_records"]


@pytest.mark.parametrize("body, check", [
    ("return np.arange(len(inputs.target), dtype=float)", "determinism"),  # depends on the row order
    ("return np.full(len(inputs.target), 1.0)", "scores"),  # constant
    ("return inputs.target / 0.0", "scores"),  # inf
])
def test_a_submitted_calibration_is_checked_like_an_attack(shadowed_results, tmp_path, body, check):
    source = ("import numpy as np\nfrom vidsme.attack.calibration import register_calibration\n\n"
              "@register_calibration('bad', family='badcal', setting='online', citation='a test')\n"
              f"def bad(inputs):\n    {body}\n")
    before = (shadowed_results / "results.json").read_bytes()
    with pytest.raises(VidsmeError) as info:
        _submit(source, shadowed_results, tmp_path)
    assert info.value.check == check, info.value
    assert (shadowed_results / "results.json").read_bytes() == before


def test_calibrations_need_shadows_and_keep_off_builtin_families(shadowed_results, tmp_path):
    source = ("from vidsme.attack.calibration import register_calibration\n\n"
              "@register_calibration('again', family='lira', setting='online', citation='a test')\n"
              "def again(inputs):\n    return inputs.target\n")
    with pytest.raises(VidsmeError, match="family 'lira'"):
        _submit(source, shadowed_results, tmp_path)
    data = json.loads((shadowed_results / "results.json").read_text())
    for entry in data["targets"]:
        entry.pop("calibration")
    (shadowed_results / "results.json").write_text(json.dumps(data))
    with pytest.raises(VidsmeError, match="no target of this suite has shadow models"):
        _submit(source.replace("'lira'", "'mine2'"), shadowed_results, tmp_path)


def test_the_docs_calibration_example_goes_on_the_leaderboard(shadowed_results):
    from vidsme.benchmark.submissions import sandbox
    from vidsme.benchmark.submissions.attack_code import submit_attack

    example = REPO / "docs" / "examples" / "robust_out_calibration.py"
    result = submit_attack(str(example), shadowed_results, submitter="tester",
                           sandbox=sandbox.detect_isolation() is not None)
    assert result.status == "added" and result.attacks == ["robust_out_z"]
    after = json.loads((shadowed_results / "results.json").read_text())
    rows = [r for r in after["rows"] if r["family"] == "robust_out"]
    assert rows and {r["calibration"]["shadows"]["setting"] for r in rows} == {"offline"}
    (verdict,) = after["verdicts"]["targets"]
    assert "robust_out" in {e["method"] for e in verdict["entries"]}


def test_a_sealed_challenge_takes_no_calibration(shadowed_results, tmp_path):
    """A challenge's targets have no shadow models: a file that registers a calibration is refused there."""
    from vidsme.benchmark.submissions import sandbox
    from vidsme.benchmark.submissions.attack_code import submit_attack

    path = tmp_path / "mine.py"
    path.write_text(SUBMITTED, encoding="utf-8")
    with pytest.raises(VidsmeError) as info:
        submit_attack(str(path), shadowed_results, submitter="tester", fixed={},
                      sandbox=sandbox.detect_isolation() is not None)
    assert info.value.check == "declaration" and "sealed challenge has no shadow models" in info.value.why


@pytest.mark.parametrize("name, extra, check, why", [
    ("needs_many", "min_out=99", "features", "ran on no shadow set of this suite: needs >= 0 IN and >= 99 OUT"),
    ("loss", "", "name", "calibration name 'loss' is also an attack's name"),
])
def test_a_calibration_that_cannot_run_or_takes_an_attack_name_is_refused(shadowed_results, tmp_path, name, extra,
                                                                         check, why):
    source = ("from vidsme.attack.calibration import register_calibration\n\n"
              f"@register_calibration({name!r}, family='fine', setting='online', citation='a test'"
              f"{', ' + extra if extra else ''})\n"
              "def cal(inputs):\n    return inputs.target\n")
    before = (shadowed_results / "results.json").read_bytes()
    with pytest.raises(VidsmeError) as info:
        _submit(source, shadowed_results, tmp_path)
    assert info.value.check == check and why in info.value.why, info.value
    assert (shadowed_results / "results.json").read_bytes() == before
