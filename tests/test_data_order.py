"""The loop's data order and learning-rate schedule (train/loop.py), the base's opening rows (train/recipes.py) and
synth-pretrain's perception-only scenes: pure functions, no model."""
import math

import pytest

from vidsme.data_splits.synthetic import PERCEPTION_KINDS, rows_for_video, sample_video_spec
from vidsme.errors import VidsmeError
from vidsme.train.config import OptimConfig
from vidsme.train.loop import data_order, epoch_order, lr_factor
from vidsme.train.recipes import opening_rows


def test_without_an_opening_the_order_is_the_seeded_epochs_as_before():
    optim = OptimConfig(micro_batch_size=4, epochs=2)
    plan = data_order(10, optim, world=1, seed=3)
    assert plan.total_steps == 4  # 10 // 4 = 2 steps per epoch, the tail left out
    for epoch in range(2):
        order = epoch_order(10, 3, epoch)
        assert plan.window(2 * epoch) == order[:4] and plan.window(2 * epoch + 1) == order[4:8]
    assert [plan.epoch(s) for s in range(4)] == [0, 0, 1, 1]


def test_the_opening_draws_only_its_rows_then_every_row_in_the_main_epochs():
    opening = [1, 4, 7, 9, 12, 15]
    optim = OptimConfig(micro_batch_size=2, epochs=1)
    plan = data_order(20, optim, world=1, seed=0, opening=opening, opening_steps=5)
    assert plan.total_steps == 5 + 10
    early = [plan.window(s) for s in range(5)]
    assert all(len(w) == 2 and set(w) <= set(opening) for w in early)
    assert sorted(early[0] + early[1] + early[2]) == opening  # one opening epoch: each opening row once
    assert [plan.epoch(s) for s in (0, 4, 5, 14)] == [-1, -1, 0, 0]
    main = [i for s in range(5, 15) for i in plan.window(s)]
    assert sorted(main) == list(range(20)) and main == epoch_order(20, 0, 0)
    again = data_order(20, optim, world=1, seed=0, opening=opening, opening_steps=5)
    assert [again.window(s) for s in range(15)] == early + [plan.window(s) for s in range(5, 15)]  # pure in the step


def test_max_steps_counts_the_opening_and_cycles_epochs():
    optim = OptimConfig(micro_batch_size=2, max_steps=12, epochs=99)
    plan = data_order(8, optim, world=1, seed=1, opening=[0, 1], opening_steps=2)
    assert plan.total_steps == 12 and plan.epoch(11) == 2  # 10 main steps over 4-step epochs
    with pytest.raises(VidsmeError, match="less than the opening"):
        data_order(8, OptimConfig(micro_batch_size=2, max_steps=1), world=1, seed=1, opening=[0, 1], opening_steps=2)
    with pytest.raises(VidsmeError, match="opening.kinds"):
        data_order(8, OptimConfig(micro_batch_size=4), world=1, seed=1, opening=[0], opening_steps=2)
    with pytest.raises(VidsmeError, match="fewer than one optimizer step"):
        data_order(3, OptimConfig(micro_batch_size=4), world=1, seed=1)


def test_cosine_schedule_warms_up_then_decays_to_zero():
    assert lr_factor(0, 100, 10, "cosine") == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi * 9 / 100)))
    assert lr_factor(50, 100, 10, "cosine") == pytest.approx(0.5)
    assert lr_factor(99, 100, 10, "cosine") < 0.001
    assert lr_factor(99, 100, 10, "constant") == 1.0 and lr_factor(4, 100, 10, "constant") == 0.5
    with pytest.raises(VidsmeError, match="unknown optim.schedule"):
        lr_factor(0, 10, 0, "linear")


def test_opening_rows_are_the_perception_rows_of_the_named_kinds():
    rows = [{"id": "p/v0-cap"}, {"id": "p/v0-colour"}, {"id": "p/v0-shape"}, {"id": "p/v1-colour"}, {"id": "p/v1-q0"}]
    assert opening_rows(rows, ("colour",), "pool") == [1, 3]
    assert opening_rows(rows, (), "pool") == []
    with pytest.raises(VidsmeError, match="unknown perception kind"):
        opening_rows(rows, ("colours",), "pool")
    with pytest.raises(VidsmeError, match="has no such perception rows"):
        opening_rows(rows, ("order",), "pool")


def test_synth_pretrain_large_asks_caption_and_qa_of_its_first_240_scenes_only():
    first, later = (rows_for_video(sample_video_spec("synth-pretrain-large", i, 0)) for i in (239, 240))
    assert {r["id"].rsplit("-", 1)[1] for r in first} >= {"cap", "q0"}
    assert {r["id"].rsplit("-", 1)[1] for r in later} <= set(PERCEPTION_KINDS) and later
