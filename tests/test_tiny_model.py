"""Tiny offline VULLM builder (vidsme.train.tiny_model) and model families (vidsme.train.families)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from vidsme.errors import UnknownNameError, VidsmeError
from vidsme.train.families import (
    MODULE_GROUPS,
    family_of,
    group_of_parameter,
    module_groups,
    video_token_layout,
)
from vidsme.train.tiny_model import (
    BUILD_INFO_FILE,
    SPECIAL_TOKENS,
    TinyVullmConfig,
    build_tiny_vullm,
    corpus_sha256,
    make_tiny_vullm,
    tokenizer_corpus,
    train_tokenizer,
)

ROWS = [
    {"question": "Which shape moves first?", "candidates": ["the red square", "the blue circle"],
     "answer": "the red square", "caption": None},
    {"question": "Describe this clip in detail.", "candidates": None, "answer": None,
     "caption": "A green triangle drifts left, bounces once, then leaves. Filmed in Lindholm at dawn."},
    {"question": "What colour is the circle?", "candidates": None, "answer": "blue", "caption": None},
]
TEXTS = tokenizer_corpus(ROWS)
TINY = TinyVullmConfig(
    vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
    num_key_value_heads=1, max_position_embeddings=512, vision_hidden_size=32, vision_intermediate_size=64,
    vision_layers=1, vision_heads=2, image_size=32, patch_size=8, seed=3,
)
VIDEO_MESSAGES = [
    {"role": "system", "content": "Watch the video."},
    {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Question: what moves?"}]},
    {"role": "assistant", "content": "the red square"},
]


def _frames(n: int, side: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, side, side, 3), dtype=np.uint8)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The tiny model, built with every socket connection refused (proves: offline)."""
    out = tmp_path_factory.mktemp("tiny") / "model"
    with pytest.MonkeyPatch.context() as mp:
        def refuse(*args, **kwargs):
            raise OSError("network access during build_tiny_vullm")

        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket, "create_connection", refuse)
        assert build_tiny_vullm(TINY, TEXTS, out) == out
    return out


# ---------------------------------------------------------------- tokenizer


def test_tokenizer_corpus_has_rows_and_prompt_words():
    assert TEXTS[:4] == ["Which shape moves first?", "the red square", "the blue circle", "the red square"]
    for word in ("Question:", "Options:", "(A)", "(E)", "Best Option:", "Only give the best option.", "assistant"):
        assert word in TEXTS


def test_tokenizer_is_deterministic_byte_level_with_single_special_tokens():
    a, b = train_tokenizer(TEXTS, 300), train_tokenizer(list(TEXTS), 300)
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()
    assert len(a) <= 300
    for i, tok in enumerate(SPECIAL_TOKENS):
        assert a.convert_tokens_to_ids(tok) == i
        assert a.encode(tok, add_special_tokens=False) == [i]
    ids = a.encode("<|im_start|>user\n<video>\nHi<|im_end|>", add_special_tokens=False)
    assert ids[0] == 1 and 4 in ids and ids[-1] == 2
    assert (a.eos_token, a.pad_token, a.bos_token) == ("<|im_end|>", "<pad>", None)
    assert (a.image_token, a.video_token) == ("<image>", "<video>")
    unseen = "Zürich 🎬 日本語 |im_end|> \t tabs"  # never in the corpus: byte-level still round-trips
    assert a.decode(a.encode(unseen, add_special_tokens=False)) == unseen


def test_tokenizer_rejects_tiny_vocab_and_empty_corpus():
    with pytest.raises(VidsmeError, match="too small"):
        train_tokenizer(TEXTS, 100)
    with pytest.raises(VidsmeError, match="no texts"):
        train_tokenizer([], 300)
    with pytest.raises(VidsmeError, match="vocab_size"):
        TinyVullmConfig(vocab_size=10)
    with pytest.raises(VidsmeError, match="positive std"):
        TinyVullmConfig(image_std=(0.1, 0.0, 0.1))
    with pytest.raises(VidsmeError, match="3 channels"):
        TinyVullmConfig(image_mean=(0.2, 0.2))


def test_chat_template_renders_video_placeholder():
    tok = train_tokenizer(TEXTS, 300)
    text = tok.apply_chat_template(VIDEO_MESSAGES, tokenize=False, add_generation_prompt=False)
    assert text == (
        "<|im_start|>system\nWatch the video.<|im_end|>\n"
        "<|im_start|>user\n<video>\nQuestion: what moves?<|im_end|>\n"
        "<|im_start|>assistant\nthe red square<|im_end|>\n"
    )
    prompt = tok.apply_chat_template(VIDEO_MESSAGES[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")


# ---------------------------------------------------------------- build / reload


def test_build_writes_hf_dir_with_provenance(built):
    names = {p.name for p in built.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", BUILD_INFO_FILE} <= names
    info = json.loads((built / BUILD_INFO_FILE).read_text())
    assert info["tiny_vullm_config"]["vocab_size"] == 300 and info["tiny_vullm_config"]["seed"] == 3
    assert info["tokenizer_corpus_sha256"] == corpus_sha256(TEXTS)
    assert info["files_sha256"]["model.safetensors"] == _sha(built / "model.safetensors")
    assert info["files_sha256"]["tokenizer.json"] == _sha(built / "tokenizer.json")
    config = json.loads((built / "config.json").read_text())
    assert config["tie_word_embeddings"] is True and config["text_config"]["tie_word_embeddings"] is True
    assert config["dtype"] == "float32"
    assert config["text_config"]["vocab_size"] == info["vocab_size_trained"]
    assert not list(built.parent.glob(".model.tmp-*"))


def test_rebuild_is_bit_identical(built, tmp_path):
    again = build_tiny_vullm(TINY, TEXTS, tmp_path / "again")
    assert sorted(p.name for p in again.iterdir()) == sorted(p.name for p in built.iterdir())
    for path in built.iterdir():
        assert _sha(path) == _sha(again / path.name), path.name
    other = build_tiny_vullm(dataclasses.replace(TINY, seed=4), TEXTS, tmp_path / "seed4")
    assert _sha(other / "model.safetensors") != _sha(built / "model.safetensors")
    assert _sha(other / "tokenizer.json") == _sha(built / "tokenizer.json")


def test_build_refuses_non_empty_out_dir(built):
    with pytest.raises(VidsmeError, match="not empty"):
        build_tiny_vullm(TINY, TEXTS, built)


RELOAD = textwrap.dedent(
    """
    import sys, numpy as np, torch
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText, AutoProcessor
    d, work = sys.argv[1], sys.argv[2]
    model = AutoModelForImageTextToText.from_pretrained(d).eval()
    proc = AutoProcessor.from_pretrained(d)
    ref = load_file(work + "/ref.safetensors")
    text = open(work + "/prompt.txt", encoding="utf-8").read()
    enc = proc(text=[text], videos=[np.load(work + "/frames.npy")], return_tensors="pt")
    assert torch.equal(enc["input_ids"], ref["input_ids"]), "input ids differ"
    assert torch.equal(enc["pixel_values_videos"], ref["pixel_values_videos"]), "pixels differ"
    with torch.no_grad():
        logits = model(**enc).logits
    assert model.dtype == torch.float32, model.dtype
    assert all(p.dtype == torch.float32 for p in model.parameters())
    emb = model.model.language_model.embed_tokens.weight
    assert model.lm_head.weight.data_ptr() == emb.data_ptr(), "lm_head not tied after reload"
    print("max_abs_diff", float((logits - ref["logits"]).abs().max()))
    assert torch.equal(logits, ref["logits"]), "logits differ"
    print("OK", type(model).__name__, type(proc).__name__)
    """
)


def test_reload_in_fresh_offline_process_gives_same_logits(built, tmp_path):
    from safetensors.torch import save_file

    model, processor = make_tiny_vullm(TINY, TEXTS)  # the in-memory twin of `built` (determinism)
    assert model.lm_head.weight.data_ptr() == model.model.language_model.embed_tokens.weight.data_ptr()
    text = processor.apply_chat_template(VIDEO_MESSAGES, tokenize=False)
    frames = _frames(16, 48)  # not the model's size: the processor resizes
    enc = processor(text=[text], videos=[frames], return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits
    assert logits.dtype == torch.float32 and logits.shape[-1] == len(processor.tokenizer)
    save_file({"logits": logits.contiguous(), "input_ids": enc["input_ids"],
               "pixel_values_videos": enc["pixel_values_videos"]}, str(tmp_path / "ref.safetensors"))
    (tmp_path / "prompt.txt").write_text(text, encoding="utf-8")
    np.save(tmp_path / "frames.npy", frames)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    run = subprocess.run([sys.executable, "-c", RELOAD, str(built), str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "OK LlavaOnevisionForConditionalGeneration LlavaOnevisionProcessor" in run.stdout


# ---------------------------------------------------------------- video token layout


@pytest.mark.parametrize("n_frames", [4, 16])
def test_video_token_layout_matches_saved_processor(built, n_frames):
    from transformers import AutoConfig, AutoProcessor

    config = AutoConfig.from_pretrained(built)
    processor = AutoProcessor.from_pretrained(built)
    enc = processor(text=["<video>\nhi"], videos=[_frames(n_frames, 32)], return_tensors="pt")
    count = int((enc["input_ids"][0] == config.video_token_index).sum())
    n, slots = video_token_layout(config, n_frames)
    k = TINY.video_tokens_per_frame
    assert k == 4  # 32 px / 8 px = 4x4 patches, pooled to 2x2
    assert n == count == n_frames * k + 1
    assert slots == [t for t in range(n_frames) for _ in range(k)] + [-1]


def test_default_config_layout_is_16_tokens_per_frame_plus_newline():
    cfg = TinyVullmConfig()
    assert cfg.video_tokens_per_frame == 16
    fake = types.SimpleNamespace(
        model_type="llava_onevision", vision_config=types.SimpleNamespace(image_size=64, patch_size=8)
    )
    assert video_token_layout(fake, 16)[0] == 257
    # odd patch grids round up: 27x27 patches (LLaVA-OV-7B, 384/14) -> 14x14 = 196 per frame
    fake.vision_config = types.SimpleNamespace(image_size=384, patch_size=14)
    assert video_token_layout(fake, 2)[0] == 2 * 196 + 1


# ---------------------------------------------------------------- families / module groups


def _tiny_text_kwargs() -> dict:
    return dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                num_key_value_heads=1, max_position_embeddings=128, bos_token_id=0, eos_token_id=1, pad_token_id=2)


def _tiny_llava_next_video(pool_mode: str = "average"):
    from transformers import CLIPVisionConfig, LlavaNextVideoConfig, LlavaNextVideoForConditionalGeneration, Qwen2Config

    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=16)
    config = LlavaNextVideoConfig(text_config=Qwen2Config(**_tiny_text_kwargs()), vision_config=vision,
                                  image_token_index=3, video_token_index=4, image_grid_pinpoints=[[32, 32]],
                                  spatial_pool_mode=pool_mode)
    return LlavaNextVideoForConditionalGeneration(config)


def _tiny_qwen_vl(kind: str):
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
    )

    text = dict(_tiny_text_kwargs(), rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                      "mrope_section": [2, 3, 3]})
    if kind == "qwen2_vl":
        vision = dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, patch_size=8, mlp_ratio=2)
        return Qwen2VLForConditionalGeneration(Qwen2VLConfig(text_config=text, vision_config=vision))
    vision = dict(depth=1, hidden_size=32, out_hidden_size=32, intermediate_size=64, num_heads=2, patch_size=8,
                  fullatt_block_indexes=[0], window_size=32)
    return Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(text_config=text, vision_config=vision))


def _assert_partition(model) -> dict[str, list[str]]:
    groups = module_groups(model)
    assert tuple(groups) == MODULE_GROUPS
    names = {g: [n for n, _ in params] for g, params in groups.items()}
    flat = [n for ns in names.values() for n in ns]
    assert len(flat) == len(set(flat)), "groups overlap"
    assert set(flat) == {n for n, _ in model.named_parameters()}, "groups miss parameters"
    assert all(names[g] for g in MODULE_GROUPS), "an empty group"
    total = sum(p.numel() for params in groups.values() for _, p in params)
    assert total == sum(p.numel() for p in model.parameters())
    for g, ns in names.items():
        assert all(group_of_parameter(model, n) == g for n in ns)
    return names


def test_module_groups_llava_onevision():
    model, _ = make_tiny_vullm(TINY, TEXTS)
    names = _assert_partition(model)
    assert family_of(model).name == "llava_onevision"
    assert "model.image_newline" in names["projector"]
    assert all(n.startswith("model.multi_modal_projector.") or n == "model.image_newline" for n in names["projector"])
    assert all(n.startswith("model.vision_tower.") for n in names["vision_tower"])
    assert all(n.startswith("model.language_model.") for n in names["language_model"])  # lm_head tied away
    assert group_of_parameter(model, "lm_head.weight") == "language_model"  # the tied alias still resolves
    with pytest.raises(UnknownNameError, match="Did you mean: model.image_newline"):
        group_of_parameter(model, "model.image_newlin")


@pytest.mark.parametrize("pool_mode", ["average", "conv"])
def test_module_groups_llava_next_video(pool_mode):
    model = _tiny_llava_next_video(pool_mode)
    names = _assert_partition(model)
    assert family_of(model.config).name == "llava_next_video"
    assert "lm_head.weight" in names["language_model"]  # untied here
    assert "model.image_newline" in names["projector"]
    resampler = [n for n in names["projector"] if n.startswith("model.vision_resampler.")]
    assert bool(resampler) == (pool_mode == "conv")


@pytest.mark.parametrize("kind", ["qwen2_vl", "qwen2_5_vl"])
def test_module_groups_qwen_vl(kind):
    model = _tiny_qwen_vl(kind)
    names = _assert_partition(model)
    assert family_of(model).name == kind
    assert names["projector"] and all(n.startswith("model.visual.merger.") for n in names["projector"])
    assert all(n.startswith("model.visual.") and ".merger." not in n for n in names["vision_tower"])
    with pytest.raises(NotImplementedError, match="video_grid_thw"):
        video_token_layout(model.config, 4)


def test_module_groups_through_a_wrapper():
    class Wrapper(torch.nn.Module):  # like PEFT: the HF model sits under a prefix
        def __init__(self, inner):
            super().__init__()
            self.base_model = torch.nn.Module()
            self.base_model.model = inner
            self.config = inner.config

    inner = _tiny_qwen_vl("qwen2_vl")
    names = _assert_partition(Wrapper(inner))
    assert all(n.startswith("base_model.model.model.visual.merger.") for n in names["projector"])


def test_llava_next_video_layout_matches_its_processor_and_model():
    from transformers import (
        LlavaNextImageProcessor,
        LlavaNextVideoProcessor,
        LlavaNextVideoVideoProcessor,
    )

    model = _tiny_llava_next_video().eval()
    tok = train_tokenizer(TEXTS, 300)
    size = {"height": 32, "width": 32}
    processor = LlavaNextVideoProcessor(
        image_processor=LlavaNextImageProcessor(size=size, crop_size=size, image_grid_pinpoints=[[32, 32]]),
        video_processor=LlavaNextVideoVideoProcessor(size=size, crop_size=size),
        tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
    )
    model.config.video_token_index = tok.convert_tokens_to_ids("<video>")
    enc = processor(text=["<video>\nhi"], videos=[_frames(4, 32)], return_tensors="pt")
    n, slots = video_token_layout(model.config, 4)
    assert n == int((enc["input_ids"][0] == model.config.video_token_index).sum()) == 4 * 4
    assert slots == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
    with torch.no_grad():
        features = model.model.get_video_features(
            enc["pixel_values_videos"], vision_feature_layer=-2, vision_feature_select_strategy="default"
        ).pooler_output
    assert features.shape[1] == n


def test_unknown_family_names_model_type_and_suggests():
    with pytest.raises(UnknownNameError) as err:
        family_of(types.SimpleNamespace(model_type="qwen2vl"))
    message = str(err.value)
    assert "'qwen2vl'" in message and "Did you mean: qwen2_vl" in message
    assert "llava_onevision" in message and "qwen2_5_vl" in message
    assert isinstance(err.value, VidsmeError)
    from transformers import LlavaConfig

    with pytest.raises(VidsmeError, match="model_type 'llava'"):
        family_of(LlavaConfig())
