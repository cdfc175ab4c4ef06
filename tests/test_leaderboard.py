"""Leaderboard: ranking, blind baselines, md/json/html output, determinism, bad input."""
from __future__ import annotations

import csv
import hashlib
import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from vidsme.benchmark.leaderboard import (
    RANKING,
    build_leaderboard,
    load_results,
    run_leaderboard_command,
    write_leaderboard,
)
from vidsme.errors import VidsmeError

N = 40  # members and non-members per scores file


def _metric(value: float) -> dict:
    return {"value": value, "ci_low": round(value - 0.05, 4), "ci_high": round(value + 0.05, 4)}


def _row(target: str, attack: str, tpr1: float, auc: float, *, slice_: str = "answer", level: str = "row",
         n_frames: int | None = 16, kind: str = "reproduced", direction: str = "higher",
         scores_file: str | None = None) -> dict:
    column = f"{slice_}/{attack}"
    if scores_file is None:
        scores_file = f"scores/{target}/" + ("blind" if kind == "blind" else f"f{n_frames}") + f"-{level}.csv"
    return {
        "target": target, "attack": attack, "family": attack, "attack_version": 1, "kind": kind,
        "slice": slice_, "level": level, "n_frames": n_frames, "direction": direction,
        "n_members": N, "n_nonmembers": N,
        "auc": _metric(auc), "balanced_accuracy": _metric(0.6),
        "tpr@0.1%fpr": _metric(tpr1 / 2), "tpr@1%fpr": _metric(tpr1), "tpr@5%fpr": _metric(min(1.0, tpr1 * 2)),
        "scores_file": scores_file, "scores_column": column,
        "provenance": {"source": f"vidsme.attack.attacks.{attack}", "file_sha256": None, "git_commit": "abc123"},
    }


def _target(name: str, task: str, strategy: str) -> dict:
    return {"name": name, "path": f"runs/demo/models/{name}", "card_sha256": "c" * 64, "strategy": strategy,
            "task": task, "split": {"name": f"synth-{task}", "version": 1, "manifest_sha256": "m" * 64},
            "n_rows": {"member": N, "nonmember": N}, "n_videos": {"member": N, "nonmember": N},
            "excluded": {"n_rows": 0, "n_videos": 0, "videos": [], "rows": [], "reasons": {}}}


def _write_scores(path: Path, columns: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = [1] * N + [0] * N
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["sample_id", "video", "label", *columns])
        for i, label in enumerate(labels):
            out.writerow([f"s{i}", f"v{i}.mp4", label, *(repr(float(col[i])) for col in columns.values())])


def make_results_dir(root: Path) -> Path:
    """A tiny results dir: 2 targets, a blind row each, scores CSVs of random scores."""
    rng = np.random.default_rng(0)
    noisy = lambda shift: np.concatenate([rng.normal(shift, 1, N), rng.normal(0, 1, N)])  # noqa: E731
    perfect_lower = np.concatenate([np.arange(N) - 100.0, np.arange(N) + 100.0])  # members LOWER
    t1, t2 = "mcqa-full", "oeqa-lora"
    rows = [  # deliberately not in ranking order
        _row(t1, "zzz_attack", 0.10, 0.70),
        _row(t1, "loss", 0.30, 0.80),
        _row(t1, "metadata_blind", 0.01, 0.52, slice_="metadata", n_frames=None, kind="blind"),
        _row(t1, "aaa_attack", 0.10, 0.70),
        _row(t1, "min_k", 0.30, 0.85),
        _row(t1, "submitted", 0.20, 0.75, kind="scores_file", scores_file="scores/mcqa-full/missing.csv"),
        _row(t2, "metadata_blind", 0.90, 0.95, slice_="metadata", level="video", n_frames=None, kind="blind"),
        _row(t2, "perfect", 0.80, 0.99, slice_="video", level="video", n_frames=8, direction="lower"),
        _row(t2, "evil<b>&'\"", 0.05, 0.55, slice_="video", level="video", n_frames=8),
    ]
    for r in rows:  # the blind baseline's column name is fixed by the schema
        if r["kind"] == "blind":
            r["scores_column"] = "metadata/blind_baseline"
    _write_scores(root / "scores/mcqa-full/f16-row.csv",
                  {f"answer/{a}": noisy(s) for a, s in [("zzz_attack", 0.3), ("loss", 1), ("aaa_attack", 0.3),
                                                        ("min_k", 1.5)]})
    _write_scores(root / "scores/mcqa-full/blind-row.csv", {"metadata/blind_baseline": noisy(0.1)})
    _write_scores(root / "scores/oeqa-lora/blind-video.csv", {"metadata/blind_baseline": noisy(2)})
    _write_scores(root / "scores/oeqa-lora/f8-video.csv",
                  {"video/perfect": perfect_lower, "video/evil<b>&'\"": noisy(0.2)})
    results = {
        "schema_version": 1,
        "suite": {"name": "demo", "config": {"targets": [t1, t2]}, "config_hash": "h" * 64},
        "provenance": {"git_commit": "abc123", "vidsme": "0.1.0", "libraries": {"numpy": np.__version__},
                       "created": "2026-11-30T10:00:00Z", "command": "vidsme benchmark configs/suites/demo.yaml"},
        "targets": [_target(t1, "mcqa", "full"), _target(t2, "oeqa", "lora")],
        "rows": rows,
        "skipped": [{"target": t2, "attack": "reference_calibration", "slice": "answer", "n_frames": 8,
                     "reason": "needs reference.target_logprob"}],
    }
    (root / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return root


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    return make_results_dir(tmp_path / "results")


def _entries(board: dict, target: str) -> list[dict]:
    return next(t for t in board["targets"] if t["name"] == target)["entries"]


# ----------------------------------------------------------------------------- ranking
def test_ranking_order_and_tie_breaking(results_dir: Path) -> None:
    board = build_leaderboard(load_results(results_dir))
    entries = _entries(board, "mcqa-full")
    # min_k and loss tie on TPR@1% -> AUC decides; aaa/zzz tie on every metric -> name decides
    assert [e["attack"] for e in entries] == ["min_k", "loss", "submitted", "aaa_attack", "zzz_attack",
                                              "metadata_blind"]
    assert [e["rank"] for e in entries] == [1, 2, 3, 4, 5, 6]
    assert [e["attack"] for e in _entries(board, "oeqa-lora")] == ["metadata_blind", "perfect", "evil<b>&'\""]
    assert board["ranking"] == RANKING


def test_blind_rows_always_present_and_flagged(results_dir: Path) -> None:
    board = build_leaderboard(load_results(results_dir))
    for t in board["targets"]:
        blind = [e for e in t["entries"] if e["kind"] == "blind"]
        assert len(blind) == 1 and blind[0]["blind"] is True and t["has_blind_baseline"]
        assert all(e["blind"] is False for e in t["entries"] if e["kind"] != "blind")
    assert _entries(board, "mcqa-full")[-1]["blind"]  # ranked last, still listed


# ----------------------------------------------------------------------------- outputs
def test_markdown_table(results_dir: Path) -> None:
    md = write_leaderboard(results_dir)["md"].read_text(encoding="utf-8")
    sections = md.split("\n## ")
    assert len(sections) == 3 and sections[1].startswith("mcqa-full — mcqa × full (split synth-mcqa v1)")
    assert ("| 1 | min_k | reproduced | answer | row | 16 | 0.850 [0.80, 0.90] | 0.600 [0.55, 0.65] | "
            "0.150 [0.10, 0.20] | 0.300 [0.25, 0.35] | 0.600 [0.55, 0.65] |") in sections[1]
    assert "| 6 | **[blind]** metadata_blind | blind | metadata | row | — |" in sections[1]
    assert "| 1 | **[blind]** metadata_blind | blind | metadata | video | — |" in sections[2]
    assert "skipped reference_calibration" in sections[2] and "skipped" not in sections[1]
    assert "| 3 | evil&lt;b&gt;&amp;'\" | reproduced | video | video | 8 |" in sections[2]  # no raw markup
    assert "2026-11-30T10:00:00Z" in sections[0] and RANKING in sections[0]


def test_json_round_trip(results_dir: Path) -> None:
    path = write_leaderboard(results_dir)["json"]
    text = path.read_text(encoding="utf-8")
    on_disk = json.loads(text)
    assert text == json.dumps(on_disk, indent=2, sort_keys=True, ensure_ascii=False) + "\n"  # pinned format
    sha = hashlib.sha256((results_dir / "results.json").read_bytes()).hexdigest()
    assert on_disk == build_leaderboard(load_results(results_dir), results_sha256=sha)
    assert on_disk["source"]["sha256"] == sha and on_disk["provenance"]["git_commit"] == "abc123"
    first = on_disk["targets"][0]["entries"][0]
    assert first["provenance"]["source"] == "vidsme.attack.attacks.min_k"
    assert (first["task"], first["strategy"], first["dataset"]) == ("mcqa", "full", "mcqa × full")
    assert first["tpr@1%fpr"] == {"value": 0.3, "ci_low": 0.25, "ci_high": 0.35}


def test_second_write_is_byte_identical(results_dir: Path, tmp_path: Path) -> None:
    first = {k: p.read_bytes() for k, p in write_leaderboard(results_dir).items()}
    again = {k: p.read_bytes() for k, p in write_leaderboard(results_dir).items()}
    elsewhere = {k: p.read_bytes() for k, p in write_leaderboard(results_dir, tmp_path / "out").items()}
    assert first == again == elsewhere
    assert not [p for p in results_dir.iterdir() if p.name.endswith(".tmp")]


def test_command_prints_paths(results_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_leaderboard_command(results_dir, None) == 0
    out = capsys.readouterr().out
    for ext in ("json", "md", "html"):
        assert str(results_dir / f"leaderboard.{ext}") in out


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.update(schema_version=2), "schema_version: this vidsme reads version 1, got 2"),
    (lambda r: r.pop("rows"), "'rows': missing"),
    (lambda r: r["rows"][1].pop("auc"), "rows[1] (target 'mcqa-full', attack 'loss'): 'auc' must be"),
    (lambda r: r["rows"][0]["tpr@1%fpr"].update(value="high"), "rows[0] (target 'mcqa-full', attack 'zzz_attack')"),
    (lambda r: r["rows"][0].update(target="nope"), "target 'nope' is not in 'targets'"),
    (lambda r: r["rows"][0].update(kind="guess"), "'kind' must be one of"),
    (lambda r: r["rows"].append(dict(r["rows"][0])), "rows[9]: duplicate row"),
])
def test_malformed_results_give_clear_errors(results_dir: Path, mutate, message: str) -> None:
    path = results_dir / "results.json"
    results = json.loads(path.read_text(encoding="utf-8"))
    mutate(results)
    path.write_text(json.dumps(results), encoding="utf-8")
    with pytest.raises(VidsmeError) as err:
        write_leaderboard(results_dir)
    assert str(path) in str(err.value) and message in str(err.value)
    assert not (results_dir / "leaderboard.json").exists()


def test_missing_or_broken_results_file(tmp_path: Path) -> None:
    with pytest.raises(VidsmeError, match="no results file"):
        load_results(tmp_path)
    (tmp_path / "results.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(VidsmeError, match=r"results\.json: not valid JSON"):
        load_results(tmp_path)


# ----------------------------------------------------------------------------- HTML
class _Page(HTMLParser):
    """Collects tags and attributes; records any end tag that does not close the open one."""

    VOID = {"meta", "br", "hr", "img", "input", "link", "wbr"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.starts: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.starts.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
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
    assert page.count("section", **{"class": "target"}) == 2 and page.count("table") == 2
    for tag, attrs in page.starts:  # nothing fetched from anywhere
        assert tag != "link" and not (tag == "script" and "src" in attrs)
        for key in ("src", "href"):
            assert not re.match(r"\s*(https?:)?//", attrs.get(key, "")), (tag, attrs)
    assert "http://" not in text and "https://" not in text and "@import" not in text
    assert page.count("tr", **{"class": "blind"}) == 2
    assert "no thumbnail: scores file scores/mcqa-full/missing.csv not found" in "".join(page.text)
    # every row with a scores file has a thumbnail: 9 rows, one missing file
    assert page.count("svg") == page.count("polyline") == 8
    # names from results.json are escaped, never markup
    assert "evil<b>" not in text and "evil&lt;b&gt;&amp;&#x27;&quot;" in text


def test_roc_thumbnails_follow_direction_and_are_small(results_dir: Path) -> None:
    text = write_leaderboard(results_dir)["html"].read_text(encoding="utf-8")
    polylines = re.findall(r'<polyline points="([^"]*)">', text)
    assert polylines and all(len(p.split()) <= 64 for p in polylines)
    assert all(p.split()[0] == "0.0,100.0" and p.split()[-1] == "100.0,0.0" for p in polylines)
    # "perfect" has members LOWER with direction lower: its ROC passes through (FPR 0, TPR 1)
    row = next(r for r in text.split("<tr") if ">perfect</td>" in r)
    assert "0.0,0.0" in re.search(r'points="([^"]*)"', row).group(1).split()


def test_html_renders_and_sorts_in_headless_chromium(results_dir: Path, tmp_path: Path) -> None:
    browser = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None:
        pytest.skip("no chromium, chromium-browser or google-chrome on PATH")
    page = write_leaderboard(results_dir)["html"].read_text(encoding="utf-8")
    # One browser start checks both: the rows reach the DOM, and the inline sorter works
    # (click the AUC header of the first table: ascending, ties kept in rank order).
    click = '<script>document.querySelector("table.lb th:nth-child(7)").click()</script>'
    clicked = tmp_path / "clicked.html"
    clicked.write_text(page.replace("</body>", click + "</body>"), encoding="utf-8")
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", clicked.as_uri()],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = _parse(proc.stdout)
    assert dom.count("section", **{"class": "target"}) == 2 and dom.count("svg") == 8
    tables = proc.stdout.split('<table class="lb">')[1:]
    # browsers differ in which characters they escape in attributes: compare unescaped
    order = [[html.unescape(a) for a in re.findall(r'<tr[^>]*><td data-v="\d+">\d+</td><td data-v="([^"]*)"', t)]
             for t in tables]
    assert order == [["metadata_blind", "aaa_attack", "zzz_attack", "submitted", "loss", "min_k"],
                     ["metadata_blind", "perfect", "evil<b>&'\""]]
    assert dom.count("th", **{"aria-sort": "ascending"}) == 1
