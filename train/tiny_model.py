"""Tiny offline video LLMs (VULLMs): a LLaVA-OneVision built from configs, never downloaded.

The benchmark's laptop-sized target is a real Hugging Face architecture
(`LlavaOnevisionForConditionalGeneration`: a SigLIP vision tower, a 2-layer MLP
projector, a Qwen2 language model) at toy width, with a byte-level BPE tokenizer
trained on the split's own texts. Everything is built locally from configs, so no
hub access is ever needed, and the result is an ordinary HF directory that
`AutoModelForImageTextToText.from_pretrained(dir)` / `AutoProcessor.from_pretrained(dir)`
load like any checkpoint.

Determinism: the same `TinyVullmConfig` and the same texts give bit-identical
`model.safetensors` and `tokenizer.json` (BPE merges break count ties by pair, the model
is initialised under `torch.manual_seed(config.seed)` inside a forked RNG so the
caller's RNG state is untouched).

Provenance: `vidsme_build.json` beside the model records the `TinyVullmConfig`, the
sha256 of the tokenizer corpus (see `corpus_sha256`), the actual vocabulary size, the
parameter count per module group, the library versions and the sha256 of the written
weight and tokenizer files.

    from vidsme.train.tiny_model import TinyVullmConfig, build_tiny_vullm, tokenizer_corpus
    build_tiny_vullm(TinyVullmConfig(), tokenizer_corpus(rows), Path("runs/models/tiny-init"))
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from vidsme.errors import VidsmeError
from vidsme.provenance import sha256_file

BUILD_INFO_FILE = "vidsme_build.json"

SPECIAL_TOKENS: tuple[str, ...] = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>", "<pad>")
"""Added as special tokens first, so they get ids 0..5 and are never split."""
EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<pad>"
IMAGE_TOKEN = "<image>"
VIDEO_TOKEN = "<video>"

CHAT_TEMPLATE: str = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for c in message['content'] %}"
    "{% if c['type'] == 'video' %}<video>\n"
    "{% elif c['type'] == 'image' %}<image>\n"
    "{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""ChatML. A content part {"type": "video"} renders as "<video>\\n" (the processor then
expands the one <video> into the video's tokens), {"type": "image"} as "<image>\\n",
{"type": "text", "text": t} as t."""

# Constant words of our prompt templates (vidsme.prompts), so the BPE learns them even
# when a split's texts do not contain them.
ROLE_NAMES: tuple[str, ...] = ("system", "user", "assistant")
OPTION_LETTERS: tuple[str, ...] = ("(A)", "(B)", "(C)", "(D)", "(E)")


@dataclass(frozen=True)
class TinyVullmConfig:
    """Size and seed of a tiny LLaVA-OneVision (SigLIP tower + MLP projector + Qwen2 LM).

    Defaults are the demo's tiny model (configs/base/tiny.yaml): 1.21 M parameters with the
    synth-pretrain corpus (vision tower 174 k, projector 29 k, language model 1.0 M).

    Note: as in the released LLaVA-OneVision checkpoints, the tower's features are read
    before SigLIP's post_layernorm (vision_feature_layer=-1), so those two tensors never
    get a gradient; DDP needs find_unused_parameters or them frozen.
    """

    vocab_size: int = 2048
    """BPE vocabulary target, specials and the 256 byte symbols included. The trained
    vocabulary can be smaller when the texts have fewer distinct merges; the model's
    embedding has exactly the trained tokenizer's size."""
    hidden_size: int = 128
    """Width of the Qwen2 language model (also the projector's output width)."""
    intermediate_size: int = 384
    """Width of the language model's SwiGLU MLP."""
    num_hidden_layers: int = 4
    """Decoder layers of the language model."""
    num_attention_heads: int = 4
    """Query heads of the language model (head dim = hidden_size / num_attention_heads)."""
    num_key_value_heads: int = 2
    """Key/value heads of the language model (grouped-query attention)."""
    max_position_embeddings: int = 2048
    """Longest sequence (video tokens + text) the language model is configured for; also
    the tokenizer's model_max_length."""
    vision_hidden_size: int = 96
    """Width of the SigLIP vision tower."""
    vision_intermediate_size: int = 192
    """Width of the vision tower's MLP."""
    vision_layers: int = 2
    """Encoder layers of the vision tower."""
    vision_heads: int = 2
    """Attention heads of the vision tower."""
    image_size: int = 64
    """Side of the square frames the image and video processors resize to."""
    image_mean: tuple[float, float, float] = (0.234, 0.232, 0.231)
    """Per-channel pixel mean (0..1) the processors subtract: the synthetic pools' (64 of synth-pretrain's
    videos, 8 frames each). Centred frames matter: with SigLIP's 0.5 the dark backgrounds make every video
    token ~96% one shared vector at initialisation, and a model trained on that learns to ignore its video
    (measured: swapped-video accuracy equal to own; with centred frames the same recipe reads them)."""
    image_std: tuple[float, float, float] = (0.137, 0.126, 0.137)
    """Per-channel pixel standard deviation (0..1) the processors divide by (same frames)."""
    patch_size: int = 8
    """Side of a vision patch: (image_size/patch_size)^2 patches per frame, pooled 2x2 to
    ceil(p/2)^2 video tokens per frame (8x8 patches -> 4x4 = 16 tokens per frame)."""
    tie_word_embeddings: bool = True
    """Share the input embedding with the LM head (as Qwen2-0.5B does)."""
    seed: int = 0
    """torch seed for the random initialisation of every weight."""

    def __post_init__(self) -> None:
        problems = []
        if self.vocab_size < 256 + len(SPECIAL_TOKENS):
            problems.append(f"vocab_size {self.vocab_size} < {256 + len(SPECIAL_TOKENS)} (256 bytes + specials)")
        if self.hidden_size % self.num_attention_heads:
            problems.append(f"hidden_size {self.hidden_size} not divisible by num_attention_heads")
        if self.num_attention_heads % self.num_key_value_heads:
            problems.append("num_attention_heads not divisible by num_key_value_heads")
        if self.vision_hidden_size % self.vision_heads:
            problems.append(f"vision_hidden_size {self.vision_hidden_size} not divisible by vision_heads")
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or min(self.image_std) <= 0:
            problems.append(f"image_mean and image_std need 3 channels and a positive std, got {self.image_mean}, "
                            f"{self.image_std}")
        if self.image_size % self.patch_size:
            problems.append(f"image_size {self.image_size} not divisible by patch_size {self.patch_size}")
        if problems:
            raise VidsmeError("invalid TinyVullmConfig: " + "; ".join(problems))

    @property
    def patches_per_side(self) -> int:
        return self.image_size // self.patch_size

    @property
    def video_tokens_per_frame(self) -> int:
        """ceil(p/2)^2 with p patches per side (the model pools 2x2, bilinear, rounding up)."""
        return math.ceil(self.patches_per_side / 2) ** 2


def tokenizer_corpus(rows: Iterable[dict]) -> list[str]:
    """Texts to train the tokenizer on: each row's question, candidates, answer and
    caption (in that order, empty fields skipped), then the fixed words of our prompt
    templates (system prompts, "Question:", "Options:", "(A)".."(E)", "Best Option:",
    "Only give the best option.", the caption instruction, role names)."""
    texts: list[str] = []
    for row in rows:
        for key in ("question", "candidates", "answer", "caption"):
            value = row.get(key)
            if not value:
                continue
            if isinstance(value, str):
                texts.append(value)
            else:
                texts.extend(str(v) for v in value if v)
    return texts + fixed_prompt_texts()


def fixed_prompt_texts() -> list[str]:
    """The constant words of vidsme.prompts' templates (see `tokenizer_corpus`)."""
    from vidsme import prompts

    return [
        prompts.DEFAULT_SYSTEM,
        prompts.REFERENCE_SYSTEM,
        prompts.DEFAULT_CAPTION_INSTRUCTION,
        "Question:",
        "Options:",
        *OPTION_LETTERS,
        "Best Option:",
        "Only give the best option.",
        *ROLE_NAMES,
    ]


def corpus_sha256(texts: Iterable[str]) -> str:
    """sha256 of the tokenizer corpus, unambiguous: the UTF-8 of the JSON list of texts
    (json.dumps, ensure_ascii=False, no spaces)."""
    data = json.dumps(list(texts), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def train_tokenizer(texts: Iterable[str], vocab_size: int, *, model_max_length: int = 2048):
    """Train a byte-level BPE on `texts` and wrap it as a `PreTrainedTokenizerFast`.

    Deterministic (same texts, same vocab_size -> same tokenizer.json). Byte-level: every
    string encodes, and decode(encode(s)) == s (no normaliser, no unknown token).
    SPECIAL_TOKENS get ids 0..5 and are single tokens wherever they appear; eos is
    "<|im_end|>", pad "<pad>", no bos; `tokenizer.image_token` / `video_token` are set,
    as the LLaVA processors expect. The chat template is CHAT_TEMPLATE.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise VidsmeError(f"vocab_size {vocab_size} is too small: need >= {256 + len(SPECIAL_TOKENS)}")
    texts = list(texts)
    if not texts:
        raise VidsmeError("train_tokenizer: no texts given; pass tokenizer_corpus(rows) of a split")
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=sorted(pre_tokenizers.ByteLevel.alphabet()),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer, length=len(texts))
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        bos_token=None,
        unk_token=None,
        model_max_length=model_max_length,
        extra_special_tokens={"image_token": IMAGE_TOKEN, "video_token": VIDEO_TOKEN},
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    for t in SPECIAL_TOKENS:  # guard against a tokenizers change splitting them
        ids = hf_tok.encode(t, add_special_tokens=False)
        if len(ids) != 1:
            raise VidsmeError(f"tokenizer splits special token {t!r} into {ids}; tokenizers version issue")
    return hf_tok


def make_tiny_vullm(config: TinyVullmConfig, texts: Sequence[str]):
    """(model, processor) in memory: what `build_tiny_vullm` saves. Float32, eval mode."""
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
        Qwen2Config,
        SiglipVisionConfig,
    )

    tokenizer = train_tokenizer(texts, config.vocab_size, model_max_length=config.max_position_embeddings)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    side = config.image_size
    text_config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=config.tie_word_embeddings,
        bos_token_id=None,
        eos_token_id=ids[EOS_TOKEN],
        pad_token_id=ids[PAD_TOKEN],
    )
    vision_config = SiglipVisionConfig(
        hidden_size=config.vision_hidden_size,
        intermediate_size=config.vision_intermediate_size,
        num_hidden_layers=config.vision_layers,
        num_attention_heads=config.vision_heads,
        image_size=side,
        patch_size=config.patch_size,
        num_channels=3,
        vision_use_head=False,  # LLaVA-OV reads hidden states; an attention-pooling head would be dead weight
    )
    model_config = LlavaOnevisionConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_index=ids[IMAGE_TOKEN],
        video_token_index=ids[VIDEO_TOKEN],
        vision_feature_select_strategy="full",  # SigLIP has no CLS token to drop
        vision_feature_layer=-1,
        image_grid_pinpoints=[[side, side]],  # one tile: an image is its base view + one crop
        vision_aspect_ratio="anyres_max_1",
        tie_word_embeddings=config.tie_word_embeddings,
    )
    model_config.dtype = torch.float32
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = LlavaOnevisionForConditionalGeneration(model_config)
    model = model.to(torch.float32).eval()
    model.generation_config.eos_token_id = ids[EOS_TOKEN]
    model.generation_config.pad_token_id = ids[PAD_TOKEN]
    model.generation_config.bos_token_id = None

    size = {"height": side, "width": side}
    pixel_norm = {"image_mean": list(config.image_mean), "image_std": list(config.image_std)}
    image_processor = LlavaOnevisionImageProcessor(
        size=size, crop_size=size, image_grid_pinpoints=[[side, side]], **pixel_norm
    )
    video_processor = LlavaOnevisionVideoProcessor(size=size, **pixel_norm)
    processor = LlavaOnevisionProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        num_image_tokens=config.patches_per_side**2,
        vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_1",
        chat_template=CHAT_TEMPLATE,
    )
    return model, processor


def build_info(config: TinyVullmConfig, texts: Sequence[str], model, tokenizer) -> dict:
    """The provenance record written as vidsme_build.json (file hashes added on save)."""
    import tokenizers
    import transformers

    from vidsme.train.families import family_of, module_groups

    groups = module_groups(model)
    return {
        "builder": "vidsme.train.tiny_model.build_tiny_vullm",
        "tiny_vullm_config": dataclasses.asdict(config),
        "tokenizer_corpus_sha256": corpus_sha256(texts),
        "tokenizer_corpus_texts": len(texts),
        "vocab_size_trained": len(tokenizer),
        "family": family_of(model).name,
        "parameters": {name: sum(p.numel() for _, p in params) for name, params in groups.items()},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__},
    }


def build_tiny_vullm(config: TinyVullmConfig, texts: Sequence[str], out_dir: Path, *, overwrite: bool = False) -> Path:
    """Build the tiny VULLM and save it as a normal HF directory; returns `out_dir`.

    Writes model.safetensors + config.json + generation_config.json, the processor
    (tokenizer.json, tokenizer_config.json, chat template, image and video processor
    configs) and vidsme_build.json. `texts` is the tokenizer corpus, normally
    `tokenizer_corpus(rows)`. The directory is written under a temporary name beside
    `out_dir` and renamed at the end, so a failed build leaves nothing half-written.
    An existing non-empty `out_dir` is an error unless `overwrite=True`.
    """
    out_dir = Path(out_dir)
    texts = list(texts)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        if not overwrite:
            raise VidsmeError(f"{out_dir}: already exists and is not empty; remove it, pick another "
                              "output directory, or pass overwrite=True")
    model, processor = make_tiny_vullm(config, texts)
    info = build_info(config, texts, model, processor.tokenizer)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        info["files_sha256"] = {
            name: sha256_file(tmp / name) for name in ("model.safetensors", "tokenizer.json") if (tmp / name).exists()
        }
        (tmp / BUILD_INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir) if out_dir.is_dir() else out_dir.unlink()
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def load_tiny_vullm(path: Path):
    """(model, processor) from a local directory, never the hub (local_files_only=True).

    A path that is not a directory is an error here rather than a hub repo id."""
    from vidsme.model_files import load_pretrained

    path = Path(path)
    if not (path / "config.json").is_file():
        raise VidsmeError(f"{path}: not a model directory (no config.json); build one with build_tiny_vullm")
    model, processor = load_pretrained(path, dtype=torch.float32,
                                       fix="rebuild the directory with build_tiny_vullm or restore the file")
    return model.eval(), processor
