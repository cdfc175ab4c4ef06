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
from vidsme.train.families import VideoInputs, static_video_tokens, video_inputs
from vidsme.video import read_frames


class VideoTextDataset(torch.utils.data.Dataset):
    """Manifest rows as model inputs for one model family, processor, template and frame count.

    A sample's video tokens and model inputs come from `families.video_inputs`, so each
    prompt is encoded with its own video's ids: Qwen2-VL's token count depends on the
    frames' resolution, which only reading the video tells. Where the model config fixes
    the layout (LLaVA families) every prompt is encoded up front instead, so a too-long
    sample fails before training starts; otherwise on first use, with the same error.
    """

    def __init__(
        self,
        rows: Sequence[dict],
        video_root: Path,
        processor,
        model_config,
        *,
        template: str,
        n_frames: int,
        max_text_tokens: int,
        cache_frames: bool = False,
    ) -> None:
        self.rows = list(rows)
        # Processed videos kept after first use: every epoch re-reads the same videos, and
        # on the tiny models decoding would otherwise cost a quarter of each step.
        self._videos: dict[str, VideoInputs] | None = {} if cache_frames else None
        self.video_root = Path(video_root)
        self.processor = processor
        self.model_config = model_config
        self.template = template
        self.n_frames = n_frames
        self.max_text_tokens = max_text_tokens
        self.prompts: dict[int, EncodedPrompt] = {}
        static = static_video_tokens(model_config, n_frames)
        if static is not None:  # layout known from the config: encode every prompt now (fail fast)
            for index in range(len(self.rows)):
                self.prompts[index] = self._encode(index, *static)

    def __len__(self) -> int:
        return len(self.rows)

    def _encode(self, index: int, video_ids: Sequence[int], frame_slot: Sequence[int]) -> EncodedPrompt:
        return encode_prompt(self.processor.tokenizer, self.rows[index], self.template, video_ids, frame_slot,
                             max_length=len(video_ids) + self.max_text_tokens)

    def frames(self, index: int) -> np.ndarray:
        """uint8 [n_frames, H, W, 3] of sample `index`; errors name the sample and file."""
        row = self.rows[index]
        try:
            return read_frames(self.video_root / row["video"], self.n_frames)
        except VideoError as err:
            raise VidsmeError(f"sample {row['id']!r}: {err}") from err

    def video(self, index: int) -> VideoInputs:
        """The processed video of sample `index` (cached when enabled)."""
        key = self.rows[index]["video"]  # rows of one video share its processed frames
        if self._videos is not None and key in self._videos:
            return self._videos[key]
        out = video_inputs(self.model_config, self.processor, self.frames(index))
        if self._videos is not None:
            self._videos[key] = out
        return out

    def prompt(self, index: int, video: VideoInputs) -> EncodedPrompt:
        """The encoded prompt of sample `index`, whose video is `video`."""
        prompt = self.prompts.get(index)
        if prompt is None:
            prompt = self.prompts[index] = self._encode(index, video.token_ids, video.frame_slot)
        return prompt

    def __getitem__(self, index: int) -> dict:
        return self.item(index, self.video(index))

    def item(self, index: int, video: VideoInputs) -> dict:
        """Sample `index` with `video` as its video (the benchmark passes reversed frames here)."""
        prompt = self.prompt(index, video)
        item = {
            "id": prompt.sample_id,
            "input_ids": torch.tensor(prompt.input_ids, dtype=torch.long),
            "labels": torch.tensor(prompt.labels, dtype=torch.long),
            "video": video,
        }
        if video.mm_token_types is not None:  # text 0 everywhere but on the video's tokens
            types = torch.zeros(len(prompt.input_ids), dtype=torch.long)
            start, end = prompt.slices["video"]
            types[start:end] = torch.tensor(video.mm_token_types, dtype=torch.long)
            item["mm_token_type_ids"] = types
        return item


class RowsView(torch.utils.data.Dataset):
    """Some rows of a VideoTextDataset, sharing its processed-video cache: shadow models train on
    different halves of one pool, and each video is decoded once for all of them."""

    def __init__(self, parent: VideoTextDataset, indices: Sequence[int]) -> None:
        self.parent = parent
        self.indices = list(indices)
        self.rows = [parent.rows[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        return self.parent[self.indices[index]]


# Per-position tensors right-padded by collate, and their padding value.
_PADDED = {"input_ids": None, "labels": IGNORE_INDEX, "mm_token_type_ids": 0}


def collate(batch: list[dict], pad_token_id: int) -> dict:
    """Right-pad per-position tensors (ids: pad token, labels: ignored, mm types: text) and
    batch each video's model kwargs by its family's rule; keep the sample ids.

    The result holds the sample ids under "ids" and, besides, exactly the model's keyword
    arguments (input_ids, attention_mask, labels, pixel_values_videos, ...).
    """
    length = max(len(item["input_ids"]) for item in batch)
    out: dict = {"ids": [item["id"] for item in batch]}
    mask = torch.zeros((len(batch), length), dtype=torch.long)
    for key, pad in _PADDED.items():
        if key not in batch[0]:
            continue
        value = torch.full((len(batch), length), pad_token_id if pad is None else pad, dtype=torch.long)
        for i, item in enumerate(batch):
            value[i, : len(item[key])] = item[key]
        out[key] = value
    for i, item in enumerate(batch):
        mask[i, : len(item["input_ids"])] = 1
    out["attention_mask"] = mask
    videos = [item["video"] for item in batch]
    concat = {v.concat for v in videos}
    if len(concat) != 1:
        raise VidsmeError("collate: a batch mixes videos of model families that batch differently")
    join = torch.cat if concat.pop() else torch.stack
    for key in videos[0].model_kwargs:
        out[key] = join([v.model_kwargs[key] for v in videos])
    return out
