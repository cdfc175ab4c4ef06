"""scripts/compare_results.py: two output folders agree apart from provenance, or it names what differs."""
from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("compare_results", REPO / "scripts" / "compare_results.py")
compare_results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare_results)


def _run(folder: Path, commit: str, created: str, auc: float = 0.61) -> Path:
    results = {"provenance": {"git_commit": commit, "created": created, "command": "vidsme benchmark s.yaml"},
               "rows": [{"attack": "loss", "auc": {"value": auc}, "provenance": {"git_commit": commit}}]}
    (folder / "scores" / "t").mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(results))
    sha = hashlib.sha256((folder / "results.json").read_bytes()).hexdigest()
    (folder / "leaderboard.json").write_text(json.dumps({"source": {"sha256": sha}, "provenance": results["provenance"],
                                                         "targets": [{"auc": auc}]}))
    for name in ("leaderboard.md", "leaderboard.html"):
        (folder / name).write_text(f"commit {commit} at {created}, results {sha}: loss {auc}\n")
    (folder / "scores" / "t" / "f4-row.csv").write_text(f"sample_id,loss\na,{auc}\n")
    return folder


def test_two_runs_of_the_same_code_agree(tmp_path, capsys):
    old = _run(tmp_path / "old", "aaaa", "2026-01-01T00:00:00Z")
    new = _run(tmp_path / "new", "bbbb", "2026-02-02T00:00:00Z")
    assert compare_results.main([str(old), str(new)]) == 0
    assert "same results: 1 results.json rows" in capsys.readouterr().out


def test_a_changed_number_is_named(tmp_path, capsys):
    old = _run(tmp_path / "old", "aaaa", "2026-01-01T00:00:00Z")
    new = _run(tmp_path / "new", "bbbb", "2026-02-02T00:00:00Z", auc=0.62)
    assert compare_results.main([str(old), str(new)]) == 1
    out = capsys.readouterr().out
    assert "results.json /rows[0]/auc/value: 0.61 vs 0.62" in out
    assert "leaderboard.md: differs" in out and "scores/t/f4-row.csv: differs" in out
