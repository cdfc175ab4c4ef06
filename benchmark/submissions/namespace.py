"""One namespace for every name a board shows, owned by its first submitter.

A board prints attack names, families (methods), calibration names, calibrated methods
(`<calibration>(<signal>)` attacks, `lira+<family>` methods), submitter names and words of its
own ("blind baseline", the host "vidsme"). Any two of these that read alike on a page are one
name: whoever took it first owns it, whatever kind of thing it names. Before this module each
kind was checked against its own kind only, so a scores file named `lira+<someone's family>`
joined (and sabotaged) that submitter's calibrated method, and a family called "blind baseline"
became the blind baseline.

Rules, for every name a submission would put on a board (its attacks, families, calibrations and
the calibrated names derived from them):

  * spelling: 1-100 ASCII letters, digits, `_`, `.` or `-`, starting with a letter or digit
    (no `+` or parentheses: those join names in derived ones, so a plain name never equals a
    derived one; no other script, so no Cyrillic "о" passes for a Latin "o"; nothing invisible);
  * reading: names are compared by `name_key` — Unicode NFKC, case-folded, with `_ . -` and
    spaces dropped — so `Loss`, `LOSS` and `lo_ss` are all `loss`;
  * ownership: a name whose key is already on the board belongs to whoever put it there (the
    suite itself for vidsme's attacks and calibrations and the words in RESERVED); only they may
    use it again.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from vidsme.benchmark.submissions.common import SubmissionRefused, owner_of
from vidsme.benchmark.verdicts import BLIND_METHOD, method_of

HOST_NAME = "vidsme"  # how the board names its host (the built-in entries): never a submitter
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # used with fullmatch: no trailing newline
NAME_RULE = "1-100 ASCII letters, digits, _ . or - (starting with a letter or digit)"
# words the board prints of its own accord; a submitted name that reads like one is refused
RESERVED: tuple[str, ...] = (HOST_NAME, "host", "organiser", "organizer", "blind", BLIND_METHOD, "blind_metadata",
                             "blind_text", "blind_both", "ceiling", "submitted", "scores_file", "reference_free")
_SEPARATORS = re.compile(r"[\s_.\-]+")
# ASCII letters and digits that pass for others in a sans-serif face: capital I, digit 1 and | for l, 0 for o;
# and the pairs "rn" for m, "vv" for w (applied after case folding)
_CONFUSABLE_CHARS = str.maketrans({"I": "l", "1": "l", "|": "l", "0": "o"})
_CONFUSABLE_PAIRS = (("rn", "m"), ("vv", "w"))


def name_key(name: str) -> str:
    """How a name reads: NFKC-normalised, case-folded, without separators (`_ . -` and spaces)."""
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", str(name)).casefold())


def name_keys(name: str) -> set[str]:
    """Every way a name may read: its key, and its key with ASCII look-alikes mapped to one letter (`I 1` -> l,
    `0` -> o, `rn` -> m, `vv` -> w). Two names read alike when their sets meet: `bIind`, `Ioss` and `vidsrne`
    read as `blind`, `loss` and `vidsme`, while `VIDSME` (whose capital I is an i) still reads as `vidsme`."""
    skeleton = _SEPARATORS.sub("", unicodedata.normalize("NFKC", str(name)).translate(_CONFUSABLE_CHARS).casefold())
    for pair, letter in _CONFUSABLE_PAIRS:
        skeleton = skeleton.replace(pair, letter)
    return {name_key(name), skeleton}


def _first_bad_character(name: str) -> str | None:
    """Words for the first character of `name` that NAME_PATTERN does not allow, or None."""
    for position, char in enumerate(name):
        if char == "\n":
            return f"a line break at position {position + 1}"
        if char.isascii() and (char.isalnum() or (position and char in "_.-")):
            continue
        code = f"U+{ord(char):04X} {unicodedata.name(char, 'unnamed character')}"
        category = unicodedata.category(char)
        if category in ("Cc", "Cf", "Zl", "Zp", "Zs", "Mn", "Me") or not char.isprintable():
            return f"{code}, an invisible or control character, at position {position + 1}"
        if not char.isascii():
            return (f"{code} at position {position + 1}: not ASCII (a letter of another script can pass for a Latin "
                    "one)")
        return f"{char!r} at position {position + 1}"
    return None


def reserved_keys() -> set[str]:
    """Every key of the board's own words (RESERVED)."""
    return {key for word in RESERVED for key in name_keys(word)}


def check_spelling(name: object, what: str) -> str:
    """`name` if it follows NAME_PATTERN; a 'name' refusal saying which character does not, otherwise."""
    if isinstance(name, str) and NAME_PATTERN.fullmatch(name) and name.casefold().startswith("www."):
        raise SubmissionRefused("name", f"{what} {printable_name(name)} starts with 'www.': a markdown page would "
                                        "show it as a link; choose another")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        bad = _first_bad_character(name) if isinstance(name, str) and name else None
        why = f" ({bad})" if bad else (" (too long)" if isinstance(name, str) and len(name) > 100 else "")
        raise SubmissionRefused("name", f"{what} {printable_name(name)} must be {NAME_RULE}{why}: names appear on "
                                        "every board and in file names, and names that read alike are one name")
    return name


def printable_name(name: object) -> str:
    """repr() of a name with every non-ASCII character escaped, so a look-alike shows what it is."""
    return ascii(name) if isinstance(name, str) else repr(name)


@dataclass(frozen=True)
class Claim:
    """A name on a board: as spelled there, whose it is (None: the board's own), and what it names."""

    name: str
    owner: str | None
    what: str


def _builtin_claims() -> Iterable[Claim]:
    from vidsme.attack.calibration import list_calibrations
    from vidsme.attack.registry import list_attacks

    for spec in list_attacks():  # vidsme's own and installed plugins: the host's
        yield Claim(spec.family, None, "vidsme's family")
        yield Claim(spec.name, None, "vidsme's attack")
    for spec in list_calibrations():
        yield Claim(spec.family, None, "vidsme's calibration family")
        yield Claim(spec.name, None, "vidsme's calibration")
    for word in RESERVED:
        yield Claim(word, None, "the board's own word")


def _row_owner(row: dict, attacks: dict) -> str | None:
    if row.get("kind") == "calibrated":
        submission = (row.get("calibration") or {}).get("submission")
        return submission.get("submitter") if isinstance(submission, dict) else None
    if row.get("kind") in ("reproduced", "scores_file"):
        return owner_of(attacks.get(row.get("attack")))
    return None


def board_claims(results: dict) -> dict[str, Claim]:
    """Every name on the board of `results` by its key, with its owner: the board's own words and vidsme's
    attacks and calibrations first, then attacks, families and calibrations recorded, every row's attack
    and method, and the names kept in history. The first claim of a key wins."""
    attacks = results.get("attacks") or {}
    claims: dict[str, Claim] = {}

    def add(name: object, owner: str | None, what: str) -> None:
        if isinstance(name, str) and name:
            for key in name_keys(name):
                claims.setdefault(key, Claim(name, owner, what))

    for claim in _builtin_claims():
        add(claim.name, claim.owner, claim.what)
    records = [(attacks, "attack"), (results.get("calibrations") or {}, "calibration")]
    records += [(entry.get("records") or {}, "attack") for entry in results.get("history") or []
                if isinstance(entry, dict)]
    records += [(entry.get("calibration_records") or {}, "calibration") for entry in results.get("history") or []
                if isinstance(entry, dict)]
    for table, what in records:
        for name, record in table.items():
            owner = owner_of(record)
            add(name, owner, what)
            if isinstance(record, dict):
                add(record.get("family"), owner, "family")
    for row in results.get("rows") or []:
        if not isinstance(row, dict) or "kind" not in row:
            continue
        owner = _row_owner(row, attacks)
        add(row.get("attack"), owner, "attack")
        try:
            add(method_of(row, attacks), owner, "method")
        except (KeyError, TypeError):
            continue
    return claims


def check_claims(names: Iterable[tuple[str, str]], results: dict, submitter: str, *, derived: Iterable[str] = ()
                 ) -> None:
    """Refuse (check 'name') the first of `names` — (name, what it names) — that is misspelled or reads like a
    name on the board of `results` that is not `submitter`'s. `derived` names (calibrated methods:
    `lira+<family>`, `<calibration>(<signal>)`) are built by vidsme from checked parts: their spelling is
    not checked, their ownership is."""
    if name_keys(submitter) & reserved_keys():
        raise SubmissionRefused("submitter", f"submitter name {printable_name(submitter)} reads like a name the board "
                                             "uses for itself; the host must issue another")
    claims = board_claims(results)
    for name, what in [*names, *((d, "calibrated method") for d in derived)]:
        if what != "calibrated method":
            check_spelling(name, what)
        found = [claims[k] for k in sorted(name_keys(name)) if k in claims]
        existing = next((c for c in found if c.owner != submitter), None)
        if existing is None:
            continue
        same = existing.name == name
        if existing.owner is None:
            hint = " (code: pass family='<a new name>' to register_attack)" if what == "family" else ""
            raise SubmissionRefused("name", f"{what} {printable_name(name)} {'is' if same else 'reads as'} "
                                            f"{existing.what} {printable_name(existing.name)}: the board's own names "
                                            f"are reserved; choose another{hint}")
        whose = "belongs to" if same else f"reads as {printable_name(existing.name)}, which belongs to"
        raise SubmissionRefused("name", f"{what} {printable_name(name)} {whose} submitter {existing.owner!r} (its "
                                        f"{existing.what}): every name a board shows belongs to its first "
                                        "submitter, whatever it names; choose another")


def previous_record(name: str, results: dict, kind: str, submitter: str) -> dict | None:
    """The results.json record of attack `name` if `submitter` submitted it before as `kind` (to be replaced),
    None if the name is new; a 'name' refusal if it is the suite's, another submitter's or of another kind."""
    check_spelling(name, "attack name")
    previous = (results.get("attacks") or {}).get(name)
    if previous is None:
        if any(r.get("attack") == name for r in results["rows"]):
            raise SubmissionRefused("name", f"attack name {name!r} already has rows in results.json; choose another")
        return None
    submission = previous.get("submission") if isinstance(previous, dict) else None
    if not isinstance(submission, dict):
        raise SubmissionRefused("name", f"attack name {name!r} clashes with the suite's attack {name!r} "
                                        f"(source {previous.get('source')!r}); rename yours")
    if owner_of(previous) != submitter:
        raise SubmissionRefused("name", f"attack name {name!r} belongs to submitter {owner_of(previous)!r}: a name "
                                        "belongs to its first submitter; choose another")
    if submission.get("kind") != kind:
        raise SubmissionRefused("name", f"attack name {name!r} is already on the leaderboard as a "
                                        f"{submission.get('kind')} submission; choose another name")
    return previous


def check_submitter_name(name: object, known: Iterable[str]) -> str:
    """A new submitter's name: NAME_PATTERN, not the host's (or another board word), not reading like a
    submitter already issued. Raises VidsmeError."""
    from vidsme.errors import VidsmeError

    try:
        check_spelling(name, "submitter name")
    except SubmissionRefused as err:
        raise VidsmeError(err.why) from None
    keys = name_keys(name)
    if keys & reserved_keys():
        raise VidsmeError(f"submitter name {printable_name(name)} reads like {HOST_NAME!r} or another word the board "
                          "prints for itself (its host's entries, the blind baseline): choose another")
    clash = next((k for k in known if name_keys(k) & keys), None)
    if clash is not None:
        raise VidsmeError(f"submitter name {printable_name(name)} reads like the existing submitter {clash!r}; "
                          "choose another")
    return name


__all__ = ["HOST_NAME", "NAME_PATTERN", "NAME_RULE", "RESERVED", "Claim", "board_claims", "check_claims",
           "check_spelling", "check_submitter_name", "name_key", "name_keys", "previous_record", "printable_name",
           "reserved_keys"]
