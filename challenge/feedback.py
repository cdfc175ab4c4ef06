"""A sealed challenge's public board before its reveal: one rounded number per entry, Ladder-released.

The challenge's test rows are split, by video and from the secret, into a feedback part and a
final part (challenge.build.draw_feedback). The private results rank on the final part only
(its rows are the "test" side); the feedback part is what the public sees before the reveal:
per entry (a method of a submitter on a target) its primary metric on the feedback part — AUC
where that part cannot resolve the primary metric — rounded to RESOLUTION, and released only if
it beats the best number already released for the same submitter and target by more than
RESOLUTION (Blum & Hardt's Ladder, 2015). Otherwise the entry shows "no improvement". No ROC,
histogram, CI, rank, per-sample score or other metric of challenge data is published before
the reveal, so what an entry's scores do on the final part never changes a public byte.

State (private/results/feedback.json): every entry in arrival order with its exact value and
what was released. Public: public/leaderboard.{json,md,html}, from the released numbers only.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from vidsme.atomic import write_json_atomic, write_text_atomic
from vidsme.benchmark.submissions.namespace import HOST_NAME
from vidsme.data_splits.partition import FEEDBACK
from vidsme.errors import VidsmeError
from vidsme.metrics import evaluate_scores, tpr_key
from vidsme.text_formats import html_text, markdown_text

RESOLUTION = 0.01
FEEDBACK_FILE = "feedback.json"
HOST = HOST_NAME  # how the board names the host's entries; no submitter may be named like it
BOARD_VERSION = 1


def feedback_value(results_dir: Path, entry: dict, primary: str, min_false_positives: int) -> tuple[str, float]:
    """(metric, exact value) of a verdict entry's scores on the feedback part: `primary` where the part
    resolves it, else AUC."""
    path = Path(results_dir) / entry["scores_file"]
    with path.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["partition"] == FEEDBACK]
    if not rows or {r["label"] for r in rows} != {"0", "1"}:
        raise VidsmeError(f"{path}: the feedback part has no members or no non-members; rebuild the challenge with "
                          "a larger --size or --feedback-fraction")
    scores = np.array([float(r[entry["scores_column"]]) for r in rows])
    ev = evaluate_scores(scores, np.array([int(r["label"]) for r in rows]), direction=entry["direction"],
                         attack=entry["attack"], sample_ids=[r["sample_id"] for r in rows], n_bootstrap=1, seed=0,
                         clusters=[r["video"] for r in rows], min_false_positives=min_false_positives)
    by_key = {"auc": ev.auc, "balanced_accuracy": ev.balanced_accuracy,
              **{tpr_key(level): m for level, m in ev.tpr_at_fpr.items()}}
    metric = by_key.get(primary)
    if metric is None or metric.value is None:
        return "auc", float(ev.auc.value)
    return primary, float(metric.value)


def _read_state(results_dir: Path) -> dict:
    path = Path(results_dir) / FEEDBACK_FILE
    if not path.is_file():
        return {"version": BOARD_VERSION, "resolution": RESOLUTION, "entries": []}
    return json.loads(path.read_text(encoding="utf-8"))


def reset_feedback(results_dir: Path) -> None:
    """Forget every released number (a fresh `vidsme challenge evaluate` starts the round's board anew)."""
    (Path(results_dir) / FEEDBACK_FILE).unlink(missing_ok=True)


def _canonical(entry: dict, who: str, host: bool) -> tuple:
    """The order new entries are taken in and shown: by target, host first, submitter, method, attack — names
    only. Verdict entries come sorted by the FINAL part's metric: taking them in that order would publish the
    final-part ranking through the order of the board, and through which of a file's entries the Ladder
    releases."""
    return (not host, who, entry["method"], entry["attack"])


def update_feedback(results_dir: Path, results: dict, *, submitters: dict[str, str]) -> list[dict]:
    """Add the verdict entries of `results` not yet on the feedback board, in name order (never in the verdicts'
    final-part order), applying the Ladder; `submitters` maps a submitted method to its submitter. The host's
    entries are the methods nobody submitted (built-in families, the blind baseline): fixed beforehand, each is
    shown; every submitted entry needs the Ladder, compared with the submitter's best released number on that
    target including the ones released earlier in the same update. Returns the new board entries."""
    state = _read_state(results_dir)
    config = results["suite"].get("config") or {}
    min_fp = int(config.get("min_false_positives", 10))
    known = {(e["target"], e["method"], e["attack"], e["scores_sha"]) for e in state["entries"]}
    update = 1 + max((int(e.get("update", 0)) for e in state["entries"]), default=0)
    new = []
    for verdict in results["verdicts"]["targets"]:
        for entry in verdict["entries"]:
            host = not entry.get("submitted")  # the structure says who is the host, never a name
            who = HOST if host else submitters.get(entry["method"], "unknown")
            key = (verdict["target"], entry["method"], entry["attack"], _column_sha(results_dir, entry))
            if key not in known:
                known.add(key)
                new.append((verdict["target"], _canonical(entry, who, host), verdict, entry, who, host, key))
    added = []
    for target, _, verdict, entry, who, host, key in sorted(new, key=lambda item: item[:2]):
        metric, value = feedback_value(results_dir, entry, verdict["primary_metric"], min_fp)
        best = max((e["released"] for e in [*state["entries"], *added] if not e.get("host", e["submitter"] == HOST)
                    and e["submitter"] == who and e["target"] == target and e["released"] is not None),
                   default=-math.inf)
        rounded = round(round(value / RESOLUTION) * RESOLUTION, 10)
        released = rounded if host or rounded > best + RESOLUTION * 1.5 else None
        added.append({"target": target, "method": entry["method"], "attack": entry["attack"], "submitter": who,
                      "host": host, "metric": metric, "value": value, "released": released,
                      "best_before": None if best == -math.inf else best, "scores_sha": key[3], "update": update})
    state["entries"] += added
    write_json_atomic(Path(results_dir) / FEEDBACK_FILE, state)
    return added


def _column_sha(results_dir: Path, entry: dict) -> str:
    """Identity of an entry's scores (its column of its scores file): a resubmission with other scores is new."""
    import hashlib

    with (Path(results_dir) / entry["scores_file"]).open(newline="", encoding="utf-8") as fh:
        column = [r[entry["scores_column"]] for r in csv.DictReader(fh)]
    return hashlib.sha256("\n".join(column).encode()).hexdigest()[:16]


def public_board(results_dir: Path, challenge_name: str) -> dict:
    """The public feedback board: released numbers only, and the rule that releases them."""
    state = _read_state(results_dir)
    rows = []
    # by target, then arrival (each submission is a public event), then names: nothing of the final part
    for e in sorted(state["entries"], key=lambda e: (e["target"], int(e.get("update", 0)),
                                                      not e.get("host", e["submitter"] == HOST), e["submitter"],
                                                      e["method"], e["attack"])):
        shown = ({"metric": e["metric"], "value": f"{e['released']:.2f}"} if e["released"] is not None
                 else {"metric": e["metric"], "value": None,
                       "note": f"no improvement over this submitter's best released number ({e['best_before']:.2f}) "
                               f"by more than {RESOLUTION:g}"})
        rows.append({"target": e["target"], "method": e["method"], "submitter": e["submitter"],
                     "host": bool(e.get("host", e["submitter"] == HOST)), **shown})
    return {"board_version": BOARD_VERSION, "challenge": challenge_name, "kind": "challenge feedback (before the reveal)",
            "resolution": RESOLUTION,
            "rule": ("Per entry one number: its primary metric on the feedback part of the test rows (AUC where "
                     f"that part cannot resolve the primary metric), rounded to {RESOLUTION:g} and released only "
                     f"when it beats the same submitter's best released number on that target by more than "
                     f"{RESOLUTION:g} (the Ladder, Blum & Hardt 2015). Nothing else of the challenge's data is "
                     "published before the reveal; the final part, held apart, decides the ranks at the reveal."),
            "entries": rows}


def _shown_submitter(e: dict) -> str:
    return f"{HOST} (host)" if e.get("host") else e["submitter"]


def render_markdown(board: dict) -> str:
    """The feedback board as markdown; every name escaped (a `|` or a line break in one adds no row)."""
    md = markdown_text
    lines = [f"# vidsme challenge {md(board['challenge'])}: feedback board (before the reveal)", "",
             f"- {md(board['rule'])}", "", "| target | method | submitter | feedback |", "|---|---|---|---|"]
    for e in board["entries"]:
        value = f"{md(e['metric'])} {md(e['value'])}" if e["value"] is not None else f"— ({md(e['note'])})"
        lines.append(f"| {md(e['target'])} | {md(e['method'])} | {md(_shown_submitter(e))} | {value} |")
    return "\n".join(lines) + "\n"


def render_html(board: dict) -> str:
    """The feedback board as a page; every name escaped."""
    h = html_text
    rows = "".join(f"<tr><td>{h(e['target'])}<td>{h(e['method'])}<td>{h(_shown_submitter(e))}<td>"
                   + (f"{h(e['metric'])} {h(e['value'])}" if e["value"] is not None else f"— <small>{h(e['note'])}"
                      "</small>") for e in board["entries"])
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>vidsme challenge "
            f"{h(board['challenge'])}: feedback</title><style>body{{font:14px system-ui,sans-serif;margin:12px}}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}small{color:#555}</style>"
            f"</head><body><h1>vidsme challenge {h(board['challenge'])}: feedback board</h1><p>{h(board['rule'])}</p>"
            "<table><thead><tr><th>target<th>method<th>submitter<th>feedback</tr></thead><tbody>"
            f"{rows}</tbody></table></body></html>\n")


def write_public_board(results_dir: Path, public: Path, challenge_name: str) -> dict[str, Path]:
    """Write public/leaderboard.{json,md,html} from the released feedback numbers."""
    board = public_board(results_dir, challenge_name)
    texts = {"json": json.dumps(board, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
             "md": render_markdown(board), "html": render_html(board)}
    paths = {}
    for ext, text in texts.items():
        paths[ext] = Path(public) / f"leaderboard.{ext}"
        write_text_atomic(paths[ext], text)
    return paths


__all__ = ["FEEDBACK_FILE", "HOST", "RESOLUTION", "feedback_value", "public_board", "reset_feedback",
           "update_feedback", "write_public_board"]
