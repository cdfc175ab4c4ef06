"""Frame counts that make no sense, refused before any model is loaded or video decoded.

Two checks per target and frame count of a suite:
  * more frames than the split's longest video has: every frame would be sampled several times
    (`frame_indices` repeats them), a number nobody meant. Refused unless the suite sets
    `allow_repeated_frames: true` (recorded with the config in results.json);
  * more video tokens than the target's language model has positions (max_position_embeddings),
    from the model's config.json alone: refused.
The longest video comes from the split card (`frames`, recorded when the split was built or
created); an older card makes the check probe the videos' headers (no decoding).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vidsme.benchmark.config import SuiteConfig, SuiteTarget
from vidsme.errors import VideoError, VidsmeError


@dataclass(frozen=True)
class Longest:
    """The longest video of a split: its path, its frames, and where the number comes from."""

    video: str
    frames: int
    source: str  # "split card" | "video headers (N of M probed)"
    shortest: int | None = None  # the fewest frames a video of the split has, where known


def longest_video(split, rows: list[dict], video_root: Path) -> Longest | None:
    """The split's longest video, from its card or else its videos' headers (None: no video at hand)."""
    frames = split.card.frames
    if isinstance(frames, dict) and isinstance(frames.get("max"), int):
        return Longest(str(frames.get("longest")), frames["max"], "split card", frames.get("min"))
    from vidsme.video import probe_video

    videos = sorted({r["video"] for r in rows})
    counts = {}
    for video in videos:
        path = Path(video_root) / video
        if not path.is_file():
            continue
        try:
            counts[video] = probe_video(path, backend="pyav").num_frames
        except VideoError:
            continue  # decoding problems are the extraction's to report, with their fix
    if not counts:
        return None
    video = max(sorted(counts), key=lambda v: counts[v])
    return Longest(video, counts[video], f"video headers ({len(counts)} of {len(videos)} probed)",
                   min(counts.values()))


def repeated_frames(n_frames: int, longest: Longest) -> str:
    """The sentence that says how often each frame of the longest video would repeat."""
    times = n_frames / longest.frames
    return (f"{n_frames} frames are more than the {longest.frames} of the split's longest video ({longest.video}, "
            f"from the {longest.source}): each frame of a video would be sampled {times:.1f} times on average, "
            "or more")


def video_positions(model_dir: Path, n_frames: int) -> tuple[int, int] | None:
    """(video tokens for `n_frames`, the language model's max_position_embeddings) from config.json alone;
    None where the family's token count depends on the processor."""
    from vidsme.model_files import skeleton_config  # no weights read
    from vidsme.train.families import video_token_layout

    config = skeleton_config(model_dir)
    try:
        tokens = video_token_layout(config, n_frames)[0]
    except NotImplementedError:
        return None
    return tokens, int(config.text_config.max_position_embeddings)


def frame_problems(cfg: SuiteConfig, t: SuiteTarget, split, rows: list[dict], video_root: Path) -> tuple[list[str], list[str]]:
    """(problems, notes) of `t`'s frame counts: problems refuse the run; notes are what the dry run prints."""
    problems, notes = [], []
    longest = longest_video(split, rows, video_root)
    if longest is None:
        notes.append("frame counts not checked against the videos: none is present under the video root")
    for n_frames in cfg.frame_counts:
        if longest is not None and n_frames > longest.frames:
            text = repeated_frames(n_frames, longest)
            if cfg.allow_repeated_frames:
                notes.append(f"{text} (allowed: allow_repeated_frames=true)")
            else:
                problems.append(f"target {t.name!r}: {text}; lower frame_counts, or set allow_repeated_frames=true "
                                "to mean it")
        elif longest is not None and longest.shortest is not None and n_frames > longest.shortest:
            notes.append(f"{n_frames} frames: videos shorter than that (the shortest has {longest.shortest}) repeat "
                         "some of their frames")
        if (Path(t.path) / "config.json").is_file():
            try:
                positions = video_positions(Path(t.path), n_frames)
            except Exception as err:  # a config transformers cannot read: the model checks say so
                notes.append(f"video tokens not counted ({type(err).__name__}: {err})")
                continue
            if positions is None:
                continue
            tokens, limit = positions
            if tokens >= limit:
                problems.append(f"target {t.name!r}: {n_frames} frames make {tokens:,} video tokens, over the "
                                f"language model's max_position_embeddings {limit:,} ({t.path}/config.json): "
                                "lower frame_counts")
            else:
                notes.append(f"{n_frames} frames: {tokens:,} video tokens of the model's {limit:,} positions")
    return problems, notes


def check_frame_counts(cfg: SuiteConfig) -> None:
    """VidsmeError listing every target x frame count that makes no sense (see the module docstring)."""
    from vidsme.benchmark.suite import target_split_rows, target_video_root

    problems = []
    for t in cfg.targets:
        split, rows = target_split_rows(t)
        problems += frame_problems(cfg, t, split, rows, target_video_root(t, split))[0]
    if problems:
        raise VidsmeError("; ".join(problems))


__all__ = ["Longest", "check_frame_counts", "frame_problems", "longest_video", "repeated_frames", "video_positions"]
