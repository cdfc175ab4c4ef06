"""The study's data: one split per content level and the bases' pretraining pool, in the study's own
splits folder (VIDSME_SPLITS_DIR = <work_dir>/splits) and video folder (<work_dir>/videos).

Both content splits come from the same scenes (synth-mcqa's namespace, STUDY_POOLS in
data_splits/synthetic.py) with the same member draw and dev/test partition (same seed, same
sorted video ids): "temporal" asks about order and direction (reversing the frames changes the
answer), "static" about what reversal keeps (shapes, counts, symmetric events). A rebuild with
the same settings finds every video and manifest up to date and writes nothing.
"""
from __future__ import annotations

from pathlib import Path

from vidsme.data_splits.registry import Split

PRETRAIN_POOL = "synth-pretrain"
PROBE_POOL = "synth-probe"  # held-out scenes: each base's video reading (train/video_reading.py)


def content_split(content: str) -> str:
    """The split name of a content level ("temporal" | "static")."""
    return f"study-mcqa-{content}"


def population_split(content: str) -> str:
    """The population pool of a content level (unlabelled, other scenes: the calibrated variant's RMIA)."""
    return f"{content_split(content)}-population"


def build_content_split(content: str, video_root: Path, n_videos: int, seed: int, *, progress: bool = True,
                        population: bool = False) -> tuple[Split, bool]:
    """Build (or find up to date) the split of one content level in the current splits folder;
    returns (split, rebuilt). Videos are drawn i.i.d. half members, then halved into dev/test.
    `population`: its population pool instead (same questions on other scenes, unlabelled)."""
    from vidsme import __version__
    from vidsme.data_splits.build import manifest_rows, split_state
    from vidsme.data_splits.create import draw_members
    from vidsme.data_splits.manifest import write_split
    from vidsme.data_splits.registry import load_split, splits_dir
    from vidsme.data_splits.synthetic import STUDY_POOLS, generate_pool, generator_source

    name = population_split(content) if population else content_split(content)
    pool = STUDY_POOLS[name]
    video_root = Path(video_root)
    source = {**generator_source(pool), "pool": name,
              "questions": pool.questions, "seed": seed, "n_videos": n_videos,
              "video_root": str(video_root.resolve())}
    state = split_state(name, source, video_root, seed)
    if state == "fresh":
        return load_split(name), False
    rows, notes = manifest_rows(generate_pool(name, video_root, n_videos=n_videos, seed=seed, progress=progress))
    if population:
        write_split(splits_dir() / name, rows, partition_seed=seed, name=name, kind="pool", version=1,
                    description=f"Video-signal study: the population of {content_split(content)} (other scenes, "
                    f"{content} questions; vidsme {__version__}).",
                    drawn={"method": "none (population pool: in no split, never member nor non-member)"},
                    source=source, notes=notes)
        return load_split(name), True
    draw_members(rows, 0.5, seed)
    write_split(splits_dir() / name, rows, partition_seed=seed, name=name, kind="split", version=1,
                description=f"Video-signal study: synth-mcqa's scenes with {content} questions only "
                f"(vidsme {__version__}).",
                drawn={"method": "iid_by_video", "member_fraction": 0.5, "seed": seed}, source=source, notes=notes)
    return load_split(name), True


def build_study_data(contents: list[str], video_root: Path, *, split_videos: int, pretrain_videos: int, seed: int,
                     progress: bool = True, populations: bool = False) -> dict[str, dict]:
    """Build every content split the selected cells need (with `populations`, their population pools too,
    under "<content>-population"), and the pretraining pool; returns per split {name, counts, manifest_sha256,
    notes, rebuilt} for the records. Call inside `using_splits_dir`."""
    from vidsme.data_splits.build import build_synthetic_split

    built: dict[str, dict] = {}
    for content in sorted(set(contents)):
        split, rebuilt = build_content_split(content, video_root, split_videos, seed, progress=progress)
        built[content] = _record(split, rebuilt)
        if populations:
            pool, rebuilt = build_content_split(content, video_root, split_videos, seed, progress=progress,
                                                population=True)
            built[f"{content}-population"] = _record(pool, rebuilt)
    pool, rebuilt = build_synthetic_split(PRETRAIN_POOL, video_root, seed=seed, n_videos=pretrain_videos,
                                          progress=progress)
    built["pretrain"] = _record(pool, rebuilt)
    probe, rebuilt = build_synthetic_split(PROBE_POOL, video_root, seed=seed, progress=progress)
    built["probe"] = _record(probe, rebuilt)
    return built


def _record(split: Split, rebuilt: bool) -> dict:
    return {"name": split.name, "counts": split.card.counts, "manifest_sha256": split.card.manifest_sha256,
            "notes": list(split.card.notes), "rebuilt": rebuilt}


__all__ = ["PRETRAIN_POOL", "PROBE_POOL", "build_content_split", "build_study_data", "content_split", "population_split"]
