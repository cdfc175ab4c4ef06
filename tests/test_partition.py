"""The dev/test partition of a split (data_splits/partition.py): the draw and the card record check."""
from __future__ import annotations

import copy

import pytest

from vidsme.data_splits.partition import PARTITION_VERSION, check_partition_record, draw_partition
from vidsme.errors import SplitError


def _rows(n_members: int, n_nonmembers: int, rows_per_video: int = 3) -> list[dict]:
    """Labelled rows, several per video (QA pairs), in a deliberately interleaved order."""
    rows = []
    for q in range(rows_per_video):
        for label, n in (("member", n_members), ("nonmember", n_nonmembers)):
            for v in range(n):
                rows.append({"id": f"{label}-{v}-q{q}", "video": f"{label}/v{v:03d}.mp4", "label": label})
    return rows


def test_same_seed_same_partition_other_seed_another():
    rows = _rows(20, 15)
    a, b = draw_partition(rows, seed=0), draw_partition(list(reversed(rows)), seed=0)
    assert a.of_video == b.of_video  # row order does not matter either
    assert a.record(rows) == b.record(rows)
    other = draw_partition(rows, seed=1)
    assert other.of_video != a.of_video
    assert other.record(rows)["dev"]["videos_sha256"] != a.record(rows)["dev"]["videos_sha256"]


def test_every_row_of_a_video_is_on_one_side():
    rows = _rows(9, 7, rows_per_video=4)
    partition = draw_partition(rows, seed=3)
    side_of: dict[str, set] = {}
    for row, side in zip(rows, partition.of_rows(rows)):
        side_of.setdefault(row["video"], set()).add(side)
    assert all(len(sides) == 1 for sides in side_of.values())
    assert set(partition.videos("dev")).isdisjoint(partition.videos("test"))
    assert sorted(partition.videos("dev") + partition.videos("test")) == sorted(side_of)


@pytest.mark.parametrize("n_members, n_nonmembers", [(2, 2), (2, 3), (7, 4), (31, 50)])
def test_stratified_dev_gets_floor_half_of_each_label(n_members, n_nonmembers):
    rows = _rows(n_members, n_nonmembers, rows_per_video=2)
    record = draw_partition(rows, seed=5).record(rows)
    assert record["dev"]["videos"] == {"member": n_members // 2, "nonmember": n_nonmembers // 2}
    assert record["test"]["videos"] == {"member": n_members - n_members // 2,
                                        "nonmember": n_nonmembers - n_nonmembers // 2}
    assert record["dev"]["rows"] == {"member": 2 * (n_members // 2), "nonmember": 2 * (n_nonmembers // 2)}
    for side in ("dev", "test"):  # both labels on each side
        assert min(record[side]["videos"].values()) >= 1


def test_adding_a_video_moves_at_most_one_other():
    rows = _rows(12, 12)
    before = draw_partition(rows, seed=0).of_video
    more = rows + [{"id": "new", "video": "member/new.mp4", "label": "member"}]
    after = draw_partition(more, seed=0).of_video
    moved = [v for v in before if before[v] != after[v]]
    assert len(moved) <= 1


def test_refuses_what_cannot_be_partitioned():
    with pytest.raises(SplitError, match="1 member video.*at least two per label"):
        draw_partition(_rows(1, 5))
    both = _rows(3, 3) + [{"id": "x", "video": "member/v000.mp4", "label": "nonmember"}]
    with pytest.raises(SplitError, match="member/v000.mp4 has both member and non-member rows"):
        draw_partition(both)
    with pytest.raises(SplitError, match="only member/non-member splits"):
        draw_partition([{"id": "p", "video": "p.mp4", "label": None}])
    with pytest.raises(SplitError, match="must be an integer"):
        draw_partition(_rows(3, 3), seed="0")  # type: ignore[arg-type]


def test_check_accepts_the_record_and_returns_the_partition():
    rows = _rows(10, 8)
    partition = draw_partition(rows, seed=7)
    record = partition.record(rows)
    assert record["seed"] == 7 and record["version"] == PARTITION_VERSION
    assert check_partition_record(copy.deepcopy(record), rows, "split 't'") == partition


def _tampered(record: dict, how: str) -> dict:
    record = copy.deepcopy(record)
    if how == "seed":
        record["seed"] += 1
    elif how == "videos_sha256":
        record["dev"]["videos_sha256"] = "0" * 64
    elif how == "counts":
        record["test"]["rows"]["member"] += 1
    elif how == "version":
        record["version"] = PARTITION_VERSION + 1
    elif how == "missing":
        return None  # type: ignore[return-value]
    elif how == "seed type":
        record["seed"] = "zero"
    return record


@pytest.mark.parametrize("how, message", [
    ("seed", "dev partition \\(seed 8\\) does not match"),
    ("videos_sha256", "dev partition .* does not match"),
    ("counts", "test partition .* does not match"),
    ("version", "rule version"),
    ("missing", "records no dev/test partition"),
    ("seed type", "must be an integer"),
])
def test_check_refuses_a_tampered_card(how, message):
    rows = _rows(10, 8)
    record = draw_partition(rows, seed=7).record(rows)
    with pytest.raises(SplitError, match=message) as err:
        check_partition_record(_tampered(record, how), rows, "split 'mine'")
    assert "split 'mine'" in str(err.value) and "vidsme splits" in str(err.value)  # names the split and the fix


@pytest.mark.parametrize("change", ["drop a video", "relabel a video", "rename a video", "drop a row"])
def test_check_refuses_a_tampered_manifest(change):
    rows = _rows(10, 8, rows_per_video=2)
    record = draw_partition(rows, seed=0).record(rows)
    rows = copy.deepcopy(rows)
    if change == "drop a video":
        rows = [r for r in rows if r["video"] != "member/v004.mp4"]
    elif change == "relabel a video":
        for r in rows:
            if r["video"] == "member/v004.mp4":
                r["label"] = "nonmember"
    elif change == "rename a video":
        for r in rows:
            if r["video"] == "nonmember/v002.mp4":
                r["video"] = "nonmember/renamed.mp4"
    else:
        rows.pop()
    with pytest.raises(SplitError, match="does not match the manifest"):
        check_partition_record(record, rows, "split 'mine'")
