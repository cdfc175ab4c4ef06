"""`vidsme challenge build | reveal | verify`: a sealed, test-only challenge round (docs/CHALLENGE.md).

From a secret (a file of at least 32 random bytes) every seed is derived with a keyed hash
(HMAC-SHA256(secret, "vidsme-challenge-v1/<purpose>")): the synthetic generator of each pool,
the member/non-member draw of each split, the training of the base and of each target. The
build then does what `make demo` does, on fresh content: four pools (challenge-mcqa, -oeqa,
-caption, -pretrain) from the same generator under their own namespaces, leaving out any
scene whose title, question or caption (or whole scene) is one of the public synth-* pools',
the tiny base and the three targets with the demo's recipes, and their features at the demo
suite's frame counts, template, slices and views.

Layout of the challenge folder DIR:

    private/   (mode 0700) what the evaluator needs and nobody else may see:
        challenge.json   the build record: secret sha256, settings, seeds, stages, checks, provenance
        splits/          manifests (labels) + cards: the splits dir while building (VIDSME_SPLITS_DIR)
        videos/          the generated mp4s
        models/          tiny-base and the three targets
        cache/           video statistics and feature caches (the suite in suite.yaml reads them)
        suite.yaml       the suite config of the extraction (and of the evaluation)
    public/    what may be published before the reveal:
        challenge.json   sizes, targets and roles, the commitments (sha256 of the secret, of each
                         manifest and each model folder; counts), the checks made, provenance
        splits/<name>/card.json     counts and manifest sha256, no seed, no row
        targets/<name>/target.json  the training card without seeds, member data or local paths
    after `reveal`, also: public/secret.bin, public/splits/<name>/manifest.jsonl, public/reveal.json

The secret itself is never copied into DIR: the organiser keeps it (offline), every rerun of
the build needs it again (a different one is refused), and the reveal publishes it. Every
stage is resumable: a rerun reuses finished splits (same source, manifest and videos),
models (same config hash) and feature batches, and continues a killed training from its last
checkpoint.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from typing import TYPE_CHECKING

from vidsme import __version__
from vidsme.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic
from vidsme.errors import SplitError, VidsmeError
from vidsme.names import did_you_mean
from vidsme.provenance import sha256_file
from vidsme.paths import SPLITS_DIR_ENV, using_splits_dir

if TYPE_CHECKING:
    from vidsme.benchmark.config import SuiteConfig
    from vidsme.data_splits.registry import Split

CHALLENGE_VERSION = 1
SECRET_MIN_BYTES = 32
SEED_DOMAIN = "vidsme-challenge-v1"
PRIVATE, PUBLIC = "private", "public"
RECORD_FILE = "challenge.json"
REVEAL_FILE = "reveal.json"
SECRET_FILE = "secret.bin"
SUITE_FILE = "suite.yaml"
# Rows per label per target: with a quarter of the videos held out for feedback, the final part keeps
# 1,000 non-member rows per target, so TPR at 1% FPR rests on 10 false positives where it is ranked.
DEFAULT_SIZE = 1334
DEFAULT_FEEDBACK_FRACTION = 0.25
FEEDBACK_RULE = ("before the reveal the public board shows, per entry, one number: the entry's primary metric on "
                 "the feedback part (AUC where that part cannot resolve it), rounded to {resolution:g}, and only when "
                 "it beats the same submitter's best released number on that target by more than {resolution:g} "
                 "(the Ladder of Blum and Hardt, 2015); no ROC, score, CI, rank or other metric of challenge data is "
                 "published before the reveal. The final part decides the ranks, published at the reveal.")
PRETRAIN_POOL = "challenge-pretrain"
BASE_NAME = "tiny-base"
SKIP_RULE = ("a scene is left out (the next index is tried) when its caption or the whole scene (everything but "
             "pool, index, seed and text) equals one of the public synth-* pools' (seed 0, default sizes); questions "
             "are written from the frames in a closed vocabulary, so they repeat across pools by design")
FEEDBACK_RESOLUTION = 0.01  # feedback numbers are rounded to this, and released only above a best by more
TEST_ONLY = ("none: a challenge is test-only, every row is a test row; its development set is the public demo "
             "(make demo), so every entry has a fixed configuration chosen there")


@dataclass(frozen=True)
class ChallengeTarget:
    """One target of a challenge: the demo's recipe (a config under configs/targets/) on a challenge split."""

    name: str
    role: str  # full | lora | projector
    split: str
    config: str  # relative to the configs folder


TARGETS: tuple[ChallengeTarget, ...] = (
    ChallengeTarget("mcqa-full", "full", "challenge-mcqa", "targets/mcqa-full.yaml"),
    ChallengeTarget("oeqa-lora", "lora", "challenge-oeqa", "targets/oeqa-lora.yaml"),
    ChallengeTarget("caption-projector", "projector", "challenge-caption", "targets/caption-projector.yaml"),
)
BASE_CONFIG, SUITE_CONFIG = "base/tiny.yaml", "suites/demo.yaml"
# What the challenge changes in the demo's recipes, before any --set: at 1,334 members the demo's 12 epochs
# leave the full fine-tune barely leaking (AUC 0.55 at 1,000 members); 30 epochs make it leak measurably
# (loss AUC 0.84, TPR@5%FPR 0.15 at 1,000 + 1,000, docs/CHALLENGE.md) for ~400 s more training.
CHALLENGE_RECIPE: tuple[str, ...] = ("mcqa-full.optim.epochs=30",)
SPLITS: tuple[str, ...] = tuple(t.split for t in TARGETS)
POOL_NAMES: tuple[str, ...] = (*SPLITS, PRETRAIN_POOL)

# Keys the challenge sets itself (an override of them is refused: it would break the round).
_FORCED = {
    "base": ("name", "output_dir", "data.split", "data.video_root", "seed", "model.seed"),
    "target": ("name", "base", "output_dir", "strategy", "data.split", "data.video_root", "seed"),
    "suite": ("name", "output_dir", "cache_dir", "targets"),
}


@dataclass(frozen=True)
class ChallengeSettings:
    """What a challenge is built with besides the secret (recorded; a rerun must repeat it).

    Attributes:
        size: member rows and non-member rows per target (the pools are sized from it).
        pretrain_videos: videos of the base's pretraining pool (the demo's 240 by default).
        overrides: `key=value` overrides, each prefixed by where it goes: `base.` (the tiny base
            config), `targets.` (every target), `<target name>.` (one target), `suite.` (extraction).
        configs: folder holding base/tiny.yaml, targets/*.yaml and suites/demo.yaml.
        feedback_fraction: share of each split's member and of its non-member videos held out as the
            feedback part (drawn from the secret); the rest, the final part, decides the ranks.
        max_submissions: code submissions each submitter may make in the round.
        max_families: families one submitted file may enter (each is an entry on the feedback board).
    """

    size: int = DEFAULT_SIZE
    pretrain_videos: int = 240
    overrides: tuple[str, ...] = ()
    configs: Path = Path("configs")
    feedback_fraction: float = DEFAULT_FEEDBACK_FRACTION
    max_submissions: int = 3
    max_families: int = 2

    def all_overrides(self) -> tuple[str, ...]:
        """CHALLENGE_RECIPE, then the round's own overrides (a later one wins)."""
        return (*CHALLENGE_RECIPE, *self.overrides)

    def record(self) -> dict:
        """The settings as recorded in challenge.json (the configs folder by its files' sha256)."""
        recipes = (BASE_CONFIG, SUITE_CONFIG, *(t.config for t in TARGETS))
        files = {rel: _sha256_file(self.configs / rel) for rel in recipes}
        return {"size": self.size, "pretrain_videos": self.pretrain_videos, "overrides": list(self.overrides),
                "recipe": list(CHALLENGE_RECIPE), "configs": files, "feedback_fraction": self.feedback_fraction,
                "limits": {"submissions_per_submitter": self.max_submissions, "families_per_file": self.max_families}}

    def check(self) -> None:
        """VidsmeError for settings no round can run with."""
        if not 0 < self.feedback_fraction < 0.9:
            raise VidsmeError(f"--feedback-fraction must be in (0, 0.9), got {self.feedback_fraction}")
        if self.max_submissions < 1 or self.max_families < 1:
            raise VidsmeError(f"--max-submissions ({self.max_submissions}) and --max-families ({self.max_families}) "
                              "must be at least 1")


def pool_sizes(size: int, pretrain_videos: int = 240) -> dict[str, int]:
    """Videos per pool so that every target has at least `size` member and `size` non-member rows:
    1 row per video for mcqa and caption (2·size videos), 2 for oeqa (size videos, rounded up to even)."""
    if size < 2:
        raise VidsmeError(f"--size must be at least 2 (member rows per target), got {size}")
    if pretrain_videos < 1:
        raise VidsmeError(f"--pretrain-videos must be at least 1, got {pretrain_videos}")
    return {"challenge-mcqa": 2 * size, "challenge-oeqa": 2 * ((size + 1) // 2), "challenge-caption": 2 * size,
            PRETRAIN_POOL: pretrain_videos}


# ----------------------------------------------------------------------------- secret and seeds
def _sha256_file(path: Path) -> str:
    if not Path(path).is_file():
        raise VidsmeError(f"{path} does not exist: run from the repository root (the demo's configs/), "
                          "or pass --configs DIR")
    return sha256_file(path)


def new_secret(path: Path) -> None:
    """Write 32 bytes from os.urandom to `path`, mode 0600; refuses to overwrite anything."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise VidsmeError(f"{path} already exists; a secret is never overwritten: drop --new-secret to build with "
                          "it, or give another --secret path") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(os.urandom(SECRET_MIN_BYTES))


def read_secret(path: Path) -> bytes:
    """The secret's bytes; VidsmeError naming the file when it is missing or shorter than 32 bytes."""
    path = Path(path)
    if not path.is_file():
        raise VidsmeError(f"secret {path} does not exist; create one with --new-secret (32 random bytes)")
    data = path.read_bytes()
    if len(data) < SECRET_MIN_BYTES:
        raise VidsmeError(f"secret {path} holds {len(data)} bytes; a secret needs at least {SECRET_MIN_BYTES} "
                          "random bytes: create one with --new-secret (or `head -c 32 /dev/urandom > FILE`)")
    return data


def derive_seed(secret: bytes, purpose: str, bits: int = 64) -> int:
    """The seed for `purpose`: the first `bits` bits of HMAC-SHA256(secret, "vidsme-challenge-v1/<purpose>")."""
    digest = hmac.new(secret, f"{SEED_DOMAIN}/{purpose}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - bits)


def seed_purposes() -> dict[str, int]:
    """Every seed of a challenge: purpose -> bits (training seeds fit numpy's 32-bit legacy seeding)."""
    purposes = {f"generator:{p}": 64 for p in POOL_NAMES}
    purposes.update({f"member-draw:{s}": 64 for s in SPLITS})
    purposes.update({f"feedback:{s}": 64 for s in SPLITS})
    purposes.update({f"train:{name}": 31 for name in (BASE_NAME, *(t.name for t in TARGETS))})
    purposes[f"init:{BASE_NAME}"] = 31  # the tiny base's weight initialisation
    return purposes


def derive_seeds(secret: bytes) -> dict[str, int]:
    """Every seed of a challenge, by purpose."""
    return {purpose: derive_seed(secret, purpose, bits) for purpose, bits in seed_purposes().items()}


# ----------------------------------------------------------------------------- fresh content
@dataclass
class PublicReference:
    """The texts and scenes of the public synth-* pools (seed 0, default sizes), regenerated without
    rendering: a challenge scene that repeats any of them is skipped."""

    questions: set[str] = field(default_factory=set)
    captions: set[str] = field(default_factory=set)
    answers: set[str] = field(default_factory=set)
    scenes: set = field(default_factory=set)
    n_videos: dict[str, int] = field(default_factory=dict)

    def collides(self, spec, rows: list[dict]) -> bool:
        """Whether a challenge scene repeats a public scene or caption (the skip rule). Questions are not compared:
        without text keys they are written from the frames in a closed vocabulary and repeat by design."""
        return (_scene(spec) in self.scenes
                or any(r["caption"] is not None and r["caption"] in self.captions for r in rows))


def _scene(spec) -> object:
    """A scene without its identity and text: equal scenes render equal frames."""
    return dataclasses.replace(spec, pool="", index=0, seed=0, video_id="", title="", filmed_by="", place="",
                               phrase="")


def public_reference() -> PublicReference:
    """Regenerate the public pools' texts and scenes (about 1 s: nothing is rendered)."""
    from vidsme.data_splits.synthetic import POOLS, select_videos

    ref = PublicReference()
    for pool in POOLS.values():
        chosen = select_videos(pool.name, pool.n_videos, 0)
        ref.n_videos[pool.name] = len(chosen)
        for spec, rows in chosen:
            ref.scenes.add(_scene(spec))
            for row in rows:
                if row["task"] == "caption":
                    ref.captions.add(row["caption"])
                else:
                    ref.questions.add(row["question"])
                    ref.answers.add(row["answer"])
    return ref


def _public_manifests() -> list[Path]:
    """Manifests of public synth-* splits built on this machine (the package's folder and the
    caller's VIDSME_SPLITS_DIR), for the checksum comparison."""
    from vidsme.data_splits import registry
    from vidsme.data_splits.synthetic import POOLS

    folders = [Path(registry.__file__).resolve().parent]
    if os.environ.get(SPLITS_DIR_ENV):
        folders.append(Path(os.environ[SPLITS_DIR_ENV]).resolve())
    found = []
    for folder in dict.fromkeys(folders):
        found += [folder / name / "manifest.jsonl" for name in POOLS if (folder / name / "manifest.jsonl").is_file()]
    return found


# ----------------------------------------------------------------------------- small helpers
def _json_text(data: object) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _write_if_changed(path: Path, text: str) -> bool:
    """Write `text` atomically unless the file already holds it (reruns keep mtimes); True if written."""
    path = Path(path)
    if path.is_file() and path.read_bytes() == text.encode("utf-8"):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)
    return True


def _read_json(path: Path, fix: str) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VidsmeError(f"{path} does not exist; {fix}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise VidsmeError(f"{path} is unreadable ({err}); {fix}") from None
    if not isinstance(data, dict):
        raise VidsmeError(f"{path} is not a JSON object; {fix}")
    return data


def _relative(obj: object, root: Path) -> object:
    """`obj` with every string naming a path under `root` rewritten relative to it (no local paths published)."""
    prefix = str(root.resolve())
    if isinstance(obj, dict):
        return {k: _relative(v, root) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_relative(v, root) for v in obj]
    if isinstance(obj, str) and (obj == prefix or obj.startswith(prefix + os.sep)):
        return os.path.relpath(obj, prefix)
    return obj


def _route_overrides(overrides: Sequence[str]) -> dict[str, list[str]]:
    """Split `--set` overrides by destination: "base", "suite", and one list per target name."""
    names = [t.name for t in TARGETS]
    routed: dict[str, list[str]] = {"base": [], "suite": [], **{n: [] for n in names}}
    for text in overrides:
        where, _, rest = text.partition(".")
        if "=" not in text or not rest or "=" in where:
            raise VidsmeError(f"--set {text!r}: expected PREFIX.KEY=VALUE with PREFIX base, targets, suite or a "
                              f"target ({', '.join(names)}), e.g. base.optim.epochs=1")
        key = rest.split("=", 1)[0].strip()
        kind = "base" if where == "base" else "suite" if where == "suite" else "target"
        if kind == "target" and where != "targets" and where not in names:
            raise VidsmeError(f"--set {text!r}: unknown prefix {where!r}."
                              f"{did_you_mean(where, ['base', 'targets', 'suite', *names])} Prefixes: base, targets, "
                              f"suite, {', '.join(names)}")
        forced = [k for k in _FORCED[kind] if key == k or key.startswith(k + ".") or k.startswith(key + ".")]
        if forced:
            raise VidsmeError(f"--set {text!r}: the challenge sets {forced[0]!r} itself (paths, splits and seeds "
                              "follow from --out and the secret); drop this override")
        for dest in (names if where == "targets" else [where]):
            routed[dest].append(rest)
    return routed


def _check_recipes(settings: ChallengeSettings, routed: dict[str, list[str]], sizes: dict[str, int]) -> None:
    """Load every recipe with its overrides (typos fail here, with did-you-mean) and check that each
    training set fills at least one optimizer step, before anything is written."""
    from vidsme.benchmark.config import SuiteConfig
    from vidsme.config import load_config
    from vidsme.train.config import BaseConfig, TargetConfig

    placeholders = ["output_dir=unset"]
    base = load_config(BaseConfig, settings.configs / BASE_CONFIG, [*routed["base"], *placeholders])
    checks = [(BASE_NAME, "base", base.optim, 2 * sizes[PRETRAIN_POOL], "--pretrain-videos")]
    for t in TARGETS:
        cfg = load_config(TargetConfig, settings.configs / t.config, [*routed[t.name], *placeholders, "base=unset"])
        checks.append((t.name, t.name, cfg.optim, settings.size, "--size"))
    load_config(SuiteConfig, settings.configs / SUITE_CONFIG, routed["suite"])
    for name, prefix, optim, rows, flag in checks:
        per_step = optim.micro_batch_size * optim.grad_accum
        if rows < per_step:
            raise VidsmeError(f"{name} would train on {rows} rows, fewer than one optimizer step of {per_step} "
                              f"(optim.micro_batch_size x grad_accum): raise {flag}, or --set "
                              f"{prefix}.optim.micro_batch_size=N with N <= {rows}")


# ----------------------------------------------------------------------------- the build
@dataclass
class ChallengePaths:
    """The folders of a challenge under DIR."""

    root: Path

    @property
    def private(self) -> Path:
        return self.root / PRIVATE

    @property
    def public(self) -> Path:
        return self.root / PUBLIC

    @property
    def splits(self) -> Path:
        return self.private / "splits"

    @property
    def videos(self) -> Path:
        return self.private / "videos"

    @property
    def models(self) -> Path:
        return self.private / "models"

    @property
    def cache(self) -> Path:
        return self.private / "cache"


def _open_private(paths: ChallengePaths, secret_sha: str, settings: dict, log: Callable[[str], None]) -> dict:
    """Create private/ (0700) and public/, or check that an existing build used this secret and these settings."""
    record_path = paths.private / RECORD_FILE
    if (paths.public / RECORD_FILE).is_file() and not record_path.is_file():
        raise VidsmeError(f"{paths.public / RECORD_FILE} exists but {record_path} does not: the private part of that "
                          "challenge is gone; build into another --out")
    paths.private.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.private, 0o700)  # mkdir's mode is subject to the umask; chmod is not
    paths.public.mkdir(parents=True, exist_ok=True)
    if not record_path.is_file():
        return {"challenge_version": CHALLENGE_VERSION, "secret_sha256": secret_sha, "settings": settings,
                "stages": {}}
    record = _read_json(record_path, f"delete {paths.root} and build again (same secret, same settings)")
    if record.get("secret_sha256") != secret_sha:
        raise VidsmeError(f"{paths.root} was built from another secret (sha256 {str(record.get('secret_sha256'))[:12]}"
                          f"..., this one is {secret_sha[:12]}...): give the same --secret, or build into another "
                          "--out")
    if record.get("settings") != settings:
        old, new = record.get("settings") or {}, settings
        what = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        then, now = (json.dumps(v.get(what[0])) for v in (old, new))
        shown = f"{then} then, {now} now" if len(then) + len(now) < 160 else "see private/challenge.json"
        raise VidsmeError(f"{paths.root} was built with other settings ({', '.join(what)}: {shown}): rerun with the "
                          "same --size, --pretrain-videos, --set and configs, or build into another --out")
    log(f"resuming the challenge in {paths.root} (same secret, same settings)")
    return record


def _save_record(paths: ChallengePaths, record: dict) -> None:
    write_json_atomic(paths.private / RECORD_FILE, record)


def draw_feedback(rows: list[dict], fraction: float, seed: int) -> list[str]:
    """The feedback part of a split: of its member videos and of its non-member videos, the first
    floor(fraction x count) (at least one of two or more) in the order of sha256(seed, video). Sorted."""
    chosen = []
    for label in ("member", "nonmember"):
        videos = sorted({r["video"] for r in rows if r["label"] == label},
                        key=lambda v: hashlib.sha256(f"{SEED_DOMAIN}/feedback/{seed}/{v}".encode()).digest())
        chosen += videos[: max(1, int(fraction * len(videos)))] if len(videos) >= 2 else []
    return sorted(chosen)


def feedback_record(rows: list[dict], fraction: float, seed: int, purpose: str) -> dict:
    """What a split card records of its feedback part (the public card keeps neither the seed nor the videos,
    only their sha256, until the reveal)."""
    from vidsme.data_splits.manifest import count_by_label

    videos = draw_feedback(rows, fraction, seed)
    held = set(videos)
    return {"fraction": fraction, "seed": seed, "seed_purpose": purpose, "videos": videos,
            "videos_sha256": hashlib.sha256("".join(f"{v}\n" for v in videos).encode()).hexdigest(),
            "counts": count_by_label([r for r in rows if r["video"] in held]),
            "final_counts": count_by_label([r for r in rows if r["video"] not in held])}


def _build_pool(name: str, n_videos: int, seeds: dict[str, int], paths: ChallengePaths,
                reference: Callable[[], PublicReference], progress: bool,
                feedback_fraction: float = DEFAULT_FEEDBACK_FRACTION) -> tuple[Split, bool, list[int]]:
    """Build (or find up to date) one challenge pool or split; returns (split, rebuilt, skipped indices)."""
    from vidsme.data_splits.build import manifest_rows, split_state
    from vidsme.data_splits.create import draw_members
    from vidsme.data_splits.manifest import (
        CARD_FILE,
        MANIFEST_FILE,
        SplitCard,
        count_by_label,
        frame_record,
        write_manifest,
    )
    from vidsme.data_splits.registry import load_split
    from vidsme.data_splits.synthetic import CHALLENGE_POOLS, SYNTH_N_FRAMES, generate_pool, generator_source

    pool = CHALLENGE_POOLS[name]
    gen_seed = seeds[f"generator:{name}"]
    source = {**generator_source(pool), "pool": name,
              "seed": gen_seed, "seed_purpose": f"generator:{name}", "n_videos": n_videos,
              "video_root": str(paths.videos.resolve()), "skip": SKIP_RULE}
    if split_state(name, source, paths.videos, 0) == "fresh":
        return load_split(name), False, []
    ref = reference()
    skipped: list[int] = []

    def skip(spec, rows) -> bool:
        if ref.collides(spec, rows):
            skipped.append(spec.index)
            return True
        return False

    shutil.rmtree(paths.videos / name, ignore_errors=True)  # a stale or partial pool: its files are redone
    rows, notes = manifest_rows(generate_pool(name, paths.videos, n_videos=n_videos, seed=gen_seed,
                                              progress=progress, skip=skip))
    if skipped:
        notes.append(f"{len(skipped)} scene(s) skipped: they repeated a public text or scene.")
    if pool.task == "pretrain":
        kind = "pool"
        drawn: dict = {"method": "none (pretraining pool of the base: never member nor non-member)"}
        description = "Sealed challenge: the tiny base's pretraining pool (fresh synthetic videos and text)."
    else:
        kind = "split"
        purpose = f"member-draw:{name}"
        draw_members(rows, 0.5, seeds[purpose])
        drawn = {"method": "iid_by_video", "member_fraction": 0.5, "seed": seeds[purpose], "seed_purpose": purpose,
                 "test_only": True, "partition": TEST_ONLY,
                 "feedback": feedback_record(rows, feedback_fraction, seeds[f"feedback:{name}"], f"feedback:{name}")}
        description = (f"Sealed challenge: synthetic {pool.task} data (fresh videos and text), members and "
                       "non-members drawn from a secret-derived seed; test-only.")
    folder = paths.splits / name
    card = SplitCard(name=name, kind=kind, version=1, description=description, drawn=drawn, source=source,
                     counts=count_by_label(rows), manifest_sha256="", notes=notes,
                     frames=frame_record({r["video"]: SYNTH_N_FRAMES for r in rows}))
    card.manifest_sha256 = write_manifest(folder / MANIFEST_FILE, rows)  # the manifest first: a card names a file
    card.write(folder / CARD_FILE)
    return load_split(name), True, skipped


def _check_fresh(splits: dict[str, Split], reference: PublicReference) -> dict:
    """Assert the built pools share no caption or video checksum with the public ones (nor a checksum with each
    other); returns what was checked, for the records."""
    from vidsme.data_splits.manifest import read_manifest

    rows_of = {name: split.rows() for name, split in splits.items()}
    problems = []
    sha_owner: dict[str, str] = {}
    for rows in rows_of.values():
        for row in rows:
            if row["task"] == "caption" and row["caption"] in reference.captions:
                problems.append(f"{row['id']}: caption is a public one")
            owner = sha_owner.setdefault(row["video_sha256"], row["video"])
            if owner != row["video"]:
                problems.append(f"{row['video']} and {owner} have the same checksum")
    compared = []
    for manifest in _public_manifests():
        public_rows = read_manifest(manifest, pool=manifest.parent.name == "synth-pretrain")
        shared = sorted({r["video_sha256"] for r in public_rows} & set(sha_owner))
        problems += [f"{sha_owner[s]}: same checksum as a video of {manifest}" for s in shared]
        compared.append({"manifest": manifest.parent.name, "sha256": sha256_file(manifest),
                         "videos": len({r["video_sha256"] for r in public_rows})})
    if problems:
        raise VidsmeError("the challenge's content is not fresh: " + "; ".join(problems[:5])
                          + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))
    answers = sum(r["answer"] in reference.answers for rows in rows_of.values() for r in rows if r["answer"])
    n_answers = sum(1 for rows in rows_of.values() for r in rows if r["answer"])
    qa = [r for rows in rows_of.values() for r in rows if r["task"] != "caption"]
    questions = sum(r["question"] in reference.questions for r in qa)
    return {
        "public_pools": reference.n_videos,
        "checked": ["captions: none is a public one (public texts regenerated, seed 0, default sizes)",
                    "scenes: none equals a public scene (regenerated, nothing rendered)",
                    "video sha256: unique across the challenge's pools",
                    "video sha256 against the public manifests built on this machine: "
                    + (", ".join(c["manifest"] for c in compared) if compared else "none found, not compared")],
        "public_manifests_compared": compared,
        "answers_also_public": {"rows": answers, "of": n_answers,
                                "why_allowed": "short answers come from a closed set (shapes, directions, counts)"},
        "questions_also_public": {"rows": questions, "of": len(qa),
                                  "why_allowed": "questions are written from the frames in a closed vocabulary"},
    }


def _verify_built(split: Split, videos: Path, progress: bool) -> None:
    """`vidsme splits verify` on a freshly built split (decoding included; a test-only split has no
    dev/test partition to check)."""
    from vidsme.data_splits.verify import verify_split

    report = verify_split(split, videos, decode=True, progress=progress)
    if report.problems:
        raise VidsmeError(f"challenge split {split.name} does not verify: "
                          + "; ".join(p.format() for p in report.problems) + f". Delete {split.path} and rerun the "
                          "build")


def _train(paths: ChallengePaths, settings: ChallengeSettings, seeds: dict[str, int],
           routed: dict[str, list[str]], log: Callable[[str], None], progress: bool) -> dict:
    """Pretrain the base and fine-tune the three targets (each skipped when up to date); returns per model
    "trained" or "reused"."""
    from vidsme.config import load_config
    from vidsme.train.config import BaseConfig, TargetConfig
    from vidsme.train.recipes import train_or_reuse

    done: dict[str, str] = {}
    base_dir = paths.models / BASE_NAME
    forced = [f"name={BASE_NAME}", f"output_dir={base_dir}", f"data.split={PRETRAIN_POOL}",
              f"data.video_root={paths.videos}", f"seed={seeds[f'train:{BASE_NAME}']}",
              f"model.seed={seeds[f'init:{BASE_NAME}']}",
              "probe.split=null"]  # its probe pool is public (the demo's base card has the measurement)
    cfg = load_config(BaseConfig, settings.configs / BASE_CONFIG, [*routed["base"], *forced])
    done[BASE_NAME] = "trained" if train_or_reuse(cfg, progress=progress) else "reused"
    log(f"  {BASE_NAME}: {done[BASE_NAME]}")
    for t in TARGETS:
        out = paths.models / t.name
        forced = [f"name={t.name}", f"base={base_dir}", f"output_dir={out}", f"data.split={t.split}",
                  f"data.video_root={paths.videos}", f"seed={seeds[f'train:{t.name}']}"]
        cfg = load_config(TargetConfig, settings.configs / t.config, [*routed[t.name], *forced])
        if cfg.strategy != t.role:
            raise VidsmeError(f"{settings.configs / t.config}: strategy {cfg.strategy!r}, but the challenge's "
                              f"{t.name} target is the {t.role} one; restore the demo's config")
        done[t.name] = "trained" if train_or_reuse(cfg, progress=progress) else "reused"
        log(f"  {t.name}: {done[t.name]}")
    return done


def suite_config(paths: ChallengePaths, settings: ChallengeSettings,
                 routed: dict[str, list[str]] | None = None) -> SuiteConfig:
    """The demo suite pointed at the challenge's targets, splits and private cache (what the extraction uses,
    written to private/suite.yaml for the evaluation)."""
    from vidsme.benchmark.config import SuiteConfig, SuiteTarget
    from vidsme.config import load_config

    routed = routed if routed is not None else _route_overrides(settings.all_overrides())
    forced = ["name=challenge", f"output_dir={paths.private / 'benchmark'}", f"cache_dir={paths.cache}"]
    cfg = load_config(SuiteConfig, settings.configs / SUITE_CONFIG, [*routed["suite"], *forced])
    targets = [SuiteTarget(name=t.name, path=paths.models / t.name, split=t.split, video_root=paths.videos)
               for t in TARGETS]
    return dataclasses.replace(cfg, targets=targets)


def _extract(paths: ChallengePaths, cfg: SuiteConfig, progress: bool, log: Callable[[str], None]) -> dict:
    """Features of every row of every target at every frame count, into private/cache (resumable)."""
    from vidsme.benchmark.extract import World
    from vidsme.benchmark.suite import extract_features, load_target_models, usable_rows
    from vidsme.data_splits.registry import load_split

    caches: dict[str, dict] = {}
    for t in cfg.targets:
        split = load_split(t.split)
        rows, excluded = usable_rows(split.rows(), Path(t.video_root), cfg, t.name, progress)
        if excluded.reasons:
            raise VidsmeError(f"challenge target {t.name}: {len(excluded.reasons)} video(s) cannot be used "
                              f"({', '.join(sorted(excluded.reasons)[:3])}); a challenge evaluates every row: "
                              f"delete {split.path} and rerun the build")
        models = load_target_models(t, cfg)
        caches[t.name] = {}
        for n_frames in cfg.frame_counts:
            cache, _, written = extract_features(t, cfg, models, split, rows, Path(t.video_root), n_frames,
                                                 world=World(), progress=progress)
            caches[t.name][str(n_frames)] = {"folder": os.path.relpath(cache.folder, paths.private),
                                             "batches_written": written}
        log(f"  {t.name}: " + ", ".join(f"{n} frames {'extracted' if c['batches_written'] else 'reused'}"
                                         for n, c in caches[t.name].items()))
        del models
    return caches


def _public_split_card(card_path: Path, revealed: bool = False) -> dict:
    """A split card without its seeds and local paths: counts, manifest sha256, how it was drawn; its
    feedback part by counts and the sha256 of its video list (`revealed`: with the list and seed)."""
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card["source"] = {k: v for k, v in card["source"].items() if k not in ("seed", "video_root")}
    card["drawn"] = {k: v for k, v in card["drawn"].items() if k != "seed"}
    if isinstance(card.get("frames"), dict):  # the frame range, without naming a video
        card["frames"] = {k: v for k, v in card["frames"].items() if k != "longest"}
    feedback = card["drawn"].get("feedback")
    if isinstance(feedback, dict) and not revealed:
        card["drawn"]["feedback"] = {k: v for k, v in feedback.items() if k not in ("seed", "videos")}
    return card


# Fields of target.json that may be published: aggregate numbers and hashes, no seed, no per-step
# curve, no per-sample data; the config goes out with its seed and local paths removed.
_PUBLIC_TARGET_FIELDS = ("name", "kind", "strategy", "trainable_parameters", "split", "trained_ids_sha256",
                         "n_trained_samples", "epochs", "steps", "world_size", "final_train_loss",
                         "loss_members_probe", "loss_heldout_nonmembers", "n_heldout_nonmembers",
                         "generalisation_gap", "train_seconds", "vidsme", "git_commit", "libraries")


def _public_config(config: dict, root: Path, purpose: str) -> dict:
    config = _relative(dict(config), root)
    config["seed"] = f"secret-derived ({purpose})"
    if isinstance(config.get("model"), dict) and "seed" in config["model"]:  # the base's initialisation
        config["model"] = {**config["model"], "seed": f"secret-derived (init:{config['name']})"}
    return config


def _public_target_card(card_path: Path, role: str, root: Path) -> dict:
    card = json.loads(card_path.read_text(encoding="utf-8"))
    out = {k: card[k] for k in _PUBLIC_TARGET_FIELDS if k in card}
    out["role"] = role
    out["base"] = {"name": BASE_NAME, "sha256": card["base"]["sha256"]}
    out["config"] = _public_config(card["config"], root, f"train:{card['name']}")
    out["card_sha256"] = sha256_file(card_path)  # the feature caches are keyed by it
    return out


def _resolution_note(record: dict, splits: dict[str, Split]) -> dict[str, str]:
    """Per split: whether its final part holds the non-member rows the declared primary metric needs."""
    metric = record["suite"].get("primary_metric", "auc")
    if not metric.startswith("tpr@"):
        return {name: f"ranked by {metric}: any size resolves it" for name in SPLITS}
    fpr = float(metric[4:].split("%")[0]) / 100
    need = int(math.ceil(record["suite"].get("min_false_positives", 10) / fpr))
    out = {}
    for name in SPLITS:
        final = (splits[name].card.drawn.get("feedback") or {}).get("final_counts") or {}
        have = (final.get("rows") or {}).get("nonmember", 0)
        out[name] = (f"{metric} at row level: {have} non-member rows in the final part, {need} needed: "
                     + ("resolved" if have >= need else "NOT resolved, the final ranks fall back to AUC"))
    return out


def _write_public(paths: ChallengePaths, settings: ChallengeSettings, record: dict,
                  splits: dict[str, Split]) -> list[str]:
    """Write public/ (only files whose content changed); returns the files written."""
    from vidsme.data_splits.manifest import CARD_FILE
    from vidsme.provenance import tree_sha256
    from vidsme.train.recipes import BASE_CARD_FILE
    from vidsme.train.recipes import CARD_FILE as TARGET_CARD

    written = []
    for name, split in splits.items():
        path = paths.public / "splits" / name / CARD_FILE
        if _write_if_changed(path, _json_text(_public_split_card(split.path / CARD_FILE))):
            written.append(str(path.relative_to(paths.root)))
    for t in TARGETS:
        path = paths.public / "targets" / t.name / TARGET_CARD
        card = _public_target_card(paths.models / t.name / TARGET_CARD, t.role, paths.root)
        if _write_if_changed(path, _json_text(card)):
            written.append(str(path.relative_to(paths.root)))
    base_card = json.loads((paths.models / BASE_NAME / BASE_CARD_FILE).read_text(encoding="utf-8"))
    suite = record["suite"]
    public = {
        "challenge_version": CHALLENGE_VERSION,
        "name": paths.root.resolve().name,
        "test_only": True,
        "protocol": ("test-only: every row of every split is a test row, there is no dev/test partition. The "
                     "development set is the public demo (make demo: synth-mcqa, synth-oeqa, synth-caption and "
                     "their targets); an entry is one fixed configuration (attack, slice, frame count, level) "
                     "chosen there, scored once here."),
        "size": {"member_rows_per_target": settings.size, "nonmember_rows_per_target": settings.size,
                 "videos": record["pools"]},
        "targets": [{"name": t.name, "role": t.role, "strategy": t.role, "split": t.split,
                     "task": splits[t.split].rows()[0]["task"], "counts": splits[t.split].card.counts,
                     "card": f"targets/{t.name}/{TARGET_CARD}"} for t in TARGETS],
        "base": {"name": BASE_NAME, "pool": PRETRAIN_POOL, "counts": splits[PRETRAIN_POOL].card.counts,
                 "config": _public_config(base_card["config"], paths.root, f"train:{BASE_NAME}"),
                 "steps": base_card.get("steps"), "final_train_loss": base_card.get("final_train_loss")},
        "features": {k: suite[k] for k in ("frame_counts", "template", "slices", "views", "beta1", "beta2",
                                           "batch_size", "dtype")},
        "commitments": {
            "algorithm": "sha256",
            "secret_sha256": record["secret_sha256"],
            "splits": {name: {"manifest_sha256": split.card.manifest_sha256, "counts": split.card.counts}
                       for name, split in splits.items()},
            "models": {name: tree_sha256(paths.models / name) for name in (BASE_NAME, *(t.name for t in TARGETS))},
            "verify": "after the reveal: `vidsme challenge verify DIR` (secret.bin and the manifests in public/)",
        },
        "seeds": {"derivation": f"HMAC-SHA256(key=secret, message='{SEED_DOMAIN}/<purpose>'), first 64 bits "
                                "big-endian; training seeds keep the top 31 bits",
                  "purposes": list(seed_purposes())},
        "fresh_content": record["fresh_content"],
        "settings": {"size": settings.size, "pretrain_videos": settings.pretrain_videos,
                     "overrides": list(settings.overrides), "recipe": list(CHALLENGE_RECIPE),
                     "configs": record["settings"]["configs"]},
        "feedback": {"fraction": settings.feedback_fraction, "resolution": FEEDBACK_RESOLUTION,
                     "rule": FEEDBACK_RULE.format(resolution=FEEDBACK_RESOLUTION),
                     "final_part": {name: (splits[name].card.drawn.get("feedback") or {}).get("final_counts")
                                    for name in SPLITS},
                     "resolves": _resolution_note(record, splits)},
        "limits": record["settings"]["limits"],
        "provenance": record["provenance"],
    }
    path = paths.public / RECORD_FILE
    if _write_if_changed(path, _json_text(public)):
        written.append(str(path.relative_to(paths.root)))
    return written


def build_challenge(secret_path: Path, out: Path, settings: ChallengeSettings = ChallengeSettings(),  # noqa: B008
                    *, create_secret: bool = False, progress: bool = True,
                    log: Callable[[str], None] = print) -> Path:
    """Build (or resume) the challenge in `out`; returns public/challenge.json (see the module docstring).

    Raises VidsmeError for a short or missing secret, a secret or settings other than an existing
    build's, an override of a key the challenge sets, or content that is not fresh.
    """
    import yaml

    from vidsme.config import config_to_dict
    from vidsme.provenance import git_commit, library_versions

    paths = ChallengePaths(Path(out).resolve())
    secret_path = Path(secret_path)
    if paths.public.resolve() in (secret_path.resolve(), *secret_path.resolve().parents):
        raise VidsmeError(f"secret {secret_path} is inside {paths.public}, which is published: keep it elsewhere")
    # bad overrides, sizes or configs fail before anything (a new secret included) is written
    settings.check()
    routed = _route_overrides(settings.all_overrides())
    sizes = pool_sizes(settings.size, settings.pretrain_videos)
    settings_record = settings.record()
    _check_recipes(settings, routed, sizes)
    if create_secret:
        new_secret(secret_path)
        log(f"new secret written to {secret_path} (mode 0600): keep it safe, the reveal needs it")
    secret = read_secret(secret_path)
    secret_sha = hashlib.sha256(secret).hexdigest()
    record = _open_private(paths, secret_sha, settings_record, log)
    seeds = derive_seeds(secret)
    now = {"git_commit": git_commit(), "vidsme": __version__, "libraries": library_versions()}
    record.update(pools=sizes, seeds=seeds)
    record.setdefault("provenance", now)  # the build's; a rerun that redoes work adds itself below
    _save_record(paths, record)
    stages = record.setdefault("stages", {})
    total = time.perf_counter()

    def stage(name: str, number: int, what: str) -> float:
        log(f"[{number}/5] {name}: {what}")
        return time.perf_counter()

    def finish(name: str, start: float, summary: dict, redone: bool) -> None:
        entry = stages.get(name, {})
        if redone or "seconds" not in entry:
            entry["seconds"] = round(time.perf_counter() - start, 1)
        entry.update(done=True, last_run="built" if redone else "reused", **summary)
        stages[name] = entry
        _save_record(paths, record)
        log(f"      {name}: {'done' if redone else 'up to date'} ({entry['seconds']} s when built)")

    with using_splits_dir(paths.splits):
        counts = ", ".join(f"{k} {v}" for k, v in sizes.items())
        t0 = stage("splits", 1, f"4 pools of fresh synthetic videos ({counts})")
        cached: list[PublicReference] = []

        def reference() -> PublicReference:
            if not cached:
                cached.append(public_reference())
            return cached[0]

        splits, rebuilt, skipped = {}, [], {}
        for name in POOL_NAMES:
            split, was_built, skips = _build_pool(name, sizes[name], seeds, paths, reference, progress,
                                                  settings.feedback_fraction)
            splits[name] = split
            if was_built:
                rebuilt.append(name)
                skipped[name] = skips
                _verify_built(split, paths.videos, progress)
            log(f"      {name}: {'built' if was_built else 'up to date'} {split.card.counts}")
        if rebuilt or "fresh_content" not in record:
            skips = {**(record.get("fresh_content") or {}).get("skipped_scenes", {}),
                     **{k: len(v) for k, v in skipped.items()}}
            record["fresh_content"] = {**_check_fresh(splits, reference()), "skipped_scenes": skips}
        finish("splits", t0, {"built": rebuilt}, bool(rebuilt))

        t0 = stage("models", 2, "the tiny base, then mcqa-full / oeqa-lora / caption-projector (the demo's recipes)")
        trained = _train(paths, settings, seeds, routed, log, progress)
        finish("models", t0, {"models": trained}, "trained" in trained.values())

        t0 = stage("features", 3, "every row, every frame count, natural + reversed + reference views")
        cfg = suite_config(paths, settings, routed)
        _write_if_changed(paths.private / SUITE_FILE, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
        caches = _extract(paths, cfg, progress, log)
        views = ["natural", "reversed"] + (["reference"] if cfg.reference_view else [])
        record["suite"] = {"file": SUITE_FILE, "frame_counts": list(cfg.frame_counts), "template": cfg.template,
                           "slices": list(cfg.slices), "views": views, "beta1": cfg.beta1, "beta2": cfg.beta2,
                           "batch_size": cfg.batch_size, "dtype": cfg.dtype, "caches": caches,
                           "primary_metric": cfg.primary_metric, "min_false_positives": cfg.min_false_positives}
        redone = any(c["batches_written"] for per in caches.values() for c in per.values())
        finish("features", t0, {}, redone)

        worked = [name for name in ("splits", "models", "features") if stages[name]["last_run"] == "built"]
        same = all(record["provenance"].get(k) == v for k, v in now.items())
        if worked and not same and now not in record["provenance"].setdefault("resumed_by", []):
            record["provenance"]["resumed_by"].append(now)  # another commit or version finished some stages
        t0 = stage("public", 4, "cards without seeds or member data, and the commitments")
        written = _write_public(paths, settings, record, splits)
        finish("public", t0, {"written": written}, bool(written))
    log(f"[5/5] done in {time.perf_counter() - total:.0f} s: publish {paths.public} only, never {paths.private}; "
        f"keep the secret {secret_path} until `vidsme challenge reveal {paths.root} --secret {secret_path}`")
    return paths.public / RECORD_FILE


# ----------------------------------------------------------------------------- reveal and verify
def _manifest_rows(path: Path, pool: bool) -> list[dict]:
    from vidsme.data_splits.manifest import read_manifest

    try:
        return read_manifest(path, pool=pool)
    except SplitError as err:
        raise VidsmeError(str(err)) from None


def verify_revealed(public: Path, secret: bytes, manifests: dict[str, Path],
                    private: Path | None = None) -> list[str]:
    """Check a challenge against its commitments; returns what was checked, raises VidsmeError naming every
    difference.

    `public` holds challenge.json and the split cards; `manifests` maps each split to its manifest file.
    Checks: the secret's sha256; each manifest's sha256 and counts (against challenge.json and the split
    card); the generator, re-run from the secret's seeds without rendering, gives each manifest's ids and
    texts; the member draw from the secret's seed gives its labels; the target cards name the committed
    manifests. With `private` (the organiser's folder): each video's checksum and each model folder's hash.
    """
    from vidsme.data_splits.build import manifest_rows
    from vidsme.data_splits.create import draw_members
    from vidsme.data_splits.manifest import count_by_label
    from vidsme.data_splits.synthetic import select_videos
    from vidsme.provenance import tree_sha256

    fix = "the commitment does not hold: the published challenge cannot be verified"
    challenge = _read_json(public / RECORD_FILE, "is this a challenge's public folder?")
    commitments = challenge.get("commitments") or {}
    problems, checked = [], []
    if hashlib.sha256(secret).hexdigest() != commitments.get("secret_sha256"):
        raise VidsmeError(f"the secret's sha256 {hashlib.sha256(secret).hexdigest()[:12]}... is not the committed "
                          f"{str(commitments.get('secret_sha256'))[:12]}... ({public / RECORD_FILE}): wrong secret "
                          "file")
    checked.append("secret sha256")
    seeds = derive_seeds(secret)
    reference = public_reference()
    committed = commitments.get("splits") or {}
    for name in POOL_NAMES:
        entry = committed.get(name)
        path = manifests.get(name)
        if entry is None or path is None or not Path(path).is_file():
            problems.append(f"{name}: no commitment or no manifest ({path})")
            continue
        card = _read_json(public / "splits" / name / "card.json", "the public split card is missing")
        sha = sha256_file(path)
        if sha != entry["manifest_sha256"]:
            problems.append(f"{name}: manifest {path} has sha256 {sha[:12]}..., the commitment is "
                            f"{entry['manifest_sha256'][:12]}...: the manifest was changed after the build")
            continue
        if card.get("manifest_sha256") != sha:
            problems.append(f"{name}: the split card's manifest_sha256 differs from the commitment")
        rows = _manifest_rows(Path(path), pool=name == PRETRAIN_POOL)
        counts = count_by_label(rows)
        if counts != entry["counts"] or counts != card.get("counts"):
            problems.append(f"{name}: the manifest's counts {counts} differ from the committed {entry['counts']}")
        n_videos = (card.get("source") or {}).get("n_videos")
        chosen = select_videos(name, int(n_videos or 0), seeds[f"generator:{name}"], skip=reference.collides)
        expected, _ = manifest_rows([row for _, video_rows in chosen for row in video_rows])
        keys = ("id", "video", "task", "question", "candidates", "answer", "caption", "source")
        differ = [r["id"] for r, e in zip(rows, expected) if any(r[k] != e[k] for k in keys)]
        if len(rows) != len(expected) or differ:
            problems.append(f"{name}: the generator, seeded from the secret, does not give the manifest's rows "
                            f"({len(expected)} expected, {len(rows)} found; first differing: {differ[:3]})")
            continue
        if name != PRETRAIN_POOL:
            redrawn = [dict(r) for r in rows]
            draw_members(redrawn, 0.5, seeds[f"member-draw:{name}"])
            wrong = [r["id"] for r, e in zip(rows, redrawn) if r["label"] != e["label"]]
            if wrong:
                problems.append(f"{name}: {len(wrong)} label(s) are not the secret's member draw ({wrong[:3]})")
                continue
            feedback = (card.get("drawn") or {}).get("feedback")
            if isinstance(feedback, dict):  # a challenge built before the feedback part had none
                again = feedback_record(rows, float(feedback.get("fraction", 0)), seeds[f"feedback:{name}"], "")
                listed = feedback.get("videos")
                if again["videos_sha256"] != feedback.get("videos_sha256") or (listed is not None
                                                                              and listed != again["videos"]):
                    problems.append(f"{name}: the feedback part is not the secret's draw (its committed sha256 "
                                    f"{str(feedback.get('videos_sha256'))[:12]}...)")
                    continue
        checked.append(f"{name}: manifest sha256, counts, rows re-generated from the secret"
                       + ("" if name == PRETRAIN_POOL else ", member draw and feedback part re-drawn from the secret"))
        if private is not None:
            videos = Path(private) / "videos"
            bad = sorted({r["video"] for r in rows if not (videos / r["video"]).is_file()
                          or sha256_file(videos / r["video"]) != r["video_sha256"]})
            if bad:
                problems.append(f"{name}: {len(bad)} video(s) under {videos} differ from their recorded checksum "
                                f"or are missing ({bad[:3]})")
            else:
                checked.append(f"{name}: every video's sha256 (private/videos)")
    for t in TARGETS:
        card = _read_json(public / "targets" / t.name / "target.json", "the public target card is missing")
        if (card.get("split") or {}).get("manifest_sha256") != (committed.get(t.split) or {}).get("manifest_sha256"):
            problems.append(f"{t.name}: its card's split manifest sha256 is not the committed one")
    checked.append("target cards name the committed manifests")
    if private is not None:
        for name, sha in (commitments.get("models") or {}).items():
            folder = Path(private) / "models" / name
            if not folder.is_dir():
                problems.append(f"model {name}: {folder} is missing")
            elif tree_sha256(folder) != sha:
                problems.append(f"model {name}: {folder} does not hash to the committed {sha[:12]}... "
                                "(retrained or changed after the build)")
        checked.append("model folders hash to their commitments (private/models)")
    if problems:
        raise VidsmeError(f"challenge {public.parent}: {fix}: " + "; ".join(problems))
    return checked


def _publish_final_ranks(paths: ChallengePaths) -> list[str]:
    """Copy the final-part leaderboard (private/results, kept current by every evaluation and submission)
    to public/, over the feedback board; the files published ([] when the round was never evaluated)."""
    results = paths.private / "results"
    published = []
    for ext in ("json", "md", "html"):
        source = results / f"leaderboard.{ext}"
        if source.is_file():
            write_bytes_atomic(paths.public / f"leaderboard.{ext}", source.read_bytes())
            published.append(f"leaderboard.{ext}")
    return published


def reveal_challenge(out: Path, secret_path: Path, *, log: Callable[[str], None] = print) -> Path:
    """End a round: verify the secret and the private manifests against the commitments, then publish the
    secret, the manifests, the feedback videos, the final ranks (the final part's leaderboard, with every
    number and ROC) and a report (public/reveal.json) into public/. Nothing is published when a check
    fails. Returns the report's path."""
    paths = ChallengePaths(Path(out).resolve())
    if not (paths.public / RECORD_FILE).is_file():
        raise VidsmeError(f"{paths.public / RECORD_FILE} does not exist: build the challenge first "
                          f"(`vidsme challenge build --secret FILE --out {paths.root}`)")
    secret = read_secret(secret_path)
    manifests = {name: paths.splits / name / "manifest.jsonl" for name in POOL_NAMES}
    checked = verify_revealed(paths.public, secret, manifests, paths.private)
    write_bytes_atomic(paths.public / SECRET_FILE, secret)
    for name, path in manifests.items():
        _write_if_changed(paths.public / "splits" / name / "manifest.jsonl", path.read_text(encoding="utf-8"))
        _write_if_changed(paths.public / "splits" / name / "card.json",  # now with its feedback videos
                          _json_text(_public_split_card(path.parent / "card.json", revealed=True)))
    final = _publish_final_ranks(paths)
    anyone = verify_revealed(paths.public, secret, {n: paths.public / "splits" / n / "manifest.jsonl"
                                                    for n in POOL_NAMES})  # from the published files alone
    report = {"challenge_version": CHALLENGE_VERSION, "revealed": True, "secret": SECRET_FILE,
              "manifests": {n: f"splits/{n}/manifest.jsonl" for n in POOL_NAMES},
              "seeds": derive_seeds(secret), "verified_by_organiser": checked, "verifiable_by_anyone": anyone,
              "final_leaderboard": final,
              "verify": "vidsme challenge verify DIR (reads only DIR/public)"}
    write_json_atomic(paths.public / REVEAL_FILE, report)
    for line in checked:
        log(f"  ok: {line}")
    return paths.public / REVEAL_FILE


def verify_challenge(out: Path) -> list[str]:
    """Verify a revealed challenge from its public folder alone (DIR/public or DIR); returns what was checked."""
    public = Path(out) / PUBLIC if (Path(out) / PUBLIC / RECORD_FILE).is_file() else Path(out)
    secret_file = public / SECRET_FILE
    if not secret_file.is_file():
        raise VidsmeError(f"{secret_file} does not exist: the challenge is not revealed yet "
                          "(`vidsme challenge reveal DIR --secret FILE`)")
    return verify_revealed(public, read_secret(secret_file),
                           {n: public / "splits" / n / "manifest.jsonl" for n in POOL_NAMES})


__all__ = ["CHALLENGE_VERSION", "ChallengeSettings", "TARGETS", "build_challenge", "derive_seed", "derive_seeds",
           "draw_feedback", "feedback_record",
           "new_secret", "pool_sizes", "public_reference", "read_secret", "reveal_challenge", "suite_config",
           "verify_challenge", "verify_revealed"]
