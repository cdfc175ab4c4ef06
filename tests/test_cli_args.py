"""The command line takes `key=value` overrides anywhere among the flags, and records the command
as given (shell-quoted), so that rerunning the recorded line reproduces the run."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from vidsme.cli import main, parse_args

REPO = Path(__file__).resolve().parents[1]
TARGET = "configs/targets/mcqa-full.yaml"
SUITE = "configs/suites/demo.yaml"


@pytest.mark.parametrize("argv", [
    ["train", "target", TARGET, "--dry-run", "base=B", "seed=3", "--quick"],
    ["train", "target", TARGET, "base=B", "--dry-run", "seed=3", "--quick"],
    ["train", "target", TARGET, "base=B", "seed=3", "--dry-run", "--quick"],
    ["train", "target", "--dry-run", TARGET, "base=B", "--quick", "seed=3"],
], ids=["flags-first", "between", "flags-last", "before-config"])
def test_train_overrides_mix_with_flags_in_any_order(argv):
    args = parse_args(argv)
    assert (args.what, args.config, args.dry_run, args.quick) == ("target", Path(TARGET), True, True)
    assert args.overrides == ["base=B", "seed=3"]  # in the order given


@pytest.mark.parametrize("argv", [
    ["benchmark", SUITE, "--dry-run", "frame_counts=[4]", "--quiet", "plots=false"],
    ["benchmark", SUITE, "frame_counts=[4]", "plots=false", "--dry-run", "--quiet"],
    ["benchmark", "--quiet", SUITE, "frame_counts=[4]", "--dry-run", "plots=false"],
])
def test_benchmark_overrides_mix_with_flags(argv):
    args = parse_args(argv)
    assert args.dry_run and args.quiet and args.overrides == ["frame_counts=[4]", "plots=false"]


@pytest.mark.parametrize("argv", [
    ["challenge", "build", "--secret", "s.bin", "--out", "d", "base.optim.epochs=1", "--size", "6",
     "suite.frame_counts=[4]"],
    ["challenge", "build", "base.optim.epochs=1", "--secret", "s.bin", "suite.frame_counts=[4]", "--out", "d",
     "--size", "6"],
    ["challenge", "build", "--secret", "s.bin", "--set", "base.optim.epochs=1", "--out", "d", "--size", "6",
     "suite.frame_counts=[4]"],
])
def test_challenge_build_overrides_mix_with_flags(argv):
    args = parse_args(argv)
    assert (args.secret, args.out, args.size) == (Path("s.bin"), Path("d"), 6)
    assert [*args.set, *args.overrides] == ["base.optim.epochs=1", "suite.frame_counts=[4]"]


def test_study_overrides_may_follow_its_flags():
    args = parse_args(["study", "video-signal", "c.yaml", "--size", "tiny", "only=[center]", "--report-only"])
    assert args.size == "tiny" and args.report_only and args.overrides == ["only=[center]"]


@pytest.mark.parametrize("argv, word", [
    (["train", "target", TARGET, "--dry-run", "oops"], "oops"),
    (["leaderboard", "runs/x", "a=1"], "a=1"),  # leaderboard takes no overrides
    (["benchmark", SUITE, "--dry-run", "--frobnicate"], "--frobnicate"),
])
def test_a_word_that_is_no_override_is_still_refused(argv, word, capsys):
    with pytest.raises(SystemExit) as err:
        parse_args(argv)
    assert err.value.code == 2
    assert f"unrecognized arguments: {word}" in capsys.readouterr().err


def test_the_recorded_command_is_the_argv_as_given_shell_quoted():
    argv = ["benchmark", "my suite.yaml", "attacks=[loss, zlib]", "--dry-run"]
    line = parse_args(argv).command_line
    assert line == "vidsme benchmark 'my suite.yaml' 'attacks=[loss, zlib]' --dry-run"
    assert shlex.split(line)[1:] == argv


def test_a_real_dry_run_gets_the_same_overrides_before_or_after_its_flag(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)  # the target config names configs/deepspeed/... relative to the repository
    base = tmp_path / "no-such-base"
    outputs = []
    for argv in (["train", "target", TARGET, "--dry-run", f"base={base}", f"output_dir={tmp_path / 'out'}"],
                 ["train", "target", TARGET, f"base={base}", f"output_dir={tmp_path / 'out'}", "--dry-run"]):
        code = main(argv)
        outputs.append((code, capsys.readouterr().out))
    assert outputs[0] == outputs[1]
    code, out = outputs[0]
    assert code == 1 and f"base {base}" in out  # the override reached the config: its base is the one named
