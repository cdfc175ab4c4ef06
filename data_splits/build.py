"""`vidsme splits build NAME`: generate a synthetic pool and draw its split.

Synthetic splits are drawn i.i.d. 50/50 from one pool, grouped by video. The videos are
generated on this machine into a video root; their checksums go into the manifest, and
the generator is deterministic, so the same seed rebuilds the same split; the seed also
draws the dev/test partition the card records. Rebuilding an up-to-date split (same
settings, every video present with its recorded checksum, a valid partition record) does
nothing; one whose card only lacks the partition (built before partitions existed) gets
its card rewritten, with the manifest and videos left untouched.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from vidsme import __version__
from vidsme.data_splits.create import draw_members
from vidsme.data_splits.manifest import CARD_FILE, frame_record, make_row, partitions, with_partition, write_split
from vidsme.provenance import sha256_file
from vidsme.data_splits.partition import check_partition_record
from vidsme.data_splits.registry import SYNTHETIC_SPLITS, Split, load_split, splits_dir
from vidsme.errors import SplitError
from vidsme.names import did_you_mean

DEFAULT_VIDEO_ROOT = Path("runs/videos")


def split_state(name: str, source: dict, video_root: Path, seed: int) -> Literal["fresh", "card", "stale"]:
    """"fresh": nothing to do; "card": manifest and videos are right but the card's partition
    is missing or wrong (rewrite the card only); "stale": generate and draw again.

    A test-only split (a sealed challenge's: `drawn.test_only`) has no partition to check."""
    path = splits_dir() / name
    if not (path / CARD_FILE).is_file():
        return "stale"
    try:
        split = load_split(name)
        if split.card.source != source or sha256_file(split.manifest_path) != split.card.manifest_sha256:
            return "stale"
        rows = split.rows()
    except SplitError:  # a malformed card or manifest: regenerate
        return "stale"
    for row in rows:
        video = video_root / row["video"]
        if not video.is_file() or sha256_file(video) != row["video_sha256"]:
            return "stale"
    if not partitions(split.card.kind, split.card.members_available) or split.card.drawn.get("test_only"):
        return "fresh"
    record = split.card.partition
    try:
        check_partition_record(record, rows, f"split {name!r}")
    except SplitError:
        return "card"
    return "fresh" if record.get("seed") == seed else "card"  # type: ignore[union-attr]


def manifest_rows(generated: list[dict]) -> tuple[list[dict], list[str]]:
    """(manifest rows, card notes) of generator rows: the manifest keeps the shared schema
    (labels None until drawn); the generator's reversal metadata is summarised in a note."""
    rows = [make_row(**{k: row[k] for k in row if k not in ("reversal_changes_answer", "reversed_answer")})
            for row in generated]
    qa = [row for row in generated if row["task"] != "caption"]
    reversal = sum(bool(row["reversal_changes_answer"]) for row in qa)
    notes = [f"{reversal} of {len(qa)} QA rows have an answer that changes when the frames are reversed."] if qa else []
    return rows, notes


def build_synthetic_split(
    name: str,
    video_root: Path = DEFAULT_VIDEO_ROOT,
    *,
    seed: int = 0,
    n_videos: int | None = None,
    progress: bool = True,
) -> tuple[Split, bool]:
    """Build (or find up to date) the synthetic split `name`; returns (split, rebuilt).

    `seed` seeds the generator, the member draw and the dev/test partition. `rebuilt` is
    True when anything was written, including only the card (a missing partition record).
    """
    if name not in SYNTHETIC_SPLITS:
        raise SplitError(
            f"{name!r} is not a buildable split.{did_you_mean(name, SYNTHETIC_SPLITS)} "
            f"Buildable: {', '.join(SYNTHETIC_SPLITS)}; user splits come from `vidsme splits create`."
        )
    from vidsme.data_splits.synthetic import (
        BUILDABLE_POOLS,
        POPULATION_POOLS,
        PROBE_POOLS,
        SYNTH_N_FRAMES,
        generate_pool,
        generator_source,
    )

    pool = BUILDABLE_POOLS[name]
    n = n_videos if n_videos is not None else pool.n_videos
    video_root = Path(video_root)
    source = {
        **generator_source(pool),
        "pool": name,
        "seed": seed,
        "n_videos": n,
        "video_root": str(video_root.resolve()),
    }
    state = split_state(name, source, video_root, seed)
    if state == "fresh":
        return load_split(name), False
    if state == "card":  # the manifest keeps its bytes (and sha256): trained targets and caches stay valid
        split = load_split(name)
        with_partition(split.card, split.rows(), seed).write(split.path / CARD_FILE)
        return load_split(name), True

    generated = generate_pool(name, video_root, n_videos=n, seed=seed, progress=progress)
    rows, notes = manifest_rows(generated)
    is_pool = pool.task == "pretrain" or name in POPULATION_POOLS or name in PROBE_POOLS
    if is_pool:
        drawn = {"method": "none (population pool: in no split, never member nor non-member)" if name in POPULATION_POOLS
                 else "none (probe pool: held-out scenes for a base's video reading)" if name in PROBE_POOLS
                 else "none (pretraining pool: never member nor non-member)"}
    else:
        draw_members(rows, 0.5, seed)
        drawn = {"method": "iid_by_video", "member_fraction": 0.5, "seed": seed}
    write_split(
        splits_dir() / name,
        rows,
        partition_seed=seed,
        name=name,
        kind="pool" if is_pool else "split",
        version=1,
        description=f"Synthetic {pool.task} data generated by vidsme {__version__} (embedded default benchmark)"
        + (f"; the population of {name.removesuffix('-population')} (other scenes, same distribution)."
           if name in POPULATION_POOLS else "."),
        drawn=drawn,
        source=source,
        notes=notes,
        frames=frame_record({r["video"]: SYNTH_N_FRAMES for r in rows}),
    )
    return load_split(name), True
