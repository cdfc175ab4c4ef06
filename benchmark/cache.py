"""The feature cache: per-sample token features, keyed by everything that changes a number.

Layout: `<root>/<key digest>/` holds
  key.json                      the full key (target card hash, split version + manifest
                                sha256, frame count, prompt template, beta1/beta2, feature
                                code version, slices, views) — a changed parameter is a new folder
  shard-<batch>.safetensors     the features of one batch of samples (batch = its index in
                                the fixed batching of the evaluated rows)
  shard-<batch>.json            that batch's sample ids, texts, frame slots, scalars;
                                written LAST, so a shard counts only once both files exist
A kill loses at most the batch in flight: a rerun skips the committed batches and writes
the rest. Batches are fixed by the row order and batch size (both in the key), never by
what is left to do, so a sample is always computed in the same batch (padding included)
and a resumed or multi-rank run stores the very numbers an uninterrupted one does. Ranks
write disjoint batches; reading merges them in manifest order. No pickle: safetensors + JSON.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vidsme.atomic import write_json_atomic
from vidsme.errors import CacheFileError, VidsmeError
from vidsme.model_files import check_safetensors, first_line, read_json_file

# Bump when vidsme.attack.features or the slicing changes what a stored number means.
FEATURES_VERSION = 4  # 2: Sharma-Mittal on the video slice only; 3: one tensor per feature per shard;
#                       4: the video's sequence SME also averages the position after the video (reference
#                          parity), the reference template rstrip()s its question block
KEY_FILE = "key.json"


@dataclass(frozen=True)
class CacheKey:
    """Everything a cached number depends on."""

    target_card_sha256: str
    split: str
    split_version: int
    manifest_sha256: str
    n_frames: int
    template: str
    beta1: float
    beta2: float
    slices: tuple[str, ...]
    views: tuple[str, ...]
    orders_sha256: str  # the (video, q, r) table: pool, exclusions, betas and stats config
    batch_size: int  # batch composition (padding) can move the last bits of a float
    dtype: str
    device_type: str
    reference_sha256: str | None = None  # the reference model's card/weights, when a view reads it
    features_version: int = FEATURES_VERSION

    def digest(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class SampleFeatures:
    """One sample's features.

    token: slice -> "view.feature" -> [positions] float32 tensor
    sequence: slice -> "view.feature" -> float (e.g. natural.sequence_sharma_mittal)
    frame_slot: the video slice's frame index per position (empty for other slices)
    texts: slice -> its text (text slices)
    """

    sample_id: str
    token: dict[str, dict[str, torch.Tensor]]
    sequence: dict[str, dict[str, float]]
    frame_slot: list[int]
    texts: dict[str, str]


class FeatureCache:
    """Append-only, crash-safe store of SampleFeatures under one CacheKey."""

    def __init__(self, root: Path, key: CacheKey) -> None:
        self.key = key
        self.folder = Path(root) / key.digest()[:20]
        self.folder.mkdir(parents=True, exist_ok=True)
        key_file = self.folder / KEY_FILE
        if key_file.is_file():
            stored = read_json_file(key_file, f"delete the folder {self.folder} and rerun; its features are "
                                              "extracted again", CacheFileError)
            if stored != json.loads(json.dumps(asdict(key))):
                raise VidsmeError(f"cache folder {self.folder} holds a different key; delete it")
        else:
            write_json_atomic(key_file, asdict(key))

    @classmethod
    def from_folder(cls, folder: Path) -> FeatureCache:
        """Open an existing cache folder from its key.json, for reading (nothing is created).

        Raises VidsmeError naming the folder when it is missing, holds no readable key, was
        written by another features version, or its key does not hash to its folder name.
        """
        folder = Path(folder)
        key_file = folder / KEY_FILE
        rerun = "rerun `vidsme benchmark SUITE` to extract the features again"
        if not key_file.is_file():
            raise VidsmeError(f"{folder} is not a feature cache folder (no {KEY_FILE}); {rerun}")
        try:
            stored = json.loads(key_file.read_text(encoding="utf-8"))
            key = CacheKey(**{k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()})
        except (UnicodeDecodeError, json.JSONDecodeError, TypeError, AttributeError) as err:
            raise VidsmeError(f"{key_file}: unreadable cache key ({err}); {rerun}") from None
        if key.features_version != FEATURES_VERSION:
            raise VidsmeError(f"{folder} holds features version {key.features_version}, this vidsme reads "
                              f"version {FEATURES_VERSION}; {rerun}")
        if key.digest()[:20] != folder.name:
            raise VidsmeError(f"{key_file} does not match its folder name (edited or moved?); {rerun}")
        cache = cls.__new__(cls)
        cache.key, cache.folder = key, folder
        return cache

    def _committed(self) -> list[Path]:
        """Shard metadata files whose tensors were written before them."""
        return sorted(p for p in self.folder.glob("shard-*.json") if p.with_suffix(".safetensors").is_file())

    def _shard_fix(self, meta: Path) -> str:
        return (f"delete {meta.name} and {meta.with_suffix('.safetensors').name} in {self.folder} and rerun "
                "`vidsme benchmark SUITE`, which extracts that batch again")

    def _samples_meta(self, meta: Path) -> list[dict]:
        """A shard's per-sample metadata; CacheFileError naming the file when it is damaged."""
        data = read_json_file(meta, self._shard_fix(meta), CacheFileError)
        samples = data.get("samples") if isinstance(data, dict) else None
        if not isinstance(samples, list) or not all(isinstance(m, dict) and isinstance(m.get("id"), str)
                                                    for m in samples):
            raise CacheFileError(meta, "is not a cache shard's metadata (no list of samples with ids)",
                                 self._shard_fix(meta))
        return samples

    def done_ids(self) -> set[str]:
        """Ids of every committed sample."""
        done: set[str] = set()
        for meta in self._committed():
            done.update(s["id"] for s in self._samples_meta(meta))
        return done

    def done_batches(self) -> set[int]:
        """Indices of the committed batches."""
        return {int(p.stem.split("-")[1]) for p in self._committed()}

    def write(self, samples: Sequence[SampleFeatures], batch: int) -> Path:
        """Commit batch number `batch`: tensors first, then the metadata that makes them count."""
        if not samples:
            raise VidsmeError("refusing to write an empty cache shard")
        stem = self.folder / f"shard-{batch:06d}"
        # One tensor per (slice, feature) with the batch's samples end to end, plus their
        # lengths: a few dozen tensors per shard instead of thousands (safetensors pays per tensor).
        grouped: dict[str, list[torch.Tensor]] = {}
        meta = []
        for s in samples:
            lengths = {}
            for slice_name, features in s.token.items():
                for name, values in features.items():
                    grouped.setdefault(f"{slice_name}/{name}", []).append(values.detach().to(torch.float32).cpu())
                    lengths[slice_name] = int(values.numel())
            meta.append({"id": s.sample_id, "sequence": s.sequence, "frame_slot": s.frame_slot, "texts": s.texts,
                         "lengths": lengths})
        layouts = [{sl: sorted(f) for sl, f in s.token.items()} for s in samples]
        if any(layout != layouts[0] for layout in layouts[1:]):
            raise VidsmeError("every sample of a cache batch must carry the same slices and features")
        tensors = {key: torch.cat(parts).contiguous() for key, parts in grouped.items()}
        tmp = stem.with_suffix(".safetensors.tmp")
        save_file(tensors, str(tmp))
        tmp.replace(stem.with_suffix(".safetensors"))
        write_json_atomic(stem.with_suffix(".json"), {"samples": meta}, indent=None)
        return stem

    def read(self, order: Iterable[str]) -> list[SampleFeatures]:
        """Every sample of `order` (manifest order), merged from all ranks' shards.

        Raises VidsmeError naming the missing ids when the cache is incomplete, and when a
        sample was committed twice with different values (it must be identical to be kept);
        CacheFileError naming the shard file when one is truncated, unreadable or inconsistent.
        """
        found: dict[str, SampleFeatures] = {}
        for meta_path in self._committed():
            fix = self._shard_fix(meta_path)
            shard = meta_path.with_suffix(".safetensors")
            samples = self._samples_meta(meta_path)
            check_safetensors(shard, fix, CacheFileError)
            try:
                tensors = load_file(str(shard))
            except (SafetensorError, OSError) as err:
                raise CacheFileError(shard, f"cannot be read ({first_line(err)})", fix) from None
            offsets: dict[str, int] = {}
            for m in samples:
                token: dict[str, dict[str, torch.Tensor]] = {}
                try:
                    for key, values in tensors.items():
                        slice_name, name = key.split("/", 1)
                        start, length = offsets.get(key, 0), int(m["lengths"][slice_name])
                        token.setdefault(slice_name, {})[name] = values[start:start + length]
                        offsets[key] = start + length
                    sample = SampleFeatures(m["id"], token, m["sequence"], m["frame_slot"], m["texts"])
                except (KeyError, TypeError, ValueError) as err:
                    raise CacheFileError(meta_path, f"sample {m['id']!r} has no valid lengths/sequence/frame_slot/"
                                                    f"texts ({type(err).__name__}: {first_line(err)})", fix) from None
                previous = found.get(m["id"])
                if previous is not None and not _same(previous, sample):
                    raise VidsmeError(f"cache {self.folder}: sample {m['id']!r} was stored twice with different values")
                found[m["id"]] = sample
            # the metadata's lengths must cover every tensor exactly, or samples got wrong slices
            short = [key for key, values in tensors.items() if offsets.get(key, 0) != values.numel()]
            if short:
                raise CacheFileError(shard, f"tensor {short[0]!r} holds {tensors[short[0]].numel()} values, "
                                            f"{meta_path.name} describes {offsets.get(short[0], 0)}", fix)
        order = list(order)
        missing = [i for i in order if i not in found]
        if missing:
            raise VidsmeError(f"cache {self.folder} lacks {len(missing)} sample(s) (e.g. {', '.join(missing[:5])}); "
                              "rerun the extraction to complete it")
        return [found[i] for i in order]


def _same(a: SampleFeatures, b: SampleFeatures) -> bool:
    if (a.sequence, a.frame_slot, a.texts) != (b.sequence, b.frame_slot, b.texts) or a.token.keys() != b.token.keys():
        return False
    return all(a.token[s].keys() == b.token[s].keys() and all(torch.equal(a.token[s][k], b.token[s][k])
                                                              for k in a.token[s]) for s in a.token)
