"""The synthetic video generator: determinism, disjoint pools, decodable mp4s, row schema,
reversal metadata grounded in the rendered frames, idiosyncratic titles, flicker."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vidsme.data_splits import synthetic as S
from vidsme.errors import UnknownNameError

SMALL = 3  # videos per pool in the tests that write files


def _generate_all(root: Path, seed: int = 0, n: int = SMALL) -> dict[str, list[dict]]:
    return {p: S.generate_pool(p, root, n_videos=n, seed=seed, progress=False) for p in S.POOLS}


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, dict[str, list[dict]]]:
    root = tmp_path_factory.mktemp("videos")
    return root, _generate_all(root)


def _specs(pool: str, n: int, seed: int = 0) -> list[S.VideoSpec]:
    return [S.sample_video_spec(pool, i, seed) for i in range(n)]


def _grey_std(frames: np.ndarray) -> float:
    """Std over frames of the mean grey level (Vid-SME's k3)."""
    return float(frames.astype(np.float64).mean(axis=(1, 2, 3)).std())


def test_generation_is_deterministic_across_folders_and_processes(written, tmp_path):
    _, rows = written
    again = _generate_all(tmp_path / "elsewhere")
    assert again == rows
    # A fresh process with another hash seed (Python's hash() is randomised per process).
    code = (
        "import json, sys; from vidsme.data_splits.synthetic import generate_pool; "
        f"print(json.dumps(generate_pool('synth-oeqa', sys.argv[1], n_videos={SMALL}, progress=False)))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "proc")], env=env, check=True,
                         capture_output=True, text=True).stdout
    assert json.loads(out) == rows["synth-oeqa"]


def test_a_different_seed_gives_different_videos(written, tmp_path):
    _, rows = written
    other = S.generate_pool("synth-mcqa", tmp_path, n_videos=SMALL, seed=1, progress=False)
    assert not {r["video_sha256"] for r in other} & {r["video_sha256"] for r in rows["synth-mcqa"]}
    assert [r["question"] for r in other] != [r["question"] for r in rows["synth-mcqa"]]


def test_adding_videos_never_changes_earlier_ones(written, tmp_path):
    _, rows = written
    fewer = S.generate_pool("synth-caption", tmp_path, n_videos=SMALL - 1, progress=False)
    assert fewer == rows["synth-caption"][: len(fewer)]
    assert S.sample_video_spec("synth-oeqa", 5, 0) == S.sample_video_spec("synth-oeqa", 5, 0)


def test_pools_are_disjoint(written):
    _, rows = written
    seen_sha: dict[str, str] = {}
    seen_ids: set[str] = set()
    for pool, pool_rows in rows.items():
        for sha in {r["video_sha256"] for r in pool_rows}:
            assert sha not in seen_sha, f"{pool} shares a video with {seen_sha.get(sha)}"
            seen_sha[sha] = pool
        ids = {r["id"] for r in pool_rows}
        assert len(ids) == len(pool_rows) and not ids & seen_ids
        seen_ids |= ids
    # No two scenes alike, over a larger sample of specs (no rendering needed).
    identity = {"pool": "", "index": 0, "video_id": "", "title": "", "filmed_by": "", "place": "", "phrase": ""}
    contents = [dataclasses.replace(s, **identity) for p in S.POOLS for s in _specs(p, 40)]
    assert len(set(contents)) == len(contents)


def test_every_mp4_decodes_with_the_expected_frames(written):
    decord = pytest.importorskip("decord")
    root, rows = written
    for pool, pool_rows in rows.items():
        for index, video in enumerate(dict.fromkeys(r["video"] for r in pool_rows)):
            assert video == f"{pool}/v{index:04d}.mp4"
            reader = decord.VideoReader(str(root / video))
            frames = reader.get_batch(list(range(len(reader)))).asnumpy()
            assert frames.shape == (24, 64, 64, 3)
            # what was encoded is what was rendered (up to lossy H.264 + yuv420p)
            rendered = S.render_video(S.sample_video_spec(pool, index, 0)).astype(np.float64)
            assert np.abs(frames - rendered).mean() < 6


def test_frame_format_is_configurable(tmp_path):
    decord = pytest.importorskip("decord")
    # (decord 0.6 cannot decode 48-pixel-wide videos at all: a decord bug, not ours)
    rows = S.generate_pool("synth-mcqa", tmp_path, n_videos=1, progress=False, width=80, height=48, n_frames=16)
    reader = decord.VideoReader(str(tmp_path / rows[0]["video"]))
    assert len(reader) == 16 and reader[0].shape == (48, 80, 3)


def test_rows_follow_the_schema(written):
    _, rows = written
    for pool, pool_rows in rows.items():
        spec = S.POOLS[pool]
        perception = [r for r in pool_rows if r["id"].rsplit("-", 1)[1] in S.PERCEPTION_KINDS]
        assert bool(perception) == spec.perception
        assert len(pool_rows) - len(perception) == SMALL * spec.rows_per_video
        for row in pool_rows:
            assert tuple(row) == S.ROW_KEYS
            assert row["source"] == pool and row["video"].startswith(f"{pool}/")
            assert row["id"].startswith(row["video"][: -len(".mp4")] + "-")
            assert isinstance(row["video_sha256"], str) and len(row["video_sha256"]) == 64
            assert isinstance(row["reversal_changes_answer"], bool)
            assert row["task"] in ("mcqa", "oeqa", "caption")
            if spec.task != "pretrain":
                assert row["task"] == spec.task
            if row["task"] == "caption":
                assert row["answer"] is None and row["candidates"] is None
                assert 20 <= len(row["caption"].split()) <= 70
            else:
                assert row["caption"] is None and isinstance(row["question"], str)
                assert isinstance(row["answer"], str)
            if row["task"] == "oeqa":
                assert row["candidates"] is None and 3 <= len(row["answer"].split()) <= 15
        if spec.task == "pretrain":  # each video: its caption, its perception rows, one QA row
            videos = [r["video"] for r in pool_rows if r["task"] == "caption"]
            assert len(videos) == SMALL and all(
                [r["task"] for r in pool_rows if r["video"] == v][0] == "caption" for v in videos)


@pytest.mark.parametrize("pool", ["synth-mcqa", "synth-pretrain"])
def test_multiple_choice_answers_are_among_4_to_5_unique_candidates(pool):
    rows = [r for s in _specs(pool, 60) for r in S.rows_for_video(s) if r["task"] == "mcqa"
            and r["id"].rsplit("-", 1)[1] not in S.PERCEPTION_KINDS]
    assert rows
    for row in rows:
        cands = row["candidates"]
        assert 4 <= len(cands) <= 5 and len(set(cands)) == len(cands)
        assert row["answer"] in cands
        if row["reversal_changes_answer"]:
            assert row["reversed_answer"] in cands  # the reversed video is answerable too
    assert len({len(r["candidates"]) for r in rows}) == 2  # both sizes occur
    positions = [r["candidates"].index(r["answer"]) for r in rows]
    assert len(set(positions)) >= 4  # the right answer is not always in the same slot


@pytest.mark.parametrize("pool", list(S.POOLS))
def test_reversal_metadata_matches_the_reversed_scene(pool):
    for spec in _specs(pool, 10):
        natural = S.render_video(spec)
        assert np.array_equal(S.render_video(spec, reverse=True), natural[::-1])
        assert S.reverse_spec(S.reverse_spec(spec)) == spec
        rows = S.rows_for_video(spec, pool)
        reversed_rows = S.rows_for_video(S.reverse_spec(spec), pool)
        for row, rrow in zip(rows, reversed_rows, strict=True):
            assert (row["id"], row["question"], row["candidates"]) == (rrow["id"], rrow["question"], rrow["candidates"])
            target, rtarget = (row["caption"], rrow["caption"]) if row["task"] == "caption" else (
                row["answer"], rrow["answer"])
            assert row["reversal_changes_answer"] == (target != rtarget)
            if row["reversal_changes_answer"]:
                assert row["reversed_answer"] == rtarget and row["reversed_answer"] != row["answer"]
                assert rrow["reversed_answer"] == target
            else:
                assert row["reversed_answer"] is None


@pytest.mark.parametrize("pool", ["synth-probe", "synth-pretrain"])
def test_perception_rows_answer_from_the_scene_over_the_kinds_answer_set(pool):
    """One row per kind the scene answers; the answer is the scene's (count, background, first to appear),
    among at most 4 distinct candidates of the kind's answer set; the other rows are those without them."""
    for spec in _specs(pool, 40):
        rows = {r["id"].rsplit("-", 1)[1]: r for r in S.rows_for_video(spec) if r["id"].rsplit("-", 1)[1]
                in S.PERCEPTION_KINDS}
        assert set(rows) >= {"background", "colour", "shape", "count"}
        assert ("order" in rows) == (len(spec.objects) >= 2)
        for kind, row in rows.items():
            assert S.question_kind(row["question"]) == kind and row["task"] == "mcqa"
            cands = row["candidates"]
            assert row["answer"] in cands and len(set(cands)) == len(cands) <= 4
        assert rows["background"]["answer"] == spec.background
        assert rows["count"]["answer"] == ("one", "two", "three")[len(spec.objects) - 1]
        present = {o.colour for o in spec.objects}
        assert rows["colour"]["answer"] in present  # exactly one right option: no distractor is in the clip
        assert [c for c in rows["colour"]["candidates"] if c in present] == [rows["colour"]["answer"]]
        if "order" in rows:
            assert rows["order"]["answer"] == f"the {min(spec.objects, key=lambda o: o.appear).name}"
    if pool == "synth-pretrain":  # adding them moved no other row
        plain = dataclasses.replace(S.POOLS[pool], perception=False)
        for spec in _specs(pool, 20):
            others = [r for r in S.rows_for_video(spec) if r["id"].rsplit("-", 1)[1] not in S.PERCEPTION_KINDS]
            with pytest.MonkeyPatch.context() as mp:
                mp.setitem(S.BUILDABLE_POOLS, pool, plain)
                assert S.rows_for_video(spec) == others


def test_most_questions_change_when_the_frames_are_reversed():
    rows = [r for p in ("synth-mcqa", "synth-oeqa") for s in _specs(p, S.POOLS[p].n_videos)
            for r in S.rows_for_video(s)]
    assert len(rows) == S.POOLS["synth-mcqa"].n_videos + 2 * S.POOLS["synth-oeqa"].n_videos
    assert np.mean([r["reversal_changes_answer"] for r in rows]) >= 0.6
    oeqa = [r for r in rows if r["task"] == "oeqa"]
    assert all(a["question"] != b["question"] for a, b in zip(oeqa[::2], oeqa[1::2]))  # two different questions


def test_titles_are_unique_and_in_every_row_of_the_titled_controls():
    titles = set()
    for pool, spec in S.POOLS.items():
        specs = _specs(pool, spec.n_videos)
        pool_titles = [s.title for s in specs]
        assert len(set(pool_titles)) == len(pool_titles)
        assert not titles & set(pool_titles)  # never shared across pools either
        titles |= set(pool_titles)
    for pool in S.TITLED_POOLS:
        for s in _specs(pool, 40):
            for row in S.rows_for_video(s):
                text = row["caption"] if row["task"] == "caption" else row["question"]
                assert s.title in text
    # Open-ended answers end with the video's own phrase; captions name who filmed it.
    s = S.sample_video_spec("synth-oeqa-titled", 0, 0)
    assert all(r["answer"].endswith(s.phrase) for r in S.rows_for_video(s))
    s = S.sample_video_spec("synth-caption-titled", 0, 0)
    assert s.filmed_by in S.rows_for_video(s)[0]["caption"]
    # the controls are their public pool's scenes and video files, with keys in the text
    assert S.rows_for_video(S.sample_video_spec("synth-mcqa-titled", 3, 0))[0]["video"] == "synth-mcqa/v0003.mp4"


def _words(rows) -> set[str]:
    import re

    text = " ".join(str(r.get(k) or "") for r in rows for k in ("question", "candidates", "answer", "caption"))
    return set(re.findall(r"[^\W_]+", text.casefold()))


KEY_WORDS = {w.casefold() for w in (*S._TITLE_ADJ, *S._TITLE_NOUN, *S._FIRST, *S._LAST, *S._ANIMALS, *S._SOUNDS,
                                     *S._SKIES, *S._SPOTS) for w in w.split()} | {"filmed", "in"}


@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
def test_the_default_text_holds_no_key_a_property_over_seeds(seed):
    """Every word of the public pools' text is one of a small vocabulary the frames and the templates give,
    shared by the whole pool: no title, number, name, place, credit or phrase no frame shows."""
    from vidsme.data_splits.text_keys import text_keys

    vocabulary = _words([r for p in S.POOLS for s in _specs(p, 300) for r in S.rows_for_video(s)])
    assert len(vocabulary) < 160 and not any(w.isdigit() for w in vocabulary), sorted(vocabulary)
    for pool in S.POOLS:
        rows = [r for s in (S.sample_video_spec(pool, i, seed) for i in range(120)) for r in S.rows_for_video(s)]
        words = _words(rows)
        assert words <= vocabulary, words - vocabulary  # closed: another seed brings no new word
        assert not words & (KEY_WORDS - vocabulary), words & KEY_WORDS
        # a template word can be rare in a draw of 120 scenes (one "slides"); a text key is in every row it keys
        assert text_keys(rows).keyed_rows < 0.05 * len(rows)
    titled = [r for s in (S.sample_video_spec("synth-mcqa-titled", i, seed) for i in range(120))
              for r in S.rows_for_video(s)]
    assert text_keys(titled).keyed_rows == len(titled)


def test_flicker_raises_the_brightness_std():
    specs = _specs("synth-pretrain", 60)
    flicker = [_grey_std(S.render_video(s)) for s in specs if s.flicker]
    steady = [_grey_std(S.render_video(s)) for s in specs if not s.flicker and s.lighting == "steady"]
    assert len(flicker) >= 5 and len(steady) >= 5
    assert np.mean(flicker) > 2 * np.mean(steady)
    for s in specs:
        if s.flicker and s.lighting == "steady":
            calm = dataclasses.replace(s, flicker=False, gains=(256,) * s.n_frames)
            assert _grey_std(S.render_video(s)) > _grey_std(S.render_video(calm))


def _centre(frame: np.ndarray, background: np.ndarray) -> np.ndarray:
    """(x, y) centroid of the pixels that differ from a plain background."""
    ys, xs = np.nonzero(np.abs(frame - background).sum(-1) > 30)
    return np.array([xs.mean(), ys.mean()])


def test_motion_in_the_text_is_motion_in_the_frames():
    checked = 0
    for spec in _specs("synth-oeqa", 30):
        background = np.asarray(spec.background_rgb, dtype=np.float64)
        for obj in spec.objects:
            alone = dataclasses.replace(spec, objects=(obj,), texture="plain", pan=(0, 0),
                                        gains=(256,) * spec.n_frames)
            question = S._questions(alone)
            key = "direction:0" if "direction:0" in question else "start_direction:0"
            if key not in question:
                continue
            frames = S.render_video(alone).astype(np.float64)
            step = _centre(frames[obj.appear + 1], background) - _centre(frames[obj.appear], background)
            expected = {"right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1)}[question[key].short]
            assert float(step @ np.array(expected)) > 0, (spec.video_id, obj)
            checked += 1
    assert checked >= 20
    # A sliding background pattern slides the way the text says.
    for spec in _specs("synth-pretrain", 120):
        if spec.pan == (0, 0) or spec.texture == "stripes":  # stripes are ambiguous along themselves
            continue
        frames = S.render_video(dataclasses.replace(spec, objects=(), gains=(256,) * spec.n_frames))
        dx, dy = spec.pan
        assert np.array_equal(np.roll(frames[0], (dy, dx), axis=(0, 1))[4:-4, 4:-4], frames[1][4:-4, 4:-4])
        word = S._questions(spec)["pan"].short
        assert word == {(1, 0): "right", (-1, 0): "left", (0, 1): "down", (0, -1): "up"}[(np.sign(dx), np.sign(dy))]


def test_unknown_pool_suggests_the_right_name(tmp_path):
    with pytest.raises(UnknownNameError, match="Did you mean: synth-mcqa"):
        S.sample_video_spec("synth-mcq", 0, 0)
    with pytest.raises(UnknownNameError, match="synth-oeqa"):
        S.generate_pool("synth-oqa", tmp_path, n_videos=1, progress=False)
