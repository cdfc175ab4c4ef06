"""Shadow models: N models trained with a target's exact recipe on known halves of a pool.

`vidsme train shadows CONFIG --count N` (CONFIG: the target's config). Calibrated attacks (LiRA,
RMIA: attack/calibrations/) read a sample's signal under the shadows that trained on it (IN) and
those that did not (OUT).

  online   the pool is the target split's candidates (members ∪ non-members): every video is IN
           for exactly floor(N/2) shadows (Carlini et al.'s balanced design).
  offline  the pool is a disjoint *population* split of the same distribution (`--population`, by
           default `<split>-population` for the synthetic splits): the evaluated videos are OUT of
           every shadow.

Who is IN is a pure function of (config seed, video, N): video v is IN for the floor(N/2) shadows
with the smallest sha256("vidsme-shadows-v1:<seed>:<v>:<k>"). Shadow k's training seed derives
from (config seed, k). Neither reads a label, so re-drawing the target's membership changes no
shadow's training set. The unit is the video: all rows of an IN video are trained on.

Layout (default folder `<output_dir>-shadows-<setting>-<N>`):
    shadow-000/ ... shadow-<N-1>/   Hugging Face model dirs, each with shadow.json (its card)
    shadows.json                    the set's card: plan, inclusion matrix (videos x shadows), each
                                    shadow's card sha256 and training-id hash; written once every
                                    shadow is there and matches the plan
Each shadow resumes on its own (a finished one with the same key is reused, a killed one continues
from its checkpoint), and `--index K` / `--index A-B` trains only those, so that on a cluster every
shadow is its own job; the set's card is then assembled from the finished shadows.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidsme import __version__
from vidsme.atomic import write_json_atomic
from vidsme.config import config_hash, config_to_dict
from vidsme.data_splits.registry import load_split
from vidsme.data_splits.verify import shared_videos
from vidsme.errors import VidsmeError
from vidsme.provenance import git_commit, ids_sha256, library_versions, sha256_file
from vidsme.train.config import TargetConfig

PLAN_VERSION = 1
SET_CARD = "shadows.json"
SHADOW_CARD = "shadow.json"
SETTINGS = ("online", "offline")


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def inclusion_matrix(videos: list[str], count: int, seed: int) -> np.ndarray:
    """[V, N] bool: video v is IN for the floor(N/2) shadows with the smallest hash of (seed, v, k)."""
    if count < 2:
        raise VidsmeError(f"a shadow set needs at least 2 shadows (some IN and some OUT of every sample), got {count}")
    keys = np.array([[_digest(f"vidsme-shadows-v{PLAN_VERSION}:{seed}:{v}:{k}") for k in range(count)]
                     for v in videos], dtype=np.uint64).reshape(len(videos), count)
    ranks = np.argsort(np.argsort(keys, axis=1, kind="stable"), axis=1, kind="stable")
    return ranks < count // 2


def shadow_seed(seed: int, index: int) -> int:
    """Training seed of shadow `index` (data order, LoRA init): from the config seed and the index alone."""
    return _digest(f"vidsme-shadow-seed-v{PLAN_VERSION}:{seed}:{index}") % (2**31 - 1)


def recipe_hash(cfg: TargetConfig | dict) -> str:
    """The target's recipe (everything but its name, output folder and seed): shadows share it exactly.
    `cfg` may be the config dict a card records."""
    data = dict(cfg) if isinstance(cfg, dict) else config_to_dict(cfg)
    for key in ("name", "output_dir", "seed"):
        data.pop(key, None)
    return config_hash(data)


def pool_rows_sha256(rows: list[dict]) -> str:
    """The pool's identity as shadows see it: every row's content but its label (a re-drawn membership of
    the same candidates is the same pool, and its shadows are reused)."""
    return ids_sha256(sorted(json.dumps({k: v for k, v in r.items() if k != "label"}, sort_keys=True) for r in rows))


def default_population(split_name: str) -> str:
    """The population split offline shadows use by default: `<split>-population`."""
    return f"{split_name}-population"


@dataclass(frozen=True)
class ShadowPlan:
    """Which rows each shadow of a set trains on, and what identifies each shadow."""

    cfg: TargetConfig
    setting: str
    count: int
    pool: dict  # {"name", "version", "manifest_sha256", "rows_sha256"} of the split whose videos are halved
    rows: list[dict]  # the pool's rows (manifest order)
    videos: list[str]  # the pool's distinct videos, sorted (the inclusion matrix's rows)
    inclusion: np.ndarray  # [V, N] bool
    folder: Path

    @property
    def recipe(self) -> str:
        return recipe_hash(self.cfg)

    def video_in(self, index: int) -> set[str]:
        """The videos shadow `index` trains on."""
        return {v for v, keep in zip(self.videos, self.inclusion[:, index]) if keep}

    def row_indices(self, index: int, inside: bool) -> list[int]:
        """Indices into `rows` of the rows shadow `index` trains on (inside) or never sees."""
        chosen = self.video_in(index)
        return [i for i, r in enumerate(self.rows) if (r["video"] in chosen) == inside]

    def seed(self, index: int) -> int:
        return shadow_seed(self.cfg.seed, index)

    def key(self, index: int) -> str:
        """Everything that decides shadow `index`'s weights, hashed (its card records it)."""
        trained = [self.rows[i]["id"] for i in self.row_indices(index, True)]
        return config_hash({"plan_version": PLAN_VERSION, "recipe": self.recipe, "setting": self.setting,
                            "count": self.count, "index": index, "seed": self.seed(index),
                            "pool": self.pool["rows_sha256"], "trained": ids_sha256(trained)})

    def shadow_dir(self, index: int) -> Path:
        return self.folder / f"shadow-{index:03d}"


def plan_shadows(cfg: TargetConfig, count: int, *, offline: bool = False, population: str | None = None,
                 output_dir: Path | None = None) -> ShadowPlan:
    """The plan of a shadow set for target config `cfg` (nothing is loaded or written)."""
    setting = "offline" if offline else "online"
    if population is not None and not offline:
        raise VidsmeError("--population names the pool of OFFLINE shadows; add --offline (online shadows train on "
                          "halves of the target's own split)")
    target_split = load_split(cfg.data.split)
    if target_split.is_pool or not target_split.card.members_available:
        raise VidsmeError(f"split {target_split.name!r} has no member list: shadows copy a target trained on a "
                          "member/non-member split")
    if offline:
        pool_split = load_split(population or default_population(target_split.name))
        target_rows = target_split.rows()
        rows = pool_split.rows()
        shared = shared_videos(rows, target_rows)
        if shared:
            raise VidsmeError(f"population {pool_split.name!r} shares {len(shared)} video(s) with split "
                              f"{target_split.name!r} (e.g. {shared[0]}, by path or checksum): offline shadows must never see "
                              "an evaluated video; use a disjoint population")
    else:
        pool_split, rows = target_split, target_split.rows()
    videos = sorted({r["video"] for r in rows})
    folder = Path(output_dir) if output_dir is not None else Path(f"{cfg.output_dir}-shadows-{setting}-{count}")
    return ShadowPlan(cfg=cfg, setting=setting, count=count,
                      pool={"name": pool_split.name, "version": pool_split.card.version,
                            "manifest_sha256": pool_split.card.manifest_sha256, "rows_sha256": pool_rows_sha256(rows)},
                      rows=rows, videos=videos, inclusion=inclusion_matrix(videos, count, cfg.seed), folder=folder)


def parse_indices(text: str | None, count: int) -> list[int]:
    """`--index` K or A-B (inclusive) -> shadow indices; None: all."""
    if text is None:
        return list(range(count))
    try:
        lo, _, hi = text.partition("-")
        first, last = int(lo), int(hi) if hi else int(lo)
    except ValueError:
        raise VidsmeError(f"--index takes K or A-B (e.g. 3 or 0-7), got {text!r}") from None
    if not 0 <= first <= last < count:
        raise VidsmeError(f"--index {text} is outside the set's shadows 0-{count - 1}")
    return list(range(first, last + 1))


def _finished(plan: ShadowPlan, index: int) -> dict | None:
    """Shadow `index`'s card when it is finished and matches the plan, else None."""
    from vidsme.errors import ModelFileError
    from vidsme.model_files import check_model_dir

    folder = plan.shadow_dir(index)
    card = folder / SHADOW_CARD
    if not card.is_file():
        return None
    try:
        data = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != plan.key(index):
        return None
    try:
        check_model_dir(folder, "")
    except ModelFileError:
        return None
    return data


def train_shadows(cfg: TargetConfig, plan: ShadowPlan, indices: list[int], *, progress: bool = True) -> list[int]:
    """Train the shadows `indices` of `plan` that are not finished yet; returns those trained.

    The base is loaded once and the pool's videos are decoded once for all of them (each shadow
    trains on a view of one dataset over the pool)."""
    import torch

    from vidsme.train.data import RowsView
    from vidsme.train.loop import init_distributed, make_dataset
    from vidsme.train.recipes import finetune_model, load_base

    todo = [k for k in indices if _finished(plan, k) is None]
    skipped = sorted(set(indices) - set(todo))
    if skipped:
        print(f"{plan.folder}: shadow(s) {_ranges(skipped)} up to date, not retrained")
    if not todo:
        return []
    rank, world = init_distributed()
    base = load_base(cfg.base)
    pool = make_dataset(plan.rows, base[1], base[0].config, cfg.data)
    probe = cfg.data.heldout_nonmembers
    for k in todo:
        inside, outside = plan.row_indices(k, True), plan.row_indices(k, False)
        out = plan.shadow_dir(k)
        done = finetune_model(cfg, RowsView(pool, inside), RowsView(pool, inside[:probe]),
                              RowsView(pool, outside[:probe]), out, seed=plan.seed(k), config_key=plan.key(k),
                              base=base, progress=progress, desc=f"shadow {k + 1}/{plan.count} of {cfg.name}")
        if rank == 0:
            result = done.result
            allowed = {plan.rows[i]["id"] for i in inside}
            strays = set(result.trained_ids) - allowed
            if strays:  # cannot happen by construction; every calibrated number depends on it
                raise VidsmeError(f"shadow {k}: rows outside its half entered training: {sorted(strays)[:5]}")
            heldout = done.probe_heldout_loss
            write_json_atomic(out / SHADOW_CARD, {
                "name": f"{cfg.name}-shadow-{k:03d}", "kind": "shadow", "index": k, "count": plan.count,
                "setting": plan.setting, "key": plan.key(k), "recipe_hash": plan.recipe, "seed": plan.seed(k),
                "pool": plan.pool, "base": {"path": str(cfg.base)}, "strategy": cfg.strategy,
                "trainable_parameters": done.counts,
                "n_trained_videos": len(plan.video_in(k)), "n_trained_samples": len(set(result.trained_ids)),
                "trained_ids_sha256": ids_sha256(sorted(set(result.trained_ids))),
                "epochs": result.epochs, "steps": result.steps, "world_size": world,
                "final_train_loss": result.losses[-1], "loss_trained_probe": done.probe_trained_loss,
                "loss_heldout_probe": heldout,
                "generalisation_gap": None if heldout is None else heldout - done.probe_trained_loss,
                "train_seconds": round(result.seconds, 2), "config": config_to_dict(cfg),
                "vidsme": __version__, "git_commit": git_commit(), "libraries": library_versions(),
            })
        torch.distributed.barrier()
    return todo


def missing_shadows(plan: ShadowPlan) -> list[int]:
    """Indices of the shadows of `plan` that are not finished (or were trained for another plan)."""
    return [k for k in range(plan.count) if _finished(plan, k) is None]


def assemble_set(plan: ShadowPlan) -> dict:
    """Write the set's card from its finished shadows; VidsmeError listing any missing or mismatched one."""
    cards = {k: _finished(plan, k) for k in range(plan.count)}
    bad = [k for k, card in cards.items() if card is None]
    if bad:
        raise VidsmeError(f"{plan.folder}: shadow(s) {_ranges(bad)} of {plan.count} are missing, unfinished or "
                          "trained for another plan (recipe, seed, pool or count); train them (e.g. --index "
                          f"{bad[0]}) and assemble again")
    set_card = {
        "kind": "shadow_set", "plan_version": PLAN_VERSION, "target": plan.cfg.name, "setting": plan.setting,
        "count": plan.count, "seed": plan.cfg.seed, "recipe_hash": plan.recipe, "config": config_to_dict(plan.cfg),
        "pool": plan.pool, "unit": "video", "videos": plan.videos,
        "inclusion": ["".join("1" if x else "0" for x in row) for row in plan.inclusion],
        "shadows": [{"index": k, "path": plan.shadow_dir(k).name, "seed": plan.seed(k), "key": plan.key(k),
                     "card_sha256": sha256_file(plan.shadow_dir(k) / SHADOW_CARD),
                     "trained_ids_sha256": cards[k]["trained_ids_sha256"],
                     "n_trained_videos": cards[k]["n_trained_videos"]} for k in range(plan.count)],
        "vidsme": __version__, "git_commit": git_commit(),
    }
    write_json_atomic(plan.folder / SET_CARD, set_card)
    return set_card


@dataclass(frozen=True)
class ShadowSet:
    """A finished shadow set, as its card describes it (what the benchmark reads)."""

    folder: Path
    setting: str
    count: int
    card_sha256: str  # of shadows.json: identifies the set in results and cache keys
    recipe_hash: str
    pool: dict
    videos: list[str]  # the pool's videos, sorted (rows of `inclusion`)
    inclusion: np.ndarray  # [V, N] bool
    shadow_dirs: list[Path]
    shadow_card_sha256: list[str]

    def inclusion_of(self, videos: list[str], *, where: str | None = None) -> np.ndarray:
        """[len(videos), N] bool: which shadows trained on each of `videos`; a video outside the set's pool is OUT
        of all. With `where` (the evaluated videos), an online set must hold every one of them."""
        at = {v: i for i, v in enumerate(self.videos)}
        if self.setting == "online" and where is not None:
            missing = sorted({v for v in videos if v not in at})
            if missing:
                raise VidsmeError(f"{where}: the online shadow set {self.folder} was trained on halves of another pool: "
                                  f"{len(missing)} evaluated video(s) are not in it (e.g. {missing[0]}); train the set "
                                  "on this target's split")
        out = np.zeros((len(videos), self.count), dtype=bool)
        for i, v in enumerate(videos):
            if v in at:
                out[i] = self.inclusion[at[v]]
        return out

    def describe(self) -> dict:
        """What results.json records of the set."""
        return {"path": str(self.folder), "setting": self.setting, "count": self.count,
                "card_sha256": self.card_sha256, "recipe_hash": self.recipe_hash, "pool": self.pool}


def load_shadow_set(folder: Path) -> ShadowSet:
    """The shadow set in `folder`, its card checked against every shadow's card (errors name the file and the fix)."""
    from vidsme.model_files import read_json_file

    folder = Path(folder)
    card_file = folder / SET_CARD
    fix = (f"train the set with `vidsme train shadows TARGET_CONFIG --count N` (its card {SET_CARD} is written once "
           "every shadow is finished), or fix the suite's targets[].shadows")
    if not card_file.is_file():
        raise VidsmeError(f"{folder} is not a finished shadow set (no {SET_CARD}); {fix}")
    card = read_json_file(card_file, fix)
    try:
        count, setting = int(card["count"]), card["setting"]
        inclusion = np.array([[c == "1" for c in line] for line in card["inclusion"]], dtype=bool).reshape(-1, count)
        videos = list(card["videos"])
        shadows = sorted(card["shadows"], key=lambda s: s["index"])
        dirs = [folder / s["path"] for s in shadows]
        recorded = [s["card_sha256"] for s in shadows]
        if setting not in SETTINGS or len(videos) != len(inclusion) or [s["index"] for s in shadows] != list(range(count)):
            raise ValueError("inconsistent counts")
    except (KeyError, TypeError, ValueError) as err:
        raise VidsmeError(f"{card_file}: not a shadow-set card ({err}); {fix}") from None
    for k, (path, sha) in enumerate(zip(dirs, recorded)):
        shadow_card = path / SHADOW_CARD
        if not shadow_card.is_file() or sha256_file(shadow_card) != sha:
            raise VidsmeError(f"{card_file}: shadow {k} ({shadow_card}) is missing or not the one the set's card "
                              "records (retrained or edited since); assemble the set again with `vidsme train "
                              "shadows TARGET_CONFIG --count N --assemble`")
    return ShadowSet(folder=folder, setting=setting, count=count, card_sha256=sha256_file(card_file),
                     recipe_hash=str(card.get("recipe_hash")), pool=dict(card.get("pool") or {}), videos=videos,
                     inclusion=inclusion, shadow_dirs=dirs, shadow_card_sha256=recorded)


def _ranges(indices: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2, 5"."""
    out, start = [], None
    for i, k in enumerate(indices):
        if start is None:
            start = k
        if i + 1 == len(indices) or indices[i + 1] != k + 1:
            out.append(str(start) if start == k else f"{start}-{k}")
            start = None
    return ", ".join(out)


__all__ = ["SET_CARD", "SHADOW_CARD", "ShadowPlan", "ShadowSet", "load_shadow_set", "assemble_set", "default_population", "inclusion_matrix",
           "missing_shadows", "parse_indices", "plan_shadows", "pool_rows_sha256", "recipe_hash", "shadow_seed", "train_shadows"]
