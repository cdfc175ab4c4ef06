"""The tower stage of `vidsme train base` (train/perception_tower.py): targets that say what the pixels show, a
readout that learns them, and the base card's record of a short stage."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from vidsme.data_splits.build import build_synthetic_split
from vidsme.data_splits.synthetic import PALETTE, render_video, select_videos
from vidsme.errors import VidsmeError
from vidsme.paths import SPLITS_DIR_ENV
from vidsme.train import perception_tower as pt
from vidsme.train.config import TowerStageConfig
from vidsme.train.tiny_model import make_tiny_vullm, tokenizer_corpus
from tiny_configs import TINY

WIDE = dataclasses.replace(TINY, hidden_size=64)  # a projector as wide as the readout head


@pytest.fixture(scope="module")
def pools(tmp_path_factory):
    root = tmp_path_factory.mktemp("tower")
    mp = pytest.MonkeyPatch()
    mp.setenv(SPLITS_DIR_ENV, str(root / "splits"))
    pretrain, _ = build_synthetic_split("synth-pretrain", root / "videos", n_videos=6, progress=False)
    build_synthetic_split("synth-probe", root / "videos", n_videos=4, progress=False)
    yield root, pretrain.rows()
    mp.undo()


def test_the_targets_say_what_the_rendered_frame_shows():
    (spec, _), = select_videos("synth-pretrain", 1)
    frames = render_video(spec)
    targets, background = pt.frame_targets(spec, 64, 8)
    assert targets.shape == (spec.n_frames, 64, pt.TARGET_WIDTH)
    assert pt.BACKGROUND_NAMES[background] == spec.background
    n_col = len(pt.COLOURS)
    for t in range(spec.n_frames):
        colours = {pt.COLOURS[c] for c in np.flatnonzero(targets[t, 0, pt._LOCAL:pt._LOCAL + n_col].numpy())}
        # every colour said present is painted in the frame (a pixel near its palette value), and only those
        painted = {name for name, rgb in PALETTE.items()
                   if (np.abs(frames[t].astype(int) - np.array(rgb) * spec.gains[t] / 256).max(-1) < 12).sum() >= 3}
        assert colours <= painted and colours == {o.colour for o, _ in pt.object_coverage(spec, t)}
        count = int(targets[t, 0, pt._LOCAL + n_col:pt._LOCAL + n_col + pt.MAX_OBJECTS + 1].argmax())
        assert count == min(len(pt.object_coverage(spec, t)), pt.MAX_OBJECTS)
        assert (targets[t, :, :n_col].sum() > 0) == bool(colours)  # local coverage where objects are


def test_the_readout_learns_the_frames_and_the_projector_starts_from_it(pools):
    root, rows = pools
    model, processor = make_tiny_vullm(TINY, tokenizer_corpus(rows))
    frames = pt.pool_frames("synth-pretrain", 4, root / "videos", processor, TINY.image_size, TINY.patch_size)
    assert len(frames.pixels) == 4 * 24 and frames.targets.shape[-1] == pt.TARGET_WIDTH
    before = pt.readout_accuracy(model.model.vision_tower, torch.nn.Linear(TINY.vision_hidden_size, pt.HEAD_WIDTH),
                                 frames)
    head, losses = pt.train_tower(model, frames, TowerStageConfig(steps=60, batch_frames=32, lr=3e-3), seed=0)
    after = pt.readout_accuracy(model.model.vision_tower, head, frames)
    assert losses[-1] < 0.5 * losses[0]
    assert after["background"] > before["background"] and after["colour_bits"] > before["colour_bits"]
    again, _ = pt.train_tower(make_tiny_vullm(TINY, tokenizer_corpus(rows))[0], frames,
                              TowerStageConfig(steps=60, batch_frames=32, lr=3e-3), seed=0)
    assert torch.equal(again.weight, head.weight)  # same seed, same stage
    with pytest.raises(VidsmeError, match="the projector has 32 units, fewer than the readout's"):
        pt.init_projector_from_head(model, head)  # TINY's language model is narrower than the readout
    wide, _ = make_tiny_vullm(WIDE, tokenizer_corpus(rows))
    pt.init_projector_from_head(wide, head)
    first = wide.model.multi_modal_projector.linear_1
    assert torch.equal(first.weight[: pt.HEAD_WIDTH], head.weight) and torch.equal(first.bias[: pt.HEAD_WIDTH], head.bias)


def test_a_pool_that_is_not_synthetic_or_too_small_is_refused(pools):
    root, rows = pools
    _, processor = make_tiny_vullm(TINY, tokenizer_corpus(rows))
    with pytest.raises(VidsmeError, match="tower.videos=99 but pool 'synth-pretrain' has 6 videos"):
        pt.pool_frames("synth-pretrain", 99, root / "videos", processor, TINY.image_size, TINY.patch_size)


def test_a_base_with_a_tower_stage_records_it_in_its_card(pools, tmp_path):
    from vidsme.train.config import BaseConfig, DataConfig, OpeningConfig, OptimConfig, ProbeConfig
    from vidsme.train.recipes import pretrain_base

    root, _ = pools
    cfg = BaseConfig(name="b", output_dir=tmp_path / "base", model=WIDE,
                     data=DataConfig(split="synth-pretrain", video_root=root / "videos", n_frames=4, max_text_tokens=400),
                     optim=OptimConfig(max_steps=4, schedule="cosine", micro_batch_size=4),
                     probe=ProbeConfig(n_bootstrap=20, max_videos=2),
                     tower=TowerStageConfig(steps=5, videos=3, batch_frames=16, heldout_videos=2),
                     opening=OpeningConfig(steps=2, kinds=("colour", "background")))
    pretrain_base(cfg, progress=False)
    card = json.loads((tmp_path / "base" / "base.json").read_text())
    assert card["steps"] == 4 and card["config"]["opening"] == {"steps": 2, "kinds": ["colour", "background"]}
    stage = card["tower_stage"]
    assert stage["steps"] == 5 and stage["frames"] == 3 * 24 and np.isfinite([stage["first_loss"], stage["final_loss"]]).all()
    assert stage["heldout"]["pool"] == "synth-probe" and stage["heldout"]["frames"] == 2 * 24
    assert 0.0 <= stage["heldout"]["colour_bits"] <= 1.0


def test_a_pool_whose_files_or_card_are_not_the_generators_is_refused(pools, monkeypatch):
    import types

    import vidsme.video

    root, rows = pools
    _, processor = make_tiny_vullm(TINY, tokenizer_corpus(rows))
    real = pt.load_split("synth-pretrain")
    user = types.SimpleNamespace(card=types.SimpleNamespace(source={"generator": "user"}), rows=real.rows)
    monkeypatch.setattr(pt, "load_split", lambda name: user)
    with pytest.raises(VidsmeError, match="not made by the synthetic generator.*tower.steps=0"):
        pt.pool_frames("synth-pretrain", 2, root / "videos", processor, TINY.image_size, TINY.patch_size)
    monkeypatch.setattr(pt, "load_split", lambda name: real)
    monkeypatch.setattr(pt, "read_frames", lambda path, n: vidsme.video.read_frames(path, n)[:, :32])  # half height
    with pytest.raises(VidsmeError, match=r"v0000.mp4 has 24 frames of 64x32, its scene 24 of 64x64; rebuild"):
        pt.pool_frames("synth-pretrain", 2, root / "videos", processor, TINY.image_size, TINY.patch_size)
