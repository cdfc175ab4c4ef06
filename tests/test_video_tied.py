"""The video-tied check: own-video losses from the cache, swaps within label, a blind model is not video-tied,
a target whose memory goes through its videos is, the title-stripped variant, the cache."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vidsme.benchmark import video_tied as vt
from vidsme.benchmark.query import extract_batch, load_model
from vidsme.benchmark.video_tied import VideoTiedSettings, answer_losses, cached_answer_losses, video_tied_check
from vidsme.data_splits.build import build_synthetic_split
from vidsme.data_splits.synthetic import strip_title
from vidsme.paths import SPLITS_DIR_ENV
from vidsme.train.data import VideoTextDataset
from vidsme.train.tiny_model import build_tiny_vullm, tokenizer_corpus
from tiny_configs import TINY

SETTINGS = VideoTiedSettings(n_frames=4, template="default", batch_size=4, max_text_tokens=256, seed=0,
                             n_bootstrap=200, dtype="float32", device_type="cpu")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("tied")
    mp = pytest.MonkeyPatch()
    mp.setenv(SPLITS_DIR_ENV, str(root / "splits"))
    split, _ = build_synthetic_split("synth-mcqa", root / "videos", n_videos=12, progress=False)
    titled, _ = build_synthetic_split("synth-mcqa-titled", root / "videos", n_videos=12, progress=False)
    path = build_tiny_vullm(TINY, tokenizer_corpus(split.rows()), root / "model")
    rows = split.rows()
    yield {"root": root, "videos": root / "videos", "rows": rows, "titled": titled.rows(), "path": path,
           "labels": np.array([r["label"] == "member" for r in rows], dtype=int)}
    mp.undo()


def test_cached_own_losses_are_the_checks_forward(world):
    """The own-video losses the check takes from the feature cache equal its own forward of the same rows."""
    target = load_model(world["path"])
    rows = world["rows"]
    dataset = VideoTextDataset(rows, world["videos"], target.processor, target.config, template="default",
                               n_frames=4, max_text_tokens=256)
    ones = np.ones(len(rows))
    cached = []
    for lo in range(0, len(rows), 4):
        idx = list(range(lo, min(lo + 4, len(rows))))
        cached += extract_batch(target, dataset, idx, ones[idx], ones[idx])
    np.testing.assert_allclose(cached_answer_losses(cached), answer_losses(target, rows, world["videos"], SETTINGS),
                               rtol=1e-5, atol=1e-5)


def test_a_model_whose_video_input_is_zeroed_is_not_video_tied(world, tmp_path):
    target = load_model(world["path"])
    with torch.no_grad():
        for p in target.model.model.multi_modal_projector.parameters():
            p.zero_()
    own = answer_losses(target, world["rows"], world["videos"], SETTINGS)
    record = video_tied_check(target, world["rows"], world["labels"], own, world["videos"], SETTINGS,
                              model_sha256="zeroed", manifest_sha256="m", strip_title=None, cache_dir=tmp_path)
    assert record["difference"]["value"] == pytest.approx(0.0, abs=1e-9)
    assert not record["video_tied"] and not record["uses_video"]
    assert abs(record["nonmember_swapped_minus_own_loss"]["value"]) < 1e-5
    assert record["title_stripped"] is None


def test_membership_through_the_video_is_video_tied_and_swaps_stay_within_label(world, tmp_path, monkeypatch):
    """A stand-in target that remembers a member only with the member's own video: AUC 1 with own videos, chance
    with swapped ones; every swapped row got another video of its own label."""
    rows, labels = world["rows"], world["labels"]
    own_video = {r["id"]: r["video"] for r in rows}
    label_of_video = {r["video"]: y for r, y in zip(rows, labels)}
    rng = np.random.default_rng(0)
    noise = {r["id"]: float(rng.random()) for r in rows}
    seen = []

    def fake_losses(target, these, video_root, settings, **_):
        seen.append([r["video"] for r in these])
        for r in these:
            assert r["video"] != own_video[r["id"]] and label_of_video[r["video"]] == label_of_video[own_video[r["id"]]]
        return np.array([1.0 + noise[r["id"]] for r in these])

    monkeypatch.setattr(vt, "answer_losses", fake_losses)
    own = np.array([(0.0 if y else 1.0) + noise[r["id"]] for r, y in zip(rows, labels)])
    record = video_tied_check(None, rows, labels, own, world["videos"], SETTINGS, model_sha256="fake",
                              manifest_sha256="m", strip_title=None, cache_dir=tmp_path)
    assert record["auc_own"]["value"] == 1.0 and record["video_tied"]
    assert record["difference"]["ci_low"] > 0 and record["uses_video"] is False  # non-members: same losses
    assert len(seen) == 1
    again = video_tied_check(None, rows, labels, own, world["videos"], SETTINGS, model_sha256="fake",
                             manifest_sha256="m", strip_title=None, cache_dir=tmp_path)
    assert again == record and len(seen) == 1  # the swapped losses came from the cache
    video_tied_check(None, rows, labels, own, world["videos"], SETTINGS, model_sha256="fake-2", manifest_sha256="m",
                     strip_title=None, cache_dir=tmp_path)
    assert len(seen) == 2  # another model: computed again


def test_title_stripping_gives_the_untitled_questions(world):
    titled, plain = world["titled"], world["rows"]
    assert all(r["question"].startswith('In "') for r in titled)
    assert [strip_title(r)["question"] for r in titled] == [r["question"] for r in plain]
    caption = {"id": "x", "question": "Describe the clip.", "caption": '"stormy quill 5": a navy background.'}
    assert strip_title(caption)["caption"] == "A navy background." and strip_title(caption)["question"] == \
        "Describe the clip."


def test_a_titled_split_gets_the_title_stripped_variant(world, tmp_path):
    target = load_model(world["path"])
    rows = world["titled"]
    labels = np.array([r["label"] == "member" for r in rows], dtype=int)
    own = answer_losses(target, rows, world["videos"], SETTINGS)
    record = video_tied_check(target, rows, labels, own, world["videos"], SETTINGS, model_sha256="t",
                              manifest_sha256="m", strip_title=strip_title, cache_dir=tmp_path)
    stripped = record["title_stripped"]
    assert set(stripped) == {"auc_own", "auc_swapped", "difference", "video_tied"}
    assert 0 <= stripped["auc_own"]["ci_low"] <= stripped["auc_own"]["value"] <= stripped["auc_own"]["ci_high"] <= 1


def test_the_suite_refuses_a_video_tied_check_it_cannot_run(tmp_path):
    from vidsme.benchmark.config import SuiteConfig, SuiteTarget
    from vidsme.benchmark.suite import check_suite
    from vidsme.errors import VidsmeError

    def suite(**overrides) -> SuiteConfig:
        return SuiteConfig(name="s", output_dir=tmp_path, targets=[SuiteTarget(name="t", path=tmp_path, split="x")],
                           frame_counts=[4, 8], **overrides)

    with pytest.raises(VidsmeError, match="answer slice"):
        check_suite(suite(slices=["video"]))
    with pytest.raises(VidsmeError, match="video_tied_frames 16 is not one of frame_counts"):
        check_suite(suite(video_tied_frames=16))
    check_suite(suite(slices=["video"], video_tied=False))  # switched off: nothing to refuse
    check_suite(suite(video_tied_frames=4))
