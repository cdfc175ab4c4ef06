"""Submitted code runs isolated (benchmark/submissions/sandbox.py, attack/isolated.py).

Each escape attempt — reading a split manifest, opening a socket, writing outside its /tmp,
allocating past the memory limit, forking without end, recovering labels from sample ids — is
refused with a one-line reason and changes nothing; the docs example scores bit-identically in
and out of the sandbox; and where no namespaces can be made, code submissions are refused with
a message that says how to get them (tests that need namespaces say so and skip).

Every escape attack below succeeds (returns scores, so the submission would be accepted) if
the sandbox lets it through, and raises an error naming what stopped it otherwise.
"""
from __future__ import annotations

import csv
import json
import os
import re
import socket
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import test_submit as base  # the module's tiny benchmark fixture and helpers (one benchmark per module)

import vidsme.attack
from vidsme.benchmark.submissions import sandbox
from vidsme.benchmark.submissions.common import SubmissionRefused
from vidsme.benchmark.submissions.attack_code import submit_attack
from vidsme.cli import main
from vidsme.data_splits.registry import splits_dir

suite_results = base.suite_results
results = base.results
registry_untouched = base.registry_untouched  # autouse: a submission never changes this process's registry
WHO = base.WHO

ISOLATION = sandbox.detect_isolation()
PROBES = {tool: sandbox.probe(tool) for tool in sandbox.TOOLS}  # an Isolation, or why the tool does not work
NO_NAMESPACES = "this machine cannot create namespaces, so nothing runs sandboxed here: " + (
    "" if ISOLATION is not None else sandbox.no_isolation_message())
needs_sandbox = pytest.mark.skipif(ISOLATION is None, reason=NO_NAMESPACES)
REPO = base.REPO
EXAMPLE = base.EXAMPLE


def _attack(tmp_path: Path, body: str, name: str = "escape_attack", extra: str = "") -> Path:
    """A file registering `name` whose function body is `body` (inputs -> scores)."""
    source = base.HEADER + "import os, sys, json, re, socket, time, glob\n" + textwrap.dedent(extra) + textwrap.dedent(f"""
@register_attack({name!r}, direction=Direction.HIGHER, needs=("natural.entropy",), slices=("answer",),
                 citation="an escape test")
def attack(inputs):
    '''Tries to escape the sandbox.'''
{textwrap.indent(textwrap.dedent(body), "    ")}
""")
    path = tmp_path / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    return path


def _refused(results_dir: Path, source: Path, capsys, *extra: str) -> str:
    """Submit `source` (sandboxed); assert it is refused on one line and nothing changed; the line."""
    before = base._tree(results_dir)
    assert main(["submit", "--submitter", WHO, str(source), "--results", str(results_dir), *extra]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err  # one line, however much the attack printed
    assert base._tree(results_dir) == before  # results.json, scores, leaderboards: byte-identical
    return err.strip()


# ----------------------------------------------------------------------------- escapes
@needs_sandbox
def test_reading_a_split_manifest_is_refused(results, tmp_path, capsys):
    patterns = [str(splits_dir() / "*" / "manifest.jsonl"), str(REPO / "data_splits" / "*" / "manifest.jsonl")]
    cheat = _attack(tmp_path, """
        found = [p for pattern in PATTERNS for p in glob.glob(pattern)]
        if not found:
            raise FileNotFoundError(f"no manifest visible among {PATTERNS}")
        labels = {}
        for path in found:
            with open(path) as fh:
                for line in fh:
                    row = json.loads(line)
                    labels.setdefault(row["id"], float(row["label"] == "member"))
        return torch.tensor([labels[i] for i in inputs.sample_ids])
        """, extra=f"PATTERNS = {patterns!r}\n")
    err = _refused(results, cheat, capsys)
    assert "the 'scores' check failed" in err and "FileNotFoundError: no manifest visible" in err, err
    # without the sandbox the same file finds the manifests (what the sandbox hides); its ids are opaque there
    # too, so the lookup by id fails on an id no split has
    err = _refused(results, cheat, capsys, "--no-sandbox")
    assert "FileNotFoundError" not in err and "KeyError: 's" in err, err


@needs_sandbox
def test_a_socket_to_localhost_is_refused(results, tmp_path, capsys):
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted = []

    def serve():
        while not stop.is_set():
            try:
                accepted.append(server.accept())
            except (TimeoutError, OSError):
                continue

    stop = threading.Event()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        source = _attack(tmp_path, f"""
            with socket.create_connection(("127.0.0.1", {port}), timeout=5) as s:
                s.sendall(b"leak")
            return torch.zeros(inputs.n)
            """)
        err = _refused(results, source, capsys)
    finally:
        stop.set()
        thread.join()
        server.close()
    assert "the 'scores' check failed" in err and re.search(r"raised (ConnectionRefusedError|OSError|PermissionError)", err), err
    assert not accepted


@needs_sandbox
def test_writing_outside_its_own_tmp_is_refused(results, tmp_path, capsys):
    targets = [str(results / "escaped.txt"), str(tmp_path / "escaped.txt"), "/vidsme/in/escaped.txt",
               str(Path(sys.prefix) / "escaped.txt"), str(Path(vidsme.attack.__file__).parent / "escaped.txt")]
    source = _attack(tmp_path, """
        with open("/tmp/scratch.txt", "w") as fh:  # its own private /tmp: allowed
            fh.write("fine")
        errors = []
        for path in TARGETS:
            try:
                with open(path, "w") as fh:
                    fh.write("escaped")
            except OSError as err:
                errors.append(f"{path}: {type(err).__name__}")
            else:
                return torch.zeros(inputs.n)  # escaped: the submission would be accepted
        raise PermissionError("no write outside /tmp: " + "; ".join(errors))
        """, extra=f"TARGETS = {targets!r}\n")
    err = _refused(results, source, capsys)
    assert "raised PermissionError: no write outside /tmp" in err, err
    assert not any(os.path.exists(t) for t in targets)


@needs_sandbox
def test_allocating_past_the_memory_limit_is_refused(results, tmp_path, capsys):
    limit = 6 * sandbox.GIB
    source = _attack(tmp_path, """
        ordinary = bytearray(64 * 2 ** 20)  # an ordinary allocation works
        with open("/proc/self/status") as fh:
            in_use = int(re.search(r"VmSize:\\s+(\\d+) kB", fh.read())[1]) * 1024
        want = LIMIT - in_use + 256 * 2 ** 20  # just past the limit; untouched pages, fine without one
        try:
            big = bytearray(want)
        except MemoryError:
            raise MemoryError(f"{want} more bytes refused with {in_use} in use") from None
        return torch.zeros(inputs.n) + len(big) + len(ordinary)
        """, extra=f"LIMIT = {limit}\n")
    err = _refused(results, source, capsys, "--memory-limit", "6")
    assert re.search(r"raised MemoryError: \d+ more bytes refused", err), err


@needs_sandbox
def test_forking_without_end_is_stopped_by_the_process_limit(results, tmp_path, capsys):
    source = _attack(tmp_path, """
        forks = 0
        try:
            while True:
                if os.fork() == 0:  # every child stays: only a limit can stop the loop
                    time.sleep(60)
                    os._exit(0)
                forks += 1
        except OSError as err:
            raise RuntimeError(f"stopped after {forks} forks: {err}") from None
        """)
    err = _refused(results, source, capsys)
    stopped = re.search(r"stopped after (\d+) forks: \[Errno 11\] Resource temporarily unavailable", err)
    assert stopped, err  # EAGAIN from RLIMIT_NPROC, long before any wall-clock limit
    assert int(stopped[1]) < sandbox.SandboxLimits().processes()


@needs_sandbox
def test_labels_cannot_be_recovered_from_sample_ids(results, tmp_path, capsys):
    with (results / "scores" / base.TARGET / "f4-row.csv").open() as fh:
        labels = {t["sample_id"]: float(t["label"]) for t in csv.DictReader(fh)}  # as a public split would give
    cheat = _attack(tmp_path, "return torch.tensor([LABELS[i] for i in inputs.sample_ids])",
                    extra=f"LABELS = {labels!r}\n")
    err = _refused(results, cheat, capsys)
    assert re.search(r"raised KeyError: 's\d{6,}'", err), err  # an opaque id, drawn for this call
    # the attack runs in a child process without the sandbox too, and sees opaque ids there as well
    assert re.search(r"raised KeyError: 's\d{6,}'", _refused(results, cheat, capsys, "--no-sandbox"))


STOPPED = {  # attacks the parent has to stop or bury: (body, check, reason)
    "hangs": ("while True:\n    pass", "time budget", r"did not return within 2 s .*the sandbox was stopped"),
    "exits": ("os._exit(3)", "scores", r"the sandboxed process exited with status 3 during a call of attack"),
}


@needs_sandbox
@pytest.mark.parametrize("case", sorted(STOPPED))
def test_a_call_that_never_returns_or_kills_its_process_is_refused(case, results, tmp_path):
    body, check, why = STOPPED[case]
    before = base._tree(results)
    with pytest.raises(SubmissionRefused) as info:  # budget 1 s + 1 s grace: the parent's wall clock
        submit_attack(str(_attack(tmp_path, body)), results, submitter=WHO, time_budget_s=1.0,
                      limits=sandbox.SandboxLimits(grace_s=1.0))
    assert info.value.check == check and re.search(why, info.value.why), info.value.why
    assert base._tree(results) == before


# ----------------------------------------------------------------------------- what it sees; same numbers
def _tools() -> list:
    """bwrap and the unshare fallback, each skipped (saying why) where it cannot isolate."""
    return [pytest.param(tool, marks=pytest.mark.skipif(
        not isinstance(found, sandbox.Isolation), reason=f"{tool} cannot isolate here ({found}); "
        + ("" if ISOLATION is not None else NO_NAMESPACES))) for tool, found in PROBES.items()]


@pytest.fixture
def tool(request, monkeypatch):
    """Run the test's sandboxed submissions with this tool."""
    found = PROBES[request.param]
    monkeypatch.setattr(sandbox, "detect_isolation", lambda: found)
    return request.param


@pytest.mark.parametrize("tool", _tools(), indirect=True)
def test_the_sandbox_shows_no_data_no_network_no_privilege(tool, results, tmp_path, capsys):
    cache = Path(base._results(results)["targets"][0]["caches"]["4"])
    paths = {"repo": str(REPO), "data_splits": str(REPO / "data_splits"), "benchmark": str(REPO / "benchmark"),
             "runs": str(REPO / "runs"), "splits": str(splits_dir()), "results": str(results), "cache": str(cache),
             "home": str(Path.home()), "vidsme": str(REPO / "vidsme"), "prefix": sys.prefix}
    source = _attack(tmp_path, """
        facts = {"uid": os.getuid(), "root": sorted(os.listdir("/")), "env": sorted(os.environ),
                 "exists": {k: os.path.exists(p) for k, p in PATHS.items()},
                 "interfaces": [line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:]],
                 "repo_listing": sorted(os.listdir(PATHS["repo"])) if os.path.isdir(PATHS["repo"]) else []}
        raise RuntimeError("FACTS " + json.dumps(facts))
        """, extra=f"PATHS = {paths!r}\n")
    err = _refused(results, source, capsys)
    facts = json.loads(err.split("FACTS ", 1)[1])
    visible = {k for k, v in facts["exists"].items() if v}
    # the repository and home exist only as parents of what is bound (vidsme/, attack/, the venv)
    assert visible <= {"vidsme", "prefix", "home", "repo"} and {"vidsme", "prefix"} <= visible, facts
    assert set(facts["repo_listing"]) <= {"vidsme", "attack", *(p.name for p in sandbox._python_trees()
                                                               if p.parent == REPO)}, facts
    assert not any(k.startswith("VIDSME") for k in facts["env"]), facts  # the fixture sets VIDSME_SPLITS_DIR here
    assert facts["interfaces"] == ["lo"], facts
    assert set(facts["root"]) <= {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "proc", "dev",
                                  "tmp", "vidsme", *(Path(p).parts[1] for p in (REPO, sys.prefix, sys.base_prefix))}
    if os.geteuid() == 0:  # root callers: the child is the unprivileged sandbox uid, not root
        assert facts["uid"] in sandbox.SANDBOX_UIDS, facts


@pytest.mark.parametrize("tool", _tools(), indirect=True)
def test_the_example_scores_bit_identically_sandboxed_and_in_process(tool, results, capsys):
    assert main(["submit", "--submitter", WHO, str(EXAMPLE), "--results", str(results), "--no-sandbox"]) == 0
    assert "--no-sandbox: ran without isolation" in capsys.readouterr().out
    files = sorted((results / "scores" / base.TARGET / "submissions").glob("frame_contrast-*.csv"))
    in_process = {p.name: p.read_bytes() for p in files}
    rows_in = [r for r in base._results(results)["rows"] if r["attack"] == "frame_contrast"]
    data = base._results(results)
    assert data["attacks"]["frame_contrast"]["submission"]["sandboxed"] is False
    assert data["submissions"][-1]["sandboxed"] is False
    # the same file sandboxed replaces the unsandboxed rows with the very same numbers
    assert main(["submit", "--submitter", WHO, str(EXAMPLE), "--results", str(results)]) == 0
    assert "replaced" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in files} == in_process  # every per-sample score, bit for bit
    data = base._results(results)
    rows_sb = [r for r in data["rows"] if r["attack"] == "frame_contrast"]
    for a, b in zip(rows_in, rows_sb, strict=True):
        assert a["provenance"].pop("sandboxed") is False and b["provenance"].pop("sandboxed") is True
        assert a == b
    assert data["attacks"]["frame_contrast"]["submission"]["sandboxed"] is True
    assert data["submissions"][-1]["sandboxed"] is True
    # the same bytes again: known sandboxed, so nothing runs and nothing changes
    before = base._tree(results)
    assert main(["submit", "--submitter", WHO, str(EXAMPLE), "--results", str(results)]) == 0
    assert "already on the leaderboard" in capsys.readouterr().out and base._tree(results) == before


# ----------------------------------------------------------------------------- no namespaces here
def test_without_isolation_code_is_refused_with_how_to_get_it(results, monkeypatch, capsys):
    monkeypatch.setattr(sandbox, "detect_isolation", lambda: None)
    monkeypatch.setattr(sandbox, "isolation_problems",
                        lambda: ["bwrap: not installed", "unshare: unshare failed: Operation not permitted"])
    err = _refused(results, EXAMPLE, capsys)
    assert "the 'sandbox' check failed: no sandbox is available" in err
    for needle in ("bwrap: not installed", "apt-get install bubblewrap", "user namespaces", "--no-sandbox",
                   "docs/SUBMITTING.md"):
        assert needle in err, needle
    with pytest.raises(SubmissionRefused) as info:
        submit_attack(str(EXAMPLE), results, submitter=WHO)
    assert info.value.check == "sandbox"


# ----------------------------------------------------------------------------- the command line itself
PLAN_UID = 234567


def _plan(tmp_path: Path, trees: list[Path], covers: list[Path]) -> sandbox._Plan:
    (tmp_path / "in").mkdir(exist_ok=True)
    return sandbox._Plan(trees, covers, tmp_path / "in", tmp_path / "root", {"HOME": "/tmp"}, sandbox.MIB,
                         [sys.executable, "-I", "-m", "vidsme.attack.isolated"], PLAN_UID)


def test_the_sandbox_binds_code_and_environment_only(tmp_path):
    trees = sandbox._python_trees()
    assert REPO / "vidsme" in trees and REPO / "attack" in trees
    for secret in (REPO, REPO / "data_splits", REPO / "benchmark", REPO / "runs", REPO / "train"):
        assert secret not in trees
        assert not any(sandbox._inside(secret, t) for t in trees), secret
    for mode in sandbox.MODES:
        iso = sandbox.Isolation("bwrap", "bwrap", mode, "setpriv")
        cmd = sandbox.bwrap_command(iso, _plan(tmp_path, trees, []))
        binds = {cmd[i + 1] for i, a in enumerate(cmd) if a == "--ro-bind"}
        assert str(REPO) not in binds and str(REPO / "data_splits") not in binds and str(Path.home()) not in binds
        assert "--bind" not in cmd  # nothing of the host is writable
        assert "--unshare-net" in cmd and "--unshare-pid" in cmd and "--die-with-parent" in cmd
        # root: no user namespace (it would keep host uid 0) but a drop to the sandbox uid before Python starts;
        # drop: the sandbox uid first, then a user namespace; user: the caller's uid in a user namespace
        assert ("--unshare-user" in cmd) == (mode != "root")
        at = cmd.index(f"--reuid={PLAN_UID}") if mode != "user" else None
        assert (at is None) == (mode == "user")
        if mode == "root":
            assert at > cmd.index("--") and "--bounding-set=-all" in cmd
        if mode == "drop":
            assert at < cmd.index("bwrap")
    script = sandbox.unshare_script(sandbox.Isolation("unshare", "unshare", "root", "setpriv"),
                                    _plan(tmp_path, trees, []))
    assert "pivot_root" in script and f"--reuid={PLAN_UID}" in script
    assert f"mount --bind {REPO} " not in script


def test_a_split_folder_inside_a_bound_tree_is_covered(tmp_path):
    env = tmp_path / "venv"  # a non-editable install keeps data_splits/ inside site-packages
    inside = env / "lib" / "site-packages" / "vidsme" / "data_splits"
    inside.mkdir(parents=True)
    covers = sandbox._covers([env], [inside, tmp_path / "elsewhere", tmp_path])
    assert covers == [inside]  # not what lies outside the trees, never a folder holding a tree
    cmd = sandbox.bwrap_command(sandbox.Isolation("bwrap", "bwrap", "user"), _plan(tmp_path, [env], covers))
    at = cmd.index(str(inside))
    assert cmd.index(str(env)) < at and cmd[at - 1] == "--tmpfs" and cmd[at + 1] == "--remount-ro"
    script = sandbox.unshare_script(sandbox.Isolation("unshare", "unshare", "user", "setpriv"),
                                    _plan(tmp_path, [env], covers))
    assert script.index(f"mount --bind {env} ") < script.index(f"vidsme-hidden \"$R\"{inside}")
