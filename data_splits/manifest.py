"""Split manifests (JSONL, one row per sample) and split cards (JSON).

A row:
    id            unique within the split, e.g. "synth-mcqa/v0007-q0"
    video         path relative to a video root, e.g. "synth-mcqa/v0007.mp4"
    label         "member" | "nonmember" (a split) or null (a pool, e.g. synth-pretrain)
    task          "mcqa" | "oeqa" | "caption"
    question      str | null   (for captions: the instruction, if any)
    candidates    list[str] | null
    answer        str | null
    caption       str | null
    source        where the row comes from (pool, or the original annotation file)
    video_sha256  sha256 of the video file, or null where unknown (user-supplied videos)

Every row has every key (null where absent) so `datasets.load_dataset("json", ...)`
infers one schema. The card records how the split was drawn and the manifest's sha256,
which `vidsme splits verify` checks: a manifest edited by hand no longer verifies. A split
(not a pool, members available) also records its dev/test partition (partition.py).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from vidsme.data_splits.partition import DEFAULT_PARTITION_SEED, draw_partition
from vidsme.errors import SplitError

ROW_KEYS: tuple[str, ...] = (
    "id",
    "video",
    "label",
    "task",
    "question",
    "candidates",
    "answer",
    "caption",
    "source",
    "video_sha256",
)
LABELS: tuple[str, ...] = ("member", "nonmember")
TASKS: tuple[str, ...] = ("mcqa", "oeqa", "caption")
MANIFEST_FILE = "manifest.jsonl"
CARD_FILE = "card.json"
CARD_VERSION = 1


def make_row(**fields: object) -> dict:
    """A manifest row with every key present, in the canonical key order."""
    unknown = set(fields) - set(ROW_KEYS)
    if unknown:
        raise SplitError(f"unknown manifest fields {sorted(unknown)}; a row has {ROW_KEYS}")
    return {key: fields.get(key) for key in ROW_KEYS}


def check_row(row: dict, where: str, *, pool: bool) -> None:
    """Raise SplitError naming `where` (file:line) if the row breaks the schema."""
    if not isinstance(row, dict):
        raise SplitError(f"{where}: a manifest row must be a JSON object, got {type(row).__name__}")
    missing = [k for k in ROW_KEYS if k not in row]
    extra = [k for k in row if k not in ROW_KEYS]
    if missing or extra:
        raise SplitError(f"{where}: row {row.get('id')!r} has missing keys {missing} / unknown keys {extra}")
    for key in ("id", "video", "task", "source"):
        if not isinstance(row[key], str) or not row[key]:
            raise SplitError(f"{where}: row {row.get('id')!r} needs a non-empty string {key!r}")
    if pool and row["label"] is not None:
        raise SplitError(f"{where}: row {row['id']!r} is in a pool, its label must be null")
    if not pool and row["label"] not in LABELS:
        raise SplitError(f"{where}: row {row['id']!r} has label {row['label']!r}; expected one of {LABELS}")
    if row["task"] not in TASKS:
        raise SplitError(f"{where}: row {row['id']!r} has task {row['task']!r}; expected one of {TASKS}")
    if row["task"] == "caption" and not isinstance(row["caption"], str):
        raise SplitError(f"{where}: caption row {row['id']!r} needs a 'caption' string")
    if row["task"] != "caption" and not (isinstance(row["question"], str) and isinstance(row["answer"], str)):
        raise SplitError(f"{where}: QA row {row['id']!r} needs 'question' and 'answer' strings")
    if row["candidates"] is not None and (
        not isinstance(row["candidates"], list) or not all(isinstance(c, str) for c in row["candidates"])
    ):
        raise SplitError(f"{where}: row {row['id']!r}: 'candidates' must be a list of strings or null")
    if Path(row["video"]).is_absolute() or ".." in Path(row["video"]).parts:
        raise SplitError(f"{where}: row {row['id']!r}: 'video' must be relative to the video root, got {row['video']!r}")


def write_manifest(path: Path, rows: Iterable[dict]) -> str:
    """Write rows as JSONL (sorted keys are NOT used: canonical key order); return the sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(make_row(**row), ensure_ascii=False) for row in rows]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return hashlib.sha256(data).hexdigest()


def read_manifest(path: Path, *, pool: bool = False) -> list[dict]:
    """Rows of a JSONL manifest, each checked against the schema (errors name file:line)."""
    if not path.is_file():
        raise SplitError(f"manifest {path} does not exist; build or create the split first")
    rows = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise SplitError(f"{path}:{number}: not valid JSON ({err.msg})") from None
            check_row(row, f"{path}:{number}", pool=pool)
            rows.append(row)
    return rows


def count_by_label(rows: Sequence[dict]) -> dict:
    """{"rows": {label: n}, "videos": {label: n distinct videos}} (label "pool" for pools)."""
    rows_by: dict[str, int] = {}
    videos_by: dict[str, set] = {}
    for row in rows:
        label = row["label"] or "pool"
        rows_by[label] = rows_by.get(label, 0) + 1
        videos_by.setdefault(label, set()).add(row["video"])
    return {"rows": rows_by, "videos": {k: len(v) for k, v in videos_by.items()}}


@dataclass
class SplitCard:
    """What a split is and how it was drawn; `card.json` beside the manifest.

    Attributes:
        name: split name (its folder name).
        kind: "split" (members and non-members) or "pool" (unlabelled, e.g. pretraining).
        version: bump when the rows change meaning; results record it.
        description: one paragraph for humans.
        drawn: how members and non-members were chosen (method, seed, fraction...).
        source: where rows and videos come from (generator settings, annotation files).
        counts: rows and distinct videos per label, as in the manifest.
        manifest_sha256: sha256 of manifest.jsonl; verify fails when it differs.
        members_available: False when the member list is not public (the split is then
            incomplete and verify says so).
        partition: the dev/test partition record (`Partition.record`: seed, rule version,
            per side the video-list sha256 and counts); None for pools, incomplete splits
            and cards written before partitions existed (`Split.partition()` then refuses).
        notes: caveats (conversions, anomalies in the source lists).
        frames: {"min", "max", "longest"}: the fewest and most frames a video of the split has, and the
            longest video (recorded when the split is built or created; None for older cards and for
            splits whose videos were not at hand).
        audit: the last `vidsme splits audit` (blind AUC with CI, the strongest model, verdict, what
            separates); None until audited.
    """

    name: str
    kind: str
    version: int
    description: str
    drawn: dict
    source: dict
    counts: dict
    manifest_sha256: str
    members_available: bool = True
    partition: dict | None = None
    notes: list[str] = field(default_factory=list)
    card_version: int = CARD_VERSION
    frames: dict | None = None
    audit: dict | None = None

    def to_json(self) -> str:
        """The card as indented JSON (field order as declared), newline-terminated."""
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def read(cls, path: Path) -> SplitCard:
        """Load card.json; SplitError naming the file when it is missing or malformed."""
        if not path.is_file():
            raise SplitError(f"split card {path} does not exist")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except (json.JSONDecodeError, TypeError) as err:
            raise SplitError(f"split card {path} is malformed: {err}") from None

    def write(self, path: Path) -> None:
        """Write the card atomically (tmp file + rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        tmp.replace(path)


def partitions(kind: object, members_available: object) -> bool:
    """Whether a split of this kind gets a dev/test partition: labelled and complete."""
    return kind == "split" and members_available is not False


def with_partition(card: SplitCard, rows: Sequence[dict], seed: int = DEFAULT_PARTITION_SEED) -> SplitCard:
    """`card` recording the dev/test partition of `rows` drawn with `seed` (also noted in `drawn`).

    Raises SplitError naming the split when the rows cannot be partitioned (a label with
    fewer than two videos, a video under both labels).
    """
    try:
        record = draw_partition(rows, seed).record(rows)
    except SplitError as err:
        raise SplitError(f"split {card.name!r}: cannot draw its dev/test partition: {err}. Give the split at "
                         "least two distinct videos per label") from None
    return replace(card, partition=record, drawn={**card.drawn, "partition_seed": seed})


def frame_record(frames: dict[str, int]) -> dict | None:
    """A card's `frames` from each video's frame count (None for none)."""
    if not frames:
        return None
    longest = max(sorted(frames), key=lambda v: frames[v])
    return {"min": min(frames.values()), "max": frames[longest], "longest": longest}


def write_split(
    folder: Path, rows: list[dict], *, partition_seed: int = DEFAULT_PARTITION_SEED, **card_fields: object
) -> SplitCard:
    """Write `<folder>/manifest.jsonl`, then its card with the manifest's sha256 and counts.

    A split (kind "split" with members available) records its dev/test partition drawn
    with `partition_seed`; pools and incomplete splits record None. The partition is drawn
    before anything is written, so rows that cannot be partitioned leave the folder as it
    was. The manifest is written first: a card always describes a manifest that exists.
    """
    card = SplitCard(counts=count_by_label(rows), manifest_sha256="", **card_fields)
    if partitions(card.kind, card.members_available):
        card = with_partition(card, rows, partition_seed)
    card.manifest_sha256 = write_manifest(folder / MANIFEST_FILE, rows)
    card.write(folder / CARD_FILE)
    return card
