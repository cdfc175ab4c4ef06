"""Model families: which modules of a Hugging Face video LLM are its vision tower,
projector and language model, and where a video's tokens come from.

Training strategies (full | lora | projector) freeze and unfreeze *module groups*;
training and the benchmark need a video's prompt tokens, model inputs and the frame each
video token belongs to (`video_inputs`). Both are answered here from
one table, keyed by `config.model_type`, so that any supported checkpoint directory
works, not only our tiny model.

Parameters are assigned by module-path prefixes from the table (longest prefix wins,
so "model.visual.merger" beats "model.visual"), relative to the *ForConditionalGeneration
module. Wrappers (e.g. PEFT's "base_model.model.") are found automatically: the root is
the first module under which every required path of the family resolves.

Module names checked against transformers 5.23:
  llava_onevision    model.vision_tower | model.multi_modal_projector, model.image_newline |
                     model.language_model, lm_head
  llava_next_video   model.vision_tower | model.multi_modal_projector, model.image_newline,
                     model.vision_resampler (parameters only with spatial_pool_mode="conv") |
                     model.language_model, lm_head
  qwen2_vl, qwen2_5_vl  model.visual (but its merger) | model.visual.merger |
                     model.language_model, lm_head
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from vidsme.errors import UnknownNameError, VidsmeError
from vidsme.names import did_you_mean

MODULE_GROUPS: tuple[str, ...] = ("vision_tower", "projector", "language_model")


@dataclass(frozen=True)
class Family:
    """A family of HF video LLMs sharing a module layout.

    name: our name for the family (also its canonical model_type).
    model_types: the `config.model_type` values that belong to it.
    groups: (group, module paths) for each of MODULE_GROUPS; paths are relative to the
        *ForConditionalGeneration module and may name a module or a parameter.
    optional: paths that some configs or versions lack (not required to find the root).
    """

    name: str
    model_types: tuple[str, ...]
    groups: tuple[tuple[str, tuple[str, ...]], ...]
    optional: tuple[str, ...] = ()

    def paths(self, group: str) -> tuple[str, ...]:
        return dict(self.groups)[group]

    @property
    def required_paths(self) -> tuple[str, ...]:
        return tuple(p for _, paths in self.groups for p in paths if p not in self.optional)


_LM = ("model.language_model", "lm_head")

FAMILIES: tuple[Family, ...] = (
    Family(
        "llava_onevision",
        ("llava_onevision",),
        (("vision_tower", ("model.vision_tower",)),
         ("projector", ("model.multi_modal_projector", "model.image_newline")),
         ("language_model", _LM)),
    ),
    Family(
        "llava_next_video",
        ("llava_next_video",),
        (("vision_tower", ("model.vision_tower",)),
         ("projector", ("model.multi_modal_projector", "model.image_newline", "model.vision_resampler")),
         ("language_model", _LM)),
        optional=("model.image_newline", "model.vision_resampler"),
    ),
    Family(
        "qwen2_vl",
        ("qwen2_vl",),
        (("vision_tower", ("model.visual",)),
         ("projector", ("model.visual.merger",)),
         ("language_model", _LM)),
    ),
    Family(
        "qwen2_5_vl",
        ("qwen2_5_vl",),
        (("vision_tower", ("model.visual",)),
         ("projector", ("model.visual.merger",)),
         ("language_model", _LM)),
    ),
)
_BY_MODEL_TYPE: dict[str, Family] = {t: f for f in FAMILIES for t in f.model_types}


def _config_of(model_or_config):
    # a model (or a wrapper forwarding attributes, like PEFT) has .config; a config has .model_type
    config = getattr(model_or_config, "config", None)
    if config is not None and hasattr(config, "model_type"):
        return config
    if hasattr(model_or_config, "model_type"):
        return model_or_config
    raise VidsmeError(f"{type(model_or_config).__name__} is neither a Hugging Face model nor a config "
                      "(no .config / .model_type)")


def family_of(model_or_config) -> Family:
    """The Family of a model or config, by `config.model_type`.

    Raises UnknownNameError (a VidsmeError) naming the model_type, the supported
    families and the closest names."""
    model_type = _config_of(model_or_config).model_type
    family = _BY_MODEL_TYPE.get(model_type)
    if family is None:
        supported = ", ".join(f.name for f in FAMILIES)
        raise UnknownNameError(
            f"unsupported model family: model_type {model_type!r}.{did_you_mean(model_type, _BY_MODEL_TYPE)} "
            f"Supported families: {supported}. A new family goes in vidsme/train/families.py (FAMILIES)."
        )
    return family


def _resolves(module: torch.nn.Module, path: str) -> bool:
    # registered children only: wrappers that forward attributes (PEFT) must not resolve
    obj = module
    for part in path.split("."):
        if not isinstance(obj, torch.nn.Module):
            return False
        obj = obj._modules.get(part, obj._parameters.get(part))
        if obj is None:
            return False
    return True


def _root_prefix(model: torch.nn.Module, family: Family) -> str:
    """Name prefix of the *ForConditionalGeneration module inside `model` ("" if it is it)."""
    required = family.required_paths
    for name, module in model.named_modules():
        if all(_resolves(module, p) for p in required):
            return f"{name}." if name else ""
    raise VidsmeError(
        f"{type(model).__name__} (model_type {family.name!r}) lacks the modules vidsme expects "
        f"({', '.join(required)}); is it a *ForConditionalGeneration model? A bare base model or a "
        "renamed layout needs its own entry in vidsme/train/families.py"
    )


def _matcher(model: torch.nn.Module):
    """name -> group (or None), longest prefix first."""
    family = family_of(model)
    root = _root_prefix(model, family)
    prefixes = sorted(
        ((root + path, group) for group, paths in family.groups for path in paths),
        key=lambda pg: len(pg[0]),
        reverse=True,
    )

    def group_for(name: str) -> str | None:
        for prefix, group in prefixes:
            if name == prefix or name.startswith(prefix + "."):
                return group
        return None

    return group_for


def module_groups(model: torch.nn.Module) -> dict[str, list[tuple[str, torch.nn.Parameter]]]:
    """Every parameter of `model.named_parameters()` in exactly one of MODULE_GROUPS.

    Tied parameters appear once (named_parameters' de-duplication: a tied lm_head.weight
    is listed as model.language_model.embed_tokens.weight). Order within a group is
    named_parameters' order. A parameter outside every group is an error naming it.
    """
    group_for = _matcher(model)
    groups: dict[str, list[tuple[str, torch.nn.Parameter]]] = {g: [] for g in MODULE_GROUPS}
    orphans = []
    for name, param in model.named_parameters():
        group = group_for(name)
        if group is None:
            orphans.append(name)
        else:
            groups[group].append((name, param))
    if orphans:
        raise VidsmeError(
            f"{len(orphans)} parameters of {type(model).__name__} belong to no module group "
            f"(first: {', '.join(orphans[:5])}); add their module path to the family "
            f"{family_of(model).name!r} in vidsme/train/families.py"
        )
    return groups


def parameter_counts(model) -> dict[str, int]:
    """Parameters per module group (vidsme.train.families) of a model or skeleton."""
    return {group: sum(p.numel() for _, p in params) for group, params in module_groups(model).items()}


def group_of_parameter(model: torch.nn.Module, name: str) -> str:
    """The module group of parameter `name` (tied aliases such as lm_head.weight included)."""
    names = [n for n, _ in model.named_parameters(remove_duplicate=False)]
    if name not in set(names):
        raise UnknownNameError(f"{type(model).__name__} has no parameter {name!r}.{did_you_mean(name, names)}")
    group = _matcher(model)(name)
    if group is None:
        raise VidsmeError(f"parameter {name!r} belongs to no module group of family {family_of(model).name!r}")
    return group


def video_token_layout(config, n_frames: int) -> tuple[int, list[int]]:
    """(number of video tokens for one video of `n_frames` frames, frame slot per token).

    The slot of a token is the index of the frame it comes from, or -1 for a token of no
    frame. `config` may also be a model. Only for families whose layout the model config
    determines; `video_inputs` covers every family.

    llava_onevision: p = image_size // patch_size patches per side, pooled 2x2 (bilinear,
        rounding up) to k = ceil(p/2)^2 tokens per frame, frames in order, then one
        image_newline token: n_frames*k + 1 tokens, slots [0]*k + [1]*k + ... + [-1].
        (LlavaOnevisionProcessor.replace_video_token, LlavaOnevisionModel.get_video_features.)
    llava_next_video: k = (p // spatial_pool_stride)^2 tokens per frame, no newline:
        n_frames*k tokens, slots [0]*k + ... + [n-1]*k. Assumes the video processor
        resizes frames to the vision tower's image_size, as the released checkpoints do.
    qwen2_vl, qwen2_5_vl: NotImplementedError (the count depends on the frame resolution
        the processor chooses, not on the model config, and a token spans two frames);
        use `video_inputs`, which reads it from the processor's video_grid_thw.
    """
    config = _config_of(config)
    family = family_of(config)
    if n_frames < 1:
        raise VidsmeError(f"n_frames must be >= 1, got {n_frames}")
    vision = config.vision_config
    if family.name == "llava_onevision":
        p = vision.image_size // vision.patch_size
        k = math.ceil(p / 2) ** 2
        slots = [t for t in range(n_frames) for _ in range(k)] + [-1]
        return len(slots), slots
    if family.name == "llava_next_video":
        p = vision.image_size // vision.patch_size
        stride = config.spatial_pool_stride
        k = (p // stride) ** 2
        if k != p * p // 4:  # LlavaNextVideoProcessor hard-codes a 2x2 pool: (p*p)//4 tokens per frame
            raise VidsmeError(
                f"llava_next_video config with {p}x{p} patches and spatial_pool_stride {stride}: the model pools to "
                f"{k} tokens per frame but LlavaNextVideoProcessor inserts {p * p // 4}; videos cannot run with it"
            )
        slots = [t for t in range(n_frames) for _ in range(k)]
        return len(slots), slots
    raise NotImplementedError(
        f"video_token_layout for {family.name!r}: its video token count depends on the resolution its processor "
        "resizes frames to (smart_resize between the video processor's min_pixels/max_pixels), which the model "
        "config does not hold, and each token covers temporal_patch_size (2) frames, so it has no single frame "
        "slot. Use vidsme.train.families.video_inputs(config, processor, frames), which reads the count from the "
        "processor's video_grid_thw: t*h*w / spatial_merge_size**2, token i of temporal group t covering frames "
        "2t and 2t+1."
    )


# Families whose video becomes one [n_frames, 3, H, W] tensor per sample, stacked over the batch.
_PER_FRAME_PIXELS = ("llava_onevision", "llava_next_video")
# Families whose video becomes patch rows + a (t, h, w) grid row, concatenated over the batch.
_PATCH_ROWS = ("qwen2_vl", "qwen2_5_vl")
MM_TOKEN_TYPE_VIDEO = 2  # the value of a video placeholder in Qwen2-VL's mm_token_type_ids (text 0, image 1)


@dataclass(frozen=True)
class VideoInputs:
    """What one video contributes to a prompt and to the model call.

    token_ids: the exact token ids the video occupies in the prompt, wrappers included.
    frame_slot: per token of token_ids, the index of the (first) frame it comes from, or -1
        for a token of no frame (LLaVA-OneVision's newline, Qwen2-VL's vision start/end).
    model_kwargs: tensors for the model's forward, for this one video.
    concat: how model_kwargs of several samples batch: False -> torch.stack (a leading
        per-sample dim appears), True -> torch.cat along dim 0 (rows of all videos in order,
        as Qwen2-VL's processor batches them). Set by family, never guessed from shapes.
    mm_token_types: per token of token_ids, its value in the model's `mm_token_type_ids`
        (M-RoPE needs them), or None for models that take no such input.
    """

    token_ids: list[int]
    frame_slot: list[int]
    model_kwargs: dict[str, torch.Tensor]
    concat: bool = False
    mm_token_types: list[int] | None = None


def static_video_tokens(config, n_frames: int) -> tuple[list[int], list[int]] | None:
    """(video token ids, frame slots) when the model config alone determines them (LLaVA
    families), else None (Qwen2-VL: they depend on the frames' resolution)."""
    config = _config_of(config)
    if family_of(config).name not in _PER_FRAME_PIXELS:
        return None
    n, slots = video_token_layout(config, n_frames)
    return [config.video_token_index] * n, slots


def video_inputs(config, processor, frames: np.ndarray) -> VideoInputs:
    """The prompt tokens and model inputs of one video (uint8 frames [n, H, W, 3]).

    llava_onevision, llava_next_video: video_token_layout's tokens, all
        `config.video_token_index`; pixel_values_videos [n, 3, H, W] from the processor.
    qwen2_vl, qwen2_5_vl: <|vision_start|> + <|video_pad|> * t*h*w/merge**2 + <|vision_end|>,
        (ids from the config: vision_start_token_id, video_token_id, vision_end_token_id)
        as their chat template writes the video and their processor expands it from
        video_grid_thw (t, h, w). Tokens are ordered by temporal patch, then merged block; a
        token covers the temporal_patch_size frames 2t, 2t+1 of its patch, and its slot is
        the FIRST of them, 2t (the processor pads an odd frame count by repeating the last
        frame, so a first frame always exists). Model kwargs: pixel_values_videos
        [t*h*w, C*temporal_patch_size*patch**2] and video_grid_thw [1, 3]; the dataset adds
        mm_token_type_ids from mm_token_types. qwen2_5_vl gets no second_per_grid_ts (the
        frames' timing is not known here): its M-RoPE then spaces temporal patches 1 s apart.
    """
    config = _config_of(config)
    family = family_of(config)
    out = processor.video_processor(videos=[frames], return_tensors="pt")
    if family.name in _PER_FRAME_PIXELS:
        ids, slots = static_video_tokens(config, len(frames))
        return VideoInputs(ids, slots, {"pixel_values_videos": out["pixel_values_videos"][0]})
    if family.name in _PATCH_ROWS:
        merge = config.vision_config.spatial_merge_size
        if processor.video_processor.merge_size != merge:
            raise VidsmeError(f"video processor merge_size {processor.video_processor.merge_size} != the model's "
                              f"spatial_merge_size {merge}: processor and model do not belong together")
        step = config.vision_config.temporal_patch_size
        t, h, w = (int(x) for x in out["video_grid_thw"][0])
        per_patch = h * w // merge**2
        slots = [-1] + [i * step for i in range(t) for _ in range(per_patch)] + [-1]
        n = len(slots) - 2
        ids = [config.vision_start_token_id] + [config.video_token_id] * n + [config.vision_end_token_id]
        types = [0] + [MM_TOKEN_TYPE_VIDEO] * n + [0]
        kwargs = {"pixel_values_videos": out["pixel_values_videos"], "video_grid_thw": out["video_grid_thw"]}
        return VideoInputs(ids, slots, kwargs, concat=True, mm_token_types=types)
    raise NotImplementedError(f"video_inputs for family {family.name!r}: add it in vidsme/train/families.py")


def reversed_video_inputs(config, processor, frames: np.ndarray, natural: VideoInputs) -> VideoInputs:
    """`video_inputs` of the same frames in reverse order (Vid-SME's second view).

    LLaVA families process each frame on its own, so reversing the processed frames equals
    processing the reversed frames (tested) and saves a second pass through the processor.
    Qwen2-VL's patches mix two consecutive frames: the reversed frames are processed anew.
    """
    if family_of(config).name in _PER_FRAME_PIXELS:
        flipped = {k: torch.flip(v, dims=(0,)) for k, v in natural.model_kwargs.items()}
        return VideoInputs(natural.token_ids, natural.frame_slot, flipped, natural.concat, natural.mm_token_types)
    return video_inputs(config, processor, np.ascontiguousarray(frames[::-1]))
