"""Qwen2-VL as a training base: video tokens as its processor makes them, forward, training.

A tiny random-init Qwen2-VL and a matching Qwen2VLProcessor are built offline (our BPE
tokenizer + Qwen2-VL's special tokens; a video processor sized for small frames) and
reloaded through the Auto classes, as a real checkpoint directory would be.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vidsme.config import load_config
from vidsme.data_splits.build import build_synthetic_split
from vidsme.paths import SPLITS_DIR_ENV
from vidsme.errors import VidsmeError
from vidsme.train.config import DataConfig, OptimConfig, TargetConfig
from vidsme.train.data import collate
from vidsme.train.families import module_groups, video_inputs
from vidsme.train.loop import make_dataset, run_training, set_trainable
from vidsme.train.tiny_model import tokenizer_corpus, train_tokenizer

QWEN_SPECIALS = ("<|vision_start|>", "<|vision_end|>", "<|video_pad|>", "<|image_pad|>")
VIDEO_TEXT = "<|vision_start|><|video_pad|><|vision_end|>"  # how Qwen2-VL's chat template writes a video


def build_tiny_qwen2_vl(texts: list[str], out):
    """Save a tiny Qwen2-VL model + processor to `out`: 8x8 patches, 2x2 merge, frames resized
    to at most 32x32 pixels (so a 32x32 frame pair gives 4 tokens)."""
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    tok = train_tokenizer(texts, 400)
    tok.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIALS)})
    tok.video_token, tok.image_token = "<|video_pad|>", "<|image_pad|>"  # Qwen2VLProcessor reads these
    ids = dict(zip(QWEN_SPECIALS, tok.convert_tokens_to_ids(list(QWEN_SPECIALS))))
    pixels = dict(min_pixels=16 * 16, max_pixels=32 * 32, patch_size=8, temporal_patch_size=2, merge_size=2)
    processor = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(**pixels), tokenizer=tok,
                                 video_processor=Qwen2VLVideoProcessor(**pixels, cap_pixels_per_frame=False))
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]})
    vision = dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, patch_size=8, mlp_ratio=2,
                  temporal_patch_size=2, spatial_merge_size=2)
    config = Qwen2VLConfig(text_config=text, vision_config=vision, video_token_id=ids["<|video_pad|>"],
                           image_token_id=ids["<|image_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                           vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(0)
    Qwen2VLForConditionalGeneration(config).save_pretrained(out)
    processor.save_pretrained(out)
    return out


def load(path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return AutoModelForImageTextToText.from_pretrained(path), AutoProcessor.from_pretrained(path)


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    """A tiny synthetic split and a tiny Qwen2-VL base directory."""
    root = tmp_path_factory.mktemp("qwen")
    mp = pytest.MonkeyPatch()
    mp.setenv(SPLITS_DIR_ENV, str(root / "splits"))
    split, _ = build_synthetic_split("synth-oeqa", root / "videos", n_videos=8, progress=False)
    base = build_tiny_qwen2_vl(tokenizer_corpus(split.rows()), root / "base")
    yield {"videos": root / "videos", "split": split, "base": base}
    mp.undo()


def _data(qwen, **kw) -> DataConfig:
    return DataConfig(split="synth-oeqa", video_root=qwen["videos"], n_frames=4, **{"max_text_tokens": 160, **kw})


@pytest.mark.parametrize("n_frames, height, width", [(4, 32, 32), (3, 48, 32), (6, 64, 64)])
def test_video_inputs_match_the_processor(qwen, n_frames, height, width):
    model, processor = load(qwen["base"])
    frames = np.random.default_rng(n_frames).integers(0, 256, (n_frames, height, width, 3), dtype=np.uint8)
    video = video_inputs(model.config, processor, frames)
    ref = processor(text=[f"<|im_start|>user\n{VIDEO_TEXT}\nHi<|im_end|>"], videos=[frames], return_tensors="pt")
    ids = ref["input_ids"][0].tolist()
    start = ids.index(model.config.vision_start_token_id)
    end = ids.index(model.config.vision_end_token_id) + 1
    assert ids[start:end] == video.token_ids  # the same tokens, wrappers included
    assert ref["mm_token_type_ids"][0, start:end].tolist() == video.mm_token_types
    n_pad = ids.count(model.config.video_token_id)
    assert n_pad == video.token_ids.count(model.config.video_token_id) == len(video.frame_slot) - 2
    t, h, w = ref["video_grid_thw"][0].tolist()
    assert n_pad == t * h * w // 4 and t == math.ceil(n_frames / 2)
    # slots: -1 for the wrappers, else the first frame of the token's temporal patch
    assert video.frame_slot == [-1] + [2 * i for i in range(t) for _ in range(h * w // 4)] + [-1]
    assert video.concat
    for key in ("pixel_values_videos", "video_grid_thw"):
        assert torch.equal(video.model_kwargs[key], ref[key]), key


def test_forward_on_encoded_prompts_gives_a_finite_loss(qwen):
    model, processor = load(qwen["base"])
    members = [r for r in qwen["split"].rows() if r["label"] == "member"]
    dataset = make_dataset(members[:2], processor, model.config, _data(qwen))
    items = [dataset[0], dataset[1]]
    batch = collate(items, processor.tokenizer.pad_token_id)
    assert batch["video_grid_thw"].shape == (2, 3)
    assert batch["pixel_values_videos"].shape[0] == int(batch["video_grid_thw"].prod(-1).sum())
    assert batch["mm_token_type_ids"].shape == batch["input_ids"].shape
    v0, v1 = dataset.prompts[0].slices["video"]
    assert batch["input_ids"][0, v0:v1].tolist() == items[0]["video"].token_ids
    loss = model(**{k: v for k, v in batch.items() if k != "ids"}).loss
    assert torch.isfinite(loss)


def test_too_long_prompt_is_named_on_first_use(qwen):
    model, processor = load(qwen["base"])
    row = qwen["split"].rows()[0]
    dataset = make_dataset([row], processor, model.config, _data(qwen, max_text_tokens=5))
    with pytest.raises(VidsmeError, match=rf"{row['id']}.*max_length"):
        dataset[0]


def test_full_strategy_trains_language_model_and_projector_only(qwen):
    model, processor = load(qwen["base"])
    members = [r for r in qwen["split"].rows() if r["label"] == "member"]
    group_of = {name: group for group, params in module_groups(model).items() for name, _ in params}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    set_trainable(model, ["language_model", "projector"])
    dataset = make_dataset(members, processor, model.config, _data(qwen))
    engine = load_config(TargetConfig, None, ["name=t", "base=x", "output_dir=y", "strategy=full",
                                              "data.split=s"]).engine
    trained, result = run_training(model, dataset, OptimConfig(lr=1e-2, epochs=1, micro_batch_size=2), engine,
                                   seed=0, pad_token_id=processor.tokenizer.pad_token_id, desc="test")
    assert result.losses and all(math.isfinite(x) for x in result.losses)
    after = dict(trained.named_parameters())
    changed = {group_of[n] for n, p in after.items() if not torch.equal(p, before[n])}
    unchanged = {group_of[n] for n, p in after.items() if torch.equal(p, before[n])}
    assert changed == {"language_model", "projector"}, changed
    assert "vision_tower" in unchanged


def test_benchmark_queries_qwen2_vl_and_scores_vid_sme(qwen):
    """The benchmark's one-forward extraction works on Qwen2-VL (patch rows, M-RoPE types), and the
    frame-aligned Vid-SME pairs its two-frame temporal patches."""
    from vidsme.attack import get_attack
    from vidsme.benchmark.evaluate import slice_inputs
    from vidsme.benchmark.query import extract_batch, load_model
    from vidsme.train.data import VideoTextDataset

    target = load_model(qwen["base"])
    rows = qwen["split"].rows()[:3]
    dataset = VideoTextDataset(rows, qwen["videos"], target.processor, target.config, template="default",
                               n_frames=4, max_text_tokens=256)
    samples = extract_batch(target, dataset, [0, 1, 2], np.array([1.1, 1.5, 2.0]), np.array([1.0, 1.05, 1.1]))
    alone = extract_batch(target, dataset, [1], np.array([1.5]), np.array([1.05]))[0]
    torch.testing.assert_close(samples[1].token["answer"]["natural.target_logprob"],
                               alone.token["answer"]["natural.target_logprob"], rtol=1e-4, atol=1e-4)
    inputs = slice_inputs(samples, "video")
    assert set(inputs.frame_slot[0].tolist()) == {-1, 0, 2}
    for name in ("vid_sme_mean", "vid_sme_frame_mean", "vid_sme_sequence"):
        scores = get_attack(name).score(inputs)
        assert scores.shape == (3,) and np.isfinite(scores).all(), name
