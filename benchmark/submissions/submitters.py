"""Who submits: a name and a key issued by the host (`vidsme submitters add NAME`), the key kept hashed.

A board — a public results folder, or a sealed challenge (in its private/) — holds `submitters.json`:

    {"version": 1, "submitters": {NAME: {"key_sha256": ..., "added": UTC time}}}

Keys are 256 random bits shown once, when issued; only their sha256 is stored (a key this long
needs no slow hash), and they are compared in constant time. Every submission names its
submitter and gives the key (a file, or $VIDSME_SUBMITTER_KEY: never a command-line word, since
the command line is recorded). What a submitter's submissions name — attack names, families,
scores-file names — belongs to them from then on (see common.check_owner).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from vidsme.atomic import write_json_atomic
from vidsme.benchmark.submissions.common import NAME_PATTERN, SubmissionRefused, utc_now
from vidsme.errors import VidsmeError

SUBMITTERS_FILE = "submitters.json"
SUBMITTERS_VERSION = 1
KEY_ENV = "VIDSME_SUBMITTER_KEY"


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
    if not NAME_PATTERN.match(name):
        raise VidsmeError(f"submitter name {name!r} must be 1-100 letters, digits or _ . + - (starting with a "
                          "letter or digit)")
    folder = Path(folder)
    if not folder.is_dir():
        raise VidsmeError(f"{folder} does not exist: give the results folder (or the challenge's private/) the "
                          "submitter will submit to")
    known = read_submitters(folder)
    if name in known:
        raise VidsmeError(f"submitter {name!r} already exists on {folder} (added {known[name].get('added')}); a "
                          "name is issued once: choose another")
    key = secrets.token_urlsafe(32)
    known[name] = {"key_sha256": _hash(key), "added": utc_now()}
    write_json_atomic(folder / SUBMITTERS_FILE, {"version": SUBMITTERS_VERSION, "submitters": known})
    os.chmod(folder / SUBMITTERS_FILE, 0o600)
    return key


def read_key(key_file: Path | None) -> str:
    """The submitter's key: the contents of `key_file`, else $VIDSME_SUBMITTER_KEY."""
    if key_file is not None:
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
    known = read_submitters(folder)
    if not known:
        raise SubmissionRefused("submitter", f"{folder} has no submitters yet: the host adds them with `vidsme "
                                             f"submitters add NAME --results {folder}`")
    record = known.get(name)
    expected = record.get("key_sha256", "") if isinstance(record, dict) else ""
    if not hmac.compare_digest(expected, _hash(key)) or record is None:
        raise SubmissionRefused("submitter", f"submitter {name!r} and this key do not match a submitter of this board")
    return name


__all__ = ["KEY_ENV", "SUBMITTERS_FILE", "add_submitter", "authenticate", "read_key", "read_submitters"]
