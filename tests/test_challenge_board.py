"""The sealed challenge's leaderboard: configurations fixed on the public dev partition, evaluated once
on the challenge (test only), code submissions sandboxed and only after they went on the public results."""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from vidsme.benchmark.submissions.submitters import KEY_ENV, add_submitter
from vidsme.challenge import build as C
from vidsme.challenge.board import evaluate_challenge
from vidsme.benchmark.evaluate import EvalSet, evaluate_level_scores
from vidsme.benchmark.submissions.sandbox import detect_isolation
from vidsme.benchmark.suite import metric_row, scores_path, write_scores_csv
from vidsme.benchmark.verdicts import compute_verdicts
from vidsme.cli import main
from vidsme.errors import VidsmeError
from vidsme.data_splits.partition import FEEDBACK, draw_partition
from tiny_configs import CHALLENGE_TINY

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "frame_contrast_attack.py"
TINY = (*CHALLENGE_TINY, "suite.n_bootstrap=50")
# the public dev choices the fake public results encode: target -> (method, attack, slice, level)
CHOICES = {
    "mcqa-full": [("loss", "loss", "answer", "row=video"), ("vid_sme", "vid_sme_max", "video", "row=video")],
    "oeqa-lora": [("loss", "loss", "answer", "video"), ("zlib", "zlib", "instruction", "row")],
    "caption-projector": [("loss", "loss", "video", "row=video")],
}


WHO = "tester"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("challenge_board")
    mp = pytest.MonkeyPatch()
    mp.chdir(ROOT)
    # a fixed secret: the same tiny world on every run (a fresh one drew, now and then, a final part on which
    # the blind baseline tied a perfect attack, and a test that reads the ranks flipped with it)
    (root / "round.secret").write_bytes(hashlib.sha256(b"tests/test_challenge_board.py").digest())
    C.build_challenge(root / "round.secret", root / "dir", C.ChallengeSettings(
        size=6, pretrain_videos=16, overrides=TINY, configs=ROOT / "configs"), progress=False,
        log=lambda _line: None)
    mp.setenv(KEY_ENV, add_submitter(C.ChallengePaths(root / "dir").private, WHO))  # copied with every _copy
    yield root
    mp.undo()


def _public_results(folder: Path, with_submission: bool = False, source: Path = EXAMPLE) -> Path:
    """A public suite's results.json with verdicts whose dev choices are CHOICES (and, optionally, `source` — the
    docs example — submitted sandboxed as attack frame_contrast and chosen at the video slice, 4 frames)."""
    rng = np.random.default_rng(0)
    split_rows = [{"id": f"v{v:02d}", "video": f"v{v:02d}.mp4", "label": "member" if v % 2 else "nonmember"}
                  for v in range(40)]
    part = draw_partition(split_rows)
    samples = EvalSet([r["id"] for r in split_rows], [r["video"] for r in split_rows],
                      np.array([r["label"] == "member" for r in split_rows], dtype=int), part.of_rows(split_rows))
    view = samples.views["row=video"]
    rows, targets, attacks = [], [], {}
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    for target, choices in CHOICES.items():
        configs = [(m, a, s, lvl) for m, a, s, lvl in choices]
        if with_submission:
            configs.append(("frame_contrast", "frame_contrast", "video", "row=video" if target != "oeqa-lora"
                            else "row"))
        columns = {}
        for method, attack, slice_name, level in configs:
            meta = {"name": attack, "family": method, "version": 1, "source": "tests"}
            attacks[attack] = {**meta, "direction": "higher"}
            if method == "frame_contrast":
                attacks[attack]["submission"] = {"kind": "reproduced", "file_sha256": sha, "sandboxed": True,
                                                 "submitter": WHO}
            scores = rng.normal(size=40) + 0.5 * samples.labels
            columns[f"{slice_name}/{attack}"] = scores
            for p in ("dev", "test"):
                ev = evaluate_level_scores(scores, view, p, direction="higher", attack=attack, n_bootstrap=20, seed=0)
                row = metric_row(target, meta, "reproduced", slice_name, "row=video", 4, p, ev,
                                 scores_path(target, 4, "row=video"), f"{slice_name}/{attack}", None)
                row["level"] = level  # the level the fake public dev "chose" (the scores are the row=video ones)
                rows.append(row)
        write_scores_csv(folder / scores_path(target, 4, "row=video"), view, columns)
        targets.append({"name": target, "partition": part.record(split_rows), "levels": ["row=video"]})
    results = {"schema_version": 2, "suite": {"name": "public", "config": {"n_bootstrap": 20, "seed": 0}},
               "provenance": {}, "attacks": attacks, "targets": targets, "rows": rows, "skipped": []}
    # levels were relabelled after the fact: the verdicts read the row=video scores file either way
    results["verdicts"] = compute_verdicts(results, folder)
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def _copy(built, tmp_path: Path) -> Path:
    out = tmp_path / "dir"
    shutil.copytree(built / "dir", out)
    return out


def test_built_in_families_enter_at_their_public_dev_configuration(built, tmp_path):
    out = _copy(built, tmp_path)
    dev = _public_results(tmp_path / "public")
    board = evaluate_challenge(out, dev, progress=False)
    assert board["html"] == out / "public" / "leaderboard.html"
    results = json.loads((out / "private" / "results" / "results.json").read_text())
    got = {(r["target"], r["family"], r["attack"], r["slice"], r["level"], r["n_frames"])
           for r in results["rows"] if r["kind"] != "blind"}
    assert got == {(t, m, a, s, lvl, 4) for t, cs in CHOICES.items() for m, a, s, lvl in cs}
    assert {r["partition"] for r in results["rows"]} == {"test"}  # nothing is chosen on the challenge
    assert all(r["selection"]["on"].startswith("public dev partition") for r in results["rows"] if r["kind"] != "blind")
    verdicts = {v["target"]: v for v in results["verdicts"]["targets"]}
    assert verdicts["mcqa-full"]["partition"]["test_only"] and "Test-only" in results["verdicts"]["protocol"]
    methods = {e["method"] for e in verdicts["oeqa-lora"]["entries"]}
    assert methods == {"loss", "zlib", "blind baseline"}
    # the public leaderboard carries no label, manifest or per-sample score
    public = {p.name for p in (out / "public").rglob("*") if p.is_file()}
    assert not any(n.endswith(".csv") or n == "manifest.jsonl" for n in public)
    assert "test-only target" in (out / "private" / "results" / "leaderboard.md").read_text()  # final ranks
    # before the reveal the public board has one rounded feedback number per entry, nothing else
    board = json.loads((out / "public" / "leaderboard.json").read_text())
    assert board["kind"].startswith("challenge feedback") and len(board["entries"]) == sum(map(len, CHOICES.values())) + 3
    assert all(re.fullmatch(r"\d\.\d\d", e["value"]) for e in board["entries"] if e["value"] is not None)
    page = (out / "public" / "leaderboard.html").read_text()
    assert "<svg" not in page and "polyline" not in page and "CI" not in page


def test_a_submission_must_be_on_the_public_results_sandboxed_first(built, tmp_path, capsys):
    out = _copy(built, tmp_path)
    evaluate_challenge(out, _public_results(tmp_path / "public"), progress=False)
    before = {p: p.read_bytes() for p in (out / "public").rglob("*") if p.is_file()}
    assert main(["submit", "--submitter", WHO, str(EXAMPLE), "--challenge", str(out)]) == 2
    assert "is not on the public results" in capsys.readouterr().err
    assert main(["submit", "--submitter", WHO, str(EXAMPLE), "--challenge", str(out), "--no-sandbox"]) == 2
    assert "sandboxed code only" in capsys.readouterr().err
    assert main(["submit", "--submitter", WHO, "--scores", "x.csv", "--challenge", str(out)]) == 2
    assert "sandboxed code only" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in (out / "public").rglob("*") if p.is_file()} == before


@pytest.mark.skipif(detect_isolation() is None, reason="no sandbox (bubblewrap or user namespaces) on this machine")
def test_a_submission_runs_once_at_its_fixed_configuration(built, tmp_path, capsys):
    out = _copy(built, tmp_path)
    evaluate_challenge(out, _public_results(tmp_path / "public", with_submission=True), progress=False)
    assert main(["submit", "--submitter", WHO, str(EXAMPLE), "--challenge", str(out)]) == 0
    text = capsys.readouterr().out
    assert "feedback mcqa-full: frame_contrast" in text  # the submitter sees what the public sees
    assert " rank " not in text and "test AUC" not in text and "[" not in text.split("isolation:")[0], text
    results = json.loads((out / "private" / "results" / "results.json").read_text())
    mine = [r for r in results["rows"] if r["attack"] == "frame_contrast"]
    assert {(r["target"], r["slice"], r["level"], r["n_frames"], r["partition"]) for r in mine} == {
        ("mcqa-full", "video", "row=video", 4, "test"), ("oeqa-lora", "video", "row", 4, "test"),
        ("caption-projector", "video", "row=video", 4, "test")}
    assert all(r["provenance"]["sandboxed"] is True and r["selection"]["method"] == "frame_contrast" for r in mine)
    board = json.loads((out / "public" / "leaderboard.json").read_text())
    mine = [e for e in board["entries"] if e["method"] == "frame_contrast"]
    assert {e["target"] for e in mine} == set(CHOICES) and all(e["submitter"] == WHO for e in mine)
    assert "frame_contrast" in (out / "private" / "results" / "leaderboard.md").read_text()  # ranked privately


def _perturb_final_part(results_dir: Path, method: str) -> None:
    """Change the method's scores on every final-part (test) row of its scores files, keep the feedback rows."""
    import csv

    results = json.loads((results_dir / "results.json").read_text())
    for verdict in results["verdicts"]["targets"]:
        for e in (e for e in verdict["entries"] if e["method"] == method):
            path = results_dir / e["scores_file"]
            with path.open(newline="") as fh:
                rows = list(csv.DictReader(fh))
            for i, r in enumerate(rows):
                if r["partition"] == "test":
                    r[e["scores_column"]] = repr(float(i) * (1 if r["label"] == "1" else -1))  # labels, leaked
            with path.open("w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)


def test_the_public_board_reads_nothing_of_the_final_part(built, tmp_path):
    from vidsme.challenge.board import _submitters
    from vidsme.challenge.feedback import reset_feedback, update_feedback, write_public_board

    out = _copy(built, tmp_path)
    evaluate_challenge(out, _public_results(tmp_path / "public"), progress=False)
    pages = {}
    for name, perturb in (("as scored", False), ("final part changed", True)):
        results_dir = tmp_path / name
        shutil.copytree(out / "private" / "results", results_dir)
        if perturb:
            _perturb_final_part(results_dir, "loss")
        results = json.loads((results_dir / "results.json").read_text())
        reset_feedback(results_dir)
        update_feedback(results_dir, results, submitters=_submitters(results))
        public = tmp_path / f"public-{perturb}"
        public.mkdir()
        pages[name] = {ext: p.read_bytes() for ext, p in write_public_board(results_dir, public, "dir").items()}
    assert pages["as scored"] == pages["final part changed"]


def test_the_reveal_publishes_the_final_ranks(built, tmp_path):
    out = _copy(built, tmp_path)
    evaluate_challenge(out, _public_results(tmp_path / "public"), progress=False)
    assert json.loads((out / "public" / "leaderboard.json").read_text())["kind"].startswith("challenge feedback")
    C.reveal_challenge(out, built / "round.secret", log=lambda _line: None)
    final = json.loads((out / "public" / "leaderboard.json").read_text())
    assert final["targets"] and final == json.loads((out / "private" / "results" / "leaderboard.json").read_text())
    assert json.loads((out / "public" / "reveal.json").read_text())["final_leaderboard"] == [
        "leaderboard.json", "leaderboard.md", "leaderboard.html"]


def test_a_submitter_has_a_limited_number_of_submissions_per_round(built, tmp_path, capsys):
    out = _copy(built, tmp_path)
    evaluate_challenge(out, _public_results(tmp_path / "public", with_submission=True), progress=False)
    path = out / "private" / "results" / "results.json"
    results = json.loads(path.read_text())
    results["submissions"] = [{"submitter": WHO, "status": "added"}] * 3  # the default limit, used up
    path.write_text(json.dumps(results))
    before = {p: p.read_bytes() for p in (out / "public").rglob("*") if p.is_file()}
    assert main(["submit", "--submitter", WHO, str(EXAMPLE), "--challenge", str(out)]) == 2
    assert "has made 3 submission(s) to this round, its limit (3)" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in (out / "public").rglob("*") if p.is_file()} == before


# ----------------------------------------------------------------------------- nothing public reads the final part
def _rescore(results_dir: Path, scores: dict[str, object], part: str = "test",
             submitter: str | None = None) -> dict:
    """Give each method in `scores` new scores on the rows of `part` of its verdict entries' scores files —
    scores(labels) -> member-high scores — recompute those test rows of results.json and the verdicts, exactly as
    if the attacks had scored so; with `submitter`, those methods are that submitter's submissions. Returns the
    new results."""
    import csv

    from vidsme.metrics import evaluate_scores

    results = json.loads((results_dir / "results.json").read_text())
    config = results["suite"]["config"]
    for verdict in results["verdicts"]["targets"]:
        for e in (e for e in verdict["entries"] if e["method"] in scores):
            path = results_dir / e["scores_file"]
            with path.open(newline="") as fh:
                table = list(csv.DictReader(fh))
            chosen = [r for r in table if r["partition"] == part]
            labels = np.array([int(r["label"]) for r in chosen])
            new = np.asarray(scores[e["method"]](labels), dtype=float) * (1 if e["direction"] == "higher" else -1)
            for r, v in zip(chosen, new):
                r[e["scores_column"]] = repr(float(v))
            with path.open("w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(table[0]))
                writer.writeheader()
                writer.writerows(table)
            if part != "test":
                continue
            test = [r for r in table if r["partition"] == "test"]
            ev = evaluate_scores(np.array([float(r[e["scores_column"]]) for r in test]),
                                 np.array([int(r["label"]) for r in test]), direction=e["direction"],
                                 attack=e["attack"], sample_ids=[r["sample_id"] for r in test],
                                 n_bootstrap=int(config["n_bootstrap"]), seed=int(config["seed"]),
                                 clusters=[r["video"] for r in test],
                                 min_false_positives=int(config["min_false_positives"])).to_dict()
            (row,) = [r for r in results["rows"] if (r["target"], r["attack"], r["slice"], r["level"], r["n_frames"],
                                                     r["partition"]) == (verdict["target"], e["attack"], e["slice"],
                                                                         e["level"], e["n_frames"], "test")]
            row.update({k: v for k, v in ev.items() if k in row})
    if submitter is not None:
        for meta in results["attacks"].values():
            if meta["family"] in scores:
                meta["submission"] = {"kind": "reproduced", "submitter": submitter, "sandboxed": True}
    results["verdicts"] = compute_verdicts(results, results_dir)
    (results_dir / "results.json").write_text(json.dumps(results))
    return results


def _public_bytes(results_dir: Path, results: dict, public: Path) -> dict[str, bytes]:
    """Start the feedback board anew from `results` and write it: every public file's bytes, and what `vidsme submit
    --challenge` prints of the new entries (in order)."""
    from vidsme.challenge.board import _submitters
    from vidsme.challenge.feedback import reset_feedback, update_feedback, write_public_board

    reset_feedback(results_dir)
    added = update_feedback(results_dir, results, submitters=_submitters(results))
    public.mkdir()
    shown = {ext: p.read_bytes() for ext, p in write_public_board(results_dir, public, "dir").items()}
    shown["terminal"] = json.dumps([[e[k] for k in ("target", "method", "metric", "released")] for e in added]).encode()
    return shown


def PERFECT(labels):  # noqa: N802 - a score function: the labels, ties broken
    return labels + 1e-3 * np.arange(len(labels))


def WORST(labels):  # noqa: N802 - the opposite of the labels
    return -labels + 1e-3 * np.arange(len(labels))


@pytest.mark.parametrize("submitter", [None, "ada"])
def test_no_public_byte_depends_on_the_final_part_not_even_the_order(built, tmp_path, submitter):
    """The final part re-scored two opposite ways, results rows and verdicts recomputed: the final ranks flip, the
    public files (order included) do not — for the host's entries and for a submitter's two-attack file."""
    out = _copy(built, tmp_path)
    evaluate_challenge(out, _public_results(tmp_path / "public"), progress=False)
    pages, firsts = {}, {}
    for world, scores in (("loss wins", {"loss": PERFECT, "vid_sme": WORST}),
                          ("vid_sme wins", {"loss": WORST, "vid_sme": PERFECT})):
        results_dir = tmp_path / world
        shutil.copytree(out / "private" / "results", results_dir)
        results = _rescore(results_dir, scores, submitter=submitter)
        (verdict,) = [v for v in results["verdicts"]["targets"] if v["target"] == "mcqa-full"]
        # the first of the two re-scored methods (the blind baseline may tie a perfect score on 6 videos)
        firsts[world] = next(e["method"] for e in verdict["entries"] if e["method"] in scores)
        pages[world] = _public_bytes(results_dir, results, tmp_path / f"public-{world}")
    assert firsts == {"loss wins": "loss", "vid_sme wins": "vid_sme"}  # the private, final-part ranks did move
    assert pages["loss wins"] == pages["vid_sme wins"]


@pytest.mark.parametrize("submitter", ["ada", "vidsme"])
def test_the_ladder_compares_a_files_entries_with_each_other(built, tmp_path, submitter):
    """Two entries of one file on one target: only one that beats the other by more than the resolution is
    released, whoever the submitter says it is (a submitter named like the host included)."""
    out = _copy(built, tmp_path)
    evaluate_challenge(out, _public_results(tmp_path / "public"), progress=False)
    results_dir = out / "private" / "results"
    _rescore(results_dir, {"loss": PERFECT, "vid_sme": WORST}, part=FEEDBACK)  # feedback AUCs 1.00 and 0.00
    results = _rescore(results_dir, {"loss": PERFECT, "vid_sme": WORST}, submitter=submitter)
    board = json.loads(_public_bytes(results_dir, results, tmp_path / "board")["json"])
    mine = {e["method"]: e for e in board["entries"] if e["target"] == "mcqa-full" and e["method"] in ("loss", "vid_sme")}
    assert mine["loss"]["value"] == "1.00" and mine["vid_sme"]["value"] is None, mine
    assert {e.get("host") for e in mine.values()} == {False}  # a submitter, whatever its name
    host = [e for e in board["entries"] if e["target"] == "mcqa-full" and e["method"] not in mine]
    assert host and all(e["host"] for e in host)  # the blind baseline: the host's


def test_the_feedback_board_escapes_every_name():
    from vidsme.challenge.feedback import render_html, render_markdown

    forged = "x\n| zlib_v2 | vidsme (host) | auc 0.99 |\r# forged\u2028[link](http://x)"
    board = {"challenge": "c", "rule": "r", "entries": [
        {"target": "t", "method": forged, "submitter": "ada", "host": False, "metric": "auc", "value": "0.50"},
        {"target": "t", "method": "<script>alert(1)</script>", "submitter": forged, "host": False, "metric": "auc",
         "value": None, "note": forged}]}
    md = render_markdown(board)
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + len(board["entries"]), md  # header, rule, one line per entry: nothing added
    assert not any(line.startswith(("| zlib_v2", "# forged")) for line in md.splitlines()), md
    assert "](http" not in md.replace("\\]", "") and "\r" not in md and "\u2028" not in md, md
    page = render_html(board)
    assert "<script>" not in page and "\r" not in page and "&lt;script&gt;" in page


# ----------------------------------------------------------------------------- refusals carry nothing out
LEAKY = """
from vidsme.attack import Direction, register_attack


@register_attack("frame_contrast", direction=Direction.HIGHER, needs=("natural.entropy",), slices=("video",),
                 family="frame_contrast", citation="a test: the challenge's data out through an exception")
def leak(inputs):
    values = inputs.tokens("natural.entropy")[:, :4].flatten().tolist()
    raise RuntimeError("LEAK " + " ".join(f"{v:.6f}" for v in values[:200]))
"""


@pytest.mark.skipif(detect_isolation() is None, reason="no sandbox (bubblewrap or user namespaces) on this machine")
def test_a_refusal_on_a_challenge_says_only_the_check_and_counts(built, tmp_path, capsys):
    out = _copy(built, tmp_path)
    leaky = tmp_path / "leaky.py"
    leaky.write_text(LEAKY)
    evaluate_challenge(out, _public_results(tmp_path / "public", with_submission=True, source=leaky), progress=False)
    before = {p: p.read_bytes() for p in (out / "public").rglob("*") if p.is_file()}
    for n in (1, 2, 3):
        assert main(["submit", "--submitter", WHO, str(leaky), "--challenge", str(out)]) == 2
        err = capsys.readouterr().err
        assert "the 'scores' check failed" in err and f"({n} of 3 used)" in err, err
        assert "LEAK" not in err and "RuntimeError" not in err and not re.search(r"\d\.\d{6}", err), err
    assert main(["submit", "--submitter", WHO, str(leaky), "--challenge", str(out)]) == 2
    assert "has made 3 submission(s) to this round, its limit (3)" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in (out / "public").rglob("*") if p.is_file()} == before
    attempts = json.loads((out / "private" / "results" / "attempts.json").read_text())["attempts"]
    assert [a["status"] for a in attempts] == ["refused"] * 3 and "LEAK" in attempts[0]["why"]  # the organiser's


@pytest.mark.skipif(detect_isolation() is None, reason="no sandbox (bubblewrap or user namespaces) on this machine")
def test_any_other_error_on_a_challenge_is_told_as_a_bare_refusal_and_counts(built, tmp_path, capsys, monkeypatch):
    """An error that is not a refusal (e.g. the metrics on scores the attack chose) may quote the challenge's data:
    the submitter is told only that the submission stopped; a running submission counts for the next one."""
    import vidsme.benchmark.submissions.attack_code as attack_code

    out = _copy(built, tmp_path)
    evaluate_challenge(out, _public_results(tmp_path / "public", with_submission=True), progress=False)
    seen = []

    def stops(*args, **kwargs):
        attempts = json.loads((out / "private" / "results" / "attempts.json").read_text())["attempts"]
        seen.append([a["status"] for a in attempts])  # this run is recorded before it runs
        raise VidsmeError("all 4 scores are infinite: SECRET 0.123456")

    monkeypatch.setattr(attack_code, "submit_attack", stops)
    assert main(["submit", "--submitter", WHO, str(EXAMPLE), "--challenge", str(out)]) == 2
    err = capsys.readouterr().err
    assert "the 'evaluation' check failed" in err and "(1 of 3 used)" in err, err
    assert "SECRET" not in err and "infinite" not in err, err
    assert seen == [["running"]]
    attempts = json.loads((out / "private" / "results" / "attempts.json").read_text())["attempts"]
    assert attempts[0]["status"] == "error" and "SECRET" in attempts[0]["why"]
