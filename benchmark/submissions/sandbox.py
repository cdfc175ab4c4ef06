"""Running submitted attack code isolated: bubblewrap (preferred) or `unshare` namespaces.

`vidsme submit FILE` never imports FILE in its own process. It starts one child process per
submission, `python -I -B -m vidsme.attack.isolated` (attack/isolated.py), in a sandbox that sees:

  read-only   /usr, /bin, /lib* (as the host has them), /etc/ld.so.*; the Python environment
              (sys.prefix, sys.base_prefix and the interpreter's own tree); vidsme's vidsme/ and
              attack/ source folders at their own paths; a folder of inputs at /vidsme/in (a copy
              of the submitted file + the features of the current calls, written by the parent)
  writable    a private tmpfs at /tmp (size-capped; the working directory; gone afterwards)
  fresh       /proc (own PID namespace), a minimal /dev
  nothing else: not the repository root, data_splits/, benchmark/, runs/, results, feature
  caches or any home directory. The split folder, the results and cache folders and the cache
  root are covered by an empty tmpfs wherever they lie inside a bound tree (a non-editable
  install keeps data_splits/ in site-packages).

Namespaces: network (no interface but a loopback of its own), PID, IPC, UTS, mount (and user,
for an unprivileged caller). The environment is cleared to a minimum (no VIDSME_*, HOME=/tmp).

Who runs it (Isolation.mode). As root, a user namespace would map the child to host uid 0, for
which the kernel does not enforce RLIMIT_NPROC; so a root caller runs the tool without a user
namespace ("root": the mounts are made as root, then the child drops with `setpriv` — no
capabilities, no_new_privs — to a uid/gid of SANDBOX_UIDS drawn afresh for the run, which no
account has, before Python starts), or, where that is not allowed (a container without
CAP_SYS_ADMIN), drops to that uid first and then uses a user namespace ("drop"; the environment
must then be readable by it). An unprivileged caller gets a user namespace ("user": its own uid
inside, no capabilities), where the process count is per namespace. A fresh uid per run means
nothing one run leaves under its uid (a kernel key, say) belongs to the next.

The child then loads a seccomp filter on itself (attack/syscall_filter.py: keyrings, ptrace,
perf_event_open, bpf, userfaultfd, io_uring, mount and namespace calls and more answer EPERM)
before the submitted file is read; where libseccomp is missing the run goes on and its record
says "NO seccomp". Where a cgroup can be made (root: v2, or v1 memory + pids hierarchies), the
whole process tree runs in one of its own with memory and task caps, and is killed through it.

Limits (SandboxLimits), applied by the child to itself before it reads the submitted file (soft
= hard, and no capability is left to raise them): address space (default 8 GiB), CPU time,
processes/threads, file size, no core dumps; /tmp is a tmpfs of fixed size. The parent adds
wall-clock deadlines: start-up + import, each call's result (time budget + grace), and the whole
submission (deadline_s); past one, the whole sandbox is killed. The child's output is kept to its
last characters; control messages are bounded in size (16 MiB) and nesting (MAX_DEPTH).
`SandboxProcess.protections()` is what is recorded with every submission and printed.

What comes back is only messages on a pipe (attack/isolated.py): the attacks the file
registered, and per call its scores (float64, exact); call times are measured on this side. The
caller (benchmark/submissions/attack_code.py) validates all of it as if it came from an adversary,
which it may. Isolation.none() (--no-sandbox) runs the same child without any of this.

No isolation available -> `detect_isolation()` returns None and `no_isolation_message()` says
how to get it (install bubblewrap; allow user namespaces; or `--no-sandbox` for local work).
"""
from __future__ import annotations

import functools
import json
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vidsme.attack.isolated import PROTOCOL, SANDBOX_INPUTS, SOURCE_DIR, write_calibration_inputs, write_inputs
from vidsme.errors import VidsmeError

GIB = 1024 ** 3
MIB = 1024 ** 2
# As root, each run gets a uid (and gid) of its own from this range, one no account of the host has:
# nothing one submission leaves behind under its uid (a kernel key, a file) is another's.
SANDBOX_UIDS = range(200_000, 300_000)
TOOLS: tuple[str, ...] = ("bwrap", "unshare")
MODES: tuple[str, ...] = ("root", "drop", "user")
NO_SANDBOX = "none"  # --no-sandbox: the same child process, without isolation (local development only)
_SYSTEM_TREES = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d")
_MAX_MESSAGE = 16 * MIB  # one line on the control pipe; a score vector of 100,000 samples is ~1 MiB
MAX_DEPTH = 8  # nesting of a control message (they are flat: a list of declarations at most)
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_EXTRA_PIDS = 8  # the tool, setpriv and sh count as tasks of the cgroup too
_KEEP_OUTPUT = 64 * 1024
ABOUT_FILE = "about.json"  # <inputs>/about.json: the source's label and host path, for the child's messages
# never handed to a submission's child, even without isolation (--no-sandbox keeps the rest of the environment)
SUBMITTER_KEY_ENV = "VIDSME_SUBMITTER_KEY"
PRIVATE_ENV: tuple[str, ...] = (SUBMITTER_KEY_ENV,)
INSTALL_HINT = ("install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`; Fedora: `dnf install bubblewrap`; "
                "scripts/install.sh does it when run as root) and allow user namespaces (sysctl "
                "kernel.unprivileged_userns_clone=1; on Ubuntu 24.04+ also kernel.apparmor_restrict_unprivileged_userns=0; "
                "in a container: a seccomp profile that permits unshare/mount, or run vidsme as root there)")


def _default_processes() -> int:
    return 64 + 2 * (os.cpu_count() or 1)  # torch's thread pools count as processes too


_last_uid: int | None = None


def fresh_uid() -> int:
    """A uid of SANDBOX_UIDS that no account has and that the previous run of this process did not get."""
    import pwd
    import secrets

    global _last_uid
    while True:
        uid = SANDBOX_UIDS[secrets.randbelow(len(SANDBOX_UIDS))]
        try:
            pwd.getpwuid(uid)
            continue
        except KeyError:
            pass
        if uid != _last_uid:
            _last_uid = uid
            return uid


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of the sandboxed process.

    Attributes:
        memory_bytes: RLIMIT_AS, the address space (`import torch` alone reserves ~3.5 GB of it).
        max_processes: RLIMIT_NPROC, processes + threads (None: 64 + 2 x CPU count).
        file_bytes: RLIMIT_FSIZE, the largest file it may write (in its /tmp).
        tmp_bytes: size of its private /tmp.
        startup_s: wall-clock seconds to start Python, import torch and import the submitted file.
        grace_s: wall-clock seconds a call may take beyond the time budget (loading its inputs).
        deadline_s: wall-clock seconds the whole submission may take, every call of every attack together.
        output_chars: how much of its stdout/stderr a refusal quotes (the end).
        threads: torch/OpenMP threads (None: this process's torch.get_num_threads(), so the
            numbers match an in-process run).
    """

    memory_bytes: int = 8 * GIB
    max_processes: int | None = None
    file_bytes: int = 256 * MIB
    tmp_bytes: int = 256 * MIB
    startup_s: float = 120.0
    grace_s: float = 30.0
    deadline_s: float = 1800.0
    output_chars: int = 2000
    threads: int | None = None

    def processes(self) -> int:
        """max_processes, or its default."""
        return self.max_processes if self.max_processes is not None else _default_processes()

    def thread_count(self) -> int:
        """threads, or this process's torch thread count."""
        if self.threads is not None:
            return self.threads
        import torch

        return torch.get_num_threads()


@dataclass(frozen=True)
class Isolation:
    """A working isolation tool: which, where, and how privileges go (see MODES in the module docstring)."""

    tool: str  # "bwrap" | "unshare"
    executable: str
    mode: str  # "root" | "drop" | "user"
    setpriv: str | None = None
    disable_userns: bool = False  # bwrap --disable-userns (with a user namespace)

    @property
    def as_sandbox_uid(self) -> bool:
        """Whether the child runs as a fresh uid of SANDBOX_UIDS (a root caller) rather than as the caller."""
        return self.mode in ("root", "drop")

    @property
    def isolated(self) -> bool:
        """False for NO_SANDBOX: the child runs as a plain process of the caller's."""
        return self.tool != NO_SANDBOX

    @classmethod
    def none(cls) -> Isolation:
        """No isolation (--no-sandbox): the attack still runs in a child process, which records nothing itself."""
        return cls(NO_SANDBOX, sys.executable, NO_SANDBOX)


class SandboxError(VidsmeError):
    """The sandboxed process did not answer as it should: kind "start", "timeout", "died" or "protocol"."""

    def __init__(self, kind: str, detail: str, output: str = "", signal_name: str | None = None) -> None:
        self.kind, self.detail, self.output, self.signal_name = kind, detail, output, signal_name
        text = detail + (f"; its last output: {output}" if output else "")
        super().__init__(text)


# ----------------------------------------------------------------------------- what the child sees
def _python_trees() -> list[Path]:
    """Folders the interpreter and vidsme's own code need, at the paths Python will look for them."""
    import vidsme
    import vidsme.attack

    found = [Path(sys.prefix), Path(sys.exec_prefix), Path(sys.base_prefix), Path(sys.base_exec_prefix),
             Path(os.path.realpath(sys.executable)).parent.parent,
             Path(vidsme.__file__).resolve().parent, Path(vidsme.attack.__file__).resolve().parent]
    out: list[Path] = []
    for path in found:
        path = Path(os.path.abspath(path))
        if path == Path("/") or not path.is_dir():
            continue
        if any(_inside(path, Path(t)) for t in _SYSTEM_TREES if Path(t).is_dir() and not Path(t).is_symlink()):
            continue
        out.append(path)
    out = sorted(set(out), key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in out:  # a tree inside another bound tree comes with it
        if not any(_inside(path, k) for k in kept):
            kept.append(path)
    return kept


def _inside(path: Path, tree: Path) -> bool:
    return path == tree or tree in path.parents


def _default_hidden() -> list[Path]:
    from vidsme.data_splits import registry as splits
    from vidsme.paths import cache_root

    # the splits in use, and the package's own folder (the paper splits ship there) if that is another
    return [splits.splits_dir(), Path(splits.__file__).resolve().parent, cache_root(), Path.home()]


def _covers(trees: Sequence[Path], hide: Sequence[Path]) -> list[Path]:
    """The hidden folders that lie inside a bound tree (they get an empty tmpfs on top)."""
    out = []
    for h in hide:
        h = Path(os.path.abspath(h))
        if h.is_dir() and any(_inside(h, t) for t in trees) and h not in out:
            out.append(h)
    # also the real location, where a bound tree reaches it through a symlink
    for h in list(out):
        real = Path(os.path.realpath(h))
        if real != h and any(_inside(real, t) for t in trees) and real not in out:
            out.append(real)
    return [h for h in out if not any(_inside(t, h) for t in trees)]  # never cover a tree we bind


def _system_entries() -> list[tuple[str, str, str]]:
    """(kind, source, destination): "ro" binds and "symlink"s of the host's system folders."""
    out = []
    for top in _SYSTEM_TREES:
        path = Path(top)
        if path.is_symlink():
            out.append(("symlink", os.readlink(path), top))
        elif path.is_dir():
            out.append(("ro", top, top))
    for name in _SYSTEM_FILES:
        if os.path.exists(name):
            out.append(("ro", name, name))
    return out


def _ancestors(paths: Sequence[Path]) -> list[Path]:
    """Every parent folder of `paths` that the sandbox must create (top-down), below / and outside system trees."""
    out: list[Path] = []
    for path in paths:
        for parent in reversed(path.parents):
            if parent == Path("/") or parent in out:
                continue
            if any(_inside(parent, Path(t)) for t in _SYSTEM_TREES):
                break
            out.append(parent)
    return out


def _environment(limits: SandboxLimits) -> dict[str, str]:
    threads = str(limits.thread_count())
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
            "MALLOC_ARENA_MAX": "4"}  # per-thread malloc arenas would eat the address-space limit


@dataclass
class _Plan:
    trees: list[Path]
    covers: list[Path]
    inputs: Path  # host folder, bound read-only at SANDBOX_INPUTS
    root: Path  # host folder the unshare path mounts its new root on (unused by bwrap)
    env: dict[str, str]
    tmp_bytes: int
    argv: list[str] = field(default_factory=list)
    uid: int = SANDBOX_UIDS[0]  # as root: the uid and gid the child runs as


def _ids(plan: _Plan) -> list[str]:
    return [f"--reuid={plan.uid}", f"--regid={plan.uid}", "--clear-groups"]


def _outer_prefix(iso: Isolation, plan: _Plan) -> list[str]:
    """What runs the tool: "drop" first becomes the run's uid; unshare dies with us (bwrap has --die-with-parent)."""
    if iso.setpriv is None:
        return []
    ids = _ids(plan) if iso.mode == "drop" else []
    death = ["--pdeathsig", "KILL"] if iso.tool == "unshare" else []
    return [iso.setpriv, *ids, *death, "--"] if (ids or death) else []


def _inner_prefix(iso: Isolation, plan: _Plan) -> list[str]:
    """What runs Python inside: "root" drops to the run's uid; unshare's namespace root drops its capabilities."""
    if iso.setpriv is None or (iso.tool == "bwrap" and iso.mode != "root"):  # bwrap drops them itself
        return []
    ids = _ids(plan) if iso.mode == "root" else []
    return [iso.setpriv, *ids, "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]


def bwrap_command(iso: Isolation, plan: _Plan) -> list[str]:
    """The bubblewrap command line for `plan` (see the module docstring for what it binds)."""
    cmd = [*_outer_prefix(iso, plan), iso.executable, "--die-with-parent", "--new-session", "--unshare-net",
           "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if iso.mode == "root":  # no user namespace (it would keep host uid 0); setpriv drops to the run's uid
        cmd += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        cmd += ["--unshare-user"] + (["--disable-userns"] if iso.disable_userns else [])
    cmd += ["--clearenv"]
    for key, value in plan.env.items():
        cmd += ["--setenv", key, value]
    for kind, src, dst in _system_entries():
        cmd += ["--symlink", src, dst] if kind == "symlink" else ["--ro-bind", src, dst]
    # /tmp first: an environment or checkout under the host's /tmp is then bound on top of it, not hidden
    cmd += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(plan.tmp_bytes), "--tmpfs", "/tmp"]
    for parent in _ancestors([*plan.trees, Path(SANDBOX_INPUTS)]):
        cmd += ["--perms", "0755", "--dir", str(parent)]  # bwrap would make them 0700: unreadable after the uid drop
    for tree in plan.trees:
        cmd += ["--ro-bind", str(tree), str(tree)]
    for hidden in plan.covers:
        cmd += ["--size", str(64 * 1024), "--tmpfs", str(hidden), "--remount-ro", str(hidden)]
    cmd += ["--ro-bind", str(plan.inputs), SANDBOX_INPUTS, "--chdir", "/tmp", "--"]
    return cmd + _inner_prefix(iso, plan) + plan.argv


def unshare_script(iso: Isolation, plan: _Plan) -> str:
    """The shell script `unshare` runs in its new namespaces: build a root of tmpfs + read-only binds,
    pivot into it, drop privileges, run the child (not exec'd: the shell stays PID 1)."""
    q = shlex.quote

    def at(dst: str | Path) -> str:
        return '"$R"' + q(str(dst))

    def ro_bind(src: str | Path, dst: str | Path) -> list[str]:
        make = f"mkdir -p {at(dst)}" if os.path.isdir(src) else f"mkdir -p {at(Path(dst).parent)} && touch {at(dst)}"
        return [make, f"mount --bind {q(str(src))} {at(dst)}", f"mount -o remount,bind,ro {at(dst)}"]

    lines = ["set -eu", "umask 022", f"R={q(str(plan.root))}",
             'mount -t tmpfs -o size=16m,mode=0755 vidsme-root "$R"']
    for kind, src, dst in _system_entries():
        lines += [f"ln -s {q(src)} {at(dst)}"] if kind == "symlink" else ro_bind(src, dst)
    lines += ['mkdir -p "$R/proc" "$R/dev" "$R/tmp" "$R/.old"', 'mount -t proc proc "$R/proc"',
              f'mount -t tmpfs -o size={plan.tmp_bytes},mode=1777 vidsme-tmp "$R/tmp"']
    for parent in _ancestors([*plan.trees, Path(SANDBOX_INPUTS)]):
        lines.append(f"mkdir -p {at(parent)}")
    for tree in plan.trees:
        lines += ro_bind(tree, tree)
    for hidden in plan.covers:
        lines.append(f"mount -t tmpfs -o ro,size=64k,mode=0555 vidsme-hidden {at(hidden)}")
    lines += ro_bind(plan.inputs, SANDBOX_INPUTS)
    for name in ("null", "zero", "full", "random", "urandom"):
        lines += [f'touch "$R/dev/{name}"', f'mount --bind /dev/{name} "$R/dev/{name}"']
    lines += ['cd "$R"', "pivot_root . .old", "umount -l /.old", "rmdir /.old", "mount -o remount,ro,bind /",
              "cd /tmp"]
    env = ["env", "-i", *(f"{k}={v}" for k, v in plan.env.items())]
    lines.append(" ".join(q(a) for a in [*_inner_prefix(iso, plan), *env, *plan.argv]))
    return "\n".join(lines) + "\n"


def unshare_command(iso: Isolation, plan: _Plan) -> list[str]:
    """The `unshare` command line for `plan` (the fallback when bubblewrap is missing or fails)."""
    user = [] if iso.mode == "root" else ["--user", "--map-root-user"]
    return [*_outer_prefix(iso, plan), iso.executable, *user, "--mount", "--net", "--pid", "--ipc", "--uts", "--fork", "--kill-child",
            "--propagation", "private", "--", "/bin/sh", "-c", unshare_script(iso, plan)]


def build_command(iso: Isolation, plan: _Plan) -> list[str]:
    """The command line that runs `plan.argv` isolated with `iso`'s tool (NO_SANDBOX: plainly)."""
    if not iso.isolated:
        return list(plan.argv)
    return bwrap_command(iso, plan) if iso.tool == "bwrap" else unshare_command(iso, plan)


# ----------------------------------------------------------------------------- detection
def _candidate(tool: str, mode: str) -> Isolation | str:
    """An Isolation for `tool` in `mode` if its binary (and setpriv where needed) exists, else why not."""
    exe = shutil.which(tool)
    if exe is None:
        return f"{tool}: not installed"
    setpriv = shutil.which("setpriv")
    if setpriv is None and (mode != "user" or tool == "unshare"):
        return f"{tool}: needs setpriv (util-linux) to drop privileges, which is not installed"
    disable = False
    if tool == "bwrap" and mode != "root":
        try:
            text = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError) as err:
            return f"bwrap: {err}"
        disable = "--disable-userns" in text
    return Isolation(tool, exe, mode, setpriv, disable)


def _modes() -> tuple[str, ...]:
    return ("root", "drop") if os.geteuid() == 0 else ("user",)


def _probe_mode(found: Isolation) -> Isolation | str:
    work = Path(tempfile.mkdtemp(prefix="vidsme-probe-"))
    try:
        (work / "in").mkdir(mode=0o755)
        (work / "root").mkdir()
        uid = fresh_uid()
        if found.as_sandbox_uid:
            os.chown(work, uid, uid)
        plan = _Plan(_python_trees(), [], work / "in", work / "root", {"PATH": "/usr/bin:/bin"}, 16 * MIB,
                     [sys.executable, "-I", "-S", "-c", "import os; print(os.getuid())"], uid)
        proc = subprocess.run(build_command(found, plan), capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
        label = f"{found.tool} ({found.mode})"
        if proc.returncode != 0:
            message = " ".join((proc.stderr or proc.stdout).split())[-300:]
            return f"{label}: {message or f'exit status {proc.returncode}'}"
        if found.mode == "root" and proc.stdout.strip() != str(uid):
            return f"{label}: the sandboxed process did not run as uid {uid}"
        return found
    except (OSError, subprocess.SubprocessError) as err:
        return f"{found.tool} ({found.mode}): {err}"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def probe(tool: str) -> Isolation | str:
    """Whether `tool` can run a Python process the way a submission runs (trying its modes in order):
    an Isolation, or why not."""
    reasons = []
    for mode in _modes():
        found = _candidate(tool, mode)
        if isinstance(found, str):
            return found
        found = _probe_mode(found)
        if isinstance(found, Isolation):
            return found
        reasons.append(found)
    return "; ".join(reasons)


@functools.lru_cache(maxsize=1)
def _detected() -> tuple[Isolation | None, tuple[str, ...]]:
    reasons = []
    for tool in TOOLS:
        found = probe(tool)
        if isinstance(found, Isolation):
            return found, tuple(reasons)
        reasons.append(found)
    return None, tuple(reasons)


def detect_isolation() -> Isolation | None:
    """The first tool of TOOLS that works here (probed once per process), or None."""
    return _detected()[0]


def isolation_problems() -> list[str]:
    """Why each tool tried before the one found (or all of them) does not work here."""
    return list(_detected()[1])


def no_isolation_message(problems: Sequence[str] | None = None) -> str:
    """One line: no sandbox here, why, and how to get one (or --no-sandbox for local development)."""
    why = "; ".join(problems if problems is not None else isolation_problems()) or "no tool found"
    return (f"no sandbox is available to run submitted code in ({why}). To get one, {INSTALL_HINT}. For local "
            "development only, `vidsme submit --no-sandbox` runs the attack inside this process (its rows are "
            "marked \"sandboxed\": false and never enter a challenge leaderboard); see docs/SUBMITTING.md, "
            "\"The sandbox\"")


# ----------------------------------------------------------------------------- cgroups
def _writable(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK)


class Cgroup:
    """The run's own cgroup: memory and process caps over everything the child starts, enforced by the
    kernel (RLIMITs are per process), and a way to kill it all. cgroup v2 where the machine has it, else v1
    (a `memory` and a `pids` hierarchy)."""

    def __init__(self, version: int, folders: list[Path], memory_bytes: int, pids: int) -> None:
        self.version, self.folders, self.memory_bytes, self.pids = version, folders, memory_bytes, pids

    @classmethod
    def create(cls, memory_bytes: int, pids: int, root: Path = CGROUP_ROOT) -> Cgroup | str:
        """A new cgroup with these caps, or why none can be made here (then nothing was made)."""
        import secrets

        name = f"vidsme-sandbox-{os.getpid()}-{secrets.token_hex(4)}"
        unified = (root / "cgroup.controllers").is_file()
        if unified:
            folders, caps = [root / name], {"memory.max": memory_bytes, "memory.swap.max": 0, "pids.max": pids}
        elif _writable(root / "memory") and _writable(root / "pids"):
            folders = [root / "memory" / name, root / "pids" / name]
            if _writable(root / "cpuacct") and (root / "cpuacct" / "cpuacct.usage").is_file():
                folders.append(root / "cpuacct" / name)  # the CPU time of the whole tree (SandboxProcess.cpu_seconds)
            # memsw (memory + swap) where the kernel accounts swap: no swapping around the cap
            caps = {"memory.limit_in_bytes": memory_bytes, "memory.memsw.limit_in_bytes": memory_bytes,
                    "pids.max": pids}
        else:
            return (f"no cgroup this user can write ({root}: neither v2 nor writable v1 memory and pids "
                    "hierarchies); run as root, or delegate a cgroup to this user")
        group = cls(2 if unified else 1, folders, memory_bytes, pids)
        try:
            if unified and not {"memory", "pids"} <= set((root / "cgroup.subtree_control").read_text().split()):
                (root / "cgroup.subtree_control").write_text("+memory +pids")
            for folder in folders:
                folder.mkdir()
            for file, value in caps.items():
                where = next((f / file for f in folders if (f / file).exists()), None)
                if where is not None:  # memory.swap.max / memsw exist only where swap is accounted
                    where.write_text(str(value))
                elif file in ("memory.max", "memory.limit_in_bytes", "pids.max"):
                    raise OSError(f"{file} is missing")
        except OSError as err:
            group.remove()
            return f"the cgroup could not be set up ({err})"
        return group

    def join_prefix(self) -> list[str]:
        """A command prefix that moves itself into the cgroup, then execs the rest (so every process
        the command starts is born inside it)."""
        joins = " && ".join(f'echo $$ > "${i}/cgroup.procs"' for i in range(1, len(self.folders) + 1))
        return ["/bin/sh", "-c", f'{joins} && shift {len(self.folders)} && exec "$@"', "vidsme-cgroup",
                *map(str, self.folders)]

    @property
    def counts_cpu(self) -> bool:
        """Whether the cgroup accounts the CPU time of its processes (v2 always; v1 with a cpuacct folder)."""
        return self.version == 2 or any((f / "cpuacct.usage").is_file() for f in self.folders)

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) every process that was ever in the cgroup has used, or None where the
        cgroup does not account it."""
        try:
            if self.version == 2:
                for line in (self.folders[0] / "cpu.stat").read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "usage_usec":
                        return int(value) / 1e6
                return None
            usage = next((f / "cpuacct.usage" for f in self.folders if (f / "cpuacct.usage").is_file()), None)
            return None if usage is None else int(usage.read_text()) / 1e9
        except (OSError, ValueError):
            return None

    def pids_inside(self) -> list[int]:
        out: set[int] = set()
        for folder in self.folders:
            try:
                out |= {int(x) for x in (folder / "cgroup.procs").read_text().split()}
            except (OSError, ValueError):
                continue
        return sorted(out)

    def kill_all(self) -> None:
        """SIGKILL every process left in the cgroup."""
        if self.version == 2 and (self.folders[0] / "cgroup.kill").exists():
            try:
                (self.folders[0] / "cgroup.kill").write_text("1")
            except OSError:
                pass
        for pid in self.pids_inside():
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def remove(self) -> None:
        """Kill what is left and delete the cgroup's folders."""
        for _ in range(50):
            self.kill_all()
            for folder in self.folders:
                try:
                    folder.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    continue
            if not any(folder.exists() for folder in self.folders):
                return
            time.sleep(0.02)

    def record(self) -> dict:
        return {"version": self.version, "memory_bytes": self.memory_bytes, "pids": self.pids}


# ----------------------------------------------------------------------------- the running child
def tree_cpu_seconds(root_pid: int) -> float:
    """CPU time (user + system, with that of their waited-for children) of `root_pid` and every live process
    below it, read from /proc: what the child tree has used, where no cgroup accounts it."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        times[pid] = sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
    total, stack = 0.0, [root_pid]
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    while stack:
        pid = stack.pop()
        total += times.get(pid, 0.0)
        stack += children.get(pid, [])
    return total


def _out_of_sight(isolation: Isolation, command: list[str], work: Path) -> tuple[list[str], Path | None]:
    """`command` with the isolation tool's own arguments moved out of its command line, which the sandboxed
    process could read in /proc/1/cmdline (bubblewrap's reaper, or unshare's shell, is PID 1 there) and
    which names the host's paths; and the file bubblewrap reads them from (`--args FD`), if any."""
    if isolation.tool == "bwrap":  # its options from a file; the command itself must stay on the line
        at = command.index(isolation.executable)
        end = command.index("--", at + 1)  # bwrap's own separator (an option's value is never "--")
        args = work / "bwrap.args"
        args.write_bytes(b"".join(a.encode() + b"\0" for a in command[at + 1:end]))
        return [*command[: at + 1], "--args", "{fd}", *command[end:]], args
    if isolation.tool == "unshare" and command[-3:-1] == ["/bin/sh", "-c"]:
        script = work / "sandbox.sh"
        script.write_text(command[-1], encoding="utf-8")
        os.chmod(script, 0o755)
        return [*command[:-2], str(script)], None
    return command, None


def _exit_detail(rc: int | None) -> tuple[str, str | None]:
    """How a process ended: words, and the signal's name if a signal ended it."""
    if rc is None:
        return "is still running", None
    sig = -rc if rc < 0 else (rc - 128 if rc > 128 else None)  # bwrap and sh report 128 + signal
    if sig is None:
        return f"exited with status {rc}", None
    try:
        name = signal.Signals(sig).name
    except ValueError:
        return f"exited with status {rc}", None
    why = {"SIGXCPU": "its CPU-time limit", "SIGKILL": "SIGKILL (a hard limit, or out of memory)",
           "SIGSEGV": "a segmentation fault", "SIGABRT": "an abort", "SIGXFSZ": "its file-size limit",
           "SIGBUS": "a bus error"}.get(name, name)
    return f"was killed by {why} ({name})", name


def _depth(obj: object) -> int:
    """Nesting depth of a parsed JSON value, without recursion."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            stack += [(x, depth + 1) for x in (item.values() if isinstance(item, dict) else item)]
    return deepest


def describe_protections(record: dict) -> str:
    """One line of what isolated a run (SandboxProcess.protections), as `vidsme submit` prints it."""
    if record.get("tool") == NO_SANDBOX:
        return "no sandbox (--no-sandbox): a child process with the caller's rights and files"
    seccomp, cgroup = record.get("seccomp") or {}, record.get("cgroup") or {}
    parts = [f"{record.get('tool')} ({record.get('mode')})", f"uid {record.get('uid')}",
             "namespaces " + ",".join(record.get("namespaces") or []),
             f"seccomp denying {len(seccomp['denied'])} system calls" if seccomp.get("denied")
             else f"NO seccomp ({seccomp.get('unavailable')})",
             (f"cgroup v{cgroup['version']} memory {cgroup['memory_bytes'] / GIB:g} GiB, {cgroup['pids']} tasks"
              if "version" in cgroup else f"NO cgroup ({cgroup.get('unavailable')})"),
             f"deadline {record.get('deadline_s'):g} s"]
    if record.get("tools_not_used"):
        parts.append("not used: " + "; ".join(record["tools_not_used"]))
    return ", ".join(parts)


def _wait(fd: int, event: int, timeout_s: float) -> bool:
    """Whether fd becomes ready (or hung up) within timeout_s; poll, not select: fd numbers may exceed 1024."""
    poller = select.poll()
    poller.register(fd, event)
    return bool(poller.poll(max(0, int(timeout_s * 1000))))


class SandboxProcess:
    """One sandboxed `vidsme.attack.isolated` process: start it, exchange messages, stop it.

    Use as a context manager; `inputs` is the host folder it sees (read-only) at /vidsme/in.
    """

    def __init__(self, isolation: Isolation, limits: SandboxLimits, *, source: bytes, file_name: str, label: str,
                 shown: str, hide: Sequence[Path] = (), cpu_seconds: int | None = None,
                 module: str | None = None) -> None:
        if module is not None and isolation.isolated:
            raise VidsmeError("a module path runs only without isolation: the sandbox runs one file")
        self.isolation, self.limits, self.module = isolation, limits, module
        self.work = Path(tempfile.mkdtemp(prefix="vidsme-sandbox-"))  # 0700: other users cannot look in
        self.inputs = self.work / "in"
        self.inputs.mkdir(mode=0o755)
        (self.inputs / SOURCE_DIR).mkdir(mode=0o755)
        self.source_path = self.inputs / SOURCE_DIR / file_name
        self.source_path.write_bytes(source)
        os.chmod(self.source_path, 0o644)
        self.uid = fresh_uid() if isolation.as_sandbox_uid else None
        if self.uid is not None:  # the child's uid must reach its inputs; other users still cannot
            os.chown(self.work, self.uid, self.uid)
        (self.work / "root").mkdir()
        self._label, self._shown, self._cpu = label, shown, cpu_seconds
        self._hide = [*hide, *_default_hidden()]
        self._proc: subprocess.Popen | None = None
        self._buffer = bytearray()
        self._output = bytearray()
        self._output_lock = threading.Lock()
        self._drain: threading.Thread | None = None
        self.started_at = 0.0
        self.arrived_at = 0.0  # monotonic time the last message received was read off the pipe
        self.cgroup: Cgroup | None = None
        self.cgroup_problem: str | None = None
        self.seccomp: list[str] = []  # the system calls the child's filter denies (its "ready" message)
        self.threads_only = False  # no new processes in the child (no cgroup counts their CPU time)
        self.seccomp_problem: str | None = None

    def write_inputs(self, inputs, needs: Sequence[str], order: Sequence[int], ids: Sequence[str], name: str) -> None:
        """Write one shuffled copy of `inputs` (only `needs`) for the child, as `<name>.*` in its input folder."""
        stem = self.inputs / name
        write_inputs(inputs, needs, order, ids, stem)
        for suffix in (".safetensors", ".json"):
            os.chmod(str(stem) + suffix, 0o644)  # safetensors writes 0600; the work folder keeps others out

    def write_calibration_inputs(self, inputs, order: Sequence[int], population_order: Sequence[int] | None,
                                 name: str) -> None:
        """Write one shuffled copy of a CalibrationInputs (arrays only, no ids) as `<name>.*` in the input folder."""
        stem = self.inputs / name
        write_calibration_inputs(inputs, order, population_order, stem)
        for suffix in (".safetensors", ".json"):
            os.chmod(str(stem) + suffix, 0o644)

    # -- life cycle
    def start(self) -> None:
        """Start the child and wait until it has imported torch and vidsme.attack ("ready")."""
        trees = _python_trees()
        if self.isolation.isolated:
            where = ["-I", "-B", "-m", "vidsme.attack.isolated", "--source",
                     f"{SANDBOX_INPUTS}/{SOURCE_DIR}/{self.source_path.name}"]
        else:  # no isolation: the caller's environment and folders, the module importable by name
            where = ["-B", "-m", "vidsme.attack.isolated", "--inputs", str(self.inputs),
                     *(["--module", self.module] if self.module else ["--source", str(self.source_path)])]
        about = self.inputs / ABOUT_FILE
        about.write_text(json.dumps({"label": self._label, "shown": self._shown}), encoding="utf-8")
        os.chmod(about, 0o644)
        inside = self.inputs if not self.isolation.isolated else Path(SANDBOX_INPUTS)
        argv = [sys.executable, *where, "--about", str(inside / ABOUT_FILE),
                "--memory", str(self.limits.memory_bytes), "--processes", str(self.limits.processes()),
                "--file-size", str(self.limits.file_bytes)]
        if self._cpu is not None:
            argv += ["--cpu", str(self._cpu)]
        group = Cgroup.create(self.limits.memory_bytes, self.limits.processes() + CGROUP_EXTRA_PIDS)
        if isinstance(group, str):
            self.cgroup_problem = group
        else:
            self.cgroup = group
        # /proc loses the CPU time of a child reaped with SIGCHLD ignored: without a cgroup that counts the whole
        # tree's, a sandboxed submission may start threads but no processes (its seccomp filter says EPERM)
        self.threads_only = self.isolation.isolated and (self.cgroup is None or not self.cgroup.counts_cpu)
        if self.threads_only:
            argv.append("--threads-only")
        plan = _Plan(trees, _covers(trees, self._hide), self.inputs, self.work / "root", _environment(self.limits),
                     self.limits.tmp_bytes, argv, self.uid or SANDBOX_UIDS[0])
        command, args_file = _out_of_sight(self.isolation, build_command(self.isolation, plan), self.work)
        if self.cgroup is not None:
            command = [*self.cgroup.join_prefix(), *command]
        # without isolation the child inherits this environment, less the submitter's key
        env = None if self.isolation.isolated else {k: v for k, v in os.environ.items() if k not in PRIVATE_ENV}
        self.started_at = time.monotonic()
        args_fd = os.open(args_file, os.O_RDONLY) if args_file is not None else None
        try:
            if args_fd is not None:
                command = [str(args_fd) if a == "{fd}" else a for a in command]
            self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, close_fds=True, start_new_session=True, env=env,
                                          pass_fds=() if args_fd is None else (args_fd,))
        except OSError as err:
            raise SandboxError("start", f"could not run {command[0]}: {err}") from None
        finally:
            if args_fd is not None:
                os.close(args_fd)
        os.set_blocking(self._proc.stdout.fileno(), False)
        os.set_blocking(self._proc.stdin.fileno(), False)
        self._drain = threading.Thread(target=self._drain_output, daemon=True)
        self._drain.start()
        try:
            message = self.receive(self.limits.startup_s)
        except SandboxError as err:
            if err.kind == "timeout":
                raise SandboxError("start", f"the sandbox did not start within {self.limits.startup_s:g} s "
                                            "(Python and torch imports)", err.output) from None
            raise SandboxError("start", f"the sandbox could not start: the process {err.detail}", err.output,
                               err.signal_name) from None
        if message.get("event") != "ready" or message.get("protocol") != PROTOCOL:
            raise SandboxError("start", f"the sandboxed process said {str(message)[:200]} instead of ready",
                               self.output())
        # said before any submitted code ran, so it can be believed
        denied, problem = message.get("seccomp"), message.get("seccomp_problem")
        self.seccomp = [str(x) for x in denied] if isinstance(denied, list) else []
        self.seccomp_problem = None if self.seccomp else str(problem or "the child loaded no filter")

    def cpu_seconds(self) -> float | None:
        """CPU time the child's whole process tree has used so far (its cgroup's account, else /proc's), or
        None before it started."""
        if self._proc is None:
            return None
        used = self.cgroup.cpu_seconds() if self.cgroup is not None else None
        return used if used is not None else tree_cpu_seconds(self._proc.pid)

    def protections(self) -> dict:
        """What isolates this run, as recorded with the submission: tool, uid, namespaces, seccomp,
        cgroup, limits, deadline, and why an earlier tool was not used."""
        iso = self.isolation
        if not iso.isolated:
            uid, spaces = "the caller's", []
        else:
            uid = (f"fresh per run (of {SANDBOX_UIDS.start}-{SANDBOX_UIDS.stop - 1})" if iso.as_sandbox_uid
                   else "the caller's, in a user namespace of its own")
            spaces = ["mount", "pid", "net", "ipc", "uts", *(["user"] if iso.mode != "root" else [])]
        cpu = ("the cgroup's account of the whole tree" if self.cgroup is not None and self.cgroup.counts_cpu
               else "/proc, threads only (no new processes: nothing could count their CPU time)" if self.threads_only
               else "/proc (a child reaped with SIGCHLD ignored is not counted: --no-sandbox)")
        return {"tool": iso.tool, "mode": iso.mode, "uid": uid, "namespaces": spaces, "cpu_accounting": cpu,
                "seccomp": {"denied": self.seccomp} if self.seccomp else {"unavailable": self.seccomp_problem},
                "cgroup": self.cgroup.record() if self.cgroup else {"unavailable": self.cgroup_problem},
                "rlimits": {"address_space_bytes": self.limits.memory_bytes, "processes": self.limits.processes(),
                            "file_bytes": self.limits.file_bytes, "cpu_s": self._cpu},
                "deadline_s": self.limits.deadline_s,
                "tools_not_used": isolation_problems() if iso.isolated else []}

    def close(self) -> None:
        """Stop the child (politely, then SIGKILL) and delete its folders."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                self.send({"cmd": "exit"}, timeout_s=1.0)
                proc.wait(timeout=2.0)
            except (SandboxError, subprocess.TimeoutExpired, OSError):
                self._kill()
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            proc.wait()
            if self._drain is not None:
                self._drain.join(timeout=5.0)
            try:
                proc.stderr.close()
            except OSError:
                pass
        if self.cgroup is not None:
            self.cgroup.remove()  # kills whatever it still holds
        shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _kill(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # bwrap --die-with-parent / unshare --kill-child take the rest
        except (ProcessLookupError, PermissionError):
            proc.kill()
        if self.cgroup is not None:
            self.cgroup.kill_all()
        proc.wait()

    # -- output
    def _drain_output(self) -> None:
        stream = self._proc.stderr
        while True:
            try:
                chunk = stream.read1(65536)
            except (OSError, ValueError):
                return
            if not chunk:
                return
            with self._output_lock:
                self._output += chunk
                del self._output[:-_KEEP_OUTPUT]

    def output(self) -> str:
        """The last `limits.output_chars` characters of its stdout/stderr, on one line."""
        with self._output_lock:
            text = self._output.decode("utf-8", errors="replace")
        text = " | ".join(line.strip() for line in text.splitlines() if line.strip())
        limit = self.limits.output_chars
        return text if len(text) <= limit else "..." + text[-limit:]

    # -- messages
    def send(self, message: dict, timeout_s: float = 30.0) -> None:
        """Write one command line to the child's stdin (it must take it within timeout_s)."""
        data = (json.dumps(message) + "\n").encode("utf-8")
        fd = self._proc.stdin.fileno()
        deadline = time.monotonic() + timeout_s
        while data:
            left = deadline - time.monotonic()
            if left <= 0:
                self._kill()
                raise SandboxError("timeout", "the sandboxed process stopped reading its commands", self.output())
            if not _wait(fd, select.POLLOUT, left):
                continue
            try:
                data = data[os.write(fd, data):]
            except BlockingIOError:
                continue
            except (BrokenPipeError, OSError):
                raise self._died() from None

    def receive(self, timeout_s: float) -> dict:
        """The next message (a JSON object), within timeout_s; SandboxError otherwise (the child is then killed)."""
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                try:
                    message = json.loads(line.decode("utf-8"))
                except (UnicodeDecodeError, ValueError, RecursionError):
                    self._kill()
                    raise SandboxError("protocol", f"the sandboxed process wrote something that is not a message: "
                                                   f"{line[:120]!r}", self.output()) from None
                if not isinstance(message, dict) or _depth(message) > MAX_DEPTH:
                    self._kill()
                    raise SandboxError("protocol", f"the sandboxed process wrote {line[:120]!r}, not a message (an "
                                                   f"object nested at most {MAX_DEPTH} deep)", self.output())
                return message
            if len(self._buffer) > _MAX_MESSAGE:
                self._kill()
                raise SandboxError("protocol", f"the sandboxed process wrote a message over {_MAX_MESSAGE} bytes",
                                   self.output())
            left = deadline - time.monotonic()
            if left <= 0:
                self._kill()
                raise SandboxError("timeout", f"no answer within {timeout_s:g} s", self.output())
            if not _wait(fd, select.POLLIN, left):
                continue
            try:
                chunk = os.read(fd, 1 << 20)
            except BlockingIOError:
                continue
            if not chunk:
                raise self._died()
            self.arrived_at = time.monotonic()
            self._buffer += chunk

    def _died(self) -> SandboxError:
        proc = self._proc
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            self._kill()
            return SandboxError("protocol", "the sandboxed process closed its message pipe", self.output())
        if self._drain is not None:
            self._drain.join(timeout=2.0)
        detail, sig = _exit_detail(proc.returncode)
        return SandboxError("died", detail, self.output(), sig)


__all__ = ["GIB", "INSTALL_HINT", "MODES", "NO_SANDBOX", "PRIVATE_ENV", "SANDBOX_UIDS", "SUBMITTER_KEY_ENV", "TOOLS", "Cgroup", "Isolation", "SandboxError",
           "SandboxLimits", "describe_protections", "fresh_uid",
           "SandboxProcess", "build_command", "bwrap_command", "detect_isolation", "isolation_problems",
           "no_isolation_message", "probe", "tree_cpu_seconds", "unshare_command", "unshare_script"]
