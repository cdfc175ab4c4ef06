"""The holes a cheating submitter found (issue 18), each closed and checked here (docs/SECURITY.md):
kernel state shared between runs, `--no-sandbox` forging its record, timing measured by the attack,
malformed or oversized control messages, control characters, real sample ids in refusals, and
constant scores. Every attack below would get through (or leave a trace) without its defence."""
from __future__ import annotations

import ctypes.util
import errno
import json
import os
import re
import textwrap
import time
from pathlib import Path

import pytest
import test_sandbox as sandbox_tests
import test_submit as base  # the module's tiny benchmark fixture and helpers

from vidsme.benchmark.submissions import sandbox
from vidsme.benchmark.submissions.attack_code import submit_attack
from vidsme.benchmark.submissions.common import SubmissionRefused, format_result
from vidsme.cli import main
from vidsme.data_splits.registry import load_split
from vidsme.errors import printable

suite_results = base.suite_results
results = base.results
registry_untouched = base.registry_untouched
WHO = base.WHO

ISOLATION = sandbox.detect_isolation()
needs_sandbox = pytest.mark.skipif(ISOLATION is None, reason="this machine cannot create namespaces, so nothing "
                                   "runs sandboxed here: " + ("" if ISOLATION else sandbox.no_isolation_message()))
HAS_LIBSECCOMP = ctypes.util.find_library("seccomp") is not None
needs_seccomp = pytest.mark.skipif(not HAS_LIBSECCOMP, reason="libseccomp2 is not installed on this machine "
                                   "(scripts/install.sh installs it as root)")


def _attack(tmp_path: Path, body: str, name: str = "probe_attack", extra: str = "") -> Path:
    """test_sandbox's attack file (direction higher, answer slice), with ctypes and errno imported."""
    return sandbox_tests._attack(tmp_path, body, name=name, extra="import ctypes, errno\n" + textwrap.dedent(extra))


def _refusal(results_dir: Path, source: Path, **kwargs) -> SubmissionRefused:
    before = base._tree(results_dir)
    with pytest.raises(SubmissionRefused) as info:
        submit_attack(str(source), results_dir, submitter=WHO, **kwargs)
    assert base._tree(results_dir) == before  # a refused submission changes nothing
    return info.value


# ----------------------------------------------------------------------------- no memory between runs
KEYS = """
libc = ctypes.CDLL(None, use_errno=True)
SYS_ADD_KEY, SYS_REQUEST_KEY = 248, 249  # x86_64
"""


@needs_sandbox
@needs_seccomp
def test_a_kernel_key_left_by_one_run_is_not_there_for_the_next(results, tmp_path):
    # run 1 tries to leave data in its user keyring (the kernel keeps it after the process ends)
    leave = _attack(tmp_path, """
        key = libc.syscall(SYS_ADD_KEY, b"user", b"vidsme-leak", b"labels...", 9, ctypes.c_int(-4))
        raise RuntimeError(f"ADD {key} errno {ctypes.get_errno()}")
        """, name="leave_key", extra=KEYS)
    err = _refusal(results, leave)
    assert re.search(rf"ADD -1 errno {errno.EPERM}\b", err.why), err.why  # seccomp said no
    # run 2 looks for it
    find = _attack(tmp_path, """
        key = libc.syscall(SYS_REQUEST_KEY, b"user", b"vidsme-leak", None, 0)
        raise RuntimeError(f"FOUND {key} errno {ctypes.get_errno()}")
        """, name="find_key", extra=KEYS)
    err = _refusal(results, find)
    assert "FOUND -1" in err.why, err.why


@needs_sandbox
def test_each_run_gets_a_uid_of_its_own(results, tmp_path):
    if not ISOLATION.as_sandbox_uid:
        pytest.skip(f"{ISOLATION.tool} runs as the caller in a user namespace here (not root)")
    probe = _attack(tmp_path, 'raise RuntimeError(f"UID {os.getuid()}")')
    uids = [int(re.search(r"UID (\d+)", _refusal(results, probe).why)[1]) for _ in range(2)]
    assert uids[0] != uids[1] and all(u in sandbox.SANDBOX_UIDS for u in uids)


@needs_sandbox
@needs_seccomp
def test_ptrace_mount_bpf_and_new_namespaces_are_denied(results, tmp_path):
    probe = _attack(tmp_path, """
        libc = ctypes.CDLL(None, use_errno=True)
        out = {}
        for name, number, args in (("ptrace", 101, (16, 1, 0, 0)), ("mount", 165, (b"none", b"/tmp", b"tmpfs", 0, 0)),
                                   ("bpf", 321, (0, 0, 0)), ("unshare", 272, (0x10000000,)),
                                   ("perf_event_open", 298, (0, 0, -1, -1, 0)), ("userfaultfd", 323, (0,))):
            out[name] = (libc.syscall(number, *args), ctypes.get_errno())
        raise RuntimeError("CALLS " + json.dumps(out))
        """)
    found = json.loads(_refusal(results, probe).why.split("CALLS ", 1)[1])
    assert all(rc == -1 and code == errno.EPERM for rc, code in found.values()), found


@needs_sandbox
def test_the_protections_are_recorded_and_printed(results, capsys):
    assert main(["submit", "--submitter", WHO, str(base.EXAMPLE), "--results", str(results)]) == 0
    out = capsys.readouterr().out
    record = base._results(results)["submissions"][-1]["isolation"]
    assert record["tool"] == ISOLATION.tool and f"isolation: {ISOLATION.tool} ({ISOLATION.mode})" in out
    assert record["deadline_s"] > 0 and record["namespaces"]
    if HAS_LIBSECCOMP:
        assert {"keyctl", "add_key", "ptrace", "mount", "bpf", "perf_event_open"} <= set(record["seccomp"]["denied"])
    else:
        assert "NO seccomp" in out
    if os.geteuid() == 0:  # root can make cgroups on these machines (v1 or v2)
        assert record["cgroup"].get("version") in (1, 2), record["cgroup"]
    else:
        assert "unavailable" in record["cgroup"] and "NO cgroup" in out


# ----------------------------------------------------------------------------- --no-sandbox cannot forge
FORGER = """
try:  # what patched the recording process when --no-sandbox imported the file there (the sandbox hides it)
    import vidsme.benchmark.submissions.attack_code as submit_module
    import vidsme.benchmark.submissions.common as common
    submit_module._meta = lambda spec, src, commit, sandboxed: {**spec.describe(), "submission": {"sandboxed": True}}
    common.format_result = lambda result: "sandboxed: true"
except ImportError:
    pass
"""


def test_no_sandbox_code_cannot_patch_the_process_that_records_it(results, tmp_path, capsys):
    forger = _attack(tmp_path, "return masked_mean(inputs.tokens('natural.entropy'), inputs.mask)", name="forger", extra=FORGER)
    assert main(["submit", "--submitter", WHO, str(forger), "--results", str(results), "--no-sandbox"]) == 0
    data = base._results(results)
    rows = [r for r in data["rows"] if r["attack"] == "forger"]
    assert rows and all(r["provenance"]["sandboxed"] is False for r in rows)
    assert data["attacks"]["forger"]["submission"]["sandboxed"] is False
    assert data["submissions"][-1]["sandboxed"] is False and data["submissions"][-1]["isolation"]["tool"] == "none"
    if ISOLATION is not None:  # sandboxed again: evaluated, and its rows replace the unsandboxed ones
        capsys.readouterr()
        assert main(["submit", "--submitter", WHO, str(forger), "--results", str(results)]) == 0
        assert "replaced" in capsys.readouterr().out
        rows = [r for r in base._results(results)["rows"] if r["attack"] == "forger"]
        assert rows and all(r["provenance"]["sandboxed"] is True for r in rows)


# ----------------------------------------------------------------------------- timing, control channel
@needs_sandbox
def test_call_times_are_measured_by_the_parent(results, tmp_path):
    liar = _attack(tmp_path, """
        time.perf_counter = lambda: 0.0  # what the child would report, if it reported
        time.monotonic = lambda: 0.0
        time.sleep(3.5)
        return masked_mean(inputs.tokens("natural.entropy"), inputs.mask)
        """)
    err = _refusal(results, liar, time_budget_s=2.0)
    assert err.check == "time budget" and re.search(r"took (3\.\d+|4\.\d+) s, over the budget of 2 s", err.why), err.why


@needs_sandbox
@pytest.mark.parametrize("line", ["deep", "huge", "not json"])
def test_a_malformed_control_message_is_a_one_line_refusal(line, results, tmp_path, capsys):
    payload = {"deep": '"[" * 100_000', "huge": '"[\\"" + "x" * (20 * 2**20) + "\\"]"',
               "not json": '"\\x1b[2J not a message"'}[line]
    writer = _attack(tmp_path, f"""
        data = ({payload} + "\\n").encode()
        for fd in range(3, 64):  # the control pipe is one of the inherited descriptors
            try:
                os.write(fd, data)
            except OSError:
                pass
        time.sleep(5)
        return masked_mean(inputs.tokens("natural.entropy"), inputs.mask)
        """)
    before = base._tree(results)
    assert main(["submit", "--submitter", WHO, str(writer), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "RecursionError" not in err, err
    assert "the 'sandbox' check failed" in err and "\x1b" not in err, err
    assert base._tree(results) == before


def test_control_characters_never_reach_the_terminal(results, tmp_path, capsys):
    evil = _attack(tmp_path, 'raise RuntimeError("\\x1b[31mred\\x1b[0m\\r\\u202eevil\\x07")')
    assert main(["submit", "--submitter", WHO, str(evil), "--results", str(results), "--no-sandbox"]) == 2
    err = capsys.readouterr().err
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202e]", err), repr(err)
    assert re.search(r"\?\[31mred\?\[0m ?\??evil\?", err), repr(err)
    assert printable("a\x1bb\nc", keep_newlines=False) == "a?b?c" and printable("a\nb") == "a\nb"


# ----------------------------------------------------------------------------- refusals and degenerate scores
def test_refusals_name_opaque_ids_never_sample_ids(results, tmp_path):
    nan = _attack(tmp_path, """
        scores = masked_mean(inputs.tokens("natural.entropy"), inputs.mask).clone()
        scores[::3] = float("nan")
        return scores
        """)
    err = _refusal(results, nan, sandbox=ISOLATION is not None)
    assert err.check == "scores" and re.search(r"NaN for s\d{6,}", err.why), err.why
    real = {r["id"] for r in load_split("synth-oeqa").rows()}
    assert not any(i in err.why for i in real) and "synth-oeqa/" not in err.why, err.why


@pytest.mark.parametrize("body", ["return torch.full((inputs.n,), 0.5)", "return torch.zeros(inputs.n)"])
def test_a_constant_score_is_refused(body, results, tmp_path):
    err = _refusal(results, _attack(tmp_path, body, name="constant"), sandbox=ISOLATION is not None)
    assert err.check == "scores" and "gives every sample the same score on target(s) 't'" in err.why, err.why
    assert "no membership information" in err.why


def test_the_submission_deadline_stops_it(results, tmp_path):
    class Proc:  # a child that started long ago and never answers
        started_at = time.monotonic() - 100.0
        inputs = tmp_path

        def receive(self, timeout_s):
            raise AssertionError("must not wait past the deadline")

        def cpu_seconds(self):
            return None

    from vidsme.benchmark.submissions.scorer import SandboxScorer

    scorer = SandboxScorer(Proc(), 5.0, sandbox.SandboxLimits(deadline_s=60.0))
    with pytest.raises(SubmissionRefused) as info:
        scorer._wait_for("target 't'", None, "a call")
    assert info.value.check == "time budget" and "deadline of 60 s" in info.value.why


def test_format_result_prints_no_control_characters():
    from vidsme.benchmark.submissions.common import SubmissionResult

    text = format_result(SubmissionResult("added", ["x"], "x\x1b[2J: added"))
    assert "\x1b" not in text and "x?[2J: added" in text


# ----------------------------------------------------------------------------- names belong to their submitter
def _scores_csv(results_dir: Path, path: Path) -> Path:
    import csv

    with (results_dir / "scores" / base.TARGET / "f4-row.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    path.write_text("sample_id,score\n" + "".join(f"{r['sample_id']},{r['answer/loss']}\n" for r in rows))
    return path


@pytest.mark.parametrize("name", ["vid_sme", "loss", "blind"])
def test_a_scores_file_cannot_take_a_built_in_family(name, results, tmp_path, capsys):
    before = base._tree(results)
    path = _scores_csv(results, tmp_path / "s.csv")
    assert main(["submit", "--submitter", WHO, "--scores", str(path), "--target", base.TARGET, "--attack-name", name,
                 "--direction", "lower", "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert "the 'name' check failed" in err and (f"is vidsme's family {name!r}" in err or "clashes with the registered"
                                                  in err or f"is the board's own word {name!r}" in err), err
    assert base._tree(results) == before


def test_another_submitter_cannot_take_a_name_the_owner_keeps_a_history(results, tmp_path, capsys, monkeypatch):
    from vidsme.benchmark.submissions.submitters import KEY_ENV, add_submitter

    first = _attack(tmp_path, "return masked_mean(inputs.tokens('natural.entropy'), inputs.mask)", name="mine")
    mode = [] if ISOLATION is not None else ["--no-sandbox"]
    assert main(["submit", "--submitter", WHO, str(first), "--results", str(results), *mode]) == 0
    capsys.readouterr()
    rival = tmp_path / "rival"
    rival.mkdir()
    (rival / "mine.py").write_text(first.read_text().replace('citation="an escape test"', 'citation="rival", '
                                                                                            'family="rivals"'))
    tester_key = os.environ[KEY_ENV]
    monkeypatch.setenv(KEY_ENV, add_submitter(results, "mallory"))
    before = base._tree(results)
    assert main(["submit", "--submitter", "mallory", str(rival / "mine.py"), "--results", str(results), *mode]) == 2
    assert "attack name 'mine' belongs to submitter 'tester'" in capsys.readouterr().err
    assert base._tree(results) == before
    # a wrong key is refused before anything runs
    assert main(["submit", "--submitter", WHO, str(first), "--results", str(results), *mode]) == 2
    assert "do not match a submitter of this board" in capsys.readouterr().err
    # the owner replaces its own entry (under another family): the old rows and files go to history
    monkeypatch.setenv(KEY_ENV, tester_key)
    old_rows = [r for r in base._results(results)["rows"] if r["attack"] == "mine"]
    old_files = {r["scores_file"]: (results / r["scores_file"]).read_bytes() for r in old_rows}
    (rival / "mine.py").write_text(first.read_text().replace('citation="an escape test"', 'citation="v2", '
                                                                                            'family="mine_v2"'))
    assert main(["submit", "--submitter", WHO, str(rival / "mine.py"), "--results", str(results), *mode]) == 0
    data = base._results(results)
    (entry,) = data["history"]
    assert entry["attacks"] == ["mine"] and entry["by"] == WHO and entry["records"]["mine"]["family"] == "mine"
    assert [{k: v for k, v in r.items() if k != "scores_file"} for r in entry["rows"]] == \
        [{k: v for k, v in r.items() if k != "scores_file"} for r in old_rows]
    kept = {r["scores_file"] for r in entry["rows"]}
    assert all("/history/0/" in f for f in kept)
    assert sorted((results / f).read_bytes() for f in kept) == sorted(old_files.values())  # nothing deleted
    assert {r["family"] for r in data["rows"] if r["attack"] == "mine"} == {"mine_v2"}


# ----------------------------------------------------------------------------- CPU time, not only wall time
SPINNER = """
if os.fork() == 0:  # at import: a process of its own (no GIL to share) that works while the host is busy
    start = time.process_time()
    while time.process_time() - start < 8:
        pass
    os._exit(0)
"""


@needs_sandbox
def test_work_done_between_calls_counts_toward_the_call(results, tmp_path, monkeypatch):
    import vidsme.benchmark.submissions.attack_code as attack_code

    read = attack_code.open_feature_cache

    def busy_host(*args, **kwargs):  # the host takes 3 s before the first call: the spinner has a core meanwhile
        time.sleep(3.0)
        return read(*args, **kwargs)

    monkeypatch.setattr(attack_code, "open_feature_cache", busy_host)
    source = _attack(tmp_path, "return masked_mean(inputs.tokens('natural.entropy'), inputs.mask)", extra=SPINNER)
    err = _refusal(results, source, time_budget_s=2.0, limits=sandbox.SandboxLimits(threads=1))
    assert err.check == "time budget" and "s of CPU time for one result" in err.why, err.why


def test_the_cpu_time_of_a_process_tree_is_read_from_proc():
    import subprocess
    import sys

    code = ("import os, time\nif os.fork() == 0:\n    t = time.process_time()\n    while time.process_time() - t < 1.0:\n"
            "        pass\n    time.sleep(30)\n    os._exit(0)\ntime.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 20
        while sandbox.tree_cpu_seconds(proc.pid) < 0.9 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sandbox.tree_cpu_seconds(proc.pid) >= 0.9  # the grandchild's spin counts for the tree
    finally:
        subprocess.run(["pkill", "-KILL", "-P", str(proc.pid)], check=False)  # the grandchild
        proc.kill()
        proc.wait()


# ----------------------------------------------------------------------------- sockets, old system calls, /proc
PROBE = """
libc = ctypes.CDLL(None, use_errno=True)
out = {}
for name, family, kind in (("vsock", 40, socket.SOCK_STREAM), ("inet", socket.AF_INET, socket.SOCK_DGRAM),
                           ("inet6", socket.AF_INET6, socket.SOCK_DGRAM), ("netlink", 16, socket.SOCK_DGRAM),
                           ("unix", socket.AF_UNIX, socket.SOCK_STREAM)):
    try:
        socket.socket(family, kind).close()
        out[name] = 0
    except OSError as err:
        out[name] = err.errno
try:
    for end in socket.socketpair(socket.AF_UNIX):
        end.close()
    out["socketpair_unix"] = 0
except OSError as err:
    out["socketpair_unix"] = err.errno
out["modify_ldt"] = [libc.syscall(154, 0, None, 0), ctypes.get_errno()]  # x86_64 numbers
out["personality"] = [libc.syscall(135, 0x0040000), ctypes.get_errno()]  # ADDR_NO_RANDOMIZE
cmdlines = [open(f"/proc/{p}/cmdline", "rb").read().replace(b"\\0", b" ").decode(errors="replace")
            for p in os.listdir("/proc") if p.isdigit()]
out["processes"] = len(cmdlines)
out["found_in_cmdlines"] = sorted({word for line in cmdlines for word in WORDS if word in line})
raise RuntimeError("CALLS " + json.dumps(out))
"""


@needs_sandbox
@needs_seccomp
@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the probe uses x86_64 system call numbers")
@pytest.mark.parametrize("tool", sandbox_tests._tools(), indirect=True)
def test_only_local_sockets_no_ldt_no_personality_and_no_host_paths_in_proc(tool, results, tmp_path):
    # what no command line in the sandbox may show: the isolation tool's binds and mounts, the host's folders
    words = ["--ro-bind", "--tmpfs", "mount ", str(results), str(sandbox_tests.splits_dir())]
    probe = _attack(tmp_path, PROBE, extra=f"import socket\nWORDS = {words!r}\n")
    found = json.loads(_refusal(results, probe).why.split("CALLS ", 1)[1])
    assert all(found[n] == errno.EPERM for n in ("vsock", "inet", "inet6", "netlink")), found
    assert found["unix"] == 0 and found["socketpair_unix"] == 0, found  # a submission's own pipes still work
    assert found["modify_ldt"] == [-1, errno.EPERM] and found["personality"] == [-1, errno.EPERM], found
    # PID 1 (bubblewrap's reaper, or unshare's shell) and every other process: no binds, no mounts, no host folders
    assert found["processes"] >= 2 and found["found_in_cmdlines"] == [], found


tool = sandbox_tests.tool


# ----------------------------------------------------------------------------- keys
def test_a_key_file_other_users_can_read_is_refused(results, tmp_path, capsys):
    from vidsme.benchmark.submissions.submitters import KEY_ENV

    key = tmp_path / "me.key"
    key.write_text(os.environ[KEY_ENV] + "\n")
    os.chmod(key, 0o644)
    before = base._tree(results)
    argv = ["submit", "--submitter", WHO, str(base.EXAMPLE), "--key-file", str(key), "--results", str(results),
            *base.MODE]
    assert main(argv) == 2
    assert "other users can read or change it (mode 644)" in capsys.readouterr().err
    assert base._tree(results) == before
    os.chmod(key, 0o600)
    assert main(argv) == 0


def test_submitters_add_can_write_the_key_to_a_private_file(results, tmp_path, capsys, monkeypatch):
    from vidsme.benchmark.submissions.submitters import KEY_ENV

    out = tmp_path / "ada.key"
    assert main(["submitters", "add", "ada", "--results", str(results), "--key-out", str(out)]) == 0
    printed = capsys.readouterr().out
    key = out.read_text().strip()
    assert os.stat(out).st_mode & 0o777 == 0o600 and key and key not in printed
    monkeypatch.delenv(KEY_ENV)
    assert main(["submit", "--submitter", "ada", str(base.EXAMPLE), "--key-file", str(out), "--results", str(results),
                 *base.MODE]) == 0


def test_a_no_sandbox_child_does_not_get_the_submitters_key(results, tmp_path):
    seen = tmp_path / "seen.txt"
    spy = _attack(tmp_path, f"""
        open({str(seen)!r}, "w").write(repr(os.environ.get("VIDSME_SUBMITTER_KEY")))
        return masked_mean(inputs.tokens("natural.entropy"), inputs.mask)
        """)
    submit_attack(str(spy), results, submitter=WHO, sandbox=False)
    assert seen.read_text() == "None"


def test_scores_so_large_that_a_video_mean_overflows_are_refused(results, tmp_path):
    huge = _attack(tmp_path, "return 1.6e308 * (1 + 0.01 * torch.tanh(masked_mean(inputs.tokens('natural.entropy'), "
                             "inputs.mask)))")
    err = _refusal(results, huge, sandbox=ISOLATION is not None)
    assert err.check == "scores" and "larger than 1e+300 in magnitude" in err.why, err.why


SIG_IGN_SPINNER = """
import signal
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # exited children are reaped at once: their CPU time is nobody's
try:
    if os.fork() == 0:
        start = time.process_time()
        while time.process_time() - start < 4:
            pass
        os._exit(0)
    FORKED = "forked"
except OSError as err:
    FORKED = f"no fork: {err}"
"""


@needs_sandbox
@needs_seccomp
def test_without_a_cgroup_the_sandbox_starts_no_process(results, tmp_path, monkeypatch):
    """/proc cannot count a child reaped with SIGCHLD ignored; where no cgroup counts the tree, no child is made."""
    monkeypatch.setattr(sandbox.Cgroup, "create", classmethod(lambda cls, *a, **k: "no cgroup (this test)"))
    probe = _attack(tmp_path, 'raise RuntimeError("FORK " + FORKED)', extra=SIG_IGN_SPINNER)
    err = _refusal(results, probe)
    assert "FORK no fork: [Errno 1] Operation not permitted" in err.why, err.why
    source = _attack(tmp_path, "return masked_mean(inputs.tokens('natural.entropy'), inputs.mask)", name="plain")
    result = submit_attack(str(source), results, submitter=WHO)  # threads (torch's) still work
    assert "threads only" in result.isolation["cpu_accounting"], result.isolation
