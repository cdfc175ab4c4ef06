"""A seccomp filter the sandboxed child puts on itself before any submitted code runs (libseccomp, via ctypes).

Denied (the call fails with EPERM; every other system call is allowed): the kernel keyrings
(`add_key`, `keyctl`, `request_key`: keys outlive the process and would carry data from one
submission to the next), `ptrace` and the cross-process memory calls, `perf_event_open`, `bpf`,
`userfaultfd`, `io_uring_*`, mounting and namespace changes (`mount`, `umount2`, `pivot_root`,
`unshare`, `setns`, and `clone` with a namespace flag), kernel modules, kexec, swap, reboot,
`syslog`, file handles (`open_by_handle_at`), setting the clock, `modify_ldt` (custom segments: a
classic kernel attack surface) and `personality` (it would switch off address randomisation for
anything the child execs; nothing a scoring run uses asks for it). Sockets: only AF_UNIX (`socket` and `socketpair` of
any other family answer EPERM) — a scoring run needs no network, and some families ignore the
network namespace (AF_VSOCK reaches the hypervisor's services). `clone3` answers ENOSYS, so
that the C library falls back to `clone`, whose flags the filter can read. With `threads_only`
(where no cgroup accounts the tree's CPU time) new processes are denied too — `fork`, `vfork` and
`clone` without CLONE_THREAD — while threads stay allowed: /proc cannot count the CPU time of a
child its parent reaped with SIGCHLD ignored.

The filter is inherited by every thread and process the child makes and cannot be removed;
loading it sets no_new_privs. Without libseccomp (the shared library `libseccomp.so.2`) nothing is
loaded and `install_filter` says why: the caller records that the protection is missing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno

DENIED: tuple[str, ...] = (
    "add_key", "keyctl", "request_key",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "perf_event_open", "bpf", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "mount", "umount2", "pivot_root", "unshare", "setns", "move_mount", "open_tree", "fsopen", "fsmount",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "swapon", "swapoff", "reboot", "syslog", "acct", "open_by_handle_at", "name_to_handle_at",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "modify_ldt", "personality", "socketcall",
)
AF_UNIX = 1  # the one socket family allowed (local pipes between a submission's own processes)
# clone(2) flags that make a new namespace (linux/sched.h)
NAMESPACE_FLAGS = {"CLONE_NEWNS": 0x00020000, "CLONE_NEWCGROUP": 0x02000000, "CLONE_NEWUTS": 0x04000000,
                   "CLONE_NEWIPC": 0x08000000, "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
                   "CLONE_NEWNET": 0x40000000, "CLONE_NEWTIME": 0x00000080}

CLONE_THREAD = 0x00010000
_ACT_ALLOW = 0x7FFF0000
_CMP_NE = 1
_CMP_MASKED_EQ = 7
_ATTR_CTL_TSYNC = 4


def _errno_action(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)  # SCMP_ACT_ERRNO(code)


class _ArgCmp(ctypes.Structure):  # struct scmp_arg_cmp
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def _library():
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    lib = ctypes.CDLL(name, use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.restype = ctypes.c_int
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_attr_set.restype = ctypes.c_int
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_load.restype = ctypes.c_int
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.restype = None
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


def install_filter(threads_only: bool = False) -> tuple[list[str], str | None]:
    """Load the filter on this process: (the system calls it denies, None), or ([], why not). `threads_only`:
    deny new processes too (see the module docstring)."""
    try:
        lib = _library()
    except OSError as err:
        return [], f"libseccomp is not installed ({err}); install libseccomp2 (Debian/Ubuntu) or libseccomp (Fedora)"
    ctx = lib.seccomp_init(_ACT_ALLOW)
    if not ctx:
        return [], "seccomp_init failed"
    try:
        lib.seccomp_attr_set(ctx, _ATTR_CTL_TSYNC, 1)  # every thread, should one already exist
        denied = []
        for name in DENIED:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number < 0:  # not a system call on this architecture
                continue
            if lib.seccomp_rule_add_array(ctx, _errno_action(errno.EPERM), number, 0, None) != 0:
                return [], f"seccomp_rule_add failed for {name}"
            denied.append(name)
        clone = lib.seccomp_syscall_resolve_name(b"clone")
        for flag, bit in NAMESPACE_FLAGS.items():
            arg = (_ArgCmp * 1)(_ArgCmp(0, _CMP_MASKED_EQ, bit, bit))  # (flags & bit) == bit
            if lib.seccomp_rule_add_array(ctx, _errno_action(errno.EPERM), clone, 1, arg) != 0:
                return [], f"seccomp_rule_add failed for clone with {flag}"
        denied.append("clone(" + "|".join(NAMESPACE_FLAGS) + ")")
        for name, arg, keep, shown in (("socket", 0, AF_UNIX, "socket(not AF_UNIX)"),
                                       ("socketpair", 0, AF_UNIX, "socketpair(not AF_UNIX)")):
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number < 0:
                continue
            # the 64-bit argument != AF_UNIX -> EPERM (a value whose low 32 bits are AF_UNIX but others set is refused)
            rule = (_ArgCmp * 1)(_ArgCmp(arg, _CMP_NE, keep, 0))
            if lib.seccomp_rule_add_array(ctx, _errno_action(errno.EPERM), number, 1, rule) != 0:
                return [], f"seccomp_rule_add failed for {shown}"
            denied.append(shown)
        if threads_only:
            for name in ("fork", "vfork"):
                number = lib.seccomp_syscall_resolve_name(name.encode())
                if number >= 0 and lib.seccomp_rule_add_array(ctx, _errno_action(errno.EPERM), number, 0, None) != 0:
                    return [], f"seccomp_rule_add failed for {name}"
            arg = (_ArgCmp * 1)(_ArgCmp(0, _CMP_MASKED_EQ, CLONE_THREAD, 0))  # (flags & CLONE_THREAD) == 0
            if lib.seccomp_rule_add_array(ctx, _errno_action(errno.EPERM), clone, 1, arg) != 0:
                return [], "seccomp_rule_add failed for clone without CLONE_THREAD"
            denied.append("new processes (fork, vfork, clone without CLONE_THREAD)")
        clone3 = lib.seccomp_syscall_resolve_name(b"clone3")
        if clone3 >= 0:
            if lib.seccomp_rule_add_array(ctx, _errno_action(errno.ENOSYS), clone3, 0, None) != 0:
                return [], "seccomp_rule_add failed for clone3"
            denied.append("clone3 (ENOSYS)")
        if lib.seccomp_load(ctx) != 0:
            return [], f"seccomp_load failed (errno {ctypes.get_errno()})"
        return denied, None
    finally:
        lib.seccomp_release(ctx)
