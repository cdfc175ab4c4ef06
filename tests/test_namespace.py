"""Names on a board: one namespace for attacks, families, calibrations, calibrated methods and submitters,
owned by their first submitter; the board's own words and the host reserved; look-alikes read as one name
(docs/SECURITY.md). Each hole below was open before: a name of one kind could take another kind's."""
from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
import test_submit as base  # the module's tiny benchmark fixture and helpers

from vidsme.benchmark.submissions.common import SubmissionRefused
from vidsme.benchmark.submissions.submitters import KEY_ENV, add_submitter
from vidsme.cli import main

suite_results = base.suite_results
results = base.results
registry_untouched = base.registry_untouched
WHO = base.WHO
MODE = base.MODE


def _code(tmp_path: Path, name: str, family: str | None = None, file: str = "named.py") -> Path:
    family_arg = f", family={family!r}" if family is not None else ""
    return base._attack_file(tmp_path, base.HEADER + textwrap.dedent(f"""
        @register_attack({name!r}, direction=Direction.LOWER, needs=("natural.entropy",), citation="a test"{family_arg})
        def attack(inputs):
            '''A test attack.'''
            return masked_mean(inputs.tokens("natural.entropy"), inputs.mask)
        """), file)


def _scores(results_dir: Path, tmp_path: Path, name: str) -> list[str]:
    path = tmp_path / "scores.csv"
    base._scores_csv(path, [(t["sample_id"], t["answer/loss"]) for t in base._evaluated(results_dir)])
    return ["--scores", str(path), "--target", base.TARGET, "--attack-name", name, "--direction", "lower"]


def _refused(results_dir: Path, capsys, *argv: str) -> str:
    before = base._tree(results_dir)
    assert main(["submit", *argv, "--results", str(results_dir)]) == 2
    err = capsys.readouterr().err
    assert "the 'name' check failed" in err and "Traceback" not in err, err
    assert base._tree(results_dir) == before
    return err


@pytest.fixture
def rival(results, monkeypatch):
    """A second submitter, mallory, on the board; returns a function that switches the key to them."""
    keys = {WHO: os.environ[KEY_ENV], "mallory": add_submitter(results, "mallory")}
    return lambda who: monkeypatch.setenv(KEY_ENV, keys[who])


# ----------------------------------------------------------------------------- one namespace across kinds
def test_a_scores_file_cannot_join_another_submitters_calibrated_method(results, tmp_path, capsys, rival):
    # tester's family "mine" is calibrated as the method "lira+mine" where the suite has shadows: the name a scores
    # file would need to join (and sabotage) it is not a name anyone can submit
    assert main(["submit", "--submitter", WHO, str(_code(tmp_path, "mine_attack", "mine")), "--results", str(results),
                 *MODE]) == 0
    capsys.readouterr()
    rival("mallory")
    err = _refused(results, capsys, "--submitter", "mallory", *_scores(results, tmp_path, "lira+mine"))
    assert "'+'" in err and "ASCII letters, digits, _ . or -" in err, err


def test_names_collide_across_kinds_whoever_took_them_first():
    """Unit: every kind of name a board shows against every other, by a second submitter."""
    from vidsme.benchmark.submissions.namespace import check_claims

    results = {"attacks": {"alice_attack": {"family": "alice_fam", "submission": {"submitter": "alice"}}},
               "calibrations": {"alice_cal": {"family": "alice_calfam", "submission": {"submitter": "alice"}}},
               "rows": [{"kind": "calibrated", "attack": "lira_online_global(alice_attack)", "family": "lira+alice_fam",
                         "calibration": {"submission": {"submitter": "alice"}}}]}
    for name in ("alice_attack", "alice_fam", "alice_cal", "alice_calfam", "Alice_Fam", "alice-cal"):
        for what in ("attack name", "family", "calibration name", "scores-file name"):
            with pytest.raises(SubmissionRefused, match="belongs to submitter 'alice'"):
                check_claims([(name, what)], results, "mallory")
    for derived in ("lira+alice_fam", "lira_online_global(alice_attack)"):
        with pytest.raises(SubmissionRefused, match="belongs to submitter 'alice'"):
            check_claims([], results, "mallory", derived=[derived])
    check_claims([("alice_fam", "family"), ("alice_cal", "attack name")], results, "alice")  # the owner may
    check_claims([("bob_fam", "family")], results, "bob")


def test_an_attack_cannot_take_another_submitters_family(results, tmp_path, capsys, rival):
    assert main(["submit", "--submitter", WHO, str(_code(tmp_path, "mine_attack", "mine")), "--results", str(results),
                 *MODE]) == 0
    capsys.readouterr()
    rival("mallory")
    other = tmp_path / "other"
    other.mkdir()
    for name, family in (("theirs", "mine"), ("mine", "theirs"), ("theirs", "MINE"), ("theirs", "mine_attack")):
        err = _refused(results, capsys, "--submitter", "mallory", str(_code(other, name, family)), *MODE)
        assert "belongs to submitter 'tester'" in err, err


# ----------------------------------------------------------------------------- the board's own words
@pytest.mark.parametrize("family", ["blind baseline", "blind_baseline", "Blind-Baseline", "vidsme", "ceiling"])
def test_a_family_cannot_be_named_like_the_blind_baseline_or_the_host(family, results, tmp_path, capsys):
    err = _refused(results, capsys, "--submitter", WHO, str(_code(tmp_path, "blind_twin", family)), *MODE)
    assert "reserved" in err or "ASCII letters" in err, err


@pytest.mark.parametrize("name", ["blind_baseline", "Blind", "vid-sme", "VIDSME"])
def test_a_scores_file_cannot_be_named_like_the_board_itself(name, results, tmp_path, capsys):
    err = _refused(results, capsys, "--submitter", WHO, *_scores(results, tmp_path, name))
    assert "reserved" in err, err


# ----------------------------------------------------------------------------- look-alikes
LOOK_ALIKES = {"cyrillic o": "l\u043ess", "zero-width space": "zlib\u200b", "upper case": "Loss", "capital": "Zlib",
               "host in capitals": "VIDSME", "separators": "min-k-prob", "full-width": "\uff4c\uff4f\uff53\uff53",
               "capital i for l": "Ioss", "digit one for l": "z1ib", "rn for m": "vidsrne", "zero for o": "l0ss",
               "capital i in blind": "bIind", "trailing newline": "loss_v2\n", "a web address": "www.example.org"}


@pytest.mark.parametrize("case", sorted(LOOK_ALIKES))
def test_a_family_that_reads_like_a_taken_name_is_refused(case, results, tmp_path, capsys):
    err = _refused(results, capsys, "--submitter", WHO, str(_code(tmp_path, "lookalike", LOOK_ALIKES[case])), *MODE)
    assert "reads as" in err or "is vidsme's" in err or "ASCII" in err or "link" in err, err
    if not LOOK_ALIKES[case].isascii():  # the refusal shows what the character is
        assert "U+" in err and "\u200b" not in err, err


@pytest.mark.parametrize("case", ["upper case", "capital", "separators", "host in capitals", "capital i for l",
                                  "rn for m"])
def test_a_scores_file_that_reads_like_a_taken_name_is_refused(case, results, tmp_path, capsys):
    err = _refused(results, capsys, "--submitter", WHO, *_scores(results, tmp_path, LOOK_ALIKES[case]))
    assert "reads as" in err, err


def test_name_keys_fold_case_width_and_separators():
    from vidsme.benchmark.submissions.namespace import name_key

    assert name_key("Min-K.Prob") == name_key("min_k_prob") == name_key("\uff4d\uff49\uff4e_k_prob") == "minkprob"
    assert name_key("l\u043ess") != name_key("loss")  # a letter of another script is refused by the spelling rule
    from vidsme.benchmark.submissions.namespace import name_keys

    assert "blind" in name_keys("bIind") and "vidsme" in name_keys("vidsrne") and "vidsme" in name_keys("VIDSME")
    assert "loss" in name_keys("I0ss") & name_keys("1oss") and name_keys("vvave") & name_keys("wave")


# ----------------------------------------------------------------------------- the host is not a submitter
@pytest.mark.parametrize("name", ["vidsme", "VIDSME", "vid-sme", "host", "blind_baseline", "vidsrne", "ada\n"])
def test_no_submitter_is_named_like_the_host(name, results, capsys):
    before = base._tree(results)
    assert main(["submitters", "add", name, "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert "choose another" in err or "must be 1-100 ASCII" in err, err
    assert base._tree(results) == before


def test_a_host_named_submitter_issued_before_is_refused_at_submission(results, tmp_path, capsys, monkeypatch):
    path = results / "submitters.json"
    data = json.loads(path.read_text())
    data["submitters"]["vidsme"] = dict(data["submitters"][WHO])  # as an older vidsme could have issued it
    path.write_text(json.dumps(data))
    before = base._tree(results)
    assert main(["submit", "--submitter", "vidsme", str(base.EXAMPLE), "--results", str(results), *MODE]) == 2
    err = capsys.readouterr().err
    assert "the 'submitter' check failed" in err and "host" in err, err
    assert base._tree(results) == before


def test_a_submitter_name_that_reads_like_an_issued_one_is_refused(results, capsys):
    assert main(["submitters", "add", "Tester", "--results", str(results)]) == 2
    assert "reads like the existing submitter 'tester'" in capsys.readouterr().err
