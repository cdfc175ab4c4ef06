"""Querying a target: natural and reversed frame order in one batched forward, features per slice.

For a batch of B manifest rows we build 2B model inputs (B with the frames in natural
order, then the same B with the frames reversed), run the model's backbone once, and
apply the LM head only at the positions an attack reads — never over the whole
sequence, so a 152k vocabulary at 16 frames costs what the slices cost, not what the
prompt costs. An optional reference model (the base the target was fine-tuned from)
gets the natural inputs in a second forward.

Which logit positions a slice reads (positions from vidsme.prompts.encode_prompt):
  video        the logits AT the video positions s..e-1 (the paper's "logit positions of
               the video embeddings"); no real token follows there, so target = argmax.
  instruction,
  answer       the logits that PREDICT the slice's tokens: positions s-1..e-2, target =
               the real token at s..e-1 (the usual next-token shift).
The sequence-level Sharma-Mittal entropy of the video slice averages one distribution
more: the reference's video slice stops one position after the last video token (its
slice stop is -(len(last prompt chunk) - 1)), so its mean distribution also holds the
first text position after the video, while its per-token loop reads the video positions
only (`sequence_positions`; docs/ATTACKS.md, "Parity with the reference implementation").
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidsme.attack.features import token_features
from vidsme.attack.inputs import SLICES
from vidsme.benchmark.cache import SampleFeatures
from vidsme.errors import VidsmeError
from vidsme.prompts import EncodedPrompt
from vidsme.train.data import VideoTextDataset, collate
from vidsme.train.families import VideoInputs, reversed_video_inputs, video_inputs

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    """A Hugging Face video LLM in eval mode, with its processor."""

    path: Path
    model: torch.nn.Module
    processor: object

    @property
    def config(self):
        return self.model.config

    @property
    def pad_token_id(self) -> int:
        return self.processor.tokenizer.pad_token_id


def load_model(path: Path, *, dtype: str = "float32", device: str | torch.device = "cpu",
               setting: str = "the suite's targets[].path (or targets[].reference)") -> LoadedModel:
    """Load a model directory offline (AutoModelForImageTextToText + AutoProcessor).

    Raises VidsmeError naming the path and the fix when it is not a model directory, and
    ModelFileError naming the file when one of its files is missing, truncated or unreadable
    (`setting`: where the suite names this directory, for the fix).
    """
    from vidsme.model_files import load_pretrained, model_fix

    path = Path(path)
    if not (path / "config.json").is_file():
        raise VidsmeError(f"{path} is not a Hugging Face model directory (no config.json); train it with "
                          "`vidsme train target CONFIG` or fix the suite's target path")
    if dtype not in DTYPES:
        raise VidsmeError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPES)}")
    model, processor = load_pretrained(path, dtype=DTYPES[dtype], fix=model_fix(path, setting))
    model.to(device).eval()
    return LoadedModel(path=path, model=model, processor=processor)


def slice_positions(prompt: EncodedPrompt, slice_name: str) -> tuple[list[int], list[int] | None]:
    """(logit positions, target token ids or None for argmax) of one slice of one prompt."""
    start, end = prompt.slices[slice_name]
    if slice_name == "video":
        return list(range(start, end)), None
    if start == 0:
        raise VidsmeError(f"sample {prompt.sample_id!r}: slice {slice_name!r} starts the prompt; nothing predicts it")
    return list(range(start - 1, end - 1)), prompt.input_ids[start:end]


def sequence_positions(prompt: EncodedPrompt, slice_name: str) -> list[int]:
    """Logit positions whose mean distribution the sequence-level SME of a slice reads.

    The video slice: its positions s..e-1 and the first position after it, e, as the
    reference's `slice(len(first chunk), -(len(last chunk) - 1))` does. Other slices: their
    slice_positions.
    """
    positions = slice_positions(prompt, slice_name)[0]
    if slice_name != "video":
        return positions
    if positions[-1] + 1 >= len(prompt.input_ids):
        raise VidsmeError(f"sample {prompt.sample_id!r}: the prompt ends with the video; Vid-SME's sequence "
                          "score reads the position after it")
    return positions + [positions[-1] + 1]


def _backbone(model: torch.nn.Module) -> torch.nn.Module:
    """The *Model under a *ForConditionalGeneration (last hidden states, no LM head)."""
    inner = getattr(model, "model", None)
    if not isinstance(inner, torch.nn.Module):
        raise VidsmeError(f"{type(model).__name__} has no `.model` backbone; vidsme queries "
                          "*ForConditionalGeneration models (see vidsme/train/families.py)")
    return inner


@torch.inference_mode()
def last_hidden(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """[batch, length, hidden] last hidden states for a collated batch (ids/labels dropped)."""
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    inputs = {}
    for key, value in batch.items():
        if key in ("ids", "labels"):
            continue
        value = value.to(device)
        inputs[key] = value.to(dtype) if value.is_floating_point() else value
    return _backbone(model)(**inputs, use_cache=False).last_hidden_state


@torch.inference_mode()
def features_at(model: torch.nn.Module, hidden: torch.Tensor, positions: Sequence[Sequence[int]],
                targets: Sequence[Sequence[int]] | None, q: torch.Tensor | None, r: torch.Tensor | None,
                *, mean_probs: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor | None, torch.Tensor]:
    """Token features at `positions[i]` of row i of `hidden`: (features [B, T], mean probs, mask)."""
    batch = len(positions)
    width = max(len(p) for p in positions)
    index = torch.zeros(batch, width, dtype=torch.long)
    mask = torch.zeros(batch, width, dtype=torch.bool)
    target = torch.zeros(batch, width, dtype=torch.long) if targets is not None else None
    for i, pos in enumerate(positions):
        index[i, : len(pos)] = torch.tensor(pos)
        mask[i, : len(pos)] = True
        if target is not None:
            target[i, : len(pos)] = torch.tensor(targets[i])
    device = hidden.device
    gathered = torch.gather(hidden, 1, index.to(device).unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
    logits = model.get_output_embeddings()(gathered)
    out = token_features(logits, mask.to(device), None if target is None else target.to(device), q, r,
                         mean_probs=mean_probs)
    feats = {name: value.float().cpu() for name, value in out.token.items()}
    means = None if out.mean_probs is None else out.mean_probs.cpu()
    return feats, means, mask


@dataclass(frozen=True)
class QuerySettings:
    """What is computed per slice (the cache key records it)."""

    slices: tuple[str, ...] = SLICES
    # Slices that get Sharma-Mittal at each position and for the mean distribution, at the
    # sample's (q, r). Vid-SME is defined on the video slice; the text slices skip the
    # extra exp/expm1 passes over the vocabulary that SME costs.
    sme_slices: tuple[str, ...] = ("video",)


def _reversed_video(dataset: VideoTextDataset, frames: np.ndarray, natural: VideoInputs, sample_id: str) -> VideoInputs:
    reversed_ = reversed_video_inputs(dataset.model_config, dataset.processor, frames, natural)
    if reversed_.token_ids != natural.token_ids:
        raise VidsmeError(f"sample {sample_id!r}: the reversed video has a different token layout than the "
                          "natural one; Vid-SME needs the same positions in both orders")
    return reversed_


@dataclass
class PreparedBatch:
    """Dataset samples decoded and preprocessed once, ready for any number of models' forwards:
    natural and reversed model inputs, encoded prompts, and their Vid-SME orders."""

    indices: list[int]
    natural_items: list[dict]
    reversed_items: list[dict]
    prompts: list[EncodedPrompt]
    q: torch.Tensor
    r: torch.Tensor


def prepare_batch(dataset: VideoTextDataset, indices: Sequence[int], q: np.ndarray, r: np.ndarray) -> PreparedBatch:
    """Decode and preprocess dataset samples `indices` (q, r: their Vid-SME orders, aligned with indices)."""
    natural_items, reversed_items, prompts = [], [], []
    for i in indices:
        frames = dataset.frames(i)
        natural = video_inputs(dataset.model_config, dataset.processor, frames)
        reversed_ = _reversed_video(dataset, frames, natural, dataset.rows[i]["id"])
        prompts.append(dataset.prompt(i, natural))
        natural_items.append(dataset.item(i, natural))
        reversed_items.append(dataset.item(i, reversed_))
    return PreparedBatch(list(indices), natural_items, reversed_items, prompts,
                         torch.as_tensor(np.asarray(q, dtype=np.float64)), torch.as_tensor(np.asarray(r, dtype=np.float64)))


def extract_batch(target: LoadedModel, dataset: VideoTextDataset, indices: Sequence[int], q: np.ndarray,
                  r: np.ndarray, *, reference: LoadedModel | None = None,
                  settings: QuerySettings = QuerySettings()) -> list[SampleFeatures]:  # noqa: B008 (frozen)
    """Features of dataset samples `indices` (q, r: their Vid-SME orders, aligned with indices): see
    `batch_features`."""
    return batch_features(target, dataset, prepare_batch(dataset, indices, q, r), reference=reference,
                          settings=settings)


def batch_features(target: LoadedModel, dataset: VideoTextDataset, batch: PreparedBatch, *,
                   reference: LoadedModel | None = None,
                   settings: QuerySettings = QuerySettings()) -> list[SampleFeatures]:  # noqa: B008 (frozen)
    """Features of a prepared batch under `target` (and `reference`).

    One forward of the target over 2B inputs (natural then reversed frames), and one of the
    reference over the B natural inputs when given. Every slice gets every token feature
    for every view; Sharma-Mittal (per position and sequence-level) only on `settings.sme_slices`.
    """
    from vidsme.attack.features import sequence_sharma_mittal

    indices, prompts, q_t, r_t = batch.indices, batch.prompts, batch.q, batch.r
    n = len(indices)
    views: list[tuple[str, torch.Tensor, LoadedModel, slice]] = []
    hidden = last_hidden(target.model, collate(batch.natural_items + batch.reversed_items, target.pad_token_id))
    views += [("natural", hidden, target, slice(0, n)), ("reversed", hidden, target, slice(n, 2 * n))]
    if reference is not None:
        ref_hidden = last_hidden(reference.model, collate(batch.natural_items, target.pad_token_id))
        views.append(("reference", ref_hidden, reference, slice(0, n)))

    token: list[dict[str, dict[str, torch.Tensor]]] = [{} for _ in range(n)]
    sequence: list[dict[str, dict[str, float]]] = [{} for _ in range(n)]
    for slice_name in settings.slices:
        located = [slice_positions(p, slice_name) for p in prompts]
        positions = [pos for pos, _ in located]
        targets = None if located[0][1] is None else [t for _, t in located]
        sme = slice_name in settings.sme_slices
        extra = 0  # trailing positions read only by the mean distribution (sequence_positions)
        if sme:
            extended = [sequence_positions(p, slice_name) for p in prompts]
            extra = len(extended[0]) - len(positions[0])
            positions = extended
        for view, hid, loaded, rows in views:
            feats, means, mask = features_at(loaded.model, hid[rows], positions, targets, q_t if sme else None,
                                             r_t if sme else None, mean_probs=sme)
            seq = sequence_sharma_mittal(means.double(), q_t, r_t) if means is not None else None
            for i in range(n):
                length = int(mask[i].sum()) - extra  # token features: the slice's own positions
                bucket = token[i].setdefault(slice_name, {})
                for name, value in feats.items():
                    bucket[f"{view}.{name}"] = value[i, :length].clone()
                if seq is not None:
                    sequence[i].setdefault(slice_name, {})[f"{view}.sequence_sharma_mittal"] = float(seq[i])
    out = []
    for i, index in enumerate(indices):
        row, prompt = dataset.rows[index], prompts[i]
        out.append(SampleFeatures(
            sample_id=row["id"],
            token=token[i],
            sequence=sequence[i],
            frame_slot=list(prompt.frame_slot) if "video" in settings.slices else [],
            texts={name: dataset.processor.tokenizer.decode(prompt.input_ids[a:b])
                   for name, (a, b) in prompt.slices.items() if name != "video"},
        ))
    return out
