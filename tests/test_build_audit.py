"""Synthetic split building and the blind audit."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vidsme.data_splits.audit import AUDIT_FILE, FEATURES, audit_split
from vidsme.data_splits.build import build_synthetic_split
from vidsme.data_splits.create import create_split
from vidsme.data_splits.registry import load_split
from vidsme.paths import SPLITS_DIR_ENV
from vidsme.data_splits.verify import verify_split
from vidsme.errors import SplitError
from vidsme.video import write_mp4


@pytest.fixture
def splits_root(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv(SPLITS_DIR_ENV, str(tmp_path / "splits"))
    monkeypatch.setenv("VIDSME_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "splits"


def test_build_is_deterministic_verifies_and_skips_when_up_to_date(splits_root, tmp_path):
    videos = tmp_path / "videos"
    split, rebuilt = build_synthetic_split("synth-oeqa", videos, n_videos=12, progress=False)
    assert rebuilt and split.card.kind == "split"
    assert split.card.counts == {"rows": {"member": 12, "nonmember": 12}, "videos": {"member": 6, "nonmember": 6}}
    assert verify_split(split, videos, progress=False).ok
    assert split.card.partition["seed"] == 0 and split.partition().seed == 0  # the build seed
    assert split.card.partition["dev"]["videos"] == {"member": 3, "nonmember": 3}
    first = split.manifest_path.read_bytes()
    again, rebuilt = build_synthetic_split("synth-oeqa", videos, n_videos=12, progress=False)
    assert not rebuilt and again.manifest_path.read_bytes() == first
    # a changed video forces a rebuild, which restores identical bytes
    victim = videos / split.rows()[0]["video"]
    victim.write_bytes(b"not a video")
    _, rebuilt = build_synthetic_split("synth-oeqa", videos, n_videos=12, progress=False)
    assert rebuilt and split.manifest_path.read_bytes() == first
    assert any("reverse" in note for note in split.card.notes)


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def test_build_rewrites_only_the_card_when_its_partition_is_missing_or_wrong(splits_root, tmp_path):
    videos = tmp_path / "videos"
    split, _ = build_synthetic_split("synth-mcqa", videos, n_videos=8, progress=False)
    card_path = split.path / "card.json"
    fresh_card, manifest = card_path.read_bytes(), split.manifest_path.read_bytes()
    untouched = _mtimes(videos) | {"manifest": split.manifest_path.stat().st_mtime_ns}
    old = json.loads(fresh_card)
    del old["partition"], old["drawn"]["partition_seed"]  # a card written before partitions existed
    for stale in (old, dict(json.loads(fresh_card), partition=dict(json.loads(fresh_card)["partition"], seed=3))):
        card_path.write_text(json.dumps(stale, indent=2))
        again, rebuilt = build_synthetic_split("synth-mcqa", videos, n_videos=8, progress=False)
        assert rebuilt
        assert card_path.read_bytes() == fresh_card  # the card a fresh build writes
        assert split.manifest_path.read_bytes() == manifest and again.card.manifest_sha256 == split.card.manifest_sha256
        assert _mtimes(videos) | {"manifest": split.manifest_path.stat().st_mtime_ns} == untouched  # nothing regenerated
        assert again.partition() == split.partition()
    _, rebuilt = build_synthetic_split("synth-mcqa", videos, n_videos=8, progress=False)
    assert not rebuilt


def test_pretrain_is_a_pool_without_labels(splits_root, tmp_path):
    split, _ = build_synthetic_split("synth-pretrain", tmp_path / "videos", n_videos=4, progress=False)
    assert split.is_pool and all(r["label"] is None for r in split.rows())
    assert split.card.partition is None
    with pytest.raises(SplitError, match="pool .*no dev/test partition"):
        split.partition()
    assert verify_split(split, tmp_path / "videos", progress=False).ok
    with pytest.raises(SplitError, match="pool"):
        audit_split(split, tmp_path / "videos", progress=False)


def test_unknown_buildable_name(splits_root, tmp_path):
    with pytest.raises(SplitError, match="Did you mean: synth-mcqa"):
        build_synthetic_split("synth-mcq", tmp_path)


def test_audit_on_a_small_synthetic_split(splits_root, tmp_path):
    videos = tmp_path / "videos"
    split, _ = build_synthetic_split("synth-mcqa", videos, n_videos=24, progress=False)
    result = audit_split(split, videos, folds=3, repeats=2, progress=False)
    assert result.n_videos == {"member": 12, "nonmember": 12}
    assert 0.0 <= result.auc.ci_low <= result.auc.value <= result.auc.ci_high <= 1.0
    assert set(result.feature_auc) == set(FEATURES)
    saved = json.loads((split.path / AUDIT_FILE).read_text())
    assert saved["auc"]["value"] == result.auc.value and saved["split"] == "synth-mcqa"


def test_audit_flags_a_split_whose_metadata_separates_members(splits_root, tmp_path):
    """Members are long clips, non-members short ones: the blind baseline must see it."""
    root = tmp_path / "videos"
    entries = []
    rng = np.random.default_rng(0)
    for i in range(24):
        n_frames = 30 if i < 12 else 8
        frames = (rng.random((n_frames, 32, 32, 3)) * 255).astype(np.uint8)
        write_mp4(root / f"v{i}.mp4", frames)
        entries.append({"video": f"v{i}.mp4", "question": f"q{i}?", "answer": f"a{i}"})
    (tmp_path / "train.json").write_text(json.dumps(entries[:12]))
    (tmp_path / "test.json").write_text(json.dumps(entries[12:]))
    split = create_split("leaky", root, members=tmp_path / "train.json", nonmembers=tmp_path / "test.json",
                         progress=False)
    result = audit_split(split, root, folds=3, repeats=2, progress=False)
    assert result.auc.value > 0.9 and not result.sound
    assert next(iter(result.feature_auc)) in {"duration_s", "num_frames", "size_bytes"}
    assert "LEAKY" in result.format() and result.to_dict()["verdict"] == "LEAKY"


def test_a_below_chance_audit_is_not_called_leaky():
    from vidsme.metrics import MetricValue
    from vidsme.data_splits.audit import AuditResult

    def audit(auc: float) -> AuditResult:
        return AuditResult(split="s", n_videos={"member": 60, "nonmember": 60},
                           auc=MetricValue(auc, auc - 0.1, auc + 0.1), feature_auc={"k1_motion": 0.537},
                           folds=5, repeats=3, seed=0)

    low, fine = audit(0.376), audit(0.5)
    assert not low.sound and "BELOW CHANCE" in low.format() and "LEAKY" not in low.format()
    assert low.to_dict()["verdict"] == "BELOW CHANCE" and fine.to_dict()["verdict"] == "sound"


def test_audit_refuses_incomplete_splits(splits_root, tmp_path, monkeypatch):
    monkeypatch.setenv(SPLITS_DIR_ENV, str(Path(__file__).resolve().parents[1] / "data_splits"))
    with pytest.raises(SplitError, match="incomplete"):
        audit_split(load_split("paper-caption"), tmp_path, progress=False, write=False)


def test_cli_build_verify_audit(splits_root, tmp_path, capsys):
    from vidsme.cli import main

    videos = str(tmp_path / "videos")
    assert main(["splits", "build", "synth-caption", "--video-root", videos, "--n-videos", "12"]) == 0
    assert main(["splits", "verify", "synth-caption", "--video-root", videos]) == 0
    assert main(["splits", "audit", "synth-caption", "--video-root", videos, "--folds", "3"]) == 0
    out = capsys.readouterr().out
    assert "synth-caption: built" in out and "OK" in out and "blind AUC" in out


@pytest.mark.integration
def test_default_synthetic_splits_are_sound(splits_root, tmp_path):
    """The acceptance check: at default (the demo's) sizes, the blind audit of every synthetic split — metadata,
    text and both — is in [0.4, 0.6]."""
    videos = tmp_path / "videos"
    for name in ("synth-mcqa", "synth-oeqa", "synth-caption"):
        split, _ = build_synthetic_split(name, videos, progress=False)
        assert verify_split(split, videos, progress=False).ok
        result = audit_split(split, videos, progress=False)
        assert result.sound, result.format()  # the strongest of metadata, all text and both
        assert {"metadata", "text: all text", "both"} <= set(result.models) and not result.not_used
        assert result.text_keys["keyed_rows"] == 0, result.format()  # no word names one video
        assert split.card.audit["text_keyed_rows"] == 0


def test_the_titled_control_shows_its_text_keys(splits_root, tmp_path, capsys):
    videos = tmp_path / "videos"
    plain, _ = build_synthetic_split("synth-mcqa", videos, n_videos=24, progress=False)
    titled, _ = build_synthetic_split("synth-mcqa-titled", videos, n_videos=24, progress=False)
    # the same scenes, files, labels and partition: only the text differs
    assert [(r["video"], r["label"], r["video_sha256"]) for r in plain.rows()] == \
        [(r["video"], r["label"], r["video_sha256"]) for r in titled.rows()]
    assert plain.card.partition == titled.card.partition
    result = audit_split(titled, videos, folds=3, repeats=1, progress=False)
    assert result.text_keys["keyed_rows"] == result.text_keys["rows"] == 24
    assert "text-keyed rows (a word in one video's text only): 24 of 24" in result.format()


# ----------------------------------------------------------------------------- text, and no videos
def _text_split(tmp_path: Path, name: str, member_word: str | None) -> object:
    """24 random videos of one size; members' questions say `member_word` (None: the same wording)."""
    root = tmp_path / "videos"
    rng = np.random.default_rng(1)
    entries = []
    for i in range(24):  # every video alike in length and size, none the same bytes
        write_mp4(root / f"{name}-{i}.mp4", (rng.random((12, 32, 32, 3)) * 255).astype(np.uint8))
        word = member_word if (member_word and i < 12) else "scene"
        entries.append({"video": f"{name}-{i}.mp4", "question": f"what happens in the {word} number {i:02d}?",
                        "answer": "a shape moves"})
    (tmp_path / f"{name}-m.json").write_text(json.dumps(entries[:12]))
    (tmp_path / f"{name}-n.json").write_text(json.dumps(entries[12:]))
    return create_split(name, root, members=tmp_path / f"{name}-m.json", nonmembers=tmp_path / f"{name}-n.json",
                        progress=False), root


def test_the_text_baseline_sees_a_word_only_members_have(splits_root, tmp_path):
    split, root = _text_split(tmp_path, "wordy", "movie")
    result = audit_split(split, root, folds=3, repeats=1, progress=False)
    assert result.strongest.startswith("text") and result.auc.value > 0.9 and "LEAKY: the text" in result.verdict
    assert "movie" in " ".join(result.ngrams["member"]) and result.models["metadata"]["auc"]["value"] < 0.8
    assert {"text: question", "text: answer", "text: all text", "both"} <= set(result.models)
    card = load_split("wordy").card.audit  # the card records it
    assert card["verdict"] == "LEAKY" and card["strongest"] == result.strongest


def test_an_audit_without_videos_reads_the_text_and_says_what_it_could_not_use(splits_root, tmp_path):
    split, _ = _text_split(tmp_path, "novideo", "movie")
    result = audit_split(split, None, folds=3, repeats=1, progress=False, write=False)
    assert result.auc.value > 0.9 and any("no --video-root given" in why for why in result.not_used)
    assert set(result.feature_auc) == {"text_chars", "rows_per_video"}
    assert "not used: video features" in result.format()


def test_the_paper_splits_cards_record_their_audit():
    """Measured once (`vidsme splits audit paper-cinepile paper-nextqa`, no videos) and committed."""
    repo = Path(__file__).resolve().parents[1]
    cinepile = json.loads((repo / "data_splits" / "paper-cinepile" / "card.json").read_text())["audit"]
    nextqa = json.loads((repo / "data_splits" / "paper-nextqa" / "card.json").read_text())["audit"]
    assert cinepile["verdict"] == "LEAKY" and cinepile["strongest"].startswith("text")
    assert cinepile["models"]["text: all text"]["auc"] > 0.95
    assert nextqa["verdict"] == "LEAKY" and nextqa["models"]["text: all text"]["auc"] < 0.6  # the rows per video
    assert all("no --video-root" in " ".join(a["not_used"]) for a in (cinepile, nextqa))
