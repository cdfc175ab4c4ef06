"""What an attack sees: the features of one slice (video | instruction | answer) for N samples.

Feature keys are "<view>.<feature>": the view says which forward pass produced it
(`natural` frame order, `reversed` frame order, `reference` = the base model the
target was fine-tuned from), the feature is one of `features.TOKEN_FEATURES` or a
sequence-level feature. `text` (the slice's text) and `frame_slot` (which frame each
video position belongs to) are the two non-numeric inputs.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from vidsme.attack.features import TOKEN_FEATURES, FeatureOutput, sequence_sharma_mittal
from vidsme.errors import MissingFeatureError, VidsmeError
from vidsme.names import did_you_mean

VIEWS: tuple[str, ...] = ("natural", "reversed", "reference")
SLICES: tuple[str, ...] = ("video", "instruction", "answer")
SEQUENCE_FEATURES: tuple[str, ...] = ("sequence_sharma_mittal",)
TEXT = "text"
FRAME_SLOT = "frame_slot"

TOKEN_KEYS: frozenset[str] = frozenset(f"{v}.{f}" for v in VIEWS for f in TOKEN_FEATURES)
SEQUENCE_KEYS: frozenset[str] = frozenset(f"{v}.{f}" for v in VIEWS for f in SEQUENCE_FEATURES)
KNOWN_INPUTS: frozenset[str] = TOKEN_KEYS | SEQUENCE_KEYS | {TEXT, FRAME_SLOT}


def check_input_names(needs: Sequence[str], owner: str) -> None:
    """Raise if an attack declares an input no extractor produces (with did-you-mean)."""
    for key in needs:
        if key not in KNOWN_INPUTS:
            raise MissingFeatureError(
                f"{owner} needs unknown input {key!r}.{did_you_mean(key, KNOWN_INPUTS)} "
                "Known inputs are '<view>.<feature>' with view in "
                f"{VIEWS} and feature in {TOKEN_FEATURES + SEQUENCE_FEATURES}, plus {TEXT!r}, {FRAME_SLOT!r}."
            )


@dataclass(frozen=True)
class AttackInputs:
    """Features of one slice for N samples, padded to T positions.

    Attributes:
        slice: which part of the prompt these positions cover.
        sample_ids: N ids, in the order of every row below.
        mask: [N, T] bool, True at the slice's positions (every row has at least one).
        token: key -> [N, T] float32 per-position feature (NaN where mask is False).
        sequence: key -> [N] float64 per-sample feature.
        texts: N strings, the slice's text (text slices only).
        frame_slot: [N, T] int64 frame index of each position in input order, -1 for
            positions that belong to no frame (video slice only).
    """

    slice: str
    sample_ids: tuple[str, ...]
    mask: torch.Tensor
    token: Mapping[str, torch.Tensor] = field(default_factory=dict)
    sequence: Mapping[str, torch.Tensor] = field(default_factory=dict)
    texts: tuple[str, ...] | None = None
    frame_slot: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.slice not in SLICES:
            raise VidsmeError(f"unknown slice {self.slice!r}.{did_you_mean(self.slice, SLICES)} Slices: {SLICES}")
        n = len(self.sample_ids)
        if self.mask.dim() != 2 or self.mask.shape[0] != n or self.mask.dtype != torch.bool:
            raise VidsmeError(f"mask must be a bool [N={n}, T] tensor, got {self.mask.dtype} {tuple(self.mask.shape)}")
        empty = (~self.mask.any(1)).nonzero().flatten().tolist()
        if empty:
            ids = ", ".join(self.sample_ids[i] for i in empty[:5])
            raise VidsmeError(
                f"slice {self.slice!r} has no positions for {len(empty)} sample(s) ({ids}); "
                "check the prompt template and slice boundaries for these samples"
            )
        for key, value in self.token.items():
            if key not in TOKEN_KEYS:
                raise MissingFeatureError(f"unknown token feature {key!r}.{did_you_mean(key, TOKEN_KEYS)}")
            if tuple(value.shape) != tuple(self.mask.shape):
                raise VidsmeError(f"feature {key!r} has shape {tuple(value.shape)}, mask {tuple(self.mask.shape)}")
        for key, value in self.sequence.items():
            if key not in SEQUENCE_KEYS:
                raise MissingFeatureError(f"unknown sequence feature {key!r}.{did_you_mean(key, SEQUENCE_KEYS)}")
            if tuple(value.shape) != (n,):
                raise VidsmeError(f"feature {key!r} has shape {tuple(value.shape)}, expected ({n},)")
        if self.texts is not None and len(self.texts) != n:
            raise VidsmeError(f"{len(self.texts)} texts for {n} samples")
        if self.frame_slot is not None and tuple(self.frame_slot.shape) != tuple(self.mask.shape):
            raise VidsmeError(f"frame_slot has shape {tuple(self.frame_slot.shape)}, mask {tuple(self.mask.shape)}")

    @property
    def n(self) -> int:
        """Number of samples."""
        return len(self.sample_ids)

    def available(self) -> frozenset[str]:
        """Every input key these inputs can provide."""
        extra = {TEXT} if self.texts is not None else set()
        if self.frame_slot is not None:
            extra.add(FRAME_SLOT)
        return frozenset(self.token) | frozenset(self.sequence) | extra

    def tokens(self, key: str) -> torch.Tensor:
        """[N, T] per-position feature `key` (e.g. "natural.entropy")."""
        if key not in self.token:
            raise MissingFeatureError(self._missing(key))
        return self.token[key]

    def per_sample(self, key: str) -> torch.Tensor:
        """[N] sequence-level feature `key` (e.g. "natural.sequence_sharma_mittal")."""
        if key not in self.sequence:
            raise MissingFeatureError(self._missing(key))
        return self.sequence[key]

    def _missing(self, key: str) -> str:
        have = ", ".join(sorted(self.available())) or "nothing"
        return f"slice {self.slice!r} has no input {key!r} (it has: {have})"


def build_attack_inputs(
    slice: str,
    sample_ids: Sequence[str],
    mask: torch.Tensor,
    natural: FeatureOutput,
    reversed: FeatureOutput | None = None,
    reference: FeatureOutput | None = None,
    *,
    q: torch.Tensor | None = None,
    r: torch.Tensor | None = None,
    texts: Sequence[str] | None = None,
    frame_slot: torch.Tensor | None = None,
) -> AttackInputs:
    """Assemble AttackInputs from the feature outputs of each forward pass.

    When a view carries `mean_probs` and (q, r) are given, its sequence-level
    Sharma-Mittal entropy is computed here (Vid-SME's "sequence" score).
    """
    token: dict[str, torch.Tensor] = {}
    sequence: dict[str, torch.Tensor] = {}
    for view, out in (("natural", natural), ("reversed", reversed), ("reference", reference)):
        if out is None:
            continue
        token.update({f"{view}.{name}": value for name, value in out.token.items()})
        if out.mean_probs is not None and q is not None and r is not None:
            sequence[f"{view}.sequence_sharma_mittal"] = sequence_sharma_mittal(out.mean_probs, q, r)
    return AttackInputs(
        slice=slice,
        sample_ids=tuple(sample_ids),
        mask=mask,
        token=token,
        sequence=sequence,
        texts=None if texts is None else tuple(texts),
        frame_slot=frame_slot,
    )
