"""Leaderboard (results.json schema 2): main view from the verdicts, details, n/a TPRs with
reasons, row = video shown once, determinism, escaping, bad input, page size and width."""
from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from vidsme.metrics import evaluate_scores
from vidsme.benchmark.leaderboard import RANKING, build_leaderboard, write_leaderboard
from vidsme.benchmark.results_schema import load_results
from vidsme.cli import main
from vidsme.benchmark.verdicts import BLIND_METHOD, NOT_ABOVE_BLIND, compute_verdicts
from vidsme.errors import VidsmeError

N_VIDEOS = 24  # members and non-members per target: 12 + 12 on each partition
N_BOOT = 60
EVIL = "evil<b>&'\""
MAX_HTML_BYTES = 1_500_000
WINDOW = 1366


# ----------------------------------------------------------------------------- a real (small) results dir
def _partition(videos: dict[str, int]) -> dict[str, str]:
    side = {}
    for label in (1, 0):
        mine = sorted(v for v, y in videos.items() if y == label)
        side.update({v: ("dev" if i < len(mine) // 2 else "test") for i, v in enumerate(mine)})
    return side


def _partition_record(rows: list[tuple[str, str, int]], side: dict[str, str]) -> dict:
    record: dict = {"version": 1, "seed": 0, "method": "test fixture: sorted videos, first half dev"}
    for part in ("dev", "test"):
        mine = [(r, v, y) for r, v, y in rows if side[v] == part]
        record[part] = {"videos_sha256": hashlib.sha256(part.encode()).hexdigest(),
                        "rows": {"member": sum(y for *_, y in mine), "nonmember": sum(1 - y for *_, y in mine)},
                        "videos": {"member": len({v for _, v, y in mine if y}),
                                   "nonmember": len({v for _, v, y in mine if not y})}}
    return record


def _write_csv(path: Path, ids, videos, labels, parts, columns: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["sample_id", "video", "label", "partition", *columns])
        for i in range(len(ids)):
            out.writerow([ids[i], videos[i], int(labels[i]), parts[i], *(repr(float(c[i])) for c in columns.values())])


def _row(target, attack, family, kind, slice_, level, n_frames, part, ev: dict, scores_file, column) -> dict:
    row = {"target": target, "attack": attack, "family": family, "attack_version": 1, "kind": kind, "slice": slice_,
           "level": level, "n_frames": n_frames, "partition": part}
    row.update({k: ev[k] for k in ("direction", "n_members", "n_nonmembers", "auc", "balanced_accuracy")})
    row.update({k: v for k, v in ev.items() if k.startswith("tpr@")})
    row.update(n_posinf_clipped=0, n_neginf_clipped=0, bootstrap_clusters=ev.get("bootstrap_clusters"),
               scores_file=scores_file, scores_column=column,
               provenance={"source": f"vidsme.attack.attacks.{family}", "file_sha256": None, "git_commit": "abc123"})
    return row


# (name, family, slices, direction, strength): scores are label * strength + noise ("lower": negated)
ATTACKS = [
    ("loss", "loss", ("video", "answer"), "lower", 1.6),
    ("min_k_prob_k10", "min_k_prob", ("answer",), "higher", 0.7),
    ("min_k_prob_k30", "min_k_prob", ("answer",), "higher", 0.9),
    (EVIL, "evil<i>&", ("video",), "higher", 0.0),
]
FRAMES = (4, 8)


def _target_rows(root: Path, name: str, rows_per_video: int, seed: int) -> tuple[dict, list[dict], dict]:
    """One target: every attack x slice x frames x level x partition evaluated for real, scores CSVs
    written, and the target record; returns (record, rows, attacks)."""
    rng = np.random.default_rng(seed)
    labels_of = {f"{name}-v{i:02d}.mp4": int(i < N_VIDEOS) for i in range(2 * N_VIDEOS)}
    side = _partition(labels_of)
    split_rows = [(f"{v}#q{j}", v, y) for v, y in sorted(labels_of.items()) for j in range(rows_per_video)]
    ids, videos, labels = (list(x) for x in zip(*split_rows))
    labels = np.array(labels)
    order = sorted(labels_of)
    index = np.array([order.index(v) for v in videos])
    levels = ("row=video",) if rows_per_video == 1 else ("row", "video")
    views = {}
    for level in levels:
        if level == "video":
            views[level] = (order, order, np.array([labels_of[v] for v in order]))
        else:
            views[level] = (ids, videos, labels)
    attacks, rows = {}, []

    def evaluate(scores, level, part, direction, attack):
        ids_, vids, y = views[level]
        mask = np.array([side[v] == part for v in vids])
        return evaluate_scores(scores[mask], y[mask], direction=direction, attack=attack,
                               sample_ids=[i for i, k in zip(ids_, mask) if k], n_bootstrap=N_BOOT, seed=0,
                               clusters=[v for v, k in zip(vids, mask) if k], min_false_positives=1).to_dict()

    def at_level(row_scores, level):
        if level != "video":
            return row_scores
        return np.bincount(index, weights=row_scores) / np.bincount(index)

    for n_frames in FRAMES:
        columns: dict[str, dict[str, np.ndarray]] = {level: {} for level in levels}
        for attack, family, slices, direction, strength in ATTACKS:
            attacks[attack] = {"name": attack, "family": family, "direction": direction, "version": 1}
            for slice_ in slices:
                video_signal = rng.normal(0, 1, len(order))[index]
                raw = labels * strength + video_signal + rng.normal(0, 0.5, len(ids))
                raw = -raw if direction == "lower" else raw
                for level in levels:
                    scores = at_level(raw, level)
                    rel = f"scores/{name}/f{n_frames}-{level}.csv"
                    columns[level][f"{slice_}/{attack}"] = scores
                    for part in ("dev", "test"):
                        rows.append(_row(name, attack, family, "reproduced", slice_, level, n_frames, part,
                                         evaluate(scores, level, part, direction, attack), rel, f"{slice_}/{attack}"))
        for level in levels:
            ids_, vids, y = views[level]
            _write_csv(root / f"scores/{name}/f{n_frames}-{level}.csv", ids_, vids, y, [side[v] for v in vids],
                       columns[level])
    blind_raw = labels * 0.5 + rng.normal(0, 1, len(order))[index]
    for level in levels:
        scores = at_level(blind_raw, level)
        ids_, vids, y = views[level]
        rel = f"scores/{name}/blind-{level}.csv"
        _write_csv(root / rel, ids_, vids, y, [side[v] for v in vids], {"metadata/blind_baseline": scores})
        for part in ("dev", "test"):
            rows.append(_row(name, "blind_baseline", "blind", "blind", "metadata", level, None, part,
                             evaluate(scores, level, part, "higher", "blind_baseline"), rel,
                             "metadata/blind_baseline"))
    member_of = {v: y for _, v, y in split_rows}
    record = {"name": name, "path": f"runs/demo/models/{name}", "card_sha256": "c" * 64,
              "strategy": name.split("-")[1], "task": name.split("-")[0],
              "split": {"name": f"synth-{name.split('-')[0]}", "version": 1, "manifest_sha256": "m" * 64},
              "n_rows": {"member": int(labels.sum()), "nonmember": int(len(labels) - labels.sum())},
              "n_videos": {"member": sum(member_of.values()), "nonmember": len(member_of) - sum(member_of.values())},
              "levels": list(levels), "partition": _partition_record(split_rows, side),
              "excluded": {"n_rows": 0, "n_videos": 0, "videos": [], "rows": [], "reasons": {}}}
    return record, rows, attacks


def _add_submission(root: Path, name: str, rows: list[dict], attacks: dict) -> None:
    """A scores-file submission on target `name`'s video... answer slice at 8 frames: its own method."""
    source = next(r for r in rows if r["attack"] == "loss" and r["slice"] == "answer" and r["n_frames"] == 8)
    path = root / source["scores_file"]
    with path.open(newline="", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    rel = f"scores/{name}/submissions/outside_loss-scores-answer-{source['level']}.csv"
    _write_csv(root / rel, [t["sample_id"] for t in table], [t["video"] for t in table],
               [int(t["label"]) for t in table], [t["partition"] for t in table],
               {"answer/outside_loss": np.array([float(t["answer/loss"]) for t in table])})
    for r in [r for r in rows if r["attack"] == "loss" and r["slice"] == "answer" and r["n_frames"] == 8]:
        rows.append({**r, "attack": "outside_loss", "family": "outside_loss", "kind": "scores_file",
                     "scores_file": rel, "scores_column": "answer/outside_loss"})
    attacks["outside_loss"] = {"name": "outside_loss", "family": "outside_loss", "direction": "lower",
                               "submission": {"kind": "scores_file"}}


def make_results_dir(root: Path) -> Path:
    """Two targets: mcqa-full with one QA row per video (level row=video), oeqa-lora with two
    (levels row and video); real metrics on dev and test, real scores CSVs, real verdicts."""
    root.mkdir(parents=True, exist_ok=True)
    t1, rows1, attacks = _target_rows(root, "mcqa-full", 1, 1)
    t2, rows2, _ = _target_rows(root, "oeqa-lora", 2, 2)
    _add_submission(root, "mcqa-full", rows1, attacks)
    results = {
        "schema_version": 2,
        "suite": {"name": "demo", "config": {"primary_metric": "tpr@1%fpr", "n_bootstrap": N_BOOT, "seed": 0,
                                             "min_false_positives": 1},
                  "config_hash": "h" * 64},
        "provenance": {"git_commit": "abc123", "vidsme": "0.2.0", "libraries": {"numpy": np.__version__},
                       "created": "2026-11-30T10:00:00Z", "command": "vidsme benchmark configs/suites/demo.yaml"},
        "attacks": attacks,
        "targets": [t1, t2],
        "rows": rows1 + rows2,
        "skipped": [{"target": "oeqa-lora", "attack": "ref_calibration", "slice": "answer", "n_frames": 8,
                     "reason": "needs reference.target_logprob, which the cache lacks"}],
    }
    results["verdicts"] = compute_verdicts(results, root)
    (root / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return make_results_dir(tmp_path_factory.mktemp("lb") / "results")


@pytest.fixture
def results_dir(built: Path, tmp_path: Path) -> Path:
    out = tmp_path / "results"
    shutil.copytree(built, out)
    return out


def _target(board: dict, name: str) -> dict:
    return next(t for t in board["targets"] if t["name"] == name)


# ----------------------------------------------------------------------------- leaderboard.json
def test_main_entries_are_the_verdicts_with_rank_band_and_test_partition(results_dir: Path) -> None:
    results = load_results(results_dir)
    board = build_leaderboard(results)
    assert board["leaderboard_version"] == 2 and board["ranking"] == RANKING
    assert board["protocol"] == results["verdicts"]["protocol"]
    for t, verdict in zip(board["targets"], results["verdicts"]["targets"]):
        assert t["entries"] == verdict["entries"] and t["adjacent"] == verdict["adjacent"]
        assert t["primary_metric"] == "auc" and "tpr@1%fpr declared" in t["why"].lower()
        methods = [e["method"] for e in t["entries"]]
        assert len(methods) == len(set(methods)) and BLIND_METHOD in methods and t["has_blind_baseline"]
        for e in t["entries"]:
            assert e["partition"] == "test" and e["selected_on"] == "dev"
            assert re.fullmatch(r"\d+(–\d+)?", e["rank_band"]) and e["band"][0] <= e["rank"] <= e["band"][1]
            if e["blind"]:
                assert e["vs_blind"] is None and e["flag"] is None
            else:  # flagged exactly when the paired CI does not lie above 0
                assert (e["flag"] == NOT_ABOVE_BLIND) == (e["vs_blind"]["ci_low"] <= 0)
        values = [e["auc"]["value"] for e in t["entries"]]
        assert values == sorted(values, reverse=True)
    mcqa = _target(board, "mcqa-full")
    assert {e["method"] for e in mcqa["entries"]} == {"loss", "min_k_prob", "evil<i>&", "outside_loss",
                                                       BLIND_METHOD}
    evil = next(e for e in mcqa["entries"] if e["method"] == "evil<i>&")
    assert evil["flag"] == NOT_ABOVE_BLIND  # pure noise cannot beat the blind baseline
    assert next(e for e in mcqa["entries"] if e["method"] == "outside_loss")["submitted"] is True


def test_main_view_order_best_rank_then_name_blind_last(results_dir: Path) -> None:
    board = build_leaderboard(load_results(results_dir))
    methods = board["methods"]
    assert methods[-1] == BLIND_METHOD and len(methods) == len(set(methods))
    best = {m: min(e["rank"] for t in board["targets"] for e in t["entries"] if e["method"] == m) for m in methods}
    assert [best[m] for m in methods[:-1]] == sorted(best[m] for m in methods[:-1])


def test_details_hold_every_row_dev_and_test(results_dir: Path) -> None:
    results = load_results(results_dir)
    board = build_leaderboard(results)
    for t in board["targets"]:
        rows = [r for r in results["rows"] if r["target"] == t["name"]]
        assert len(t["details"]) == len(rows) and {d["partition"] for d in t["details"]} == {"dev", "test"}
        keys = {"attack", "family", "kind", "slice", "level", "n_frames", "partition", "auc", "balanced_accuracy",
                "tpr@0.1%fpr", "tpr@1%fpr", "tpr@5%fpr", "n_members", "n_nonmembers", "scores_file",
                "scores_column", "method", "selected"}
        assert all(keys <= set(d) for d in t["details"])
        # each entry's configuration is marked on its dev row (where it was chosen) and its test row
        assert sum(d["selected"] for d in t["details"]) == 2 * len(t["entries"])
        for e in t["entries"]:
            (test,) = [d for d in t["details"] if d["selected"] and d["partition"] == "test" and
                       d["attack"] == e["attack"] and d["slice"] == e["slice"] and d["kind"] == e["kind"]]
            assert test["auc"] == e["auc"] and test["level"] == e["level"]


def test_json_file_is_the_board_and_compact(results_dir: Path) -> None:
    path = write_leaderboard(results_dir)["json"]
    text = path.read_text(encoding="utf-8")
    sha = hashlib.sha256((results_dir / "results.json").read_bytes()).hexdigest()
    on_disk = json.loads(text)
    assert on_disk == build_leaderboard(load_results(results_dir), results_sha256=sha)
    assert on_disk["source"] == {"file": "results.json", "schema_version": 2, "sha256": sha}
    # one details row per line: the file stays a few MB for ~10,000 rows
    n_details = sum(len(t["details"]) for t in on_disk["targets"])
    assert len([line for line in text.splitlines() if '"selected": ' in line]) == n_details


# ----------------------------------------------------------------------------- n/a TPRs, row = video
def test_unresolved_tpr_is_null_with_its_reason_in_json_md_and_html(results_dir: Path) -> None:
    paths = write_leaderboard(results_dir)
    board = json.loads(paths["json"].read_text(encoding="utf-8"))
    md, page = paths["md"].read_text(encoding="utf-8"), paths["html"].read_text(encoding="utf-8")
    mcqa = _target(board, "mcqa-full")
    tpr = mcqa["entries"][0]["tpr@1%fpr"]
    assert tpr["value"] is None and tpr["ci_low"] is None and tpr["ci_high"] is None
    assert tpr["reason"] == "needs ≥ 100 non-members (has 12)"
    reasons = {d[m]["reason"] for t in board["targets"] for d in t["details"]
               for m in ("tpr@0.1%fpr", "tpr@1%fpr", "tpr@5%fpr") if d[m]["value"] is None}
    assert "needs ≥ 20 non-members (has 12)" in reasons and "needs ≥ 1000 non-members (has 24)" in reasons
    for reason in reasons:  # every reason is written out, in the markdown and in the page's text
        assert reason in md and reason in page
    assert "TPR@1%FPR: needs ≥ 100 non-members (has 12) — test, row = video level" in md
    assert "TPR@1%FPR: needs ≥ 100 non-members (has 12) — test, row = video level" in page
    # oeqa-lora's 24 non-member rows resolve TPR@5%FPR at row level: a number, not n/a
    oeqa = _target(board, "oeqa-lora")
    assert all(d["tpr@5%fpr"]["value"] is not None for d in oeqa["details"] if d["level"] == "row")
    assert all(d["tpr@5%fpr"]["value"] is None for d in oeqa["details"] if d["level"] == "video")
    assert "| n/a | n/a |" in md and "<td>n/a" in page


def test_row_equals_video_is_shown_once_with_both_labels(results_dir: Path) -> None:
    paths = write_leaderboard(results_dir)
    board = json.loads(paths["json"].read_text(encoding="utf-8"))
    md, page = paths["md"].read_text(encoding="utf-8"), paths["html"].read_text(encoding="utf-8")
    mcqa = _target(board, "mcqa-full")
    assert {d["level"] for d in mcqa["details"]} == {"row=video"}  # one row per configuration, not two
    md_details = md.split("### Details: mcqa-full")[1].split("### Details:")[0]
    levels = [line.split(" | ")[4] for line in md_details.splitlines() if line.startswith("| ")][1:]
    assert levels == ["row = video"] * len(mcqa["details"])
    html_details = page.split("Details: all")[1].split("</details>")[0]
    # two tables (test, dev), one header row each, then one row per configuration and partition
    assert html_details.count("<td>row = video") == len(mcqa["details"]) == html_details.count("<tr") - 2
    assert "row-level and video-level results are the same numbers" in md_details
    assert "row-level and video-level results are the same numbers" in html_details
    oeqa_details = md.split("### Details: oeqa-lora")[1]
    levels = {line.split(" | ")[4] for line in oeqa_details.splitlines() if line.startswith("| ")}
    assert levels == {"level", "row", "video"} and "row = video" not in oeqa_details


# ----------------------------------------------------------------------------- markdown and HTML
def test_markdown_main_table_and_sections(results_dir: Path) -> None:
    md = write_leaderboard(results_dir)["md"].read_text(encoding="utf-8")
    board = build_leaderboard(load_results(results_dir))
    head, main = md.split("## Main view")[0], md.split("## Main view")[1].split("\n## ")[0]
    assert "2026-11-30T10:00:00Z" in head and board["protocol"] in head
    assert "| method | mcqa-full: AUC [95% CI] | rank | vs blind | oeqa-lora: AUC [95% CI] | rank | vs blind |" in main
    table = [line for line in main.splitlines() if line.startswith("| ")][1:]
    assert [line.split(" | ")[0][2:] for line in table] == [
        _md(m) + (" (submitted)" if m == "outside_loss" else "") for m in board["methods"][:-1]] + [
        f"**{BLIND_METHOD}**"]
    mcqa = _target(board, "mcqa-full")
    top = mcqa["entries"][0]
    a = top["auc"]
    rank = top["rank_band"] + (" **ceiling**" if top["ceiling"] else "")
    assert f"{a['value']:.3f} [{a['ci_low']:.2f}, {a['ci_high']:.2f}] | {rank} |" in main
    assert f"**{NOT_ABOVE_BLIND}**" in main
    # every target marks one ceiling: its method with the best dev selection metric
    for t in board["targets"]:
        (ceiling,) = [e for e in t["entries"] if e["ceiling"]]
        assert t["ceiling"]["method"] == ceiling["method"] and not ceiling["blind"]
        assert f"- ceiling: {_md(ceiling['method'])} — the strongest method on this target" in md
    assert "mcqa-full is ranked by AUC: tpr@1%fpr declared, but the partition has 12" in main.lower().replace("auc", "AUC")
    section = md.split("## mcqa-full — mcqa × full (split synth-mcqa v1)")[1].split("\n## ")[0]
    assert "configuration chosen on the dev partition by AUC" in section and "| candidates |" in section
    assert "skipped ref_calibration" in md.split("## oeqa-lora")[1] and "skipped" not in section


def _md(name: str) -> str:
    return name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_names_are_escaped_never_markup(results_dir: Path) -> None:
    paths = write_leaderboard(results_dir)
    page, md = paths["html"].read_text(encoding="utf-8"), paths["md"].read_text(encoding="utf-8")
    assert "evil<b>" not in page and "evil<i>" not in page
    assert "evil&lt;b&gt;&amp;&#x27;&quot;" in page and "evil&lt;i&gt;&amp;" in page
    assert "evil<b>" not in md and "evil&lt;b&gt;&amp;'\"" in md


class _Page(HTMLParser):
    """Tags, attributes and text; records an end tag that does not close the open element,
    allowing the optional end tags of HTML (</td>, </th>, </tr>) to be left out."""

    VOID = {"meta", "br", "hr", "img", "input", "link", "wbr"}
    IMPLIED = {"td": {"td", "th"}, "th": {"td", "th"}, "tr": {"td", "th", "tr"}}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.starts: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        while tag in self.IMPLIED and self.stack and self.stack[-1] in self.IMPLIED[tag]:
            self.stack.pop()
        self.starts.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("tbody", "table", "tr"):
            while self.stack and self.stack[-1] in ({"td", "th", "tr"} - {tag}):
                self.stack.pop()
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def count(self, tag: str, **attrs: str) -> int:
        return sum(t == tag and all(a.get(k) == v for k, v in attrs.items()) for t, a in self.starts)


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    page.close()
    return page


def test_html_is_self_contained_and_well_formed(results_dir: Path) -> None:
    text = write_leaderboard(results_dir)["html"].read_text(encoding="utf-8")
    page = _parse(text)
    assert page.errors == [] and page.stack == []
    board = build_leaderboard(load_results(results_dir))
    for tag, attrs in page.starts:  # nothing fetched from anywhere
        assert tag != "link" and not (tag == "script" and "src" in attrs)
        for key in ("src", "href"):
            assert not re.match(r"\s*(https?:)?//", attrs.get(key, "")), (tag, attrs)
    assert "http://" not in text and "https://" not in text and "@import" not in text
    assert page.count("table", **{"class": "main"}) == 1
    assert page.count("details") == len(board["targets"]) + 1  # a details view per target, the skips
    n_methods = len(board["methods"])
    assert page.count("tr", **{"class": "blind"}) == 1 + len(board["targets"])  # main row + one per target
    assert text.count('<th class="m">') == n_methods  # one main-table row per method
    # one ROC thumbnail per entry, drawn from its scores file
    assert page.count("svg") == sum(len(t["entries"]) for t in board["targets"])
    words = " ".join(page.text)
    assert NOT_ABOVE_BLIND in words and "Ranked by" in words and board["protocol"] in words


def test_roc_thumbnails_come_from_the_test_partition_only(results_dir: Path) -> None:
    before = write_leaderboard(results_dir)["html"].read_bytes()
    board = build_leaderboard(load_results(results_dir))
    files = {e["scores_file"] for t in board["targets"] for e in t["entries"]}

    def rewrite(partition: str) -> None:
        for rel in files:
            path = results_dir / rel
            with path.open(newline="", encoding="utf-8") as fh:
                table = list(csv.reader(fh))
            for row in table[1:]:
                if row[3] == partition:
                    row[4:] = [repr(-float(x)) for x in row[4:]]
            with path.open("w", newline="", encoding="utf-8") as fh:
                csv.writer(fh).writerows(table)

    rewrite("dev")  # dev scores changed: no thumbnail changes
    assert write_leaderboard(results_dir)["html"].read_bytes() == before
    rewrite("test")  # test scores changed: the thumbnails change
    assert write_leaderboard(results_dir)["html"].read_bytes() != before


def test_roc_thumbnails_are_small_and_run_corner_to_corner(results_dir: Path) -> None:
    text = write_leaderboard(results_dir)["html"].read_text(encoding="utf-8")
    polylines = re.findall(r'<polyline points="([^"]*)">', text)
    assert polylines and all(len(p.split()) <= 64 for p in polylines)
    assert all(p.split()[0] == "0.0,100.0" and p.split()[-1] == "100.0,0.0" for p in polylines)


def test_a_missing_scores_file_gives_a_note_not_a_failure(results_dir: Path) -> None:
    board = build_leaderboard(load_results(results_dir))
    (results_dir / _target(board, "mcqa-full")["entries"][0]["scores_file"]).unlink()
    text = write_leaderboard(results_dir)["html"].read_text(encoding="utf-8")
    assert "not found</span>" in text


def test_second_write_is_byte_identical(results_dir: Path, tmp_path: Path) -> None:
    first = {k: p.read_bytes() for k, p in write_leaderboard(results_dir).items()}
    again = {k: p.read_bytes() for k, p in write_leaderboard(results_dir).items()}
    elsewhere = {k: p.read_bytes() for k, p in write_leaderboard(results_dir, tmp_path / "out").items()}
    assert first == again == elsewhere
    assert not [p for p in results_dir.iterdir() if p.name.endswith(".tmp")]


def test_command_prints_paths(results_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["leaderboard", str(results_dir)]) == 0
    out = capsys.readouterr().out
    for ext in ("json", "md", "html"):
        assert str(results_dir / f"leaderboard.{ext}") in out


# ----------------------------------------------------------------------------- bad input
def _first(r: dict, **match) -> dict:
    return next(row for row in r["rows"] if all(row.get(k) == v for k, v in match.items()))


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.update(schema_version=1), "schema_version 1 was written by an older vidsme"),
    (lambda r: r.update(schema_version=3), "schema_version: this vidsme reads version 2, got 3"),
    (lambda r: r.pop("verdicts"), "'verdicts': missing"),
    (lambda r: r.pop("rows"), "'rows': missing"),
    (lambda r: r["rows"][0].update(partition="train"), "rows[0] (target 'mcqa-full', attack 'loss'): 'partition' "
                                                       "must be one of dev, test"),
    (lambda r: r["rows"][0].update(level="clip"), "'level' must be one of row, video, row=video"),
    (lambda r: r["rows"][0]["tpr@1%fpr"].pop("reason"), "rows[0] (target 'mcqa-full', attack 'loss'): 'tpr@1%fpr'"),
    (lambda r: r["rows"][0]["auc"].update(value=None, reason="no"), "'auc' must be {'value', 'ci_low', 'ci_high'}"),
    (lambda r: r["rows"][1].pop("auc"), "rows[1] (target 'mcqa-full', attack 'loss'): 'auc' must be"),
    (lambda r: r["rows"][0].update(target="nope"), "target 'nope' is not in 'targets'"),
    (lambda r: r["rows"][0].update(kind="guess"), "'kind' must be one of"),
    (lambda r: r["rows"].append(dict(r["rows"][0])), "duplicate row"),
    (lambda r: _first(r, target="mcqa-full", attack="min_k_prob_k10").update(level="row"),
     "level 'row=video' (one row per video) mixed with ['row']"),
    (lambda r: r["verdicts"]["targets"][0]["entries"][0].update(partition="dev"),
     "verdicts.targets[0].entries[0] (method"),
    (lambda r: r["verdicts"]["targets"].pop(), "no verdict for target(s) 'oeqa-lora'"),
    (lambda r: r["verdicts"]["targets"][1].update(target="nope"), "verdicts.targets[1]: must be an object whose"),
])
def test_malformed_results_give_clear_errors(results_dir: Path, mutate, message: str) -> None:
    path = results_dir / "results.json"
    results = json.loads(path.read_text(encoding="utf-8"))
    mutate(results)
    path.write_text(json.dumps(results), encoding="utf-8")
    with pytest.raises(VidsmeError) as err:
        write_leaderboard(results_dir)
    assert str(path) in str(err.value) and message in str(err.value)
    assert "vidsme benchmark" in str(err.value)
    assert not (results_dir / "leaderboard.json").exists()


def test_missing_or_broken_results_file(tmp_path: Path) -> None:
    with pytest.raises(VidsmeError, match="no results file"):
        load_results(tmp_path)
    (tmp_path / "results.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(VidsmeError, match=r"results\.json: not valid JSON"):
        load_results(tmp_path)


# ----------------------------------------------------------------------------- demo-sized pages
# The registry's shape: (family, variants, slices); names as long as the real ones.
FAMILIES = [("renyi", 56, ("video", "instruction", "answer")), ("vid_sme", 35, ("video",)),
            ("min_k_plus_plus", 7, ("video", "instruction", "answer")),
            ("min_k_prob", 7, ("video", "instruction", "answer")),
            ("modified_entropy", 3, ("video", "instruction", "answer")), ("loss", 1, ("video", "instruction", "answer")),
            ("max_prob_gap", 1, ("video", "instruction", "answer")), ("reference", 1, ("video", "instruction", "answer")),
            ("zlib", 1, ("instruction", "answer"))]
DEMO_FRAMES = (4, 8, 16)


def _metric(rng: np.random.Generator) -> dict:
    v = float(rng.uniform(0.3, 0.95))
    return {"value": v, "ci_low": v - float(rng.uniform(0.02, 0.1)), "ci_high": min(1.0, v + float(rng.uniform(0.02, 0.1)))}


def _tprs(rng: np.random.Generator, n_non: int, resolved: bool) -> dict:
    out = {}
    for key, need in (("tpr@0.1%fpr", 10000), ("tpr@1%fpr", 1000), ("tpr@5%fpr", 200)):
        out[key] = _metric(rng) if resolved else {"value": None, "ci_low": None, "ci_high": None,
                                                  "reason": f"needs ≥ {need} non-members (has {n_non})"}
    return out


def _attack_name(family: str, count: int, i: int) -> str:
    if family == "renyi":
        return f"{'max' if i % 2 else 'min'}_k_renyi_a{['0.5', '1', '2', 'inf'][i // 14 % 4]}_k{i}"
    if family == "vid_sme":
        return f"vid_sme_frame_{'max' if i % 2 else 'min'}_k{i}"
    return family if count == 1 else f"{family}_k{i}"


def make_demo_sized(root: Path, n_targets: int = 3, *, resolved_tprs: bool = False,
                    families: list = FAMILIES) -> Path:
    """A demo-sized results dir (n_targets x 112 attacks x slices x 3 frame counts x 2 levels x
    2 partitions, ~3,200 rows a target) with fabricated metrics and verdicts; scores CSVs only
    for the main entries (the only ones drawn)."""
    rng = np.random.default_rng(7)
    attacks, targets, rows, verdicts = {}, [], [], []
    n_video = 50
    for ti in range(n_targets):
        name = ["mcqa-full", "oeqa-lora", "caption-projector", "nextqa-full"][ti]
        levels = ("row", "video")
        entries = []
        for family, count, slices in families:
            for i in range(count):
                attack = _attack_name(family, count, i)
                attacks[attack] = {"name": attack, "family": family, "direction": "higher", "version": 1}
                for slice_ in slices:
                    for n_frames in DEMO_FRAMES:
                        for level in levels:
                            for part in ("dev", "test"):
                                n = n_video * (2 if level == "row" else 1)
                                rows.append({"target": name, "attack": attack, "family": family, "attack_version": 1,
                                             "kind": "reproduced", "slice": slice_, "level": level,
                                             "n_frames": n_frames, "partition": part, "direction": "higher",
                                             "n_members": n, "n_nonmembers": n, "auc": _metric(rng),
                                             "balanced_accuracy": _metric(rng), **_tprs(rng, n, resolved_tprs),
                                             "scores_file": f"scores/{name}/f{n_frames}-{level}.csv",
                                             "scores_column": f"{slice_}/{attack}"})
            entries.append(rows[-1])  # the family's last configuration (test partition) represents it
        for level in levels:
            for part in ("dev", "test"):
                rows.append({"target": name, "attack": "blind_baseline", "family": "blind", "attack_version": 2,
                             "kind": "blind", "slice": "metadata", "level": level, "n_frames": None, "partition": part,
                             "direction": "higher", "n_members": n_video, "n_nonmembers": n_video,
                             "auc": _metric(rng), "balanced_accuracy": _metric(rng),
                             **_tprs(rng, n_video, resolved_tprs), "scores_file": f"scores/{name}/blind-{level}.csv",
                             "scores_column": "metadata/blind_baseline"})
        entries.append(rows[-1])
        ent = []
        for row in sorted(entries, key=lambda r: -r["auc"]["value"]):
            method = BLIND_METHOD if row["kind"] == "blind" else row["family"]
            rel = f"scores/{name}/main-{method.replace(' ', '_')}.csv"
            labels = np.repeat([1, 0], 100)
            _write_csv(root / rel, [f"s{i}" for i in range(200)], [f"v{i}" for i in range(200)], labels,
                       ["dev", "test"] * 100, {row["scores_column"]: labels * 1.2 + rng.normal(0, 1, 200)})
            vs = None if row["kind"] == "blind" else _metric(rng) | {"value": 0.05}
            ent.append({**{k: row[k] for k in ("kind", "attack", "slice", "level", "n_frames", "direction",
                                               "n_members", "n_nonmembers", "auc", "balanced_accuracy",
                                               "tpr@0.1%fpr", "tpr@1%fpr", "tpr@5%fpr", "scores_column")},
                        "scores_file": rel, "method": method, "blind": row["kind"] == "blind", "submitted": False,
                        "partition": "test", "selected_on": "dev", "n_candidates": 1 if row["kind"] == "blind" else 99,
                        "dev": {"auc": _metric(rng)}, "primary_metric": "auc", "vs_blind": vs,
                        "above_blind": None if vs is None else bool(ti % 2),
                        "flag": None if vs is None or ti % 2 else NOT_ABOVE_BLIND})
        for pos, e in enumerate(ent, start=1):
            band = [max(1, pos - 1), min(len(ent), pos + 1)]
            e.update(rank=pos, band=band, rank_band=f"{band[0]}–{band[1]}")
        verdicts.append({"target": name, "primary_metric": "auc", "declared_metric": "tpr@1%fpr",
                         "why": f"tpr@1%fpr declared, but the partition has {n_video // 2} non-member videos and 1000 "
                                "are needed for 10 false positives at that rate: ranked by AUC",
                         "selection_metric": "auc", "selection_why": "auc is the suite's declared primary metric",
                         "partition": {"selected_on": "dev", "reported_on": "test",
                                       "videos": {"dev": {"member": 25, "nonmember": 25},
                                                  "test": {"member": 25, "nonmember": 25}}},
                         "has_blind_baseline": True, "entries": ent,
                         "adjacent": [{"higher": a["method"], "lower": b["method"], "distinguishable": False,
                                       "difference": _metric(rng)} for a, b in zip(ent, ent[1:])]})
        targets.append({"name": name, "task": name.split("-")[0], "strategy": name.split("-")[1],
                        "split": {"name": f"synth-{name.split('-')[0]}", "version": 1}, "levels": list(levels)})
    results = {"schema_version": 2, "suite": {"name": "demo", "config_hash": "h" * 64},
               "provenance": {"git_commit": "abc123", "vidsme": "0.2.0", "created": "2026-11-30T10:00:00Z",
                              "command": "vidsme benchmark configs/suites/demo.yaml"},
               "attacks": attacks, "targets": targets, "rows": rows, "skipped": [],
               "verdicts": {"version": 1, "protocol": "fabricated for a size test", "confidence": 0.95,
                            "n_bootstrap": 1000, "seed": 0, "min_false_positives": 10,
                            "declared_metric": "tpr@1%fpr", "targets": verdicts}}
    root.mkdir(parents=True, exist_ok=True)
    (root / "results.json").write_text(json.dumps(results), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def demo_sized(tmp_path_factory) -> Path:
    root = make_demo_sized(tmp_path_factory.mktemp("demo") / "results")
    write_leaderboard(root)
    return root


def test_demo_sized_html_is_at_most_1_5_mb(demo_sized: Path) -> None:
    results = json.loads((demo_sized / "results.json").read_text(encoding="utf-8"))
    assert len(results["rows"]) > 9_500
    size = (demo_sized / "leaderboard.html").stat().st_size
    assert size <= MAX_HTML_BYTES, f"leaderboard.html is {size:,} bytes"
    page = (demo_sized / "leaderboard.html").read_text(encoding="utf-8")
    assert page.count("<tr") > len(results["rows"])  # every row is in the details, none left out


def _browser() -> str:
    browser = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None:
        pytest.skip("no chromium, chromium-browser or google-chrome on PATH")
    return browser


_MEASURE = """<script>
var t = document.querySelector("table.main").getBoundingClientRect();
var p = document.createElement("pre"); p.id = "measure";
p.textContent = "scrollWidth=" + document.documentElement.scrollWidth + " tableRight=" + Math.ceil(t.right)
  + " innerWidth=" + window.innerWidth;
document.body.appendChild(p);
</script>"""


def _measure(browser: str, page: Path, tmp_path: Path) -> dict[str, int]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={WINDOW},900", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r"scrollWidth=(\d+) tableRight=(\d+) innerWidth=(\d+)", proc.stdout)
    assert found, proc.stdout[-2000:]
    return dict(zip(("scroll", "table", "inner"), map(int, found.groups())))


@pytest.mark.parametrize("n_targets", [3, 4])
def test_main_table_fits_a_1366_px_window_in_chromium(n_targets: int, tmp_path: Path) -> None:
    browser = _browser()
    root = make_demo_sized(tmp_path / "results", n_targets, resolved_tprs=True, families=FAMILIES[2:])
    page = write_leaderboard(root)["html"]
    got = _measure(browser, page, tmp_path)
    assert got["inner"] == WINDOW  # the window really is 1,366 px wide
    assert got["table"] <= WINDOW and got["scroll"] <= WINDOW, got


def test_demo_sized_page_renders_and_sorts_in_chromium(demo_sized: Path, tmp_path: Path) -> None:
    browser = _browser()
    got = _measure(browser, demo_sized / "leaderboard.html", tmp_path / "a")
    assert got["table"] <= WINDOW and got["scroll"] <= WINDOW, got
    # the inline sorter: click the first details table's AUC header (ascending), read the order back
    page = (demo_sized / "leaderboard.html").read_text(encoding="utf-8")
    click = ('<script>var th = document.querySelector("table.d th:nth-child(5)"); th.click();'
             'var v = Array.prototype.map.call(th.closest("table").tBodies[0].rows, function (r) {'
             ' return parseFloat(r.cells[4].textContent); });'
             'var p = document.createElement("pre"); p.id = "sorted"; p.textContent = "sorted=" + '
             'v.every(function (x, i) { return i === 0 || v[i - 1] <= x; }) + " n=" + v.length;'
             'document.body.appendChild(p);</script>')
    clicked = tmp_path / "clicked.html"
    clicked.write_text(page.replace("</body>", click + "</body>"), encoding="utf-8")
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", clicked.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r"sorted=(\w+) n=(\d+)", proc.stdout)
    assert found and found.group(1) == "true" and int(found.group(2)) > 1500, proc.stdout[-500:]


def test_the_public_board_says_it_is_an_honour_board(results_dir: Path) -> None:
    from vidsme.benchmark.leaderboard import HONOUR_BOARD

    paths = write_leaderboard(results_dir)
    board = json.loads(paths["json"].read_text())
    assert board["board"] == {"kind": "honour board", "note": HONOUR_BOARD}
    assert "labels are public" in HONOUR_BOARD and "docs/CHALLENGE.md" in HONOUR_BOARD
    assert "**honour board**" in paths["md"].read_text() and "honour board.</b>" in paths["html"].read_text()


FORGED = "x\r## forged heading\n| forged | row |\u2028[link](http://evil.example)\x1b[2J"


def test_a_name_cannot_forge_a_heading_a_row_or_a_link(results_dir: Path) -> None:
    """A family recorded by an older vidsme (or written into results.json by hand) with line breaks, table
    pipes and a link: the pages show it as text."""
    from vidsme.benchmark.verdicts import compute_verdicts

    data = json.loads((results_dir / "results.json").read_text())
    (attack,) = [n for n, m in data["attacks"].items() if m.get("family") == "evil<i>&"]
    data["attacks"][attack]["family"] = FORGED
    data["verdicts"] = compute_verdicts(data, results_dir)
    (results_dir / "results.json").write_text(json.dumps(data))
    paths = write_leaderboard(results_dir)
    md = paths["md"].read_text(encoding="utf-8")
    lines = md.splitlines()  # splitlines() breaks at \r and \u2028 too, as renderers may
    assert not any(line.lstrip().startswith(("## forged", "| forged")) for line in lines), md
    assert not re.search(r"(?<!\\)\]\(http", md) and "\x1b" not in md, md  # an escaped "]" opens no link
    assert "x ## forged heading \\| forged \\| row \\| \\[link\\](http://evil.example)?\\[2J" in md, md
    page = paths["html"].read_text(encoding="utf-8")
    assert "\r" not in page and "\x1b" not in page and "<a href=\"http://evil" not in page
