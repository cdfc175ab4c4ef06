"""Convert the paper's annotation lists (../shared/paper_splits) into data_splits/ once.

Run from the repository root when the lists change (never at run time):
    .venv/bin/python scripts/convert_paper_splits.py ../shared/paper_splits
Writes data_splits/paper-{cinepile,nextqa,caption}/ (manifest.jsonl + card.json); the
result is committed. Videos are not part of the lists: users supply them via --video-root.
The cinepile and nextqa cards record their dev/test partition (seed PARTITION_SEED, by
video, stratified by label: data_splits/partition.py); the caption split, whose member list
is not public, has none.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vidsme.data_splits.create import read_reference_json, rows_from_reference
from vidsme.data_splits.manifest import write_split
from vidsme.provenance import sha256_file

MLVU_FILES = ("anomaly_reco", "count", "ego", "needleQA", "order", "plotQA", "sportsQA", "topic_reasoning",
              "tutorialQA")
PARTITION_SEED = 0  # the dev/test partition of the paper splits; changing it moves every paper result's dev/test
PAPER = "Li, Yu, Wang. Vid-SME, arXiv 2506.03179 (2025), Sec. 5.1 and the reference repository's video_json/"


def _answer_anomalies(rows: list[dict]) -> int:
    return sum(1 for r in rows if r["candidates"] and r["answer"] not in r["candidates"])


def _write(out: Path, name: str, rows: list[dict], *, description: str, drawn: dict, source: dict,
           members_available: bool, notes: list[str]) -> None:
    card = write_split(out / name, rows, partition_seed=PARTITION_SEED, name=name, kind="split", version=1,
                       description=description, drawn=drawn, source=source, members_available=members_available,
                       notes=notes)
    sides = {s: card.partition[s]["videos"] for s in ("dev", "test")} if card.partition else "none (incomplete)"
    print(f"{name}: {card.counts}; dev/test videos {sides}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lists", type=Path, help="folder with the reference JSON lists")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data_splits")
    args = parser.parse_args(argv)
    src = args.lists

    members = rows_from_reference(read_reference_json(src / "cinepine_mia.json"), source="cinepine_mia.json",
                                  id_prefix="cinepile", label="member")
    nonmembers = []
    for stem in MLVU_FILES:
        nonmembers += rows_from_reference(read_reference_json(src / f"{stem}.json"), source=f"{stem}.json",
                                          id_prefix=f"mlvu-{stem}", label="nonmember")
    rows = members + nonmembers
    _write(args.out, "paper-cinepile", rows,
           description="The paper's CinePile target: members are the 502 CinePile clips it was fine-tuned on; "
           "non-members are the 502 QA rows of the nine MLVU test files (349 distinct, minutes-long videos). "
           "Members and non-members come from two different sources, so a blind audit is essential here.",
           drawn={"method": "given_lists", "members": "cinepine_mia.json",
                  "nonmembers": [f"{s}.json" for s in MLVU_FILES]},
           source={"paper": PAPER, "files_sha256": {f: sha256_file(src / f) for f in
                   ["cinepine_mia.json"] + [f"{s}.json" for s in MLVU_FILES]}},
           members_available=True,
           notes=["Integer candidates/answers (MLVU count.json) are stored as strings.",
                  f"{_answer_anomalies(rows)} QA rows have an answer that is not among their candidates.",
                  "MLVU 'duration' and 'question_type' fields are not kept; the audit reads durations from "
                  "the video files."])

    rows = rows_from_reference(read_reference_json(src / "nextqa_train_official.json"),
                               source="nextqa_train_official.json", id_prefix="nextqa-train", label="member")
    rows += rows_from_reference(read_reference_json(src / "nextqa_test_official.json"),
                                source="nextqa_test_official.json", id_prefix="nextqa-test", label="nonmember")
    _write(args.out, "paper-nextqa", rows,
           description="The paper's NExT-QA target: members are 8,564 QA rows of the train split (3,501 videos), "
           "non-members 8,564 rows of the test split (1,000 videos). Rows are QA pairs, not videos: "
           "evaluate at both levels.",
           drawn={"method": "given_lists", "members": "nextqa_train_official.json",
                  "nonmembers": "nextqa_test_official.json"},
           source={"paper": PAPER, "files_sha256": {f: sha256_file(src / f) for f in
                   ("nextqa_train_official.json", "nextqa_test_official.json")}},
           members_available=True,
           notes=[f"{_answer_anomalies(rows)} QA rows have an answer that is not among their candidates."])

    rows = rows_from_reference(read_reference_json(src / "lmms_VDC_test.json"), source="lmms_VDC_test.json",
                               id_prefix="vdc-test", label="nonmember", task="caption")
    _write(args.out, "paper-caption", rows,
           description="The paper's captioning target: non-members are the 1,027 VDC test videos with their "
           "detailed captions. The member list (the captions the target was fine-tuned on) is not public.",
           drawn={"method": "given_lists", "members": None, "nonmembers": "lmms_VDC_test.json"},
           source={"paper": PAPER, "files_sha256": {"lmms_VDC_test.json": sha256_file(src / "lmms_VDC_test.json")}},
           members_available=False,
           notes=["INCOMPLETE: the member list is not public; `vidsme splits verify` reports this split as "
                  "incomplete. Supply members with `vidsme splits create --members ... --nonmembers ...`."])
    return 0


if __name__ == "__main__":
    sys.exit(main())
