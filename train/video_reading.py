"""Does a model read its video? Answers on held-out videos with the real video, another video, or none.

A tiny VULLM is a video model only if its answers change with its frames. On held-out multiple-choice
rows whose questions only the frames can answer (synth-probe: background, colour, shape, count, direction,
order, over candidates no text can rank: data_splits.synthetic.perception_rows), three conditions:

  own       each row with its own video
  swapped   each row with another row's video (vidsme.swaps.derangement, fixed seed)
  blank     each row with a blank video (every frame one mid-grey): what the text alone gives

Per condition the accuracy — the candidate whose answer has the lowest mean token loss is the model's
choice — per question kind and averaged over kinds; and per row the answer loss of the true answer,
with the swapped-minus-own gap and its CI from a bootstrap over videos. A model that reads its
video has accuracy with its own video far above the other two and a gap whose CI lies above 0;
one whose video input is ignored (or zeroed) has the three accuracies equal and a gap of 0.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidsme.errors import VidsmeError
from vidsme.metrics import cluster_mean
from vidsme.swaps import derangement
from vidsme.train.data import VideoTextDataset, collate
from vidsme.train.families import VideoInputs, video_inputs

CONDITIONS: tuple[str, ...] = ("own", "swapped", "blank")
BLANK_GREY = 128


@dataclass(frozen=True)
class ReadingSettings:
    """How the video reading is measured (recorded with the result)."""

    n_frames: int
    template: str = "default"
    max_text_tokens: int = 256
    seed: int = 0
    n_bootstrap: int = 1000
    batch_size: int = 8


@torch.inference_mode()
def answer_losses(model, dataset: VideoTextDataset, videos: Sequence[VideoInputs], pad_token_id: int,
                  batch_size: int = 8) -> np.ndarray:
    """Mean answer-token loss of every item of `dataset`, item i given `videos[i]` as its video."""
    model.eval()
    out: list[float] = []
    device = next(model.parameters()).device
    for lo in range(0, len(dataset), batch_size):
        items = [dataset.item(i, videos[i]) for i in range(lo, min(lo + batch_size, len(dataset)))]
        batch = collate(items, pad_token_id)
        inputs = {k: v.to(device) for k, v in batch.items() if k not in ("ids", "labels")}
        logits = model(**inputs).logits.float()
        labels = batch["labels"].to(device)
        token_loss = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:],
                                                       ignore_index=-100, reduction="none")
        counted = (labels[:, 1:] != -100).sum(1).clamp(min=1)
        out += (token_loss.sum(1) / counted).tolist()
    return np.asarray(out, dtype=np.float64)


def _candidate_rows(rows: Sequence[dict]) -> tuple[list[dict], list[int], list[int]]:
    """Each row once per candidate (that candidate as the answer); the source row and candidate of each."""
    out, source, which = [], [], []
    for i, row in enumerate(rows):
        for j, candidate in enumerate(row["candidates"]):
            out.append({**row, "id": f"{row['id']}#{j}", "answer": candidate})
            source.append(i)
            which.append(j)
    return out, source, which


def measure_video_reading(model, processor, rows: Sequence[dict], video_root: Path, settings: ReadingSettings,
                          *, kinds: Sequence[str] | None = None, progress: bool = False) -> dict:
    """Accuracy with the own, a swapped and a blank video on multiple-choice `rows` (held-out videos), per
    question kind and averaged over kinds, and the swapped-minus-own answer loss with its CI (see the module
    docstring). `kinds`: each row's question kind (default: data_splits.synthetic.question_kind)."""
    from tqdm import tqdm

    rows = [r for r in rows if r.get("candidates")]
    if len(rows) < 2:
        raise VidsmeError("measuring video reading needs at least two multiple-choice rows (with candidates) on "
                          "two videos")
    if kinds is None:
        from vidsme.data_splits.synthetic import question_kind

        kinds = [question_kind(r["question"]) for r in rows]
    expanded, source, which = _candidate_rows(rows)
    dataset = VideoTextDataset(expanded, video_root, processor, model.config, template=settings.template,
                               n_frames=settings.n_frames, max_text_tokens=settings.max_text_tokens)
    first_row = {}
    for k, i in enumerate(source):
        first_row.setdefault(rows[i]["video"], k)
    videos_own = {v: dataset.video(k) for v, k in tqdm(first_row.items(), desc="video reading: videos", unit="video",
                                                          disable=not progress)}
    swap = derangement(list(videos_own), seed=settings.seed)
    frames = dataset.frames(0)
    blank = video_inputs(model.config, processor, np.full_like(frames, BLANK_GREY))
    per_condition = {"own": [videos_own[rows[i]["video"]] for i in source],
                     "swapped": [videos_own[swap[rows[i]["video"]]] for i in source],
                     "blank": [blank] * len(source)}
    pad = processor.tokenizer.pad_token_id
    losses = {c: answer_losses(model, dataset, vs, pad, settings.batch_size)
              for c, vs in tqdm(per_condition.items(), desc="video reading: conditions", disable=not progress)}
    truth = [rows[i]["candidates"].index(rows[i]["answer"]) for i in range(len(rows))]
    result: dict = {"settings": {**settings.__dict__, "blank": f"every frame grey {BLANK_GREY}",
                                 "swap": "videos deranged (vidsme.swaps.derangement)"},
                    "rows": len(rows), "videos": len(videos_own), "conditions": {}}
    true_loss = {}
    for condition, loss in losses.items():
        chosen = np.full(len(rows), -1)
        best = np.full(len(rows), np.inf)
        for k, (i, j) in enumerate(zip(source, which)):
            if loss[k] < best[i]:
                best[i], chosen[i] = loss[k], j
        correct = chosen == np.asarray(truth)
        per_kind = {kind: float(correct[[n for n, x in enumerate(kinds) if x == kind]].mean())
                    for kind in sorted(set(kinds))}
        result["conditions"][condition] = {"accuracy": per_kind,
                                           "accuracy_mean_over_kinds": float(np.mean(list(per_kind.values())))}
        true_loss[condition] = np.array([loss[k] for k, (i, j) in enumerate(zip(source, which)) if j == truth[i]])
    result["rows_per_kind"] = {kind: int(sum(x == kind for x in kinds)) for kind in sorted(set(kinds))}
    result["swapped_minus_own_loss"] = cluster_mean(
        true_loss["swapped"] - true_loss["own"], [r["video"] for r in rows], n_bootstrap=settings.n_bootstrap,
        seed=settings.seed).to_dict()
    own = result["conditions"]["own"]["accuracy_mean_over_kinds"]
    other = max(result["conditions"][c]["accuracy_mean_over_kinds"] for c in ("swapped", "blank"))
    result["own_over_best_other"] = own / other if other > 0 else None
    result["reads_its_video"] = bool(result["swapped_minus_own_loss"]["ci_low"] > 0 and own > other)
    # the demo base's bar (issue 27): own-video accuracy at least twice the best of swapped and blank
    result["at_least_twice_the_best_other"] = bool(result["reads_its_video"] and own >= 2 * other)
    return result


def format_video_reading(result: dict) -> str:
    """Lines for the terminal: accuracy per condition and kind, the loss gap, the verdict."""
    conditions = result["conditions"]
    kinds = list(next(iter(conditions.values()))["accuracy"])
    lines = [f"video reading on {result['rows']} held-out rows, {result['videos']} videos "
             f"({result['settings']['n_frames']} frames): accuracy by question kind",
             "  " + f"{'condition':<9} " + " ".join(f"{k:>10}" for k in kinds) + f" {'mean':>7}"]
    for name, c in conditions.items():
        lines.append("  " + f"{name:<9} " + " ".join(f"{c['accuracy'][k]:>10.3f}" for k in kinds)
                     + f" {c['accuracy_mean_over_kinds']:>7.3f}")
    gap = result["swapped_minus_own_loss"]
    ratio = result["own_over_best_other"]
    lines.append(f"  swapped - own answer loss {gap['value']:+.3f} [{gap['ci_low']:+.3f}, {gap['ci_high']:+.3f}]; "
                 f"own / best other accuracy {'n/a' if ratio is None else f'{ratio:.2f}'}x -> "
                 + ("reads its video" if result["reads_its_video"] else "does NOT read its video"))
    return "\n".join(lines)


__all__ = ["BLANK_GREY", "CONDITIONS", "ReadingSettings", "answer_losses", "format_video_reading",
           "measure_video_reading"]
