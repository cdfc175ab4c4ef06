"""Splits: manifests, user-created splits, verify's failure reports, the paper's splits, the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vidsme.cli import main
from vidsme.data_splits.create import create_split
from vidsme.data_splits.manifest import CARD_FILE, MANIFEST_FILE, ROW_KEYS, read_manifest
from vidsme.data_splits.registry import SPLITS_DIR_ENV, load_split
from vidsme.data_splits.verify import verify_split
from vidsme.errors import SplitError, UnknownNameError
from vidsme.video import write_mp4

PAPER_DIR = Path(__file__).resolve().parents[1] / "data_splits"


@pytest.fixture
def splits_root(tmp_path: Path, monkeypatch) -> Path:
    root = tmp_path / "splits"
    root.mkdir()
    monkeypatch.setenv(SPLITS_DIR_ENV, str(root))
    return root


@pytest.fixture
def my_videos(tmp_path: Path) -> Path:
    """A user's folder: 8 small mp4s (distinct content) in a sub-folder."""
    root = tmp_path / "videos"
    for i in range(8):
        frames = np.full((6, 32, 32, 3), 20 * i, dtype=np.uint8)
        frames[:, :, i * 3 : i * 3 + 4] = 255
        write_mp4(root / "clips" / f"clip{i}.mp4", frames)
    return root


def _annotations(path: Path, videos: list[int], *, with_candidates: bool = True) -> Path:
    entries = []
    for i in videos:
        for q in range(2):  # two questions per video
            entry = {"video": f"clips/clip{i}.mp4", "question": f"What happens in clip {i}, part {q}?",
                     "answer": f"answer {i}-{q}"}
            if with_candidates:
                entry["candidates"] = [f"answer {i}-{q}", "something else", 3]
            entries.append(entry)
    path.write_text(json.dumps(entries))
    return path


def test_create_by_fraction_groups_rows_by_video(splits_root, my_videos, tmp_path):
    ann = _annotations(tmp_path / "qa.json", list(range(8)))
    split = create_split("mine", my_videos, annotations=ann, member_fraction=0.5, seed=3, progress=False)
    rows = split.rows()
    assert len(rows) == 16 and all(list(r) == list(ROW_KEYS) for r in rows)
    by_video: dict[str, set] = {}
    for r in rows:
        by_video.setdefault(r["video"], set()).add(r["label"])
    assert all(len(labels) == 1 for labels in by_video.values())  # never both sides
    assert split.card.counts == {"rows": {"member": 8, "nonmember": 8}, "videos": {"member": 4, "nonmember": 4}}
    assert all(r["video_sha256"] and len(r["video_sha256"]) == 64 for r in rows)
    assert rows[0]["candidates"][2] == "3"  # numbers become strings
    assert verify_split(split, my_videos, progress=False).ok
    # same seed, same draw; another seed, another draw
    again = create_split("mine", my_videos, annotations=ann, member_fraction=0.5, seed=3, force=True, progress=False)
    assert [r["label"] for r in again.rows()] == [r["label"] for r in rows]
    other = create_split("other", my_videos, annotations=ann, member_fraction=0.5, seed=4, progress=False)
    assert [r["label"] for r in other.rows()] != [r["label"] for r in rows]


def test_create_from_two_files_and_refuse_overlap(splits_root, my_videos, tmp_path):
    members = _annotations(tmp_path / "train.json", [0, 1, 2])
    nonmembers = _annotations(tmp_path / "test.json", [3, 4, 5], with_candidates=False)
    split = create_split("pair", my_videos, members=members, nonmembers=nonmembers, progress=False)
    assert split.card.counts["videos"] == {"member": 3, "nonmember": 3}
    assert {r["task"] for r in split.rows()} == {"mcqa", "oeqa"}
    overlapping = _annotations(tmp_path / "test2.json", [2, 6])
    with pytest.raises(SplitError, match=r"1 video paths appear among both.*clip2"):
        create_split("bad", my_videos, members=members, nonmembers=overlapping, progress=False)
    # same content under another name is caught by checksum
    (my_videos / "clips" / "copy_of_clip0.mp4").write_bytes((my_videos / "clips" / "clip0.mp4").read_bytes())
    copy = tmp_path / "copy.json"
    copy.write_text(json.dumps([{"video": "clips/copy_of_clip0.mp4", "question": "q", "answer": "a"}]))
    with pytest.raises(SplitError, match="checksums"):
        create_split("bad2", my_videos, members=members, nonmembers=copy, progress=False)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"annotations": "qa"}, "--member-fraction F and --seed S"),
        ({"annotations": "qa", "member_fraction": 1.0, "seed": 0}, r"in \(0, 1\)"),
        ({"members": "qa"}, "both --members and --nonmembers"),
        ({}, "either --annotations"),
    ],
)
def test_create_argument_errors(splits_root, my_videos, tmp_path, kwargs, message):
    ann = _annotations(tmp_path / "qa.json", [0, 1])
    kwargs = {k: (ann if v == "qa" else v) for k, v in kwargs.items()}
    with pytest.raises(SplitError, match=message):
        create_split("x", my_videos, progress=False, **kwargs)


def test_create_names_missing_videos_and_bad_json(splits_root, my_videos, tmp_path):
    ann = tmp_path / "qa.json"
    ann.write_text(json.dumps([{"video": "clips/nope.mp4", "question": "q", "answer": "a"},
                               {"video": "clips/clip0.mp4", "question": "q", "answer": "a"}]))
    with pytest.raises(SplitError, match=r"1 video\(s\).*missing.*clips/nope.mp4"):
        create_split("x", my_videos, annotations=ann, member_fraction=0.5, seed=0, progress=False)
    ann.write_text("[{\"video\": \"clips/clip0.mp4\"}]")
    with pytest.raises(SplitError, match="entry 0.*question"):
        create_split("x", my_videos, annotations=ann, member_fraction=0.5, seed=0, progress=False)
    ann.write_text("{not json")
    with pytest.raises(SplitError, match="not valid JSON"):
        create_split("x", my_videos, annotations=ann, member_fraction=0.5, seed=0, progress=False)
    assert not (splits_root / "x").exists()  # nothing half-written


def _user_split(splits_root, my_videos, tmp_path):
    ann = _annotations(tmp_path / "qa.json", list(range(8)))
    return create_split("mine", my_videos, annotations=ann, member_fraction=0.5, seed=0, progress=False)


def test_verify_catches_an_edited_row(splits_root, my_videos, tmp_path):
    split = _user_split(splits_root, my_videos, tmp_path)
    lines = split.manifest_path.read_text().splitlines()
    row = json.loads(lines[3])
    row["answer"] = "a different answer"
    lines[3] = json.dumps(row)
    split.manifest_path.write_text("\n".join(lines) + "\n")
    report = verify_split(load_split("mine"), my_videos, progress=False)
    assert not report.ok
    assert any(p.check == "manifest" and "edited" in p.message for p in report.problems)


def test_verify_catches_a_member_id_among_nonmembers(splits_root, my_videos, tmp_path):
    split = _user_split(splits_root, my_videos, tmp_path)
    rows = split.rows()
    member = next(r for r in rows if r["label"] == "member")
    smuggled = dict(member, label="nonmember")
    with split.manifest_path.open("a") as f:
        f.write(json.dumps(smuggled) + "\n")
    report = verify_split(load_split("mine"), my_videos, progress=False)
    checks = {p.check for p in report.problems}
    assert {"manifest", "schema", "counts", "overlap"} <= checks
    overlap = next(p for p in report.problems if p.check == "overlap")
    assert member["id"] in overlap.ids
    assert member["id"] in report.format()


def test_verify_reports_missing_corrupt_and_swapped_videos(splits_root, my_videos, tmp_path):
    split = _user_split(splits_root, my_videos, tmp_path)
    rows = split.rows()
    (my_videos / rows[0]["video"]).unlink()  # missing
    corrupt = my_videos / rows[2]["video"]
    corrupt.write_bytes(corrupt.read_bytes()[:200])  # truncated: decode fails, checksum differs
    report = verify_split(split, my_videos, progress=False)
    messages = {p.message.split(":")[0]: p for p in report.problems}
    missing = next(p for p in report.problems if "missing" in p.message)
    assert set(missing.ids) == {r["id"] for r in rows if r["video"] == rows[0]["video"]}
    assert any("checksums recorded" in p.message and rows[2]["id"] in p.ids for p in report.problems)
    assert any("do not decode" in p.message and rows[2]["id"] in p.ids for p in report.problems), messages


def test_cli_verify_exit_codes(splits_root, my_videos, tmp_path, capsys):
    _user_split(splits_root, my_videos, tmp_path)
    assert main(["splits", "verify", "mine", "--video-root", str(my_videos)]) == 0
    assert "OK" in capsys.readouterr().out
    (my_videos / "clips" / "clip1.mp4").unlink()
    assert main(["splits", "verify", "mine", "--video-root", str(my_videos)]) == 1
    assert "videos missing" in capsys.readouterr().out


def test_cli_create_and_list(splits_root, my_videos, tmp_path, capsys):
    ann = _annotations(tmp_path / "qa.json", list(range(8)))
    assert main(["splits", "create", "cli-split", "--annotations", str(ann), "--video-root", str(my_videos),
                 "--member-fraction", "0.5", "--seed", "1"]) == 0
    assert main(["splits", "list"]) == 0
    out = capsys.readouterr().out
    assert "cli-split" in out and "8/8" in out and "synth-mcqa" in out
    assert main(["splits", "create", "cli-split", "--annotations", str(ann), "--video-root", str(my_videos),
                 "--member-fraction", "0.5", "--seed", "1"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_unknown_split_gets_did_you_mean(splits_root):
    with pytest.raises(UnknownNameError, match="Did you mean: synth-mcqa"):
        load_split("synth-mcq")
    with pytest.raises(SplitError, match="vidsme splits build synth-oeqa"):
        load_split("synth-oeqa")


def test_manifest_rows_are_schema_checked(tmp_path):
    bad = tmp_path / MANIFEST_FILE
    bad.write_text(json.dumps({"id": "a", "video": "/abs/path.mp4", "label": "member", "task": "oeqa",
                               "question": "q", "candidates": None, "answer": "x", "caption": None,
                               "source": "s", "video_sha256": None}) + "\n")
    with pytest.raises(SplitError, match=rf"{MANIFEST_FILE}:1: .*relative to the video root"):
        read_manifest(bad)
    bad.write_text('{"id": "a"}\n')
    with pytest.raises(SplitError, match="missing keys"):
        read_manifest(bad)


@pytest.mark.parametrize(
    "name, rows, videos, complete",
    [
        ("paper-cinepile", {"member": 502, "nonmember": 502}, {"member": 502, "nonmember": 349}, True),
        ("paper-nextqa", {"member": 8564, "nonmember": 8564}, {"member": 3501, "nonmember": 1000}, True),
        ("paper-caption", {"nonmember": 1027}, {"nonmember": 1027}, False),
    ],
)
def test_paper_splits_have_their_true_counts(name, rows, videos, complete, monkeypatch):
    monkeypatch.setenv(SPLITS_DIR_ENV, str(PAPER_DIR))
    split = load_split(name)
    assert split.card.counts == {"rows": rows, "videos": videos}
    assert split.card.members_available is complete
    report = verify_split(split)  # no videos here: list-level checks only
    assert report.ok is complete
    if not complete:
        assert [p.check for p in report.problems] == ["complete"]


def test_manifests_load_with_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("json", data_files=str(PAPER_DIR / "paper-cinepile" / MANIFEST_FILE),
                               split="train", cache_dir=str(tmp_path / "hf"))
    assert ds.num_rows == 1004 and list(ds.features) == list(ROW_KEYS)
    assert (PAPER_DIR / "paper-cinepile" / CARD_FILE).is_file()


def test_thorough_verify_decodes_every_frame(splits_root, my_videos, tmp_path):
    split = _user_split(splits_root, my_videos, tmp_path)
    report = verify_split(split, my_videos, thorough=True, progress=False)
    assert report.ok, report.format()
