"""Feature extraction for one (target, split, frame count) into the feature cache.

Batches are fixed up front — batch b holds rows [b*B, (b+1)*B) of the evaluated rows in
manifest order — and rank k of W processes the batches b with b % W == k that the cache
does not hold yet. So a kill loses at most the batch in flight, a rerun continues where
it stopped, and 1 or W processes, interrupted or not, store bit-identical numbers.
Launch several processes with any torch launcher (`accelerate launch`, `torchrun`,
`deepspeed`): they set RANK / WORLD_SIZE, each rank writes its own batches, rank 0
waits for all of them and goes on to evaluate.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vidsme.benchmark.cache import FeatureCache
from vidsme.benchmark.query import LoadedModel, QuerySettings, batch_features, extract_batch, prepare_batch
from vidsme.train.data import VideoTextDataset


@dataclass(frozen=True)
class World:
    """This process's place among the extraction processes."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.size > 1:
            torch.distributed.barrier()


def join_world() -> World:
    """Rank and world size from the launcher's environment; starts torch.distributed when W > 1.

    gloo on CPU, nccl on GPUs (each rank on cuda:LOCAL_RANK).
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        torch.distributed.init_process_group(backend=backend)
    return World(rank=torch.distributed.get_rank(), size=torch.distributed.get_world_size())


def batches_of(n_rows: int, batch_size: int) -> list[range]:
    """The fixed batching of n_rows rows."""
    return [range(lo, min(lo + batch_size, n_rows)) for lo in range(0, n_rows, batch_size)]


def extract_to_cache(target: LoadedModel, rows: Sequence[dict], video_root: Path, q: np.ndarray, r: np.ndarray,
                     cache: FeatureCache, *, n_frames: int, template: str, batch_size: int,
                     max_text_tokens: int, reference: LoadedModel | None = None,
                     settings: QuerySettings = QuerySettings(),  # noqa: B008 (frozen)
                     world: World = World(), progress: bool = True, desc: str = "extract") -> int:  # noqa: B008
    """Write the features of every batch this rank owns and the cache lacks; returns batches written.

    q, r are aligned with `rows`. A video that fails to decode stops the run with its
    sample id and file (exclusions are decided before, never here).
    """
    dataset = VideoTextDataset(rows, video_root, target.processor, target.config, template=template,
                               n_frames=n_frames, max_text_tokens=max_text_tokens)
    done = cache.done_batches()
    todo = [(b, idx) for b, idx in enumerate(batches_of(len(rows), batch_size))
            if b % world.size == world.rank and b not in done]
    with tqdm(total=sum(len(idx) for _, idx in todo), desc=desc, unit="sample", disable=not progress) as bar:
        for b, idx in todo:
            samples = extract_batch(target, dataset, list(idx), q[idx.start:idx.stop], r[idx.start:idx.stop],
                                    reference=reference, settings=settings)
            cache.write(samples, batch=b)
            bar.update(len(idx))
    return len(todo)


@dataclass
class ExtractionJob:
    """One model's features of the rows into its own cache (a shadow model, or the target on other rows)."""

    model: LoadedModel
    cache: FeatureCache
    reference: LoadedModel | None = None
    done: set[int] = field(default_factory=set)


def extract_many(jobs: Sequence[ExtractionJob], rows: Sequence[dict], video_root: Path, q: np.ndarray, r: np.ndarray,
                 *, n_frames: int, template: str, batch_size: int, max_text_tokens: int,
                 settings: QuerySettings = QuerySettings(),  # noqa: B008 (frozen)
                 world: World = World(), progress: bool = True, desc: str = "extract") -> int:  # noqa: B008
    """Like `extract_to_cache`, for several models over the same rows: each batch is decoded and preprocessed
    ONCE and fed to every model whose cache lacks it (the shadow models of a target share one video pipeline).
    Every model must share the first one's processor (models fine-tuned from one base do). Returns the
    (model, batch) pairs written."""
    if not jobs:
        return 0
    first = jobs[0].model
    dataset = VideoTextDataset(rows, video_root, first.processor, first.config, template=template,
                               n_frames=n_frames, max_text_tokens=max_text_tokens)
    for job in jobs:
        job.done = job.cache.done_batches()
    todo = [(b, idx) for b, idx in enumerate(batches_of(len(rows), batch_size))
            if b % world.size == world.rank and any(b not in job.done for job in jobs)]
    total = sum(len(idx) * sum(b not in job.done for job in jobs) for b, idx in todo)
    written = 0
    with tqdm(total=total, desc=desc, unit="sample", disable=not progress) as bar:
        for b, idx in todo:
            batch = prepare_batch(dataset, list(idx), q[idx.start:idx.stop], r[idx.start:idx.stop])
            for job in jobs:
                if b in job.done:
                    continue
                job.cache.write(batch_features(job.model, dataset, batch, reference=job.reference, settings=settings),
                                batch=b)
                written += 1
                bar.update(len(idx))
    return written
