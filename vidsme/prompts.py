"""Prompts from manifest rows, with exact token slices: video | instruction | answer.

Training (answer-only loss) and the benchmark (features per slice) both encode samples
here, so the positions an attack reads are the positions the model was trained on.
A prompt is a list of segments, each tokenized on its own and concatenated; a slice is
the span of its segment, known exactly without searching the token ids afterwards.

Templates:
  default    ChatML: system line, the video, "Question: ..." (+ lettered options), answer;
             for captions the row's instruction and the caption.
  reference  the Vid-SME reference's QA prompt, literal typo included: its user turn ends
             with "|im_end|>" (missing "<"), then "Best Option: " before the answer.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vidsme.errors import UnknownNameError, VidsmeError
from vidsme.names import did_you_mean

SLICE_NAMES: tuple[str, ...] = ("video", "instruction", "answer")
IGNORE_INDEX = -100
DEFAULT_SYSTEM = "You are a helpful assistant. Watch the video carefully and answer."
REFERENCE_SYSTEM = (
    "Carefully watch this video and pay attention to every detail. Based on your observations, "
    "select the best option that accurately addresses the question."
)
DEFAULT_CAPTION_INSTRUCTION = "Describe this video in detail."


@dataclass(frozen=True)
class Segment:
    """A piece of the prompt: literal text, the video placeholder, or a slice's text."""

    kind: str  # "text" | "video" | "instruction" | "answer"
    text: str = ""


def option_letter(index: int) -> str:
    """(A), (B), ... for candidate `index`."""
    return f"({chr(ord('A') + index)})"


def instruction_text(row: dict) -> str:
    """The user's words: question (+ lettered options), or the caption instruction."""
    if row["task"] == "caption":
        return row["question"] or DEFAULT_CAPTION_INSTRUCTION
    text = f"Question: {row['question']}"
    if row["candidates"]:
        text += "\nOptions:\n" + "\n".join(f"{option_letter(i)} {c}" for i, c in enumerate(row["candidates"]))
    return text


def answer_text(row: dict) -> str:
    """The assistant's words: "(B) option" for multiple choice, else the answer or caption."""
    if row["task"] == "caption":
        return row["caption"]
    if row["candidates"]:
        if row["answer"] not in row["candidates"]:
            raise VidsmeError(f"sample {row['id']!r}: answer {row['answer']!r} is not one of its candidates")
        return f"{option_letter(row['candidates'].index(row['answer']))} {row['answer']}"
    return row["answer"]


def _default(row: dict) -> list[Segment]:
    return [
        Segment("text", f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n<|im_start|>user\n"),
        Segment("video"),
        Segment("text", "\n"),
        Segment("instruction", instruction_text(row)),
        Segment("text", "<|im_end|>\n<|im_start|>assistant\n"),
        Segment("answer", answer_text(row)),
        Segment("text", "<|im_end|>"),
    ]


def _reference(row: dict) -> list[Segment]:
    if not row["candidates"]:
        raise VidsmeError(f"sample {row['id']!r}: the 'reference' template is for multiple-choice QA only")
    return [
        Segment("text", f"<|im_start|>system\n{REFERENCE_SYSTEM}<|im_end|>\n<|im_start|>user\n"),
        Segment("video"),
        Segment("text", "\n"),
        # rstrip(): the reference strips its question block, e.g. a last option's trailing spaces
        Segment("instruction", instruction_text(row).rstrip() + "\nOnly give the best option."),
        Segment("text", "|im_end|>\n<|im_start|>assistant\nBest Option: "),  # the reference's typo, kept
        Segment("answer", answer_text(row)),
        Segment("text", "<|im_end|>"),
    ]


TEMPLATES = {"default": _default, "reference": _reference}


def segments_for(row: dict, template: str) -> list[Segment]:
    """The prompt's segments for `row` under `template` (did-you-mean on unknown names)."""
    try:
        build = TEMPLATES[template]
    except KeyError:
        raise UnknownNameError(f"unknown prompt template {template!r}.{did_you_mean(template, TEMPLATES)}") from None
    return build(row)


@dataclass(frozen=True)
class EncodedPrompt:
    """Token ids of one sample and where each slice lies.

    slices: name -> (start, end) token positions, end exclusive.
    labels: IGNORE_INDEX except on the answer and the end-of-turn token after it.
    frame_slot: per position of the video slice, its frame (or -1: no frame).
    """

    sample_id: str
    input_ids: list[int]
    labels: list[int]
    slices: dict[str, tuple[int, int]]
    frame_slot: list[int]


def encode_prompt(
    tokenizer,
    row: dict,
    template: str,
    video_ids: Sequence[int],
    frame_slot: Sequence[int],
    *,
    max_length: int | None = None,
) -> EncodedPrompt:
    """Tokenize `row`'s prompt segment by segment; the video is `video_ids`, verbatim.

    `video_ids` are the exact ids the model family puts for one video (its wrappers
    included, e.g. Qwen2-VL's vision start/end: vidsme.train.families.video_inputs), and
    `frame_slot` gives each of them its frame, so the two have the same length.

    Raises VidsmeError naming the sample when the prompt exceeds `max_length`: a sample is
    never truncated (truncation would cut the answer or, worse, the video).
    """
    if len(video_ids) != len(frame_slot):
        raise VidsmeError(f"sample {row['id']!r}: {len(video_ids)} video ids but {len(frame_slot)} frame slots")
    ids: list[int] = []
    labels: list[int] = []
    slices: dict[str, tuple[int, int]] = {}
    answer_done = False
    for seg in segments_for(row, template):
        if seg.kind == "video":
            piece = list(video_ids)
        else:
            piece = tokenizer.encode(seg.text, add_special_tokens=False)
        if seg.kind in SLICE_NAMES:
            if not piece:
                raise VidsmeError(f"sample {row['id']!r}: its {seg.kind} slice is empty")
            slices[seg.kind] = (len(ids), len(ids) + len(piece))
        if seg.kind == "answer":
            labels += piece
            answer_done = True
        elif answer_done and seg.kind == "text" and labels[-1] != IGNORE_INDEX:
            labels += piece  # the end-of-turn right after the answer: teaches the model to stop
        else:
            labels += [IGNORE_INDEX] * len(piece)
        ids += piece
    if max_length is not None and len(ids) > max_length:
        raise VidsmeError(
            f"sample {row['id']!r}: prompt is {len(ids)} tokens ({len(video_ids)} video tokens), over max_length "
            f"{max_length}; raise max_text_tokens (samples are never truncated)"
        )
    return EncodedPrompt(row["id"], ids, labels, slices, list(frame_slot))
