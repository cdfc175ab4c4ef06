"""Parity with the Vid-SME reference implementation's forward (docs/ATTACKS.md, "Parity with the
reference implementation").

What the reference (LiQiiiii/Vid-SME, Vid_SME_main_NextQA.py / _CinePile.py, main loop and
get_meta_metrics) does, in words, and what is checked here on a tiny offline model:

* Its prompt is the system line, the video, the question with lettered options and "Only give
  the best option.", then "|im_end|>" (typo) and "Best Option: " -- no answer. It is tokenized
  in two chunks around `<image>`; the video's embeddings replace the placeholder.
* Its video slice is `slice(len(first chunk), -(len(last chunk) - 1))` over the logits: the
  video positions and ONE position after them (the first text token after the video).
  Per-token features read the slice's first V rows (the video positions), each with its own
  argmax as target (the `input_ids[1:]` of the shifted argmax ids); the sequence-level SME
  averages all V + 1 rows.
* Frames: `np.linspace(0, n_total - 1, n, dtype=int)` (truncation), decoded RGB; the reversed
  view is the same decoded frames reversed as whole frames, then preprocessed.

Each test would fail if vidsme did otherwise (e.g. a video slice ending at the last video
token, a shifted argmax, rounded frame indices, reversed tokens instead of frames).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vidsme.attack.features import sequence_sharma_mittal, token_features
from vidsme.benchmark.query import extract_batch, load_model, sequence_positions, slice_positions
from vidsme.data_splits.build import build_synthetic_split
from vidsme.paths import SPLITS_DIR_ENV
from vidsme.prompts import answer_text
from vidsme.train.data import VideoTextDataset
from vidsme.train.families import reversed_video_inputs, video_inputs
from vidsme.train.tiny_model import build_tiny_vullm, tokenizer_corpus
from vidsme.video import frame_indices, read_frames, write_mp4
from tiny_configs import TINY

N_FRAMES = 4

# The reference's QA prompt, typed from Vid_SME_main_NextQA.py (prompt1 / inp / prompt3 and
# MLVU.qa_template) independently of vidsme.prompts, so that a change there is caught.
REFERENCE_SYSTEM = ("Carefully watch this video and pay attention to every detail. Based on your observations, "
                    "select the best option that accurately addresses the question.")


def reference_chunks(row: dict) -> tuple[str, str]:
    """The reference's prompt split at its `<image>`: (text before the video, text after it)."""
    question = f"Question: {row['question']}\nOptions:\n"
    for i, candidate in enumerate(row["candidates"]):
        question += f"({chr(ord('A') + i)}) {candidate}\n"
    question = question.rstrip()
    before = f"<|im_start|>system\n{REFERENCE_SYSTEM}<|im_end|>\n<|im_start|>user\n"
    after = "\n" + question + "\nOnly give the best option." + "|im_end|>\n<|im_start|>assistant\nBest Option: "
    return before, after


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("parity")
    mp = pytest.MonkeyPatch()
    mp.setenv(SPLITS_DIR_ENV, str(root / "splits"))
    videos = root / "videos"
    split, _ = build_synthetic_split("synth-mcqa", videos, n_videos=4, progress=False)
    path = build_tiny_vullm(TINY, tokenizer_corpus(split.rows()), root / "model")
    model = load_model(path)
    rows = split.rows()[:3]
    dataset = VideoTextDataset(rows, videos, model.processor, model.config, template="reference",
                               n_frames=N_FRAMES, max_text_tokens=512)
    yield {"root": root, "videos": videos, "rows": rows, "model": model, "dataset": dataset}
    mp.undo()


def _logits(model, input_ids: list[int], pixel_values: torch.Tensor) -> torch.Tensor:
    """[T, vocab] float64 logits of one unbatched, unpadded forward (as the reference runs it)."""
    with torch.no_grad():
        out = model.model(input_ids=torch.tensor([input_ids]), pixel_values_videos=pixel_values.unsqueeze(0))
    return out.logits[0].double()


def _encoded(world, i: int):
    ds = world["dataset"]
    video = video_inputs(ds.model_config, ds.processor, ds.frames(i))
    return ds.prompt(i, video), video


# ----------------------------------------------------------------------------- the prompt
def test_reference_template_is_the_reference_prompt_then_only_the_answer(world):
    """Token for token: the reference's first chunk, the video, the reference's last chunk
    (tokenized as the reference tokenizes it: in one piece); after that only the answer and
    the end of turn, which the reference's prompt does not have."""
    tok = world["model"].processor.tokenizer
    for i, row in enumerate(world["rows"]):
        enc, _ = _encoded(world, i)
        before, after = reference_chunks(row)
        (s, e), (a0, _) = enc.slices["video"], enc.slices["answer"]
        assert enc.input_ids[:s] == tok(before).input_ids
        assert enc.input_ids[e:a0] == tok(after).input_ids
        assert tok.decode(enc.input_ids[a0:]) == answer_text(row) + "<|im_end|>"


def test_reference_template_strips_trailing_space_like_the_reference():
    """The reference rstrip()s its question block, so a last option ending in spaces loses them
    (4 rows of paper-nextqa, e.g. nextqa-test/05528: 'green  ')."""
    from vidsme.prompts import segments_for

    row = {"id": "x", "task": "mcqa", "question": "What colour?", "candidates": ["red", "green  "],
           "answer": "red", "caption": None}
    text = "".join(seg.text for seg in segments_for(row, "reference") if seg.kind in ("text", "instruction"))
    assert reference_chunks(row)[1] in text and "green  " not in text


def test_video_slice_logits_never_see_the_answer(world):
    """The reference's forward has no answer text. vidsme's prompt has it (training and the
    answer-slice baselines need it), but a causal model's logits on the video slice and on the
    position after it are the same with the prompt cut where the reference's prompt ends."""
    model = world["model"]
    for i in range(len(world["rows"])):
        enc, video = _encoded(world, i)
        (s, e), (a0, _) = enc.slices["video"], enc.slices["answer"]
        pixels = video.model_kwargs["pixel_values_videos"]
        full = _logits(model, enc.input_ids, pixels)
        cut = _logits(model, enc.input_ids[:a0], pixels)
        torch.testing.assert_close(full[s:e + 1], cut[s:e + 1], rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- the slice
def test_positions_follow_the_reference_slice_arithmetic(world):
    """The reference's 'img' slice over its T = len(chunk0) + V + len(chunk1) logits is
    slice(len(chunk0), -(len(chunk1) - 1)): per-token rows are its first V entries, the
    sequence-level distribution averages all V + 1."""
    tok = world["model"].processor.tokenizer
    for i, row in enumerate(world["rows"]):
        enc, _ = _encoded(world, i)
        s, e = enc.slices["video"]
        a0 = enc.slices["answer"][0]
        before, after = reference_chunks(row)
        n0, n1 = len(tok(before).input_ids), len(tok(after).input_ids)
        reference_slice = list(range(a0))[n0: -(n1 - 1)]  # a0 = the reference's T (no answer)
        assert reference_slice == list(range(s, e + 1))  # the video and one position after it
        positions, targets = slice_positions(enc, "video")
        assert positions == reference_slice[:-1] == list(range(s, e)) and targets is None  # argmax targets
        assert sequence_positions(enc, "video") == reference_slice
        # text slices keep the usual next-token shift, and no extra position
        assert sequence_positions(enc, "answer") == slice_positions(enc, "answer")[0]


def test_extracted_features_are_the_reference_definitions(world):
    """From one batched extraction: per-token features at the V video positions with each
    position's own argmax as target (the reference's shifted-argmax ids, unshifted by its
    `input_ids[1:]`), and the sequence SME of the mean distribution over the V + 1 positions
    of the reference's slice -- not over the V video positions alone. Both views."""
    model, ds = world["model"], world["dataset"]
    q, r = np.array([1.3, 1.7, 1.05]), np.array([1.02, 1.08, 1.0])
    samples = extract_batch(model, ds, [0, 1, 2], q, r)
    for i, sample in enumerate(samples):
        enc, natural = _encoded(world, i)
        s, e = enc.slices["video"]
        frames = ds.frames(i)
        reversed_ = video_inputs(ds.model_config, ds.processor, np.ascontiguousarray(frames[::-1]))
        for view, video in (("natural", natural), ("reversed", reversed_)):
            logits = _logits(model, enc.input_ids, video.model_kwargs["pixel_values_videos"])
            logp = torch.log_softmax(logits, -1)
            # the reference's targets: argmax of the logits one position earlier, then ids[1:]
            shifted = logits[s - 1:e].argmax(-1)
            own = shifted[1:]
            assert torch.equal(own, logits[s:e].argmax(-1))
            got = sample.token["video"][f"{view}.target_logprob"].double()
            assert got.shape == (e - s,)
            torch.testing.assert_close(got, logp[torch.arange(s, e), own], rtol=1e-4, atol=1e-4)
            if not torch.equal(shifted[:-1], own):  # a target one position off would show
                assert not torch.allclose(got, logp[torch.arange(s, e), shifted[:-1]], rtol=1e-4, atol=1e-4)

            qi, ri = torch.tensor([q[i]]), torch.tensor([r[i]])
            sme = token_features(logits[s:e].float().unsqueeze(0), q=qi, r=ri).token["sharma_mittal"][0]
            torch.testing.assert_close(sample.token["video"][f"{view}.sharma_mittal"], sme, rtol=1e-4, atol=1e-4)

            probs = torch.softmax(logits, -1)
            with_next = float(sequence_sharma_mittal(probs[s:e + 1].mean(0, keepdim=True), qi, ri))
            video_only = float(sequence_sharma_mittal(probs[s:e].mean(0, keepdim=True), qi, ri))
            got_seq = sample.sequence["video"][f"{view}.sequence_sharma_mittal"]
            assert got_seq == pytest.approx(with_next, rel=1e-4, abs=1e-5)
            assert abs(with_next - video_only) > 1e-4 and got_seq != pytest.approx(video_only, rel=1e-5, abs=1e-6)


def test_argmax_target_on_hand_made_logits():
    """targets=None means each position's own argmax (first index on ties), so log p_y is the
    row's max log-probability and equals -renyi_inf."""
    logits = torch.tensor([[[0.0, 3.0, 1.0, 3.0], [5.0, -1.0, 0.5, 2.0], [0.0, 0.0, 0.0, 0.1]]])
    out = token_features(logits).token
    expected = torch.log_softmax(logits.double(), -1).amax(-1)[0]
    torch.testing.assert_close(out["target_logprob"][0].double(), expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out["target_logprob"][0], -out["renyi_inf"][0], rtol=1e-6, atol=1e-6)
    shifted = token_features(logits, targets=torch.tensor([[3, 1, 0]])).token["target_logprob"][0]
    assert not torch.allclose(shifted, out["target_logprob"][0])


# ----------------------------------------------------------------------------- frames
def test_frame_indices_truncate_like_the_reference():
    """np.linspace(0, N - 1, n, dtype=int) truncates (floors, for these non-negative values):
    11 frames, 4 samples -> 0, 3.33, 6.67, 10 -> [0, 3, 6, 10], not the rounded [0, 3, 7, 10]."""
    assert frame_indices(11, 4).tolist() == [0, 3, 6, 10]
    for total in range(1, 80):
        for n in (1, 2, 3, 4, 7, 8, 16, 32):
            expected = np.floor(np.linspace(0, total - 1, n)).astype(int)
            assert frame_indices(total, n).tolist() == expected.tolist(), (total, n)


def test_frames_are_the_sampled_frames_in_rgb(tmp_path):
    """read_frames returns frames linspace-sampled from the decoded stream, as RGB (decord's
    order, which the reference's cv2.COLOR_RGB2GRAY assumes)."""
    levels = np.arange(11) * 20
    frames = np.zeros((11, 16, 16, 3), dtype=np.uint8)
    frames[..., 0] = levels[:, None, None] + 30  # red carries the frame number, green/blue stay 0
    path = write_mp4(tmp_path / "ramp.mp4", frames, fps=4)
    got = read_frames(path, 4)
    red, rest = got[..., 0].mean(axis=(1, 2)), got[..., 1:].mean(axis=(1, 2, 3))
    assert np.all(red > 5 * rest + 20)
    np.testing.assert_allclose(red, levels[[0, 3, 6, 10]] + 30, atol=6)


def test_reversed_view_is_the_frames_reversed_whole(world):
    """The reversed view's model input is the processed frames[::-1] (whole frames reversed
    before preprocessing, as the reference does), with the same prompt ids."""
    ds = world["dataset"]
    frames = ds.frames(0)
    natural = video_inputs(ds.model_config, ds.processor, frames)
    got = reversed_video_inputs(ds.model_config, ds.processor, frames, natural)
    want = video_inputs(ds.model_config, ds.processor, np.ascontiguousarray(frames[::-1]))
    assert got.token_ids == natural.token_ids == want.token_ids
    for key, value in want.model_kwargs.items():
        assert torch.equal(got.model_kwargs[key], value), key
    assert not torch.equal(got.model_kwargs["pixel_values_videos"], natural.model_kwargs["pixel_values_videos"])
