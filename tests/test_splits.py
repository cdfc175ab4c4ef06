"""Splits: manifests, user-created splits, verify's failure reports, the paper's splits, the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vidsme.cli import main
from vidsme.data_splits.create import create_split
from vidsme.data_splits.manifest import CARD_FILE, MANIFEST_FILE, ROW_KEYS, read_manifest
from vidsme.data_splits.registry import load_split
from vidsme.paths import SPLITS_DIR_ENV
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
    with pytest.raises(SplitError, match=r"1 video path\(s\) appear among both.*clips/clip2.mp4 "
                                         r"\(member in train.json, non-member in test2.json\)"):
        create_split("bad", my_videos, members=members, nonmembers=overlapping, progress=False)
    # same content under another name is caught by checksum; the message names both files
    (my_videos / "clips" / "copy_of_clip0.mp4").write_bytes((my_videos / "clips" / "clip0.mp4").read_bytes())
    copy = tmp_path / "copy.json"
    copy.write_text(json.dumps([{"video": "clips/copy_of_clip0.mp4", "question": "q", "answer": "a"},
                                {"video": "clips/clip6.mp4", "question": "q", "answer": "a"}]))
    with pytest.raises(SplitError, match=r"1 video content\(s\) \(checksums\).*member clips/clip0.mp4 = "
                                         r"non-member clips/copy_of_clip0.mp4 \(sha256 [0-9a-f]{12}"):
        create_split("bad2", my_videos, members=members, nonmembers=copy, progress=False)
    assert not (splits_root / "bad").exists() and not (splits_root / "bad2").exists()  # nothing written


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"annotations": "qa"}, "--member-fraction F"),
        ({"annotations": "qa", "member_fraction": 1.0, "seed": 0}, r"in \(0, 1\)"),
        ({"annotations": "qa", "member_fraction": 0.5, "seed": 1.5}, "--seed must be an integer"),
        ({"members": "qa"}, "both --members and --nonmembers"),
        ({"members": "qa", "nonmembers": "qa", "member_fraction": 0.5}, "--annotations only"),
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
    out = capsys.readouterr().out
    assert "OK" in out and "dev/test partition (seed 0; videos member/non-member: dev 2/2, test 2/2)" in out
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
    assert "2/2 | 2/2" in out  # dev | test videos (member/non-member)
    assert load_split("cli-split").card.partition["seed"] == 1
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
    assert report.ok is complete, report.format()
    if not complete:
        assert [p.check for p in report.problems] == ["complete"]
        assert split.card.partition is None
        with pytest.raises(SplitError, match="incomplete"):
            split.partition()
    else:
        partition = split.partition()  # the committed record is what the committed manifest gives
        assert partition.seed == 0 and split.card.partition["seed"] == 0
        for label in ("member", "nonmember"):
            assert split.card.partition["dev"]["videos"][label] == videos[label] // 2
        assert any(c.startswith("dev/test partition (seed 0") for c in report.checked)


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


# ----------------------------------------------------------------------------- dev/test partition


def test_create_records_the_seed_and_the_partition(splits_root, my_videos, tmp_path):
    ann = _annotations(tmp_path / "qa.json", list(range(8)))
    split = create_split("mine", my_videos, annotations=ann, member_fraction=0.5, progress=False)  # seed: 0
    assert split.card.drawn["seed"] == 0 and split.card.drawn["partition_seed"] == 0
    partition = split.partition()
    assert partition.seed == 0 and split.card.partition["seed"] == 0
    rows = split.rows()
    assert split.card.partition == partition.record(rows)
    assert {s for r, s in zip(rows, partition.of_rows(rows))} == {"dev", "test"}
    # two-file mode: the seed draws only the partition
    members = _annotations(tmp_path / "train.json", [0, 1, 2, 3])
    nonmembers = _annotations(tmp_path / "test.json", [4, 5, 6, 7])
    default = create_split("pair0", my_videos, members=members, nonmembers=nonmembers, progress=False)
    seeded = create_split("pair5", my_videos, members=members, nonmembers=nonmembers, seed=5, progress=False)
    assert [r["label"] for r in default.rows()] == [r["label"] for r in seeded.rows()]
    assert default.card.partition["seed"] == 0 and seeded.card.drawn == dict(default.card.drawn, partition_seed=5)
    assert default.partition().of_video != seeded.partition().of_video
    assert seeded.partition().seed == 5


def test_create_refuses_undecodable_videos_naming_each_and_writes_nothing(splits_root, my_videos, tmp_path):
    existing = _user_split(splits_root, my_videos, tmp_path)
    card_before = (existing.path / CARD_FILE).read_bytes()
    truncated = my_videos / "clips" / "clip2.mp4"
    truncated.write_bytes(truncated.read_bytes()[:300])
    (my_videos / "clips" / "clip5.mp4").write_text("not a video at all")
    ann = _annotations(tmp_path / "qa.json", list(range(8)))
    for name, force in (("fresh", False), ("mine", True)):
        with pytest.raises(SplitError) as err:
            create_split(name, my_videos, annotations=ann, member_fraction=0.5, force=force, progress=False)
        message = str(err.value)
        assert message.startswith("2 of 8 video(s)") and "do not decode" in message
        lines = message.splitlines()
        assert any(line.strip().startswith("clips/clip2.mp4: ") for line in lines), message
        assert any(line.strip().startswith("clips/clip5.mp4: ") and "not a video" in line for line in lines), message
        assert not any("clip0" in line for line in lines)
    assert not (splits_root / "fresh").exists()
    assert (existing.path / CARD_FILE).read_bytes() == card_before  # --force replaced nothing


def test_create_bounds_a_long_list_of_undecodable_videos(splits_root, tmp_path):
    root = tmp_path / "junk"
    (root / "clips").mkdir(parents=True)
    for i in range(25):
        (root / "clips" / f"bad{i:02d}.mp4").write_bytes(b"junk" * (i + 1))
    ann = tmp_path / "qa.json"
    ann.write_text(json.dumps([{"video": f"clips/bad{i:02d}.mp4", "question": "q", "answer": "a"}
                               for i in range(25)]))
    with pytest.raises(SplitError, match=r"(?s)25 of 25 video.*clips/bad19.mp4: .*\.\.\. and 5 more") as err:
        create_split("junk", root, annotations=ann, member_fraction=0.5, progress=False)
    assert "bad20" not in str(err.value)
    assert not (splits_root / "junk").exists()


def test_create_refuses_a_split_that_cannot_be_partitioned(splits_root, my_videos, tmp_path):
    members = _annotations(tmp_path / "train.json", [0])
    nonmembers = _annotations(tmp_path / "test.json", [1, 2, 3])
    with pytest.raises(SplitError, match="split 'tiny': cannot draw its dev/test partition: 1 member video"):
        create_split("tiny", my_videos, members=members, nonmembers=nonmembers, progress=False)
    assert not (splits_root / "tiny").exists()


def test_an_old_card_without_a_partition_loads_but_is_refused(splits_root, my_videos, tmp_path, capsys):
    split = _user_split(splits_root, my_videos, tmp_path)
    card = json.loads((split.path / CARD_FILE).read_text())
    del card["partition"]  # as written before partitions existed
    (split.path / CARD_FILE).write_text(json.dumps(card))
    old = load_split("mine")
    assert old.card.partition is None and old.rows() == split.rows()
    with pytest.raises(SplitError, match="split 'mine': the split card records no dev/test partition.*vidsme splits"):
        old.partition()
    report = verify_split(old, my_videos, progress=False)
    assert [p.check for p in report.problems] == ["partition"]
    assert main(["splits", "list"]) == 0
    assert "none: re-create it" in capsys.readouterr().out


def test_verify_catches_a_tampered_partition(splits_root, my_videos, tmp_path):
    split = _user_split(splits_root, my_videos, tmp_path)
    card = json.loads((split.path / CARD_FILE).read_text())
    card["partition"]["seed"] = 1  # claims another draw
    (split.path / CARD_FILE).write_text(json.dumps(card))
    report = verify_split(load_split("mine"), my_videos, progress=False)
    assert [p.check for p in report.problems] == ["partition"]
    assert "does not match" in report.problems[0].message
    with pytest.raises(SplitError, match="does not match"):
        load_split("mine").partition()


def test_verify_catches_a_manifest_tampered_with_a_consistent_card(splits_root, my_videos, tmp_path):
    """Rows of one video dropped and the card's sha256 and counts updated to match: only the partition notices."""
    from vidsme.data_splits.manifest import count_by_label, write_manifest

    split = _user_split(splits_root, my_videos, tmp_path)
    rows = split.rows()
    dropped = next(v for v in split.partition().videos("test"))
    rows = [r for r in rows if r["video"] != dropped]
    card = json.loads((split.path / CARD_FILE).read_text())
    card["manifest_sha256"] = write_manifest(split.manifest_path, rows)
    card["counts"] = count_by_label(rows)
    (split.path / CARD_FILE).write_text(json.dumps(card))
    report = verify_split(load_split("mine"), my_videos, progress=False)
    assert [p.check for p in report.problems] == ["partition"], report.format()
