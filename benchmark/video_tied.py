"""Is a target's membership carried by its videos? The video-tied check (docs/RESULTS.md, `video_tied`).

A video membership benchmark measures something about videos only if the member/non-member signal
changes when the videos change. At one frame count, every evaluated row is scored by the `loss` attack
on the answer slice twice:

  own       with its own video (the feature cache's natural view: no extra forward)
  swapped   with another video of the same label (vidsme.swaps.derangement, fixed seed: members keep
            member videos, non-members non-member ones, no row keeps its own)

and the member/non-member AUC of each, with the paired difference own - swapped and its 95% CI from one
bootstrap over videos. A target is *video-tied* when that CI lies above 0: part of what its answers
remember about a member goes through the member's frames. The non-members' swapped-minus-own answer loss
(mean, CI over videos) says whether the target uses its video at all. Where the split's text names its
videos (a titled control split: `source.text_keys`), the same is reported on title-stripped text, which
costs two forwards more per row.

Nothing here is chosen from data (attack, slice, frame count and seed are fixed in advance), so every
evaluated row, dev and test, is used.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vidsme.atomic import write_json_atomic
from vidsme.benchmark.extract import batches_of
from vidsme.benchmark.query import LoadedModel, features_at, last_hidden, slice_positions
from vidsme.errors import VidsmeError
from vidsme.metrics import bootstrap_replicates, cluster_mean, paired_difference, percentile_interval
from vidsme.swaps import derangement
from vidsme.train.data import VideoTextDataset, collate
from vidsme.train.families import video_inputs

VIDEO_TIED_VERSION = 1
SLICE = "answer"
ATTACK = "loss"
CACHE_SUBDIR = "video_tied"
LOGPROB = "target_logprob"


@dataclass(frozen=True)
class VideoTiedSettings:
    """How the check runs (recorded in results.json and in its cache key)."""

    n_frames: int
    template: str
    batch_size: int
    max_text_tokens: int
    seed: int
    n_bootstrap: int
    dtype: str
    device_type: str


def answer_losses(target: LoadedModel, rows: Sequence[dict], video_root: Path, settings: VideoTiedSettings, *,
                  progress: bool = False, desc: str = "video-tied") -> np.ndarray:
    """Per row, the mean answer-token loss (-log p_y, the `loss` attack's score on the answer slice) with the
    video its row names: one forward per row, the feature extraction's positions and log-probabilities."""
    dataset = VideoTextDataset(rows, video_root, target.processor, target.config, template=settings.template,
                               n_frames=settings.n_frames, max_text_tokens=settings.max_text_tokens)
    out = np.empty(len(rows), dtype=np.float64)
    with tqdm(total=len(rows), desc=desc, unit="sample", disable=not progress) as bar:
        for idx in batches_of(len(rows), settings.batch_size):
            items, located = [], []
            for i in idx:
                natural = video_inputs(dataset.model_config, dataset.processor, dataset.frames(i))
                items.append(dataset.item(i, natural))
                located.append(slice_positions(dataset.prompt(i, natural), SLICE))
            hidden = last_hidden(target.model, collate(items, target.pad_token_id))
            feats, _, mask = features_at(target.model, hidden, [p for p, _ in located], [t for _, t in located],
                                         None, None, mean_probs=False)
            logprob = torch.where(mask, feats[LOGPROB], torch.zeros(()))
            out[idx.start:idx.stop] = (-(logprob.double().sum(1)) / mask.sum(1)).numpy()
            bar.update(len(idx))
    return out


def cached_answer_losses(cached: Sequence) -> np.ndarray:
    """The own-video answer losses from the feature cache's natural view (SampleFeatures, in row order)."""
    out = []
    for sample in cached:
        token = sample.token.get(SLICE, {}).get(f"natural.{LOGPROB}")
        if token is None:
            raise VidsmeError(f"sample {sample.sample_id!r}: the feature cache has no {SLICE} slice; the video-tied "
                              f"check needs it (add {SLICE!r} to the suite's slices)")
        out.append(-float(token.double().mean()))
    return np.asarray(out, dtype=np.float64)


def _cache_file(cache_dir: Path, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return Path(cache_dir) / CACHE_SUBDIR / f"{digest}.json"


def _cached(cache_dir: Path, key: dict, ids: Sequence[str], compute: Callable[[], np.ndarray]) -> np.ndarray:
    """Losses stored under `key` (ids and key checked), else computed and stored (JSON)."""
    path = _cache_file(cache_dir, key)
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("key") == key and data.get("ids") == list(ids):
                return np.asarray(data["losses"], dtype=np.float64)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # damaged: computed again and rewritten
    losses = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"key": key, "ids": list(ids), "losses": losses.tolist()})
    return losses


def _auc_pair(own: np.ndarray, swapped: np.ndarray, labels: np.ndarray, videos: Sequence[str], ids: Sequence[str],
              settings: VideoTiedSettings) -> dict:
    """AUC with own and with swapped videos (lower loss = member) and their paired difference, CI over videos."""
    reps = {name: bootstrap_replicates(losses, labels, direction="lower", attack=f"{ATTACK} ({name} videos)",
                                       sample_ids=ids, n_bootstrap=settings.n_bootstrap, seed=settings.seed,
                                       clusters=videos)
            for name, losses in (("own", own), ("swapped", swapped))}

    def auc(name: str) -> dict:
        r = reps[name]
        low, high = percentile_interval(r.replicates["auc"])
        return {"value": r.point["auc"], "ci_low": low, "ci_high": high}

    diff = paired_difference(reps["own"], reps["swapped"], "auc")
    return {"auc_own": auc("own"), "auc_swapped": auc("swapped"), "difference": diff.to_dict(),
            "video_tied": bool(diff.ci_low is not None and diff.ci_low > 0)}


def video_tied_check(target: LoadedModel, rows: Sequence[dict], labels: np.ndarray, own_losses: np.ndarray,
                     video_root: Path, settings: VideoTiedSettings, *, model_sha256: str, manifest_sha256: str,
                     strip_title: Callable[[dict], dict] | None, cache_dir: Path, progress: bool = False) -> dict:
    """The video-tied record of one target (module docstring): `own_losses` are the rows' cached answer
    losses with their own videos; `strip_title` (a titled split only) rewrites a row without its title."""
    ids = [r["id"] for r in rows]
    videos = [r["video"] for r in rows]
    labels = np.asarray(labels, dtype=int)
    swap = derangement(videos, [int(y) for y in labels], seed=settings.seed)
    swapped_rows = [{**r, "video": swap[r["video"]]} for r in rows]
    base_key = {"version": VIDEO_TIED_VERSION, "model_sha256": model_sha256, "manifest_sha256": manifest_sha256,
                "settings": asdict(settings), "swap_sha256": hashlib.sha256(
                    json.dumps(sorted(swap.items())).encode()).hexdigest()}

    def losses(condition: str, these: list[dict]) -> np.ndarray:
        return _cached(cache_dir, {**base_key, "condition": condition}, ids,
                       lambda: answer_losses(target, these, video_root, settings, progress=progress,
                                             desc=f"video-tied: {condition}"))

    swapped = losses("swapped", swapped_rows)
    out = {"version": VIDEO_TIED_VERSION, "slice": SLICE, "attack": ATTACK, "level": "row", "rows": "all evaluated",
           "n_frames": settings.n_frames, "derangement": {"within": "label", "seed": settings.seed},
           "n_bootstrap": settings.n_bootstrap, **_auc_pair(own_losses, swapped, labels, videos, ids, settings)}
    non = labels == 0
    gap = cluster_mean(swapped[non] - own_losses[non], [v for v, keep in zip(videos, non) if keep],
                       n_bootstrap=settings.n_bootstrap, seed=settings.seed)
    out["nonmember_swapped_minus_own_loss"] = gap.to_dict()
    out["uses_video"] = bool(gap.ci_low is not None and gap.ci_low > 0)
    out["title_stripped"] = None
    if strip_title is not None:
        plain = [strip_title(r) for r in rows]
        own_plain = losses("own, title-stripped", plain)
        swapped_plain = losses("swapped, title-stripped", [{**r, "video": swap[r["video"]]} for r in plain])
        out["title_stripped"] = _auc_pair(own_plain, swapped_plain, labels, videos, ids, settings)
    return out


__all__ = ["VIDEO_TIED_VERSION", "VideoTiedSettings", "answer_losses", "cached_answer_losses", "video_tied_check"]
