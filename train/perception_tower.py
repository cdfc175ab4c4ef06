"""The tower stage of `vidsme train base`: the vision tower pretrained alone on what the synthetic scenes show.

Trained end to end from the language model's loss, the tiny SigLIP tower never learns object colour (issue 27:
colour-only LM training over a trainable random tower stays at 0.34, chance 0.25). Real VULLMs start from a
tower pretrained on its own objective (CLIP, SigLIP); ours gets one from the scenes the pool was generated from.
For every frame a linear readout of each patch's features is fitted to targets computed from the scene spec
(data_splits.synthetic.object_coverage: exactly what the renderer blends in), never from text:

  per patch   its coverage by each palette colour and by each shape                  (weighted squared error)
  per frame   the colours present, the object count, each present colour's shape,   (squared error, shapes of
              broadcast to every patch (so each patch learns its frame's context)     absent colours masked)
  per frame   the background                                                          (cross-entropy)

The frames are the pool's video files as the base will see them (decoded, every frame, through the model's own
video processor). With `init_projector` the projector's first layer starts as the readout head, so the language
model receives those readouts as the first coordinates of every video token.

Measured with the experiment scripts of issue 27 (1000 steps, 64 frames, 600 videos, 40 s on 2 cores): on
held-out probe frames colour bits 0.98, object count 0.85, background 0.99; shape stays near chance (0.42).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vidsme.data_splits.registry import load_split
from vidsme.data_splits.synthetic import BACKGROUNDS, PALETTE, SHAPES, VideoSpec, object_coverage, select_videos
from vidsme.errors import VidsmeError
from vidsme.train.config import TowerStageConfig
from vidsme.video import read_frames

COLOURS: tuple[str, ...] = tuple(PALETTE)
BACKGROUND_NAMES: tuple[str, ...] = tuple(BACKGROUNDS)
MAX_OBJECTS = 3
# target layout per patch: [local colour | local shape | frame colours | frame count one-hot | shape per colour]
_LOCAL = len(COLOURS) + len(SHAPES)
_FRAME = len(COLOURS) + (MAX_OBJECTS + 1) + len(COLOURS) * len(SHAPES)
TARGET_WIDTH = _LOCAL + _FRAME
HEAD_WIDTH = TARGET_WIDTH + len(BACKGROUND_NAMES)


@dataclass(frozen=True)
class TowerFrames:
    """Processed frames [N, 3, S, S], their per-patch targets [N, P, TARGET_WIDTH] and backgrounds [N]."""

    pixels: torch.Tensor
    targets: torch.Tensor
    backgrounds: torch.Tensor


def frame_targets(spec: VideoSpec, image_size: int, patch_size: int) -> tuple[torch.Tensor, int]:
    """Per-patch targets [n_frames, patches, TARGET_WIDTH] of every frame of `spec` at the model's frame size,
    and the background's index in BACKGROUND_NAMES."""
    n, side = spec.n_frames, image_size // patch_size
    cover = np.zeros((n, _LOCAL, spec.height, spec.width), np.float32)
    frame = np.zeros((n, _FRAME), np.float32)
    shape_of = frame[:, len(COLOURS) + MAX_OBJECTS + 1:]
    shape_of[:] = -1.0  # masked: no object of that colour in the frame
    for t in range(n):
        visible = object_coverage(spec, t)
        for obj, alpha in visible:
            c, s = COLOURS.index(obj.colour), SHAPES.index(obj.shape)
            cover[t, c] = np.maximum(cover[t, c], alpha)
            cover[t, len(COLOURS) + s] = np.maximum(cover[t, len(COLOURS) + s], alpha)
            frame[t, c] = 1.0
            shape_of[t, c * len(SHAPES):(c + 1) * len(SHAPES)] = 0.0
        for obj, _ in visible:  # after the zeroing above, so two objects of one colour keep both shapes
            c, s = COLOURS.index(obj.colour), SHAPES.index(obj.shape)
            shape_of[t, c * len(SHAPES) + s] = 1.0
        frame[t, len(COLOURS) + min(len(visible), MAX_OBJECTS)] = 1.0
    resized = F.interpolate(torch.from_numpy(cover), size=(image_size, image_size), mode="area")
    local = F.avg_pool2d(resized, patch_size).flatten(2).transpose(1, 2)  # [n, side*side, _LOCAL]
    broadcast = torch.from_numpy(frame)[:, None].expand(-1, side * side, -1)
    return torch.cat([local, broadcast], -1).contiguous(), BACKGROUND_NAMES.index(spec.background)


def pool_frames(pool: str, n_videos: int, video_root: Path, processor, image_size: int, patch_size: int) -> TowerFrames:
    """Every frame of the first `n_videos` videos of the synthetic pool `pool` (as built on disk), processed as
    the model sees them, with their targets. VidsmeError for a pool not made by the synthetic generator, or whose
    files are not the generator's scenes (another seed or format)."""
    split = load_split(pool)
    source = split.card.source if isinstance(split.card.source, dict) else {}
    if source.get("generator") != "vidsme.data_splits.synthetic":
        raise VidsmeError(f"tower stage: pool {pool!r} was not made by the synthetic generator, so its frames have "
                          "no scene to learn from; set tower.steps=0 for a pool of real videos")
    on_disk = list(dict.fromkeys(r["video"] for r in split.rows()))
    if n_videos > len(on_disk):
        raise VidsmeError(f"tower stage: tower.videos={n_videos} but pool {pool!r} has {len(on_disk)} videos")
    pixels, targets, backgrounds = [], [], []
    for spec, rows in select_videos(source.get("pool", pool), n_videos, int(source.get("seed", 0))):
        video = rows[0]["video"]
        if video not in on_disk[:n_videos]:
            raise VidsmeError(f"tower stage: scene {spec.video_id} of pool {pool!r} is {video}, which is not among "
                              f"the pool's first {n_videos} videos; rebuild it with `vidsme splits build {pool}`")
        frames = read_frames(Path(video_root) / video, spec.n_frames)
        if frames.shape[:3] != (spec.n_frames, spec.height, spec.width):  # a pool built at another format
            raise VidsmeError(f"tower stage: {video} has {frames.shape[0]} frames of {frames.shape[2]}x{frames.shape[1]}, "
                              f"its scene {spec.n_frames} of {spec.width}x{spec.height}; rebuild it with "
                              f"`vidsme splits build {pool}`")
        pixels.append(processor.video_processor(videos=[frames], return_tensors="pt")["pixel_values_videos"][0])
        target, background = frame_targets(spec, image_size, patch_size)
        targets.append(target)
        backgrounds += [background] * spec.n_frames
    return TowerFrames(torch.cat(pixels), torch.cat(targets), torch.tensor(backgrounds))


def _features(tower, pixels: torch.Tensor) -> torch.Tensor:
    return tower(pixels, output_hidden_states=True).hidden_states[-1]  # what LLaVA-OV reads (feature layer -1)


def _loss(out: torch.Tensor, target: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    n_col = len(COLOURS)
    occupied = 1.0 + 4.0 * (target[..., :n_col].sum(-1, keepdim=True) > 0.05)  # objects cover few patches
    local = ((out[..., :_LOCAL] - target[..., :_LOCAL]) ** 2 * occupied).mean()
    cut = _LOCAL + n_col + MAX_OBJECTS + 1
    present = ((out[..., _LOCAL:cut] - target[..., _LOCAL:cut]) ** 2).mean()
    known = (target[..., cut:TARGET_WIDTH] >= 0).float()
    shapes = (((out[..., cut:TARGET_WIDTH] - target[..., cut:TARGET_WIDTH]) ** 2) * known).mean()
    logits = out[..., TARGET_WIDTH:].reshape(-1, len(BACKGROUND_NAMES))
    bg = F.cross_entropy(logits, background.repeat_interleave(out.shape[1]))
    return 10 * local + 5 * present + 5 * shapes + bg


@torch.no_grad()
def readout_accuracy(tower, head: torch.nn.Linear, frames: TowerFrames, batch: int = 256) -> dict[str, float]:
    """Per-frame readout accuracy on `frames` (patch readouts averaged over the frame): the colours present
    (each of the 8 bits right), the object count, the background."""
    out = torch.cat([head(_features(tower, frames.pixels[i:i + batch])) for i in range(0, len(frames.pixels), batch)])
    mean, truth = out.mean(1), frames.targets[:, 0]
    n_col = len(COLOURS)
    bits = ((mean[:, _LOCAL:_LOCAL + n_col] > 0.5) == (truth[:, _LOCAL:_LOCAL + n_col] > 0.5)).float().mean()
    count = slice(_LOCAL + n_col, _LOCAL + n_col + MAX_OBJECTS + 1)
    counted = (mean[:, count].argmax(-1) == truth[:, count].argmax(-1)).float().mean()
    bg = (mean[:, TARGET_WIDTH:].argmax(-1) == frames.backgrounds).float().mean()
    return {"colour_bits": round(float(bits), 4), "count": round(float(counted), 4), "background": round(float(bg), 4),
            "frames": len(frames.pixels)}


def train_tower(model, frames: TowerFrames, cfg: TowerStageConfig, seed: int) -> tuple[torch.nn.Linear, list[float]]:
    """Fit `model`'s vision tower and a linear readout head to `frames` (cfg.steps AdamW steps of cfg.batch_frames
    frames, drawn with numpy's generator seeded by `seed`); returns (head, per-step losses). The tower is left
    trained in place, in train mode off."""
    tower = model.model.vision_tower
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = torch.nn.Linear(model.config.vision_config.hidden_size, HEAD_WIDTH)
    params = [*tower.parameters(), *head.parameters()]
    was = [p.requires_grad for p in tower.parameters()]
    for p in tower.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr)
    rng = np.random.default_rng(seed)
    batch = min(cfg.batch_frames, len(frames.pixels))
    losses: list[float] = []
    tower.train()
    for _ in range(cfg.steps):
        idx = torch.as_tensor(rng.choice(len(frames.pixels), batch, replace=False))
        loss = _loss(head(_features(tower, frames.pixels[idx])), frames.targets[idx], frames.backgrounds[idx])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
    tower.eval()
    for p, flag in zip(tower.parameters(), was):
        p.requires_grad_(flag)
    if not all(np.isfinite(losses)):
        raise VidsmeError("tower stage diverged (a non-finite loss); lower tower.lr")
    return head, losses


@torch.no_grad()
def init_projector_from_head(model, head: torch.nn.Linear) -> None:
    """The projector's first layer's first HEAD_WIDTH units become the readout head (the rest keep their
    initialisation): the language model then receives the tower's readouts in every video token."""
    first = model.model.multi_modal_projector.linear_1
    if first.weight.shape[0] < head.weight.shape[0]:
        raise VidsmeError(f"tower.init_projector: the projector has {first.weight.shape[0]} units, fewer than the "
                          f"readout's {head.weight.shape[0]}; widen model.hidden_size or set it false")
    first.weight[: head.weight.shape[0]] = head.weight
    first.bias[: head.weight.shape[0]] = head.bias
