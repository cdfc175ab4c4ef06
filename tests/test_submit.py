"""`vidsme submit`: the docs example goes on the leaderboard; every broken submission is refused and changes nothing.

Code submissions run sandboxed, as they do for users; on a machine that cannot create
namespaces they run with --no-sandbox instead, so the checks are still exercised (tests/test_sandbox.py
covers the sandbox itself and says there why it skips)."""
from __future__ import annotations

import csv
import hashlib
import json
import shlex
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest

import vidsme.attack.registry as registry
from vidsme.metrics import evaluate_scores
from vidsme.attack.registry import list_attacks
from vidsme.benchmark.cache import FeatureCache
from vidsme.benchmark.config import SuiteConfig, SuiteTarget
from vidsme.benchmark.submissions import sandbox
from vidsme.benchmark.submissions.submitters import KEY_ENV, add_submitter
from vidsme.benchmark.leaderboard import write_leaderboard
from vidsme.benchmark.submissions.common import SubmissionRefused
from vidsme.benchmark.submissions.attack_code import submit_attack
from vidsme.benchmark.suite import run_suite
from vidsme.cli import main
from vidsme.data_splits.build import build_synthetic_split
from vidsme.paths import SPLITS_DIR_ENV
from vidsme.errors import VidsmeError
from vidsme.train.tiny_model import build_tiny_vullm, tokenizer_corpus
from tiny_configs import TINY

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "docs" / "examples" / "frame_contrast_attack.py"
TARGET = "t"
SANDBOXED = sandbox.detect_isolation() is not None
MODE = [] if SANDBOXED else ["--no-sandbox"]
WHO = "tester"  # the submitter every test submits as (its key is in $VIDSME_SUBMITTER_KEY for the module)


@pytest.fixture(scope="module")
def suite_results(tmp_path_factory):
    """One small benchmark (12 videos with two questions each, so row and video level differ; an
    untrained tiny model, no reference view) with its caches and leaderboard; each test works on its
    own copy of the results folder."""
    root = tmp_path_factory.mktemp("submit")
    mp = pytest.MonkeyPatch()
    mp.setenv(SPLITS_DIR_ENV, str(root / "splits"))
    split, _ = build_synthetic_split("synth-oeqa", root / "videos", n_videos=12, progress=False)
    target = build_tiny_vullm(TINY, tokenizer_corpus(split.rows()), root / "target")
    cfg = SuiteConfig(name="tiny", output_dir=root / "results", cache_dir=root / "cache", frame_counts=[4],
                      targets=[SuiteTarget(name=TARGET, path=target, split="synth-oeqa")], n_bootstrap=50,
                      batch_size=4, attacks=["loss", "vid_sme_mean", "zlib"], plots=False, blind_baseline=False,
                      reference_view=False, stats_workers=1)
    path = run_suite(cfg, progress=False)
    write_leaderboard(path.parent)
    mp.setenv(KEY_ENV, add_submitter(path.parent, WHO))  # copied with every test's results folder
    yield path.parent
    mp.undo()


@pytest.fixture
def results(suite_results, tmp_path) -> Path:
    out = tmp_path / "results"
    shutil.copytree(suite_results, out)
    return out


@pytest.fixture(autouse=True)
def registry_untouched():
    """A submission, accepted or refused, leaves the process's attack registry as it found it."""
    list_attacks()
    before = registry.registry_snapshot()
    yield
    after = registry.registry_snapshot()
    registry.restore_registry(before)
    assert after == before


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def _attack_file(tmp_path: Path, body: str, name: str = "my_attack.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


HEADER = """
import time
import torch
from vidsme.attack import Direction, register_attack
from vidsme.attack.aggregate import masked_mean
"""


def _simple(name: str, body: str, needs: str = '("natural.entropy",)', extra: str = "") -> str:
    return HEADER + extra + textwrap.dedent(f"""
@register_attack({name!r}, direction=Direction.LOWER, needs={needs}, citation="a test")
def attack(inputs):
    '''A test attack.'''
{textwrap.indent(textwrap.dedent(body), "    ")}
""")


# ----------------------------------------------------------------------------- the docs example
def test_docs_example_goes_on_the_leaderboard(results, capsys):
    before = _results(results)
    assert main(["submit", "--submitter", WHO, str(EXAMPLE), "--results", str(results), *MODE]) == 0
    out = capsys.readouterr().out
    assert "frame_contrast: added" in out and "leaderboard:" in out
    after = _results(results)
    assert after["rows"][: len(before["rows"])] == before["rows"]  # the suite's rows are untouched
    rows = [r for r in after["rows"] if r["attack"] == "frame_contrast"]
    assert {(r["slice"], r["level"], r["n_frames"], r["kind"], r["partition"]) for r in rows} == {
        ("video", level, 4, "reproduced", part) for level in ("row", "video") for part in ("dev", "test")}
    sha = hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    for r in rows:
        assert r["provenance"]["file_sha256"] == sha and r["provenance"]["source"] == EXAMPLE.as_posix()
        assert "git_commit" in r["provenance"] and r["family"] == "frame_contrast" and r["direction"] == "higher"
        assert set(r) == set(before["rows"][0])  # the same row layout as the benchmark's
    assert after["attacks"]["frame_contrast"]["submission"]["kind"] == "reproduced"
    # the per-sample scores reproduce the reported test AUC and its CI (whole videos resampled)
    row = next(r for r in rows if r["level"] == "row" and r["partition"] == "test")
    with (results / row["scores_file"]).open() as fh:
        table = [t for t in csv.DictReader(fh) if t["partition"] == "test"]
    again = evaluate_scores(np.array([float(t[row["scores_column"]]) for t in table]),
                            np.array([int(t["label"]) for t in table]), direction="higher", attack="x",
                            sample_ids=[t["sample_id"] for t in table], n_bootstrap=50, seed=0,
                            clusters=[t["video"] for t in table])
    assert again.auc.value == row["auc"]["value"] and again.auc.ci_low == row["auc"]["ci_low"]
    board = json.loads((results / "leaderboard.json").read_text())
    # one main entry for the submitted family: its dev-selected configuration, reported on test
    (entry,) = [e for e in board["targets"][0]["entries"] if e["method"] == "frame_contrast"]
    assert entry["kind"] == "reproduced" and entry["submitted"] and entry["partition"] == "test"
    assert entry["rank_band"] and entry["n_candidates"] == 2
    assert "leaderboard t: frame_contrast rank" in out
    assert len([d for d in board["targets"][0]["details"] if d["attack"] == "frame_contrast"]) == 4
    assert board["source"]["sha256"] == hashlib.sha256((results / "results.json").read_bytes()).hexdigest()
    assert "frame_contrast" in (results / "leaderboard.md").read_text()
    html = (results / "leaderboard.html").read_text()
    assert "frame_contrast" in html and html.count("<svg") > len(board["targets"][0]["entries"]) - 1


def test_the_same_file_again_changes_nothing_a_changed_one_replaces_its_rows(results, tmp_path, capsys):
    source = tmp_path / "frame_contrast_attack.py"
    shutil.copy(EXAMPLE, source)
    assert main(["submit", "--submitter", WHO, str(source), "--results", str(results), *MODE]) == 0
    first = _tree(results)
    capsys.readouterr()
    assert main(["submit", "--submitter", WHO, str(source), "--results", str(results), *MODE]) == 0
    assert "already on the leaderboard" in capsys.readouterr().out
    assert _tree(results) == first
    source.write_text(source.read_text().replace("n_frames = torch.where", "n_frames = 0 + torch.where"))
    assert main(["submit", "--submitter", WHO, str(source), "--results", str(results), *MODE]) == 0
    assert "replaced" in capsys.readouterr().out
    after = _results(results)
    rows = [r for r in after["rows"] if r["attack"] == "frame_contrast"]
    assert len(rows) == 4  # replaced, not duplicated (row and video level, dev and test)
    assert {r["provenance"]["file_sha256"] for r in rows} == {hashlib.sha256(source.read_bytes()).hexdigest()}
    assert [s["status"] for s in after["submissions"]] == ["added", "replaced"]


def test_the_recorded_command_reruns_the_same_submission_with_the_same_limits(results, tmp_path, monkeypatch,
                                                                             capsys):
    from vidsme.benchmark.submissions import request

    source = tmp_path / "frame_contrast_attack.py"
    shutil.copy(EXAMPLE, source)
    original = tmp_path / "original"
    shutil.copytree(results, original)
    argv = ["submit", str(source), "--submitter", WHO, "--time-budget", "20", "--results", str(results), "--memory-limit", "6.5", *MODE]
    assert main(argv) == 0
    first = _results(results)
    command = first["submissions"][-1]["command"]
    assert command == shlex.join(["vidsme", *argv])  # every flag, --time-budget and --memory-limit included
    calls = []
    real = request.submit_attack
    monkeypatch.setattr(request, "submit_attack", lambda *a, **k: calls.append(k) or real(*a, **k))
    shutil.rmtree(results)
    shutil.copytree(original, results)  # the results as they were: the rerun must add the submission again
    assert main(shlex.split(command)[1:]) == 0
    again = _results(results)
    assert again["rows"] == first["rows"] and again["attacks"] == first["attacks"]
    (call,) = calls
    assert call["time_budget_s"] == 20 and call["limits"].memory_bytes == int(6.5 * sandbox.GIB)
    assert call["command"] == command and call["sandbox"] == SANDBOXED
    capsys.readouterr()


def test_submitting_md_shows_the_commands_it_walks_through():
    text = (REPO / "docs" / "SUBMITTING.md").read_text()
    for needle in ("make demo", "vidsme submitters add me --results runs/demo/benchmark",
                   "vidsme submit docs/examples/frame_contrast_attack.py --submitter me --key-file ~/.vidsme-key "
                   "--results runs/demo/benchmark",
                   "--time-budget", "--scores", '[project.entry-points."vidsme.attacks"]', "--no-sandbox",
                   "apt-get install bubblewrap", "--memory-limit"):
        assert needle in text, needle


# ----------------------------------------------------------------------------- refusals
BROKEN = {
    "import": ("import", HEADER + "import a_module_that_does_not_exist\n", "ModuleNotFoundError"),
    "syntax": ("import", HEADER + "def broken(:\n", "SyntaxError"),
    "nan": ("scores", _simple("nan_attack", """
        s = masked_mean(inputs.tokens("natural.entropy"), inputs.mask)
        s[1] = float("nan")
        return s
        """), r"NaN for \S+"),
    "inf": ("scores", _simple("inf_attack", """
        s = masked_mean(inputs.tokens("natural.entropy"), inputs.mask)
        s[0] = float("inf")
        return s
        """), "inf for"),
    "wrong_length": ("scores", _simple("short_attack", "return torch.zeros(inputs.n - 1)"),
                     r"shape \(23,\), expected one score per sample \(24,\)"),
    "raises": ("scores", _simple("raising_attack", "raise KeyError('oops')"), "raised KeyError"),
    "nondeterministic": ("determinism", _simple("random_attack", "return torch.rand(inputs.n, dtype=torch.float64)"),
                         "a second call gave different scores"),
    "too_slow": ("time budget", _simple("slow_attack", """
        time.sleep(0.25)
        return masked_mean(inputs.tokens("natural.entropy"), inputs.mask)
        """), r"took .* s, over the budget of 0.05 s"),
    "unknown_feature": ("features", _simple("typo_attack", "return inputs.n", needs='("natural.entrpy",)'),
                        r"unknown input 'natural.entrpy'.*natural.entropy"),
    "feature_not_cached": ("features", _simple("ref_attack", "return inputs.n", needs='("reference.target_logprob",)'),
                           r"needs reference.target_logprob.*reference_view=true"),
    "name_clash": ("name", _simple("loss", "return inputs.n"),
                   r"'loss' is already registered by vidsme.attack.attacks.loss; rename yours"),
    "bad_direction": ("declaration", HEADER + textwrap.dedent("""
        @register_attack("up_attack", direction="up", needs=("natural.entropy",), citation="a test")
        def attack(inputs):
            return inputs.n
        """), "'up' is not a valid Direction"),
    "no_attack": ("import", HEADER + "x = 1\n", "registered no attack"),
    # a family is a method on the leaderboard, chosen among its own variants: no mixing into a built-in one
    "builtin_family": ("name", HEADER + textwrap.dedent("""
        @register_attack("loss_twin", direction="lower", needs=("natural.entropy",), citation="a test",
                         family="loss")
        def attack(inputs):
            return masked_mean(inputs.tokens("natural.entropy"), inputs.mask)
        """), "family 'loss' is vidsme's family 'loss': the board's own names are reserved"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_submission_is_refused_and_changes_nothing(case, results, tmp_path, capsys):
    check, body, why = BROKEN[case]
    source = _attack_file(tmp_path, body, f"{case}.py")
    before = _tree(results)
    budget = ["--time-budget", "0.05"] if case == "too_slow" else []
    assert main(["submit", "--submitter", WHO, str(source), "--results", str(results), *budget, *MODE]) == 2
    err = capsys.readouterr().err
    assert f"submission refused: the {check!r} check failed" in err, err
    assert __import__("re").search(why, err), err
    if check in ("scores", "determinism", "time budget"):
        assert f"target {TARGET!r}, 4 frames, slice" in err  # names where it failed
    assert _tree(results) == before  # results.json, scores and leaderboard.{json,md,html}: byte-identical
    assert not any(n.endswith("_attack") and n not in ("modified_entropy",) for n in registry._REGISTRY
                   if registry._REGISTRY[n].source.startswith("vidsme_user_attacks"))


def test_checks_run_in_order_nan_before_determinism(results, tmp_path):
    """A random attack that also returns NaN fails the earlier check, `scores`."""
    source = _attack_file(tmp_path, _simple("both_attack", """
        s = torch.rand(inputs.n, dtype=torch.float64)
        s[0] = float("nan")
        return s
        """))
    with pytest.raises(SubmissionRefused) as info:
        submit_attack(str(source), results, submitter=WHO, sandbox=SANDBOXED)
    assert info.value.check == "scores"


def test_a_failure_while_writing_restores_every_file(results, monkeypatch):
    import vidsme.benchmark.submissions.common as submission

    before = _tree(results)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(submission, "write_leaderboard", broken)
    with pytest.raises(OSError, match="disk full"):
        submit_attack(str(EXAMPLE), results, submitter=WHO, sandbox=SANDBOXED)
    assert _tree(results) == before


# ----------------------------------------------------------------------------- other sources
def test_module_path_and_entry_point_sources(results, tmp_path, monkeypatch, capsys):
    body = (EXAMPLE.read_text().replace('"frame_contrast",\n', '"frame_contrast_mod",\n')
            .replace('family="frame_contrast"', 'family="frame_contrast_mod"'))
    (tmp_path / "contrast_mod_attacks.py").write_text(body)
    dist = tmp_path / "contrast_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: contrast-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[vidsme.attacks]\ncontrast = contrast_mod_attacks\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["submit", "--submitter", WHO, "contrast_mod_attacks", "--results", str(results), *MODE]) == 0
    rows = [r for r in _results(results)["rows"] if r["attack"] == "frame_contrast_mod"]
    assert len(rows) == 4 and rows[0]["provenance"]["source"] == "contrast_mod_attacks"
    sha = hashlib.sha256((tmp_path / "contrast_mod_attacks.py").read_bytes()).hexdigest()
    assert rows[0]["provenance"]["file_sha256"] == sha
    capsys.readouterr()
    # the same module through its entry point: same file, so already there
    assert main(["submit", "--submitter", WHO, "contrast", "--results", str(results), *MODE]) == 0
    assert "already on the leaderboard" in capsys.readouterr().out


def test_a_package_is_refused_for_the_sandbox_without_running_it(results, tmp_path, monkeypatch):
    """The sandbox runs one file: a package (several files) is refused, found without importing it."""
    package = tmp_path / "attack_pkg"
    (package / "inner").mkdir(parents=True)
    marker = tmp_path / "ran"
    for init in (package / "__init__.py", package / "inner" / "__init__.py"):
        init.write_text(f"open({str(marker)!r}, 'w').write('the package ran')\n")
    (package / "inner" / "attacks.py").write_text(EXAMPLE.read_text())
    monkeypatch.syspath_prepend(str(tmp_path))
    before = _tree(results)
    for source in ("attack_pkg", "attack_pkg.inner"):
        with pytest.raises(SubmissionRefused, match=r"is a package .* --no-sandbox") as info:
            submit_attack(source, results, submitter=WHO)
        assert info.value.check == "import"
    assert not marker.exists() and _tree(results) == before  # no __init__ ran in this process


def test_a_built_in_module_or_a_missing_one_is_not_a_submission(results):
    before = _tree(results)
    with pytest.raises(SubmissionRefused, match="built-in attack") as info:
        submit_attack("vidsme.attack.attacks.loss", results, submitter=WHO, sandbox=SANDBOXED)
    assert info.value.check == "name"
    with pytest.raises(SubmissionRefused, match="not a file, not an installed entry point") as info:
        submit_attack("no_such_attack_module", results, submitter=WHO, sandbox=SANDBOXED)
    assert info.value.check == "import"
    with pytest.raises(SubmissionRefused, match="does not exist") as info:
        submit_attack("no_such_file.py", results, submitter=WHO, sandbox=SANDBOXED)
    assert _tree(results) == before


def test_a_missing_cache_is_an_error_not_a_refusal(results, tmp_path):
    data = _results(results)
    data["targets"][0]["caches"]["4"] = str(tmp_path / "nowhere")
    (results / "results.json").write_text(json.dumps(data, indent=2) + "\n")
    before = _tree(results)
    with pytest.raises(VidsmeError, match="feature cache .* not found"):
        submit_attack(str(EXAMPLE), results, submitter=WHO, sandbox=SANDBOXED)
    assert _tree(results) == before


def test_cache_opens_from_its_key(suite_results):
    folder = Path(_results(suite_results)["targets"][0]["caches"]["4"])
    cache = FeatureCache.from_folder(folder)
    assert cache.key.n_frames == 4 and cache.folder == folder
    with pytest.raises(VidsmeError, match="not a feature cache"):
        FeatureCache.from_folder(folder.parent)


# ----------------------------------------------------------------------------- scores files
def _evaluated(results: Path, level: str = "row") -> list[dict]:
    with (results / "scores" / TARGET / f"f4-{level}.csv").open() as fh:
        return list(csv.DictReader(fh))


def _scores_csv(path: Path, pairs) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sample_id", "score"])
        w.writerows(pairs)
    return path


def _submit_scores(results: Path, path: Path, *extra: str) -> int:
    return main(["submit", "--submitter", WHO, "--scores", str(path), "--target", TARGET, "--attack-name", "outside_loss",
                 "--direction", "lower", "--results", str(results), *extra])


def test_scores_file_is_scored_with_the_same_metrics(results, tmp_path, capsys):
    table = _evaluated(results)
    path = _scores_csv(tmp_path / "scores.csv", [(t["sample_id"], t["answer/loss"]) for t in reversed(table)])
    assert _submit_scores(results, path, "--n-frames", "4", "--citation", "a test, eq. 1") == 0
    data = _results(results)
    assert data["submissions"][-1]["command"] == shlex.join([  # as given, --citation included
        "vidsme", "submit", "--submitter", WHO, "--scores", str(path), "--target", TARGET, "--attack-name", "outside_loss", "--direction",
        "lower", "--results", str(results), "--n-frames", "4", "--citation", "a test, eq. 1"])
    rows = [r for r in data["rows"] if r["attack"] == "outside_loss"]
    assert {r["partition"] for r in rows} == {"dev", "test"}
    for row in rows:
        loss = next(r for r in data["rows"] if r["attack"] == "loss" and r["slice"] == "answer" and r["level"] == "row"
                    and r["partition"] == row["partition"])
        assert row["kind"] == "scores_file" and row["slice"] == "answer" and row["n_frames"] == 4
        for key in ("auc", "balanced_accuracy", "tpr@1%fpr", "n_members", "n_nonmembers"):
            assert row[key] == loss[key], key  # same scores, same pinned metrics, same bootstrap
    assert row["provenance"]["file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert row["family"] == "outside_loss"  # a scores file is a method of its own
    board = json.loads((results / "leaderboard.json").read_text())
    assert any(e["attack"] == "outside_loss" and e["kind"] == "scores_file" for e in board["targets"][0]["entries"])
    assert "outside_loss (submitted)" in (results / "leaderboard.md").read_text()
    once = _tree(results)
    assert _submit_scores(results, path, "--n-frames", "4", "--citation", "a test, eq. 1") == 0
    assert "already on the leaderboard" in capsys.readouterr().out and _tree(results) == once
    # video level: the ids are the videos
    videos = _evaluated(results, "video")
    vpath = _scores_csv(tmp_path / "video.csv", [(t["sample_id"], t["answer/loss"]) for t in videos])
    assert _submit_scores(results, vpath, "--level", "video", "--n-frames", "4") == 0
    vrows = [r for r in _results(results)["rows"] if r["attack"] == "outside_loss" and r["level"] == "video"]
    assert len(vrows) == 2
    for vrow in vrows:
        vloss = next(r for r in data["rows"] if r["attack"] == "loss" and r["slice"] == "answer"
                     and r["level"] == "video" and r["partition"] == vrow["partition"])
        assert vrow["auc"] == vloss["auc"]


def _pairs(results: Path, case: str) -> list[tuple[str, str]]:
    pairs = [(t["sample_id"], t["answer/loss"]) for t in _evaluated(results)]
    if case == "missing":
        return pairs[1:]
    if case == "duplicate":
        return pairs + [pairs[0]]
    if case == "unknown":
        return pairs + [("not-a-sample", "1.0")]
    if case == "nan":
        return [(pairs[0][0], "nan")] + pairs[1:]
    if case == "inf":
        return [(pairs[0][0], "-inf")] + pairs[1:]
    if case == "not_a_number":
        return [(pairs[0][0], "high")] + pairs[1:]
    raise AssertionError(case)


SCORE_CASES = {"missing": ("ids", "are missing"), "duplicate": ("ids", "duplicate sample ids"),
               "unknown": ("ids", "unknown sample ids.*not-a-sample"), "nan": ("finite", "not finite"),
               "inf": ("finite", "not finite"), "not_a_number": ("format", "is not a number")}


@pytest.mark.parametrize("case", sorted(SCORE_CASES))
def test_a_bad_scores_file_is_refused_and_changes_nothing(case, results, tmp_path, capsys):
    check, why = SCORE_CASES[case]
    path = _scores_csv(tmp_path / "scores.csv", _pairs(results, case))
    before = _tree(results)
    assert _submit_scores(results, path) == 2
    err = capsys.readouterr().err
    assert f"the {check!r} check failed" in err and __import__("re").search(why, err), err
    assert _tree(results) == before


def test_scores_file_names_and_targets_are_checked(results, tmp_path, capsys):
    path = _scores_csv(tmp_path / "scores.csv", _pairs(results, "missing")[:0] + [
        (t["sample_id"], t["answer/loss"]) for t in _evaluated(results)])
    before = _tree(results)
    assert main(["submit", "--submitter", WHO, "--scores", str(path), "--target", "T", "--attack-name", "x", "--direction", "lower",
                 "--results", str(results)]) == 2
    assert "the 'target' check failed: unknown target 'T'" in capsys.readouterr().err
    assert main(["submit", "--submitter", WHO, "--scores", str(path), "--target", TARGET, "--attack-name", "loss", "--direction", "lower",
                 "--results", str(results)]) == 2
    assert "the 'name' check failed" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("id,value\na,1\n")
    assert _submit_scores(results, tmp_path / "bad.csv") == 2
    assert "the 'format' check failed" in capsys.readouterr().err
    assert main(["submit", "--submitter", WHO, str(EXAMPLE), "--scores", str(path), "--results", str(results), *MODE]) == 2
    assert "not both" in capsys.readouterr().err
    assert _tree(results) == before


SIZES = {  # (file contents, what the one-line refusal says); each once ended in a traceback or a huge allocation
    "a field over 128 KiB": (lambda ids: "sample_id,score\n" + "x" * 200_000 + ",1\n", r"line 2: longer than 4,096 characters"),
    "a quoted field over many lines": (lambda ids: 'sample_id,score\n"' + "y\n" * 80_000 + '",1\n', r"not CSV"),
    "a quoted field of 5,000 characters": (lambda ids: 'sample_id,score\n"' + "y\n" * 2_500 + '",1\n',
                                           r"a field of over 1,024 characters"),
    "more rows than samples": (lambda ids: "sample_id,score\n" + "".join(f"{i},0.5\n" for i in ids * 3) + "z,1\n" * 1000,
                               r"more than 1,0\d\d rows"),
}


@pytest.mark.parametrize("case", sorted(SIZES))
def test_an_oversized_scores_file_is_a_one_line_refusal(case, results, tmp_path, capsys):
    contents, why = SIZES[case]
    path = tmp_path / "scores.csv"
    path.write_text(contents([t["sample_id"] for t in _evaluated(results)]))
    before = _tree(results)
    assert _submit_scores(results, path) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "_csv.Error" not in err, err
    assert "the 'format' check failed" in err and __import__("re").search(why, err), err
    assert _tree(results) == before


def test_a_scores_file_over_the_size_cap_is_refused_unread(results, tmp_path, capsys):
    from vidsme.benchmark.submissions.scores_file import MAX_SCORES_FILE_BYTES

    path = tmp_path / "huge.csv"
    with path.open("wb") as fh:
        fh.truncate(MAX_SCORES_FILE_BYTES + 1)  # sparse: nothing to read, if anything read it
    assert _submit_scores(results, path) == 2
    assert f"may have at most {MAX_SCORES_FILE_BYTES:,}" in capsys.readouterr().err
