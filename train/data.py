"""Training samples: manifest rows -> (token ids, answer-only labels, video frames).

Frames are read with the reference's sampling rule at a fixed count; a video that fails
to decode aborts with its sample id — never replaced by another sample.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vidsme.errors import VideoError, VidsmeError
from vidsme.prompts import IGNORE_INDEX, EncodedPrompt, encode_prompt
from vidsme.video import read_frames


class VideoTextDataset(torch.utils.data.Dataset):
    """Manifest rows as model inputs for one processor, template and frame count."""

    def __init__(
        self,
        rows: Sequence[dict],
        video_root: Path,
        processor,
        *,
        template: str,
        n_frames: int,
        video_token_id: int,
        frame_slot: Sequence[int],
        max_length: int,
        cache_frames: bool = False,
    ) -> None:
        self.rows = list(rows)
        # Processed frames kept after first use: every epoch re-reads the same videos, and
        # on the tiny models decoding would otherwise cost a quarter of each step.
        self._pixels: dict[int, torch.Tensor] | None = {} if cache_frames else None
        self.video_root = Path(video_root)
        self.processor = processor
        self.n_frames = n_frames
        # Encode every prompt now: a sample that cannot be encoded fails before training starts.
        self.prompts: list[EncodedPrompt] = [
            encode_prompt(processor.tokenizer, row, template, video_token_id, frame_slot, max_length=max_length)
            for row in self.rows
        ]

    def __len__(self) -> int:
        return len(self.rows)

    def frames(self, index: int) -> np.ndarray:
        """uint8 [n_frames, H, W, 3] of sample `index`; errors name the sample and file."""
        row = self.rows[index]
        try:
            return read_frames(self.video_root / row["video"], self.n_frames)
        except VideoError as err:
            raise VidsmeError(f"sample {row['id']!r}: {err}") from err

    def pixels(self, index: int) -> torch.Tensor:
        """Processed frames [n_frames, 3, H, W] of sample `index` (cached when enabled)."""
        if self._pixels is not None and index in self._pixels:
            return self._pixels[index]
        out = self.processor.video_processor(videos=[self.frames(index)], return_tensors="pt")["pixel_values_videos"][0]
        if self._pixels is not None:
            self._pixels[index] = out
        return out

    def __getitem__(self, index: int) -> dict:
        prompt = self.prompts[index]
        return {
            "id": prompt.sample_id,
            "input_ids": torch.tensor(prompt.input_ids, dtype=torch.long),
            "labels": torch.tensor(prompt.labels, dtype=torch.long),
            "pixel_values_videos": self.pixels(index),
        }


def collate(batch: list[dict], pad_token_id: int) -> dict:
    """Right-pad ids (pad token) and labels (ignored), stack frames; keep the sample ids."""
    length = max(len(item["input_ids"]) for item in batch)
    ids = torch.full((len(batch), length), pad_token_id, dtype=torch.long)
    labels = torch.full((len(batch), length), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch), length), dtype=torch.long)
    for i, item in enumerate(batch):
        n = len(item["input_ids"])
        ids[i, :n], labels[i, :n], mask[i, :n] = item["input_ids"], item["labels"], 1
    return {
        "ids": [item["id"] for item in batch],
        "input_ids": ids,
        "attention_mask": mask,
        "labels": labels,
        "pixel_values_videos": torch.stack([item["pixel_values_videos"] for item in batch]),
    }
