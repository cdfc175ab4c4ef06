"""Who submits: a name and a key issued by the host (`vidsme submitters add NAME`), the key kept hashed.

A board — a public results folder, or a sealed challenge (in its private/) — holds `submitters.json`:

    {"version": 1, "submitters": {NAME: {"key_sha256": ..., "added": UTC time}}}

Keys are 256 random bits shown once, when issued; only their sha256 is stored (a key this long
needs no slow hash), and they are compared in constant time. Every submission names its
submitter and gives the key (a file, or $VIDSME_SUBMITTER_KEY: never a command-line word, since
the command line is recorded). What a submitter's submissions name — attack names, families,
scores-file names — belongs to them from then on (namespace.py: one namespace for all of them).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from vidsme.atomic import write_json_atomic
from vidsme.benchmark.submissions.common import SubmissionRefused, utc_now
from vidsme.benchmark.submissions.sandbox import SUBMITTER_KEY_ENV
from vidsme.benchmark.submissions.namespace import check_submitter_name, name_keys, printable_name, reserved_keys
from vidsme.errors import VidsmeError

SUBMITTERS_FILE = "submitters.json"
SUBMITTERS_VERSION = 1
KEY_ENV = SUBMITTER_KEY_ENV  # never passed to a submission's child process (sandbox.PRIVATE_ENV)


def _hash(key: str) -> str:
    return hashlib.sha256(key.strip().encode("utf-8")).hexdigest()


def read_submitters(folder: Path) -> dict[str, dict]:
    """NAME -> record of a board's submitters ({} when none was ever added)."""
    path = Path(folder) / SUBMITTERS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise VidsmeError(f"{path}: not a readable submitters file ({err}); restore it from a backup") from None
    if not isinstance(data, dict) or data.get("version") != SUBMITTERS_VERSION or not isinstance(
            data.get("submitters"), dict):
        raise VidsmeError(f"{path}: not a vidsme submitters file (version {SUBMITTERS_VERSION}); restore it")
    return data["submitters"]


def add_submitter(folder: Path, name: str) -> str:
    """Register `name` on the board in `folder`; returns the new key (shown once, stored hashed)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VidsmeError(f"{folder} does not exist: give the results folder (or the challenge's private/) the "
                          "submitter will submit to")
    known = read_submitters(folder)
    if name in known:
        raise VidsmeError(f"submitter {name!r} already exists on {folder} (added {known[name].get('added')}); a "
                          "name is issued once: choose another")
    check_submitter_name(name, known)  # the host's name, board words and look-alikes of issued names are refused
    key = secrets.token_urlsafe(32)
    known[name] = {"key_sha256": _hash(key), "added": utc_now()}
    write_json_atomic(folder / SUBMITTERS_FILE, {"version": SUBMITTERS_VERSION, "submitters": known})
    os.chmod(folder / SUBMITTERS_FILE, 0o600)
    return key


def check_key_file(key_file: Path) -> None:
    """Refuse a key file that other users can read or write (as ssh refuses such a private key)."""
    if os.name != "posix":
        return
    try:
        mode = os.stat(key_file).st_mode
    except OSError as err:
        raise VidsmeError(f"--key-file {key_file}: cannot read it ({err})") from None
    if mode & 0o077:
        raise VidsmeError(f"--key-file {key_file}: other users can read or change it (mode {mode & 0o777:03o}); a "
                          f"submitter key must be yours alone: `chmod 600 {key_file}`, or write it with "
                          "`vidsme submitters add NAME ... --key-out FILE` (mode 600)")


def read_key(key_file: Path | None) -> str:
    """The submitter's key: the contents of `key_file` (readable by its owner only), else $VIDSME_SUBMITTER_KEY."""
    if key_file is not None:
        check_key_file(Path(key_file))
        try:
            key = Path(key_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            raise VidsmeError(f"--key-file {key_file}: cannot read it ({err})") from None
    else:
        key = os.environ.get(KEY_ENV, "").strip()
    if not key:
        raise VidsmeError(f"give your submitter key: --key-file FILE (the key the host issued with `vidsme submitters "
                          f"add`), or set ${KEY_ENV}")
    return key


def authenticate(folder: Path, name: str | None, key: str) -> str:
    """`name`, if it is a submitter of the board in `folder` and `key` is theirs; else a 'submitter' refusal."""
    if not name:
        raise SubmissionRefused("submitter", "every submission names its submitter: --submitter NAME (the host "
                                             "issues names and keys with `vidsme submitters add NAME`)")
    if name_keys(name) & reserved_keys():  # issued before such names were reserved
        raise SubmissionRefused("submitter", f"submitter name {printable_name(name)} reads like the board's host or "
                                             "another word the board prints for itself; the host must issue another")
    known = read_submitters(folder)
    if not known:
        raise SubmissionRefused("submitter", f"{folder} has no submitters yet: the host adds them with `vidsme "
                                             f"submitters add NAME --results {folder}`")
    record = known.get(name)
    expected = record.get("key_sha256", "") if isinstance(record, dict) else ""
    if not hmac.compare_digest(expected, _hash(key)) or record is None:
        raise SubmissionRefused("submitter", f"submitter {name!r} and this key do not match a submitter of this board")
    return name


def write_key_file(path: Path, key: str) -> None:
    """Write a new submitter's key to `path`, readable by its owner only (mode 600); never over a file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise VidsmeError(f"--key-out {path} exists; a key is written to a new file only") from None
    except OSError as err:
        raise VidsmeError(f"--key-out {path}: cannot create it ({err})") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key + "\n")


__all__ = ["KEY_ENV", "SUBMITTERS_FILE", "add_submitter", "authenticate", "check_key_file", "read_key",
           "read_submitters", "write_key_file"]
