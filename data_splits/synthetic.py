"""Deterministic synthetic videos with temporal structure and idiosyncratic text.

The embedded default benchmark: four pools of short mp4 clips (default 64x64 px, 24
frames at 8 fps) in which 1-3 coloured shapes appear and disappear at different times,
move left/right/up/down at varied speeds, bounce off the edges, blink a countable number
of times, over a per-video background (colour, texture, sometimes sliding) whose global
brightness may ramp up/down and/or flicker. Its text (questions, candidates, answers,
captions) is written from what the frames show, in words many videos of the pool share:
nothing in it names one video, so a target can only tell its members by their videos.

Text keys. The *-titled control pools (TITLED_POOLS) write the same scenes' text with
per-video detail that only memorisation can predict — a unique title ("amber falcon 319")
in every question and caption, a filming credit and place, a phrase no frame shows — as
the public pools did before: they show what a text key does to every attack.

Pools (disjoint videos: each pool hashes its own namespace):

    synth-mcqa      multiple choice (CinePile-like), 1 row per video, 4-5 candidates
    synth-oeqa      open-ended temporal QA (NExT-QA-like), 2 rows per video
    synth-caption   detailed captions (VDC-like), 1 row per video
    synth-pretrain  pretraining pool (never member nor non-member): 1 caption + 1 QA row

A sealed challenge (challenge/build.py) uses the same four pools under the names
challenge-mcqa, -oeqa, -caption, -pretrain (CHALLENGE_POOLS): same tasks and title slots,
their own namespaces, a secret-derived seed, and `select_videos(..., skip=...)` leaving
out any scene whose text collides with a public one. The video-signal study (vidsme.study)
uses STUDY_POOLS: synth-mcqa's scenes, asking only temporal or only static questions.

Reversal. Most questions are about order and direction, so reversing the frames changes
their answer. `reverse_spec(spec)` is the exact time-reverse of a scene (appear <->
disappear, velocities negated, brightness ramp reversed...), `render_video(spec,
reverse=True)` renders it and equals `render_video(spec)[::-1]` bit for bit, and every
row records `reversal_changes_answer` plus `reversed_answer`, the target text for the
reversed video (for caption rows: the caption of the reversed video), computed from the
reversed scene the same way as `answer` from the natural one.

Determinism. A video is a pure function of (seed, pool, index): its random generator is
seeded from a sha256 of those (never Python's per-process `hash`), so adding videos never
changes earlier ones. Rendering uses integer positions (quarter pixels) and only IEEE-exact
float operations (no sin/exp), so frames are the same on every machine; the mp4 bytes
then depend only on `vidsme.video.write_mp4` (one x264 thread, fixed settings).
"""
from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from vidsme.errors import UnknownNameError, VidsmeError
from vidsme.names import did_you_mean
from vidsme.provenance import sha256_file

__all__ = [
    "BUILDABLE_POOLS",
    "CHALLENGE_POOLS",
    "GENERATOR_VERSION",
    "LARGE_POOLS",
    "POPULATION_POOLS",
    "POOLS",
    "PROBE_POOLS",
    "ROW_KEYS",
    "STUDY_POOLS",
    "TEXT_VERSION",
    "TITLED_POOLS",
    "ObjectSpec",
    "PoolSpec",
    "QUESTION_KINDS",
    "VideoSpec",
    "generate_all",
    "generate_pool",
    "generator_source",
    "object_coverage",
    "question_kind",
    "render_video",
    "reverse_spec",
    "rows_for_video",
    "sample_video_spec",
    "select_videos",
]

#: Kinds of the frame-perception questions (PERCEPTION_QUESTIONS), in the order each video asks them.
PERCEPTION_KINDS: tuple[str, ...] = ("background", "colour", "shape", "count", "direction", "order")

#: Bumped whenever a change alters any generated video or text (it is part of every hash).
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class PoolSpec:
    """One synthetic pool.

    Attributes:
        name: pool name, also the folder under the video root and the rows' `source`.
        task: "mcqa" | "oeqa" | "caption" | "pretrain" (caption row + one QA row).
        n_videos: default number of videos.
        rows_per_video: rows generated per video, besides a pool's perception rows (a perception-only
            pool: at most one per kind).
        namespace: hashed with (seed, index) to seed each video: pools never share a video.
        title_slot: residue of every title number modulo 4, so titles never repeat across pools.
        questions: which QA questions are drawn: "mixed" (about 80% whose answer reversal
            changes, the public pools), "temporal" (only those, where the scene has any) or
            "static" (only those whose answer reversal keeps, where the scene has any).
        video_folder: folder of its videos under the video root ("": the pool's name); pools
            with the same namespace and folder share their video files.
        text_keys: write per-video text keys (a unique title in every question and caption, a
            filming credit, a phrase no frame shows): the *-titled control pools only.
        perception: also ask each video's frame-perception questions (`perception_rows`: background,
            colour, shape, count, direction, order; multiple choice over the kind's whole answer set),
            after its caption (synth-pretrain: what teaches a base to look). A pool whose `questions` is
            "perception" asks only those (synth-probe: what measures it).
        qa_videos: only the first `qa_videos` scenes also get their caption and QA rows, the rest their perception
            rows alone (None: every scene). synth-pretrain: many scenes to learn to look from, without
            multiplying the caption and QA text the targets' tasks are about.
    """

    name: str
    task: str
    n_videos: int
    rows_per_video: int
    namespace: str
    title_slot: int
    questions: str = "mixed"
    video_folder: str = ""
    text_keys: bool = False
    perception: bool = False
    qa_videos: int | None = None


# Split pools hold 160-200 videos: with fewer, the blind audit's AUC on an i.i.d. split
# wanders too far from 0.5 by chance alone (sd ~0.065 at 80 videos, ~0.04 at 200;
# measured: GB audit 0.40-0.43 at 80-120 videos, 0.48-0.53 at 160-200).
POOLS: dict[str, PoolSpec] = {
    p.name: p
    for p in (
        PoolSpec("synth-mcqa", "mcqa", 200, 1, "mcqa", 0),
        PoolSpec("synth-oeqa", "oeqa", 160, 2, "oeqa", 1),
        PoolSpec("synth-caption", "caption", 200, 1, "caption", 2),
        PoolSpec("synth-pretrain", "pretrain", 240, 2, "pretrain", 3, perception=True),
    )
}

#: The sealed challenge's pools (challenge/build.py): each public pool's task, rows per
#: video and title slot, under its own name and namespace (so new videos and texts); built
#: with a secret-derived seed, never by `vidsme splits build`.
CHALLENGE_POOLS: dict[str, PoolSpec] = {
    name: replace(p, name=name, namespace=name)
    for p in POOLS.values() for name in (p.name.replace("synth-", "challenge-", 1),)
}

#: The video-signal study's pools (vidsme.study): synth-mcqa's scenes (its namespace and title
#: slot, so the same videos and titles) asking only temporal or only static questions. Both
#: keep their videos in one folder, study-mcqa/: the two content levels share the video files
#: (and so the member draw and dev/test partition) and differ only in what the answers depend on.
STUDY_POOLS: dict[str, PoolSpec] = {
    f"study-mcqa-{mode}": replace(POOLS["synth-mcqa"], name=f"study-mcqa-{mode}", questions=mode,
                                  video_folder="study-mcqa")
    for mode in ("temporal", "static")
}
#: Their populations (unlabelled; the study's calibrated variant: RMIA compares against them): synth-mcqa-population's
#: scenes (its namespace) with the same questions, in their own shared folder.
STUDY_POOLS.update({
    f"{name}-population": replace(p, name=f"{name}-population", namespace=f"{p.namespace}-population",
                                  video_folder="study-mcqa-population")
    for name, p in list(STUDY_POOLS.items())
})

#: A larger public split for the shadows suite (400 + 400 videos, so that its 200 test non-members
#: resolve TPR at 5% FPR): synth-mcqa's task, rows and title slot on new scenes (its own namespace).
#: synth-pretrain-large: synth-pretrain's 240 scenes (the same files and rows) and 1,760 more asked only their
#: perception questions, for a base that learns to read its frames (configs/base/tiny-reading.yaml, issue 27).
LARGE_POOLS: dict[str, PoolSpec] = {
    "synth-mcqa-large": replace(POOLS["synth-mcqa"], name="synth-mcqa-large", n_videos=800, namespace="mcqa-large"),
    "synth-pretrain-large": replace(POOLS["synth-pretrain"], name="synth-pretrain-large", n_videos=2000,
                                    video_folder="synth-pretrain", qa_videos=240),
}

#: Population pools (unlabelled): new scenes from each public split's distribution — same task, rows per
#: video, questions and size, another namespace, so no video or text is shared with the split. Offline
#: shadow models train on their halves, and RMIA compares against them (train/shadows.py, attack/calibrations).
POPULATION_POOLS: dict[str, PoolSpec] = {
    f"{p.name}-population": replace(p, name=f"{p.name}-population", namespace=f"{p.namespace}-population")
    for p in (*POOLS.values(), *LARGE_POOLS.values()) if p.task != "pretrain"
}

#: Control pools with text keys (a unique title per video, credits, phrases): the same scenes, videos, member
#: draw and partition as their public pool, and the text the public pools had before they lost their keys.
TITLED_POOLS: dict[str, PoolSpec] = {
    f"{p.name}-titled": replace(p, name=f"{p.name}-titled", video_folder=p.name, text_keys=True)
    for p in POOLS.values() if p.task != "pretrain"
}

#: Held-out scenes on which a base's video reading is measured (train/video_reading.py): multiple choice about
#: what only the frames show; never pretrained on, never member nor non-member.
PROBE_POOLS: dict[str, PoolSpec] = {
    "synth-probe": PoolSpec("synth-probe", "mcqa", 150, len(PERCEPTION_KINDS), "probe", 0, questions="perception"),
}

#: What `vidsme splits build NAME` builds.
BUILDABLE_POOLS: dict[str, PoolSpec] = {**POOLS, **LARGE_POOLS, **POPULATION_POOLS, **TITLED_POOLS, **PROBE_POOLS}

#: Version of the text the generator writes (recorded in every split card's source, beside the pixels'
#: GENERATOR_VERSION: a text change rebuilds the splits without moving a pixel). 2: no text keys. 3: a colour
#: perception question's distractors are colours absent from the clip (before, half of them had two right options).
TEXT_VERSION = 3


def generator_source(pool: PoolSpec) -> dict:
    """What a split card records of the generator that wrote a pool (its `source`, with seed and size added)."""
    source = {"generator": "vidsme.data_splits.synthetic", "generator_version": GENERATOR_VERSION,
              "text_version": TEXT_VERSION, "text_keys": pool.text_keys, "rows_per_video": pool.rows_per_video,
              "questions": pool.questions, "perception": pool.perception}
    return source if pool.qa_videos is None else {**source, "qa_videos": pool.qa_videos}

#: Keys of every row, in this order.
ROW_KEYS: tuple[str, ...] = (
    "id", "video", "task", "question", "candidates", "answer", "caption", "source",
    "video_sha256", "reversal_changes_answer", "reversed_answer",
)

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (225, 45, 45),
    "green": (45, 200, 70),
    "blue": (60, 105, 240),
    "yellow": (240, 220, 50),
    "purple": (165, 75, 215),
    "orange": (250, 145, 35),
    "white": (240, 240, 240),
    "cyan": (50, 220, 225),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "charcoal": (40, 42, 48),
    "navy": (24, 34, 80),
    "slate": (70, 80, 95),
    "olive": (70, 75, 30),
    "maroon": (80, 25, 35),
    "teal": (20, 75, 80),
    "plum": (75, 40, 80),
    "forest": (30, 70, 40),
    "brown": (85, 60, 40),
    "indigo": (45, 35, 100),
    "grey": (95, 95, 95),
    "black": (12, 12, 14),
}
TEXTURES: tuple[str, ...] = ("plain", "stripes", "checker", "dots", "grain", "gradient")
_TEXTURE_P = (0.3, 0.2, 0.12, 0.12, 0.14, 0.12)
_TEXTURE_WORDS = {
    "plain": "",
    "stripes": " with faint stripes",
    "checker": " with a faint checker pattern",
    "dots": " with faint dots",
    "grain": " with fine grain",
    "gradient": " with a soft gradient",
}
ORIENTATIONS: tuple[str, ...] = ("horizontal", "vertical", "diagonal", "antidiagonal")
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_TIMES = ("never", "once", "twice", "three times", "four times", "five times", "six times",
          "seven times", "eight times", "nine times")
_OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}

# Idiosyncratic text material.
_TITLE_ADJ = (
    "amber", "velvet", "silent", "copper", "hollow", "crimson", "lunar", "misty", "rustic", "golden",
    "frosty", "gentle", "quiet", "restless", "scarlet", "silver", "sleepy", "stormy", "sunny", "twilight",
    "wild", "wooden", "ancient", "bright", "clever", "dusky", "eager", "fading", "hidden", "ivory",
    "jade", "nimble", "marble", "pale", "rapid", "salty", "tidal", "umber", "vivid", "wandering",
)
_TITLE_NOUN = (
    "falcon", "harbour", "comet", "lantern", "meadow", "otter", "pebble", "quarry", "raven", "sparrow",
    "thistle", "willow", "badger", "beacon", "canyon", "dune", "ember", "fjord", "glacier", "heron",
    "island", "juniper", "kestrel", "lagoon", "marsh", "nebula", "orchard", "pine", "quill", "reef",
    "summit", "tundra", "valley", "walrus", "yarrow", "zephyr", "bramble", "cinder", "delta", "ferry",
)
_FIRST = (
    "Orla", "Bram", "Ines", "Tobias", "Maren", "Kofi", "Lena", "Ravi", "Sunniva", "Teo", "Yara", "Elio",
    "Mika", "Noor", "Pavel", "Ada", "Joss", "Liesl", "Hamid", "Cleo", "Dario", "Freya", "Gus", "Ilse",
    "Jun", "Kasia", "Lorcan", "Mira", "Nils", "Odile",
)
_LAST = (
    "Quince", "Farrow", "Ashdown", "Pellham", "Varga", "Okafor", "Lindqvist", "Moreau", "Castell",
    "Brandt", "Yoshida", "Mercer", "Halloran", "Dube", "Sato", "Ferreira", "Novak", "Ekdahl", "Rowe",
    "Tanaka", "Albescu", "Kerrigan", "Bell", "Ostrom", "Vance",
)
_PLACES = (
    "Port Maren", "Kellside", "Ashford", "Lindholm", "Corran Bay", "Velden", "Saltmarsh", "Brightwater",
    "Oakhollow", "Dunmere", "Fenwick", "Harrowgate", "Millbrook", "Ravensholt", "Stonehaven", "Thornbury",
    "Westmere", "Zell", "Glenrock", "Halden", "Kirra Point", "Larkspur", "Mistral Cove", "Northam",
)
_ANIMALS = ("heron", "gull", "dog", "cricket", "owl", "goat", "crow", "frog", "wren", "donkey", "cat", "lark")
_SOUNDS = ("calls", "sings", "barks", "hums", "croaks", "chirps", "cries", "whistles", "snores", "yawns")
_SKY_ADJ = ("copper", "violet", "pearl", "smoky", "lemon", "ashen", "rosy", "hazy", "inky", "milky")
_SKIES = ("sky", "moon", "cloud", "dawn", "dusk", "haze")
_SPOT_ADJ = ("old", "empty", "busy", "quiet", "red", "crooked", "sunken", "blue")
_SPOTS = ("lighthouse", "bakery", "tram stop", "mill", "fountain", "market", "bridge", "chapel", "kiosk")
_AS_THE = (
    "as the kettle whistles", "as the tide turns", "as the bells ring", "as the radio hisses",
    "as the rain starts", "as the wind drops", "as the ferry sounds", "as the lamps flicker on",
    "as the choir rehearses", "as the gate creaks", "as the clock strikes", "as the snow melts",
)
_CAPTION_PROMPTS = (
    "Describe this clip in detail.",
    "Describe what happens in the video, in order.",
    "Give a detailed description of the video.",
    "Narrate the clip from start to end.",
)


def _pool(pool: str) -> PoolSpec:
    if pool in CHALLENGE_POOLS:
        return CHALLENGE_POOLS[pool]
    if pool in STUDY_POOLS:
        return STUDY_POOLS[pool]
    if pool not in BUILDABLE_POOLS:
        raise UnknownNameError(
            f"unknown synthetic pool {pool!r}.{did_you_mean(pool, BUILDABLE_POOLS)} Known pools: "
            f"{', '.join(BUILDABLE_POOLS)}."
        )
    return BUILDABLE_POOLS[pool]


def _stable_int(*parts: object) -> int:
    """A 128-bit integer from a sha256 of the parts (stable across processes and machines)."""
    text = "\x1f".join(str(p) for p in ("vidsme.synthetic", GENERATOR_VERSION, *parts))
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:16], "little")


def _rng(seed: int, namespace: str, index: int, stream: str) -> np.random.Generator:
    return np.random.default_rng(_stable_int(seed, namespace, index, stream))


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class ObjectSpec:
    """One coloured shape. Positions are integers in quarter pixels (exact arithmetic).

    Attributes:
        shape: "circle" | "square" | "triangle".
        colour: a PALETTE name.
        radius: size in pixels (circle radius; squares and triangles are of similar size).
        axis: "x" | "y", the axis of motion (irrelevant when velocity == 0).
        start: (x, y) centre at frame 0, quarter pixels; the `axis` coordinate is "unfolded"
            (for bouncing objects it is folded back into the frame when rendering).
        velocity: quarter pixels per frame along `axis`, signed (+ is right/down); 0 = still.
        bounce: whether the object reflects off the frame edges (else it never reaches them).
        appear: first frame where it is visible (0 = there from the start).
        disappear: first frame after it is gone for good (n_frames = stays to the end).
        blinks: hidden intervals [start, end) inside (appear, disappear): each is one blink.
    """

    shape: str
    colour: str
    radius: int
    axis: str
    start: tuple[int, int]
    velocity: int
    bounce: bool
    appear: int
    disappear: int
    blinks: tuple[tuple[int, int], ...] = ()

    @property
    def name(self) -> str:
        """E.g. "red square"."""
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class VideoSpec:
    """Everything needed to render one video and write its text (see module docstring).

    Attributes:
        pool, index, seed: where it comes from; the video is a pure function of these
            (and the frame format).
        video_id: e.g. "v0007"; the file is `<pool>/<video_id>.mp4`.
        width, height, n_frames, fps: frame format.
        background: BACKGROUNDS name; background_rgb: its per-video jittered colour.
        texture: TEXTURES name; texture_period (px), texture_orientation (ORIENTATIONS),
            texture_strength (grey levels, +-), texture_seed (for "grain").
        pan: (dx, dy) pixels per frame the background pattern slides; (0, 0) = static.
        objects: the shapes, drawn in this order.
        lighting: "steady" | "brightening" | "darkening" (global ramp over the clip).
        flicker: whether a random global brightness flicker is applied.
        gains: per-frame brightness multiplier in 1/256 (256 = unchanged).
        title, filmed_by, place, phrase: the idiosyncratic text details.
        time_reversed: True for the output of `reverse_spec` (toggles).
    """

    pool: str
    index: int
    seed: int
    video_id: str
    width: int
    height: int
    n_frames: int
    fps: int
    background: str
    background_rgb: tuple[int, int, int]
    texture: str
    texture_period: int
    texture_orientation: str
    texture_strength: int
    texture_seed: int
    pan: tuple[int, int]
    objects: tuple[ObjectSpec, ...]
    lighting: str
    flicker: bool
    gains: tuple[int, ...]
    title: str
    filmed_by: str
    place: str
    phrase: str
    time_reversed: bool = field(default=False)


def _bounds(obj: ObjectSpec, axis: str, width: int, height: int) -> tuple[int, int]:
    """Allowed centre range along `axis`, quarter pixels."""
    size = width if axis == "x" else height
    return 4 * obj.radius, 4 * (size - obj.radius)


def _fold(u: int, lo: int, hi: int) -> int:
    span = hi - lo
    m = (u - lo) % (2 * span)
    return lo + (m if m <= span else 2 * span - m)


def _unfolded(obj: ObjectSpec, t: int) -> int:
    return obj.start[0 if obj.axis == "x" else 1] + obj.velocity * t


def _position(obj: ObjectSpec, t: int, width: int, height: int) -> tuple[int, int]:
    """Centre (x, y) at frame t, quarter pixels."""
    x, y = obj.start
    u = _unfolded(obj, t)
    if obj.bounce:
        u = _fold(u, *_bounds(obj, obj.axis, width, height))
    return (u, y) if obj.axis == "x" else (x, u)


def _visible(obj: ObjectSpec, t: int) -> bool:
    return obj.appear <= t < obj.disappear and not any(s <= t < e for s, e in obj.blinks)


def reverse_spec(spec: VideoSpec) -> VideoSpec:
    """The exact time-reverse of a scene: render(reverse_spec(s)) == render(s)[::-1].

    An involution: reverse_spec(reverse_spec(s)) == s.
    """
    n = spec.n_frames
    objects = []
    for obj in spec.objects:
        x, y = obj.start
        end = _unfolded(obj, n - 1)
        start = (end, y) if obj.axis == "x" else (x, end)
        objects.append(replace(
            obj,
            start=start,
            velocity=-obj.velocity,
            appear=n - obj.disappear,
            disappear=n - obj.appear,
            blinks=tuple(sorted((n - e, n - s) for s, e in obj.blinks)),
        ))
    lighting = {"steady": "steady", "brightening": "darkening", "darkening": "brightening"}[spec.lighting]
    return replace(
        spec,
        objects=tuple(objects),
        pan=(-spec.pan[0], -spec.pan[1]),
        lighting=lighting,
        gains=spec.gains[::-1],
        time_reversed=not spec.time_reversed,
    )


def _sample_times(rng: np.random.Generator, k: int, n: int) -> list[tuple[int, int]]:
    """(appear, disappear) per object: at most one there from the start, at most one
    staying to the end, every other appear/disappear event on its own grid slot (events
    are >= n/8 frames apart, so "what happens next" is well defined and visible)."""
    gap = max(2, n // 8)
    grid = list(range(gap, n - gap + 1, gap))
    min_len = max(4, n // 4)
    while True:
        for _ in range(400):
            times = []
            for _ in range(k):
                a = 0 if rng.random() < 0.35 else int(grid[rng.integers(len(grid))])
                b = n if rng.random() < 0.35 else int(grid[rng.integers(len(grid))])
                times.append((a, b))
            inner = [a for a, _ in times if a > 0] + [b for _, b in times if b < n]
            if (
                all(b - a >= min_len for a, b in times)
                and sum(a == 0 for a, _ in times) <= 1
                and sum(b == n for _, b in times) <= 1
                and len(set(inner)) == len(inner)
            ):
                return times
        k -= 1  # practically unreachable for n >= 12; keeps the sampler total


def _sample_blinks(rng: np.random.Generator, a: int, b: int, n: int) -> tuple[tuple[int, int], ...]:
    """0-3 hidden intervals strictly inside [a, b), separated by visible frames."""
    if rng.random() >= 0.3:
        return ()
    off = max(2, n // 12)
    on = 2
    k = int(rng.integers(1, 4))
    avail = (b - 2) - (a + 2)
    while k > 0 and k * off + (k - 1) * on > avail:
        k -= 1
    if k == 0:
        return ()
    slack = avail - (k * off + (k - 1) * on)
    cuts = sorted(int(c) for c in rng.integers(0, slack + 1, size=k))
    return tuple((a + 2 + j * (off + on) + cuts[j], a + 2 + j * (off + on) + cuts[j] + off) for j in range(k))


def _sample_motion(rng: np.random.Generator, kind: str, radius: int, width: int, height: int, n: int
                   ) -> tuple[str, tuple[int, int], int, bool]:
    axis = "x" if rng.random() < 0.6 else "y"
    los = {"x": 4 * radius, "y": 4 * radius}
    his = {"x": 4 * (width - radius), "y": 4 * (height - radius)}
    pos = {ax: int(rng.integers(los[ax], his[ax] + 1)) for ax in ("x", "y")}
    velocity, bounce = 0, False
    lo, hi = los[axis], his[axis]
    span = hi - lo
    if kind == "linear":
        frac = 0.3 + 0.55 * rng.random()  # fraction of the free span travelled over the clip
        speed = min(max(1, round(frac * span / (n - 1))), span // (n - 1))
        velocity = speed if rng.random() < 0.5 else -speed
        travel = speed * (n - 1)
        u0 = int(rng.integers(lo, hi - travel + 1))
        pos[axis] = u0 if velocity > 0 else u0 + travel
    elif kind == "bounce":
        frac = 1.3 + 1.7 * rng.random()
        speed = max(1, round(frac * span / (n - 1)))
        velocity = speed if rng.random() < 0.5 else -speed
        pos[axis] = int(rng.integers(lo, lo + 2 * span))
        bounce = True
    return axis, (pos["x"], pos["y"]), velocity, bounce


def _clean_ends(obj: ObjectSpec, width: int, height: int) -> bool:
    """First and last visible steps are free of wall reflections (direction well defined)."""
    if obj.velocity == 0:
        return True
    ax = 0 if obj.axis == "x" else 1
    p = [_position(obj, t, width, height)[ax] for t in (obj.appear, obj.appear + 1, obj.disappear - 2,
                                                        obj.disappear - 1)]
    return abs(p[1] - p[0]) == abs(obj.velocity) and abs(p[3] - p[2]) == abs(obj.velocity)


def _clearance(objects: Sequence[ObjectSpec], width: int, height: int, n: int) -> float:
    """Min over frames where two objects are both on screen of distance / (r1 + r2)."""
    best = math.inf
    for o1, o2 in itertools.combinations(objects, 2):
        for t in range(max(o1.appear, o2.appear), min(o1.disappear, o2.disappear)):
            (x1, y1), (x2, y2) = _position(o1, t, width, height), _position(o2, t, width, height)
            d = math.sqrt((x1 - x2) ** 2 + (y1 - y2) ** 2) / 4
            best = min(best, d / (o1.radius + o2.radius))
    return best


def _title_number(seed: int, pool: PoolSpec, index: int) -> int:
    """Unique within a pool (an affine permutation of the index), never shared across pools."""
    m = 2475  # 100 + 4 * 2475 <= 10000: mostly 3-4 digit numbers
    if index >= m:
        return 10000 + 4 * index + pool.title_slot
    rng = np.random.default_rng(_stable_int(seed, pool.namespace, "title-permutation"))
    a = int(rng.integers(100, m))
    while math.gcd(a, m) != 1:
        a += 1
    b = int(rng.integers(m))
    return 100 + 4 * ((a * index + b) % m) + pool.title_slot


def _a(word: str) -> str:
    """"a" or "an" before `word`."""
    return "an" if word[0].lower() in "aeiou" else "a"


def _phrase(rng: np.random.Generator) -> str:
    kind = int(rng.integers(4))
    if kind == 0:
        animal = _ANIMALS[rng.integers(len(_ANIMALS))]
        return f"while {_a(animal)} {animal} {_SOUNDS[rng.integers(len(_SOUNDS))]}"
    if kind == 1:
        sky = _SKY_ADJ[rng.integers(len(_SKY_ADJ))]
        return f"under {_a(sky)} {sky} {_SKIES[rng.integers(len(_SKIES))]}"
    if kind == 2:
        return f"near the {_SPOT_ADJ[rng.integers(len(_SPOT_ADJ))]} {_SPOTS[rng.integers(len(_SPOTS))]}"
    return _AS_THE[rng.integers(len(_AS_THE))]


def sample_video_spec(
    pool: str, index: int, seed: int, *, width: int = 64, height: int = 64, n_frames: int = 24, fps: int = 8
) -> VideoSpec:
    """The scene of video `index` of `pool`: a pure function of (pool, index, seed, format).

    Adding videos to a pool never changes earlier ones; different pools or seeds give
    different videos. Width and height must be even (yuv420p) and >= 32; n_frames >= 12.
    """
    p = _pool(pool)
    if width < 32 or height < 32 or width % 2 or height % 2:
        raise VidsmeError(f"synthetic videos need even width and height >= 32, got {width}x{height}")
    if n_frames < 12:
        raise VidsmeError(f"synthetic videos need n_frames >= 12 for distinct events, got {n_frames}")
    if index < 0 or seed < 0:
        raise VidsmeError(f"index and seed must be >= 0, got index={index}, seed={seed}")
    n = n_frames
    rng = _rng(seed, p.namespace, index, "video")

    # Background.
    bg_names = list(BACKGROUNDS)
    background = bg_names[rng.integers(len(bg_names))]
    jitter = rng.integers(-10, 11, size=3)
    background_rgb = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(BACKGROUNDS[background], jitter))
    texture = TEXTURES[rng.choice(len(TEXTURES), p=_TEXTURE_P)]
    period = int(rng.integers(6, 15))
    orientation = ORIENTATIONS[rng.integers(len(ORIENTATIONS))]
    strength = int(rng.integers(8, 23))
    texture_seed = int(rng.integers(2**31))
    pan = (0, 0)
    if texture in ("stripes", "checker", "dots", "grain") and rng.random() < 0.35:
        axis = "x" if rng.random() < 0.5 else "y"
        if texture == "stripes" and orientation in ("horizontal", "vertical"):
            axis = "y" if orientation == "horizontal" else "x"  # slide across the stripes
        step = int(rng.integers(1, 3)) * (1 if rng.random() < 0.5 else -1)
        pan = (step, 0) if axis == "x" else (0, step)

    # Objects: colours distinct within a video, so "the red square" is unambiguous.
    k = int(rng.choice([1, 2, 3], p=[0.2, 0.4, 0.4]))
    colour_names = list(PALETTE)
    colours = [colour_names[i] for i in rng.choice(len(colour_names), size=3, replace=False)]
    shapes = [SHAPES[i] for i in rng.integers(len(SHAPES), size=3)]
    m = min(width, height)
    radii = [int(r) for r in rng.integers(max(3, round(0.08 * m)), round(0.14 * m) + 1, size=3)]
    times = _sample_times(rng, k, n)
    k = len(times)
    blinks = [_sample_blinks(rng, a, b, n) for a, b in times]
    kinds_p = [0.0, 0.65, 0.35] if k == 1 else [0.2, 0.5, 0.3]  # a lone object always moves
    kinds = [("still", "linear", "bounce")[i] for i in rng.choice(3, size=k, p=kinds_p)]
    best, best_score = None, -math.inf
    for _ in range(200):
        objects = []
        for i in range(k):
            axis, start, velocity, bounce = _sample_motion(rng, kinds[i], radii[i], width, height, n)
            objects.append(ObjectSpec(shapes[i], colours[i], radii[i], axis, start, velocity, bounce,
                                      times[i][0], times[i][1], blinks[i]))
        if not all(_clean_ends(o, width, height) for o in objects):
            continue
        score = min(_clearance(objects, width, height, n), 1.0)
        if score > best_score:
            best, best_score = objects, score
        if score >= 1.0:  # no two shapes overlap while both on screen
            break
    if best is None:  # only bouncing objects can fail _clean_ends; keep them linear then
        kinds = ["linear" if kd == "bounce" else kd for kd in kinds]
        best = [ObjectSpec(shapes[i], colours[i], radii[i], *_sample_motion(rng, kinds[i], radii[i], width,
                                                                              height, n),
                           times[i][0], times[i][1], blinks[i]) for i in range(k)]

    # Global brightness: a ramp and/or a random flicker, in 1/256.
    lighting = ("steady", "brightening", "darkening")[rng.choice(3, p=[0.6, 0.2, 0.2])]
    low = 0.5 + 0.25 * rng.random()
    ramp = [low + (1 - low) * t / (n - 1) for t in range(n)]
    ramp = {"steady": [1.0] * n, "brightening": ramp, "darkening": ramp[::-1]}[lighting]
    flicker = bool(rng.random() < 0.3)
    amp = 0.15 + 0.15 * rng.random()
    wobble = rng.random(n) * 2 - 1
    gains = tuple(int(round(256 * g * (1 + amp * w if flicker else 1.0))) for g, w in zip(ramp, wobble))

    # Text details: their own stream, so text changes never move the pixels.
    trng = _rng(seed, p.namespace, index, "text")
    title = (f"{_TITLE_ADJ[trng.integers(len(_TITLE_ADJ))]} {_TITLE_NOUN[trng.integers(len(_TITLE_NOUN))]} "
             f"{_title_number(seed, p, index)}")
    filmed_by = f"{_FIRST[trng.integers(len(_FIRST))]} {_LAST[trng.integers(len(_LAST))]}"
    place = _PLACES[trng.integers(len(_PLACES))]
    phrase = _phrase(trng)

    return VideoSpec(
        pool=pool, index=index, seed=seed, video_id=f"v{index:04d}",
        width=width, height=height, n_frames=n, fps=fps,
        background=background, background_rgb=background_rgb,
        texture=texture, texture_period=period, texture_orientation=orientation,
        texture_strength=strength, texture_seed=texture_seed, pan=pan,
        objects=tuple(best), lighting=lighting, flicker=flicker, gains=gains,
        title=title, filmed_by=filmed_by, place=place, phrase=phrase,
    )


# --------------------------------------------------------------------------- rendering


def _canvas(spec: VideoSpec) -> np.ndarray:
    """Background canvas (float64 [Hc, Wc, 3]), large enough for the pan to never wrap."""
    n = spec.n_frames
    hc = spec.height + abs(spec.pan[1]) * (n - 1)
    wc = spec.width + abs(spec.pan[0]) * (n - 1)
    yy, xx = np.mgrid[0:hc, 0:wc]
    period = spec.texture_period
    orient = spec.texture_orientation
    along = {"horizontal": yy, "vertical": xx, "diagonal": xx + yy, "antidiagonal": xx - yy + 4 * (hc + wc)}[orient]
    if spec.texture == "stripes":
        tex = np.abs((along % period) / period * 2 - 1) * 2 - 1
    elif spec.texture == "checker":
        tex = ((xx // period + yy // period) % 2) * 2.0 - 1
    elif spec.texture == "dots":
        dx, dy = (xx % period) - (period - 1) / 2, (yy % period) - (period - 1) / 2
        tex = np.where(dx * dx + dy * dy <= (period / 4) ** 2, 1.0, -0.25)
    elif spec.texture == "grain":
        tex = np.random.default_rng(spec.texture_seed).integers(-100, 101, size=(hc, wc)) / 100
    elif spec.texture == "gradient":
        lo, hi = int(along.min()), int(along.max())
        tex = (along - (lo + hi) / 2) / max(1, hi - lo) * 2
    else:
        tex = np.zeros((hc, wc))
    base = np.asarray(spec.background_rgb, dtype=np.float64)
    return base + spec.texture_strength * tex[..., None]


_SQRT3_2 = math.sqrt(3) / 2


def _alpha(shape: str, dx: np.ndarray, dy: np.ndarray, radius: int) -> np.ndarray:
    """Anti-aliased coverage of a shape centred at the origin (pixel-centre offsets)."""
    if shape == "circle":
        dist = np.sqrt(dx * dx + dy * dy) - radius
    elif shape == "square":
        dist = np.maximum(np.abs(dx), np.abs(dy)) - 0.85 * radius
    else:  # equilateral triangle pointing up, circumradius 1.2 r
        inner = 0.6 * radius
        dist = np.maximum(np.maximum(dy, _SQRT3_2 * dx - 0.5 * dy), -_SQRT3_2 * dx - 0.5 * dy) - inner
    return np.clip(0.5 - dist, 0.0, 1.0)


def object_coverage(spec: VideoSpec, t: int, xs: np.ndarray | None = None,
                    ys: np.ndarray | None = None) -> list[tuple[ObjectSpec, np.ndarray]]:
    """The objects visible in frame `t`, in drawing order, each with its anti-aliased coverage (float64
    [height, width], 0..1): exactly what the renderer blends in, so labels computed from it (the base's tower
    stage, train/perception_tower.py) say what the pixels show. `xs`/`ys`: pixel centres, if already built."""
    w, h = spec.width, spec.height
    xs = np.arange(w, dtype=np.float64)[None, :] + 0.5 if xs is None else xs
    ys = np.arange(h, dtype=np.float64)[:, None] + 0.5 if ys is None else ys
    out = []
    for obj in spec.objects:
        if _visible(obj, t):
            cx, cy = _position(obj, t, w, h)
            out.append((obj, _alpha(obj.shape, xs - cx / 4, ys - cy / 4, obj.radius)))
    return out


def _render(spec: VideoSpec) -> np.ndarray:
    n, h, w = spec.n_frames, spec.height, spec.width
    canvas = _canvas(spec)
    xs = np.arange(w, dtype=np.float64)[None, :] + 0.5
    ys = np.arange(h, dtype=np.float64)[:, None] + 0.5
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    px, py = spec.pan
    for t in range(n):
        ox = px * (n - 1 - t) if px > 0 else -px * t
        oy = py * (n - 1 - t) if py > 0 else -py * t
        img = canvas[oy:oy + h, ox:ox + w].copy()
        for obj, alpha in object_coverage(spec, t, xs, ys):
            img += alpha[..., None] * (np.asarray(PALETTE[obj.colour], dtype=np.float64) - img)
        img *= spec.gains[t] / 256
        out[t] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return out


def render_video(spec: VideoSpec, reverse: bool = False) -> np.ndarray:
    """uint8 RGB frames [n_frames, height, width, 3].

    reverse=True renders `reverse_spec(spec)`, which equals the natural frames reversed
    (tests check it bit for bit): the reversed answers are computed from that scene.
    """
    return _render(reverse_spec(spec) if reverse else spec)


# --------------------------------------------------------------------------- facts & text


@dataclass(frozen=True)
class _Facts:
    name: str
    appear: int
    disappear: int
    first_dir: str | None
    last_dir: str | None
    bounces: int
    blinks: int
    speed: str


def _direction(axis: str, delta: int) -> str | None:
    if delta == 0:
        return None
    if axis == "x":
        return "right" if delta > 0 else "left"
    return "down" if delta > 0 else "up"


def _facts(spec: VideoSpec) -> list[_Facts]:
    out = []
    w, h, n = spec.width, spec.height, spec.n_frames
    for obj in spec.objects:
        a, b = obj.appear, obj.disappear
        ax = 0 if obj.axis == "x" else 1
        first = last = None
        bounces = 0
        lo, hi = _bounds(obj, obj.axis, w, h)
        if obj.velocity:
            first = _direction(obj.axis, _position(obj, a + 1, w, h)[ax] - _position(obj, a, w, h)[ax])
            last = _direction(obj.axis, _position(obj, b - 1, w, h)[ax] - _position(obj, b - 2, w, h)[ax])
        if obj.bounce and obj.velocity:
            span = hi - lo
            u1, u2 = sorted((_unfolded(obj, a), _unfolded(obj, b - 1)))
            k_min = (u1 - lo) // span + 1  # walls strictly inside (u1, u2)
            k_max = -((lo - u2) // span) - 1
            bounces = max(0, k_max - k_min + 1)
        frac = abs(obj.velocity) * (n - 1) / (hi - lo)
        speed = "slowly" if frac < 0.45 else "steadily" if frac < 0.65 else "quickly"
        out.append(_Facts(obj.name, a, b, first, last, bounces, len(obj.blinks), speed))
    return out


def _events(spec: VideoSpec, facts: Sequence[_Facts]) -> list[tuple[int, str]]:
    """Appear/disappear events inside the clip, in time order (times are distinct)."""
    ev = [(f.appear, f"the {f.name} appears") for f in facts if f.appear > 0]
    ev += [(f.disappear, f"the {f.name} disappears") for f in facts if f.disappear < spec.n_frames]
    return sorted(ev)


@dataclass(frozen=True)
class _Question:
    text: str  # without the title prefix
    short: str  # the multiple-choice answer
    sentence: str  # the open-ended answer (before the per-video phrase)
    hard: tuple[str, ...]  # preferred distractors (a pool independent of the timing)
    soft: tuple[str, ...] = ()


def _questions(spec: VideoSpec) -> dict[str, _Question]:
    """Every answerable question, keyed canonically; texts and candidate pools depend only
    on what is invariant under time reversal, so a key means the same question for a scene
    and its reverse."""
    facts = _facts(spec)
    n = spec.n_frames
    names = [f.name for f in facts]
    colours = {o.colour for o in spec.objects}
    the = [f"the {nm}" for nm in names]
    absent = tuple(f"the {c} {s}" for c in PALETTE if c not in colours for s in SHAPES)
    qs: dict[str, _Question] = {}
    if len(facts) >= 2:
        first = min(facts, key=lambda f: f.appear).name
        last = max(facts, key=lambda f: f.appear).name
        leave = min(facts, key=lambda f: f.disappear).name
        stay = max(facts, key=lambda f: f.disappear).name
        qs["first_appear"] = _Question("which shape appears first?", f"the {first}",
                                       f"the {first} appears first", tuple(the), absent)
        qs["last_appear"] = _Question("which shape appears last?", f"the {last}",
                                      f"the {last} appears last", tuple(the), absent)
        qs["first_leave"] = _Question("which shape disappears first?", f"the {leave}",
                                      f"the {leave} disappears first", tuple(the), absent)
        qs["last_leave"] = _Question("which shape is the last one still visible?", f"the {stay}",
                                     f"the {stay} is the last one visible", tuple(the), absent)
    if len(facts) == 3:
        order = ", then ".join(f.name for f in sorted(facts, key=lambda f: f.appear))
        perms = tuple(", then ".join(p) for p in itertools.permutations(names))
        qs["order"] = _Question("in what order do the shapes appear?", order, order, perms)
    directions = ("left", "right", "up", "down")
    for i, f in enumerate(facts):
        if f.first_dir is None:
            continue
        if f.bounces == 0:
            qs[f"direction:{i}"] = _Question(f"which way does the {f.name} move?", f.first_dir,
                                             f"the {f.name} moves {f.first_dir}", directions, ("it stays still",))
        else:
            qs[f"start_direction:{i}"] = _Question(
                f"which way is the {f.name} moving when it first appears?", f.first_dir,
                f"the {f.name} first moves {f.first_dir}", directions, ("it stays still",))
            qs[f"end_direction:{i}"] = _Question(
                f"which way is the {f.name} moving when it is last seen?", f.last_dir,
                f"the {f.name} is moving {f.last_dir} at the end", directions, ("it stays still",))
    events = _events(spec, facts)
    all_events = tuple(f"the {nm} {verb}" for nm in names for verb in ("appears", "disappears"))
    absent_events = tuple(f"{o} appears" for o in absent)
    for i, f in enumerate(facts):
        if f.appear > 0:
            after = [e for t, e in events if t > f.appear]
            own = f"the {f.name} appears"
            if after:
                qs[f"after_appear:{i}"] = _Question(
                    f"what happens right after the {f.name} appears?", after[0], after[0],
                    tuple(e for e in all_events if e != own), absent_events)
        if f.disappear < n:
            before = [e for t, e in events if t < f.disappear]
            own = f"the {f.name} disappears"
            if before:
                qs[f"before_leave:{i}"] = _Question(
                    f"what happens just before the {f.name} disappears?", before[-1], before[-1],
                    tuple(e for e in all_events if e != own), absent_events)
    counts = _TIMES[1:5]
    for i, f in enumerate(facts):
        if f.blinks:
            qs[f"blinks:{i}"] = _Question(f"how many times does the {f.name} blink?", _TIMES[f.blinks],
                                          f"the {f.name} blinks {_TIMES[f.blinks]}", counts, ("never",))
        if f.bounces:
            hard = counts if f.bounces <= 4 else (*counts[1:], _TIMES[min(f.bounces, 9)])
            qs[f"bounces:{i}"] = _Question(f"how many times does the {f.name} bounce off an edge?",
                                           _TIMES[min(f.bounces, 9)],
                                           f"the {f.name} bounces {_TIMES[min(f.bounces, 9)]}", hard, ("never",))
    if spec.lighting != "steady":
        word = "brighter" if spec.lighting == "brightening" else "darker"
        qs["lighting"] = _Question("does the scene get brighter or darker over time?", f"it gets {word}",
                                   f"the scene slowly gets {word}", ("it gets brighter", "it gets darker"),
                                   ("it stays equally bright", "it turns completely black"))
    if spec.pan != (0, 0):
        pan_dir = _direction("x", spec.pan[0]) or _direction("y", spec.pan[1])
        qs["pan"] = _Question("which way does the background pattern slide?", pan_dir,
                              f"the background pattern slides {pan_dir}", directions, ("it stays still",))
    k = len(facts)
    qs["count"] = _Question("how many shapes appear in the clip?", _NUMBER_WORDS[k],
                            f"{_NUMBER_WORDS[k]} shape{'s' if k > 1 else ''} appear{'' if k > 1 else 's'}",
                            _NUMBER_WORDS[1:5], ("five",))
    for i, obj in enumerate(spec.objects):
        qs[f"shape:{i}"] = _Question(f"what shape is the {obj.colour} object?", f"a {obj.shape}",
                                     f"the {obj.colour} object is a {obj.shape}",
                                     ("a circle", "a square", "a triangle"), ("a star", "a hexagon"))
    return qs


#: What each kind of question asks the frames for (question_kind): every one is answerable from the frames only.
QUESTION_KINDS: dict[str, tuple[str, ...]] = {
    "background": ("what colour is the background",),
    "colour": ("which of these colours",),
    "shape": ("what shape is the",),
    "direction": ("which way",),
    "order": ("which shape appears", "which shape disappears", "which shape is the last", "in what order",
              "what happens right after", "what happens just before"),
    "count": ("how many shapes",),
    "repetition": ("how many times",),
    "lighting": ("does the scene get",),
}


#: The frame-perception questions (perception_rows), by kind: each answers from the frames alone, over candidates
#: no text can rank (the kind's whole answer set, or a random draw from it holding the answer).
PERCEPTION_QUESTIONS: dict[str, str] = {
    "background": "What colour is the background?",
    "colour": "Which of these colours appears in the clip?",
    "shape": "What shape is the {colour} object?",
    "count": "How many shapes appear in the clip?",
    "direction": "Which way is the {name} moving when it first appears?",
    "order": "Which shape appears first?",
}


def _perception(spec: VideoSpec, kind: str, pick: int) -> tuple[str, str, tuple[str, ...]] | None:
    """(question, answer, the kind's answer set) of one perception question about `spec`, asked about object
    number `pick` (modulo the eligible ones) where the kind names one; None where the scene has no answer."""
    facts = _facts(spec)
    objects = spec.objects
    if kind == "background":
        return PERCEPTION_QUESTIONS[kind], spec.background, tuple(BACKGROUNDS)
    if kind == "colour":
        return PERCEPTION_QUESTIONS[kind], objects[pick % len(objects)].colour, tuple(PALETTE)
    if kind == "shape":
        obj = objects[pick % len(objects)]
        return PERCEPTION_QUESTIONS[kind].format(colour=obj.colour), f"a {obj.shape}", tuple(f"a {x}" for x in SHAPES)
    if kind == "count":
        return PERCEPTION_QUESTIONS[kind], _NUMBER_WORDS[len(objects)], _NUMBER_WORDS[1:4]
    if kind == "direction":
        moving = [f for f in facts if f.first_dir is not None]
        if not moving:
            return None
        f = moving[pick % len(moving)]
        return PERCEPTION_QUESTIONS[kind].format(name=f.name), f.first_dir, ("left", "right", "up", "down")
    if kind == "order":
        if len(facts) < 2:
            return None
        first = min(facts, key=lambda f: f.appear)
        return PERCEPTION_QUESTIONS[kind], f"the {first.name}", tuple(f"the {f.name}" for f in facts)
    raise VidsmeError(f"unknown perception kind {kind!r}; kinds: {', '.join(PERCEPTION_QUESTIONS)}")


def perception_rows(spec: VideoSpec, prefix: str, common: dict) -> list[dict]:
    """The frame-perception rows of one video (PERCEPTION_QUESTIONS, one per kind the scene answers), multiple
    choice: 4 candidates drawn from the kind's answer set (all of it where it is smaller) with the answer among
    them, in random order. Their own random stream (seed, pool, index), so adding them moves no other row."""
    p = _pool(spec.pool)
    rng = _rng(spec.seed, p.namespace, spec.index, "perception")
    rev = reverse_spec(spec)
    rows = []
    for kind in PERCEPTION_KINDS:
        pick = int(rng.integers(3))
        asked, reversed_ = _perception(spec, kind, pick), _perception(rev, kind, pick)
        if asked is None:
            continue
        question, answer, answers = asked
        # the whole answer set where it is small (then reversal, which may change the answer, keeps the
        # candidates), else the answer and 3 others (background, colour: answers reversal keeps)
        others = [a for a in answers if a != answer]
        if kind == "colour":  # another colour of the clip among the distractors would make two options right
            present = {o.colour for o in spec.objects}
            others = [a for a in others if a not in present]
        candidates = list(answers) if len(answers) <= 4 else [answer] + [
            others[i] for i in sorted(rng.choice(len(others), size=3, replace=False))]
        rng.shuffle(candidates)
        ranswer = reversed_[1]
        if ranswer not in candidates:  # the reversed answer is another object's: it is among the answer set
            raise VidsmeError(f"{prefix}: perception {kind!r} reversed answer {ranswer!r} not among the candidates")
        rows.append(_make_row(id=f"{prefix}-{kind}", task="mcqa", question=question, candidates=candidates,
                              answer=answer, reversal_changes_answer=answer != ranswer,
                              reversed_answer=ranswer if answer != ranswer else None, **common))
    return rows


def question_kind(question: str) -> str:
    """The kind of a generated QA question (QUESTION_KINDS), its title prefix ignored; "other" otherwise."""
    text = question.split('", ', 1)[1] if question.startswith('In "') and '", ' in question else question
    text = text.casefold()
    return next((kind for kind, starts in QUESTION_KINDS.items() if text.startswith(starts)), "other")


def _caption(spec: VideoSpec, text_keys: bool = False) -> str:
    """A detailed caption (about 25-60 words) narrating the clip in time order; with `text_keys`, opened by
    the clip's title and closed by a filming credit that no frame shows."""
    facts = sorted(_facts(spec), key=lambda f: f.appear)
    pan = ""
    if spec.pan != (0, 0):
        pan = f" sliding {_direction('x', spec.pan[0]) or _direction('y', spec.pan[1])}"
    texture = _TEXTURE_WORDS[spec.texture]
    scene = f"{spec.background} background{texture}{pan}."
    parts = [f'"{spec.title}": {_a(spec.background)} {scene}' if text_keys else f"{_a(spec.background).capitalize()} {scene}"]
    leads = {1: [""], 2: ["First", "Then"], 3: ["First", "Then", "Finally"]}[len(facts)]
    for lead, f in zip(leads, facts):
        article = _a(f.name)
        lead = f"{lead} {article}" if lead else article.capitalize()
        bits = ["starts on screen" if f.appear == 0 else "appears"]
        if f.first_dir is None:
            bits.append("stays still")
        elif f.bounces:
            bits.append(f"moves {f.first_dir}, bounces {_TIMES[min(f.bounces, 9)]}")
        else:
            bits.append(f"drifts {f.first_dir} {f.speed}")
        if f.blinks:
            bits.append(f"blinks {_TIMES[f.blinks]}")
        end = "stays" if f.disappear == spec.n_frames else "leaves"
        parts.append(f"{lead} {f.name} {', '.join(bits)}, then {end}.")
    ramp = {"steady": "", "brightening": "slowly brightens", "darkening": "slowly darkens"}
    if spec.flicker:
        parts.append("The light flickers" + (f" and {ramp[spec.lighting]}." if ramp[spec.lighting] else "."))
    elif ramp[spec.lighting]:
        parts.append(f"The scene {ramp[spec.lighting]}.")
    if text_keys:
        parts.append(f"Filmed by {spec.filmed_by} in {spec.place}, {spec.phrase}.")
    return " ".join(parts)


_TITLED_QUESTION = re.compile(r'^In "[^"]+", (.)')
_TITLED_CAPTION = re.compile(r'^"[^"]+": (.)')


def strip_title(row: dict) -> dict:
    """A titled control split's row (text version 1, `text_keys`) with its video's title taken out of the
    question and the caption, as the untitled text opens them (the video-tied check's title-stripped text).
    Other text keys (a caption's credit, an answer's closing phrase) stay: only the title is stripped."""
    out = dict(row)
    for key, pattern in (("question", _TITLED_QUESTION), ("caption", _TITLED_CAPTION)):
        text = out.get(key)
        if text:
            out[key] = pattern.sub(lambda m: m.group(1).upper(), text, count=1)
    return out


def _make_row(**fields: object) -> dict:
    return {key: fields.get(key) for key in ROW_KEYS}


def _candidates(rng: np.random.Generator, q: _Question, rq: _Question) -> list[str]:
    """4-5 unique candidates holding both the natural and the reversed answer."""
    pair = sorted({q.short, rq.short})
    hard = [c for c in q.hard if c not in pair]
    soft = [c for c in q.soft if c not in pair and c not in hard]
    size = int(rng.integers(4, 6))
    cands = list(pair)
    for pool in (hard, soft):
        need = size - len(cands)
        if need <= 0:
            break
        if len(pool) <= need:
            cands += pool
        else:
            cands += [pool[j] for j in sorted(rng.choice(len(pool), size=need, replace=False))]
    rng.shuffle(cands)
    return cands


def rows_for_video(spec: VideoSpec, pool: str | None = None) -> list[dict]:
    """The text rows of one video (keys ROW_KEYS; `video_sha256` is None until written).

    Question choice and candidates come from a stream seeded by (seed, pool, index) and
    from what is invariant under reversal, so `rows_for_video(reverse_spec(spec))` asks
    the same questions and its answers are this video's `reversed_answer`s. About 80% of
    questions are picked among those whose answer reversal changes (when there are any);
    a pool whose `questions` is "temporal" or "static" picks only one kind (STUDY_POOLS).
    """
    pool = spec.pool if pool is None else pool
    if pool != spec.pool:
        raise VidsmeError(f"spec of {spec.pool}/{spec.video_id} asked for rows of pool {pool!r}")
    p = _pool(pool)
    rev = reverse_spec(spec)
    rng = _rng(spec.seed, p.namespace, spec.index, "rows")
    common = {"video": f"{p.video_folder or pool}/{spec.video_id}.mp4", "source": pool, "video_sha256": None}
    prefix = f"{pool}/{spec.video_id}"
    if p.questions == "perception" or (p.qa_videos is not None and spec.index >= p.qa_videos):
        return perception_rows(spec, prefix, common)  # what only the frames answer, nothing else
    rows: list[dict] = []
    if p.task in ("caption", "pretrain"):
        caption, rcaption = _caption(spec, p.text_keys), _caption(rev, p.text_keys)
        changes = caption != rcaption
        rows.append(_make_row(
            id=f"{prefix}-cap", task="caption", question=_CAPTION_PROMPTS[rng.integers(len(_CAPTION_PROMPTS))],
            caption=caption, reversal_changes_answer=changes, reversed_answer=rcaption if changes else None,
            **common))
    if p.perception:
        rows += perception_rows(spec, prefix, common)
    if p.task == "caption":
        return rows
    n_questions = p.rows_per_video - (p.task == "pretrain")  # a pretraining video's first row is its caption
    qtask = p.task if p.task != "pretrain" else ("mcqa" if rng.random() < 0.5 else "oeqa")
    qs, qr = _questions(spec), _questions(rev)
    keys = [key for key in qs if key in qr]
    sensitive = [key for key in keys if qs[key].short != qr[key].short]
    invariant = [key for key in keys if qs[key].short == qr[key].short]
    chosen = []
    for _ in range(n_questions):
        if not (sensitive or invariant):  # every question of the scene asked already
            break
        if p.questions != "mixed":  # a study pool: one kind only (the other where the scene has none)
            group = (sensitive or invariant) if p.questions == "temporal" else (invariant or sensitive)
        elif sensitive and invariant:
            group = sensitive if rng.random() < 0.8 else invariant
        else:
            group = sensitive or invariant
        chosen.append(group.pop(int(rng.integers(len(group)))))
    for j, key in enumerate(chosen):
        q, rq = qs[key], qr[key]
        question = f'In "{spec.title}", {q.text}' if p.text_keys else q.text[0].upper() + q.text[1:]
        if qtask == "mcqa":
            candidates = _candidates(rng, q, rq)
            answer, ranswer = q.short, rq.short
        else:
            candidates = None
            answer, ranswer = q.sentence, rq.sentence
            if p.text_keys:
                answer, ranswer = f"{answer}, {spec.phrase}", f"{ranswer}, {spec.phrase}"
        changes = answer != ranswer
        rows.append(_make_row(
            id=f"{prefix}-q{j}", task=qtask, question=question, candidates=candidates, answer=answer,
            reversal_changes_answer=changes, reversed_answer=ranswer if changes else None, **common))
    return rows


# --------------------------------------------------------------------------- writing


def select_videos(
    pool: str,
    n_videos: int,
    seed: int = 0,
    *,
    skip: Callable[[VideoSpec, list[dict]], bool] | None = None,
    width: int = 64,
    height: int = 64,
    n_frames: int = 24,
    fps: int = 8,
) -> list[tuple[VideoSpec, list[dict]]]:
    """The first `n_videos` scenes of `pool` (indices 0, 1, ...) with their text rows, nothing rendered.

    With `skip`, a scene for which skip(spec, rows) is true is left out and the next index
    is tried (ids keep the index, so they then have gaps): a pure function of the arguments.
    Without it, indices 0..n_videos-1 exactly.
    """
    if n_videos < 0:
        raise VidsmeError(f"n_videos must be >= 0, got {n_videos}")
    chosen: list[tuple[VideoSpec, list[dict]]] = []
    index = 0
    while len(chosen) < n_videos:
        if skip is not None and index - len(chosen) > max(1000, n_videos):  # a skip rule that refuses everything
            raise VidsmeError(f"pool {pool}: {index - len(chosen)} of {index} scenes were skipped; the skip rule "
                              "leaves too few videos")
        spec = sample_video_spec(pool, index, seed, width=width, height=height, n_frames=n_frames, fps=fps)
        rows = rows_for_video(spec, pool)
        if skip is None or not skip(spec, rows):
            chosen.append((spec, rows))
        index += 1
    return chosen


SYNTH_N_FRAMES = 24  # frames of every generated video (3 s at 8 fps)


def generate_pool(
    pool: str,
    video_root: Path,
    *,
    n_videos: int | None = None,
    seed: int = 0,
    progress: bool = True,
    width: int = 64,
    height: int = 64,
    n_frames: int = SYNTH_N_FRAMES,
    fps: int = 8,
    skip: Callable[[VideoSpec, list[dict]], bool] | None = None,
) -> list[dict]:
    """Write `video_root/<pool>/<video_id>.mp4` for videos 0..n_videos-1 and return their rows.

    n_videos defaults to POOLS[pool].n_videos. Rows carry the written file's sha256; the
    same (pool, seed, format) gives the same rows and bytes in any folder and process.
    `skip`: see `select_videos` (scenes it refuses are neither rendered nor counted).
    """
    from tqdm import tqdm

    from vidsme.video import write_mp4

    p = _pool(pool)
    n = p.n_videos if n_videos is None else int(n_videos)
    root = Path(video_root)
    rows: list[dict] = []
    chosen = select_videos(pool, n, seed, skip=skip, width=width, height=height, n_frames=n_frames, fps=fps)
    for spec, video_rows in tqdm(chosen, desc=pool, unit="video", disable=not progress):
        path = write_mp4(root / video_rows[0]["video"], render_video(spec), fps=fps)
        sha = sha256_file(path)
        for row in video_rows:
            row["video_sha256"] = sha
        rows.extend(video_rows)
    return rows


def generate_all(
    video_root: Path, *, seed: int = 0, n_videos: dict[str, int] | None = None, progress: bool = True
) -> dict[str, list[dict]]:
    """generate_pool for every pool in POOLS; n_videos overrides sizes per pool name."""
    sizes = dict(n_videos or {})
    for name in sizes:
        _pool(name)
    return {name: generate_pool(name, video_root, n_videos=sizes.get(name), seed=seed, progress=progress)
            for name in POOLS}
