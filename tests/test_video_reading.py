"""Does a model read its video (train/video_reading.py, vidsme/swaps.py): the derangement, a model that cannot
see, and the base card's measurement after a few pretraining steps."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vidsme.data_splits.build import build_synthetic_split
from vidsme.data_splits.synthetic import PERCEPTION_KINDS
from vidsme.errors import VidsmeError
from vidsme.paths import SPLITS_DIR_ENV
from vidsme.swaps import derangement
from vidsme.train.tiny_model import make_tiny_vullm, tokenizer_corpus
from vidsme.train.video_reading import ReadingSettings, format_video_reading, measure_video_reading
from tiny_configs import TINY


def test_the_derangement_moves_every_video_within_its_group():
    videos = [f"v{i}" for i in range(9)] * 2  # rows of nine videos, two rows each
    groups = [i % 3 for i in range(9)] * 2
    swap = derangement(videos, groups, seed=3)
    assert set(swap) == set(videos) and sorted(swap.values()) == sorted(set(videos))  # a permutation
    assert all(swap[v] != v for v in swap)
    group_of = dict(zip(videos, groups))
    assert all(group_of[swap[v]] == group_of[v] for v in swap)  # labels kept
    assert swap == derangement(list(reversed(videos)), list(reversed(groups)), seed=3)  # order-free
    assert swap != derangement(videos, groups, seed=4)
    for seed in range(50):
        assert all(a != b for a, b in derangement(["a", "b"], seed=seed).items())
    with pytest.raises(VidsmeError, match="one video"):
        derangement(["a", "b", "c"], [0, 0, 1])


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    root = tmp_path_factory.mktemp("reading")
    mp = pytest.MonkeyPatch()
    mp.setenv(SPLITS_DIR_ENV, str(root / "splits"))
    split, _ = build_synthetic_split("synth-probe", root / "videos", n_videos=8, progress=False)
    yield root, split.rows()
    mp.undo()


def test_a_model_whose_video_input_is_zeroed_does_not_read_its_video(probe):
    root, rows = probe
    model, processor = make_tiny_vullm(TINY, tokenizer_corpus(rows))
    with torch.no_grad():  # the projector gives every video the same (zero) embedding
        for p in model.model.multi_modal_projector.parameters():
            p.zero_()
    result = measure_video_reading(model, processor, rows, root / "videos", ReadingSettings(n_frames=4, n_bootstrap=50))
    accuracy = {c: result["conditions"][c]["accuracy"] for c in ("own", "swapped", "blank")}
    assert accuracy["own"] == accuracy["swapped"] == accuracy["blank"]
    assert result["swapped_minus_own_loss"]["value"] == 0.0 and not result["reads_its_video"]
    assert "does NOT read its video" in format_video_reading(result)
    assert result["rows"] == len(rows) > 8 and result["videos"] == 8 and sum(result["rows_per_kind"].values()) == len(rows)
    assert set(result["rows_per_kind"]) <= set(PERCEPTION_KINDS) and "background" in result["rows_per_kind"]


def test_pretraining_a_base_records_its_video_reading(probe, tmp_path):
    import dataclasses

    from vidsme.train.config import BaseConfig, DataConfig, OptimConfig, ProbeConfig
    from vidsme.train.recipes import pretrain_base

    root, _ = probe
    build_synthetic_split("synth-pretrain", root / "videos", n_videos=6, progress=False)
    cfg = BaseConfig(name="b", output_dir=tmp_path / "base", model=dataclasses.replace(TINY),
                     data=DataConfig(split="synth-pretrain", video_root=root / "videos", n_frames=4,
                                     max_text_tokens=400),
                     optim=OptimConfig(epochs=1, micro_batch_size=4), probe=ProbeConfig(n_bootstrap=50))
    pretrain_base(cfg, progress=False)
    reading = json.loads((tmp_path / "base" / "base.json").read_text())["video_reading"]
    for condition in ("own", "swapped", "blank"):
        values = list(reading["conditions"][condition]["accuracy"].values())
        assert values and all(0.0 <= v <= 1.0 for v in values)  # measured: numbers, one per question kind
    gap = reading["swapped_minus_own_loss"]
    assert np.isfinite([gap["value"], gap["ci_low"], gap["ci_high"]]).all() and gap["ci_low"] <= gap["ci_high"]
    assert reading["probe"]["split"] == "synth-probe" and reading["settings"]["n_frames"] == 4
    assert isinstance(reading["reads_its_video"], bool)


def test_a_probe_pool_without_its_videos_is_named_with_the_fix(probe, tmp_path):
    from vidsme.train.config import BaseConfig, DataConfig
    from vidsme.train.recipes import measure_base_reading

    cfg = BaseConfig(name="b", output_dir=tmp_path / "base", data=DataConfig(split="synth-pretrain",
                                                                              video_root=tmp_path / "no-videos"))
    with pytest.raises(VidsmeError, match=r"probe pool synth-probe: \d+ video\(s\) missing under .*"
                                          r"vidsme splits build synth-probe.*probe.split=null"):
        measure_base_reading(cfg, None, None, progress=False)
