"""A cell's numbers from its benchmark results.json: each method dev-selected, test-reported.

Methods (all on the video slice, each selected on dev over its own candidates: variants x
frame counts x levels, by `select_on_dev`, the rule of the verdicts):

    vid_sme_position  Vid-SME, natural and reversed compared at the same position (vid_sme_* without
                      "frame", the sequence SME included)
    vid_sme_frame     Vid-SME, compared at the same frame (vid_sme_frame_*)
    vid_sme           the whole Vid-SME family (both alignments): the leaderboard's vid_sme entry
    other_video       every other built-in attack on the video slice (loss, Min-K%, Min-K%++, Rényi,
                      modified entropy, max-prob gap; reference calibration with the reference view)
    entropy_video     the Rényi family alone: a single-order entropy of the natural frames, the
                      comparison that says whether Vid-SME's order contrast adds anything

plus the answer-slice loss at the training frame count (a fixed configuration: no selection)
and the split's blind baseline. Paired test differences use the verdicts' paired bootstrap.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from vidsme.benchmark.verdicts import dev_selected, paired_test_difference
from vidsme.errors import VidsmeError

VIDEO_METHODS: dict[str, str] = {
    "vid_sme_position": "Vid-SME, position-aligned",
    "vid_sme_frame": "Vid-SME, frame-aligned",
    "vid_sme": "Vid-SME (either alignment)",
    "other_video": "best non-Vid-SME video-slice attack",
    "entropy_video": "single-order entropy (Rényi), video slice",
}
# The calibrated variant (shadows > 0): each selected on dev over its calibrated candidates (calibration x
# signal x frame count x level), all on the video slice but the last
CALIBRATED_METHODS: dict[str, str] = {
    "calibrated_video": "LiRA or RMIA over any video-slice signal",
    "lira_video": "LiRA, video slice",
    "rmia_video": "RMIA, video slice",
    "calibrated_vid_sme": "LiRA or RMIA over Vid-SME (video slice)",
    "calibrated_entropy": "LiRA or RMIA over the single-order entropy (video slice)",
    "calibrated_answer_loss": "LiRA or RMIA over the loss, answer slice",
}
CALIBRATED_PAIRS: tuple[tuple[str, str], ...] = (
    ("calibrated_video", "blind"), ("calibrated_vid_sme", "vid_sme"), ("calibrated_entropy", "entropy_video"),
    ("calibrated_video", "other_video"), ("calibrated_vid_sme", "calibrated_entropy"),
    ("calibrated_answer_loss", "answer_loss"),
)
PAIRS: tuple[tuple[str, str], ...] = (
    ("vid_sme", "blind"), ("other_video", "blind"), ("vid_sme", "entropy_video"), ("vid_sme", "other_video"),
    ("vid_sme_frame", "vid_sme_position"), ("answer_loss", "blind"),
)


def _members(family: Callable[[dict], str | None]) -> dict[str, Callable[[dict], bool]]:
    return {
        "vid_sme_position": lambda r: family(r) == "vid_sme" and not r["attack"].startswith("vid_sme_frame"),
        "vid_sme_frame": lambda r: r["attack"].startswith("vid_sme_frame"),
        "vid_sme": lambda r: family(r) == "vid_sme",
        "other_video": lambda r: family(r) != "vid_sme",
        "entropy_video": lambda r: family(r) == "renyi",
    }


def _calibrated_members(signal_family: Callable[[dict], str | None]) -> dict[str, Callable[[dict], bool]]:
    video = {
        "calibrated_video": lambda r: True,
        "lira_video": lambda r: r["family"] == "lira",
        "rmia_video": lambda r: r["family"] == "rmia",
        "calibrated_vid_sme": lambda r: signal_family(r) == "vid_sme",
        "calibrated_entropy": lambda r: signal_family(r) == "renyi",
    }
    return {name: (lambda r, keep=keep: r["slice"] == "video" and keep(r)) for name, keep in video.items()} | {
        "calibrated_answer_loss": lambda r: r["slice"] == "answer" and r["calibration"]["signal"] == "loss"}


def _value(row: dict) -> dict:
    return {k: row["auc"][k] for k in ("value", "ci_low", "ci_high")}


def _summary(chosen: dict, test: dict, n_candidates: int, family: str | None) -> dict:
    return {"attack": test["attack"], "family": family, "slice": test["slice"], "n_frames": test["n_frames"],
            "level": test["level"], "n_candidates": n_candidates, "dev_auc": chosen["auc"]["value"],
            "auc": _value(test), "n_members": test["n_members"], "n_nonmembers": test["n_nonmembers"]}


def _unit(rows: list[dict]) -> dict:
    """The video-level row among one configuration's levels (row=video, else video)."""
    return min(rows, key=lambda r: (r["level"] == "row",))


def cell_metrics(results_path: Path, train_frames: int) -> dict:
    """The study's numbers of one benchmarked target (results.json of a one-target suite)."""
    results_path = Path(results_path)
    data = json.loads(results_path.read_text(encoding="utf-8"))
    attacks = data.get("attacks") or {}
    config = data["suite"]["config"]
    n_bootstrap, seed = int(config.get("n_bootstrap", 1000)), int(config.get("seed", 0))
    frame_counts = [int(n) for n in config.get("frame_counts") or []]

    def family(row: dict) -> str | None:
        return (attacks.get(row["attack"]) or {}).get("family")

    rows = data["rows"]
    video = [r for r in rows if r["slice"] == "video" and r["kind"] == "reproduced"]
    chosen_rows: dict[str, dict] = {}
    out: dict = {"methods": {}, "by_frames": {}}
    for method, keep in _members(family).items():
        candidates = [r for r in video if keep(r)]
        if not candidates:
            raise VidsmeError(f"{results_path}: no video-slice rows for {method}; rerun the cell (its attack list "
                              "lacks that family)")
        chosen, test, n = dev_selected(candidates, "auc")
        chosen_rows[method] = test
        out["methods"][method] = _summary(chosen, test, n, family(test))
        out["by_frames"][method] = {}
        for n_frames in frame_counts:
            at = [r for r in candidates if r["n_frames"] == n_frames]
            if at:
                chosen, test, n = dev_selected(at, "auc")
                out["by_frames"][method][str(n_frames)] = _summary(chosen, test, n, family(test))
    calibrated = [r for r in rows if r["kind"] == "calibrated"]
    if calibrated:  # the calibrated variant: LiRA / RMIA over the video-slice signals (docs/FINDINGS.md)
        out["calibrated"] = {}
        for method, keep in _calibrated_members(lambda r: family({"attack": r["calibration"]["signal"]})).items():
            candidates = [r for r in calibrated if keep(r)]
            if candidates:
                chosen, test, n = dev_selected(candidates, "auc")
                chosen_rows[method] = test
                out["calibrated"][method] = {**_summary(chosen, test, n, test["family"]),
                                             "signal": test["calibration"]["signal"],
                                             "calibration": test["calibration"]["calibration"],
                                             "shadows": test["calibration"]["shadows"]["count"]}
    loss = [r for r in rows if r["attack"] == "loss" and r["slice"] == "answer" and r["n_frames"] == train_frames]
    if not loss:
        raise VidsmeError(f"{results_path}: no answer-slice loss rows at {train_frames} frames; the study's "
                          f"frame_counts must include the cells' train_frames ({train_frames})")
    test_loss = _unit([r for r in loss if r["partition"] == "test"])
    dev_loss = [r for r in loss if r["partition"] == "dev" and r["level"] == test_loss["level"]]
    chosen_rows["answer_loss"] = test_loss
    out["answer_loss"] = {"attack": "loss", "slice": "answer", "n_frames": train_frames, "level": test_loss["level"],
                          "dev_auc": dev_loss[0]["auc"]["value"] if dev_loss else None, "auc": _value(test_loss),
                          "n_members": test_loss["n_members"], "n_nonmembers": test_loss["n_nonmembers"]}
    blind = [r for r in rows if r["kind"] == "blind" and r["partition"] == "test"]
    if blind:
        chosen_rows["blind"] = _unit(blind)
        out["blind"] = {"level": chosen_rows["blind"]["level"], "auc": _value(chosen_rows["blind"])}
    else:
        out["blind"] = None
    out["paired"] = {}
    for a, b in PAIRS + (CALIBRATED_PAIRS if calibrated else ()):
        if a in chosen_rows and b in chosen_rows:
            out["paired"][f"{a} - {b}"] = paired_test_difference(chosen_rows[a], chosen_rows[b], results_path.parent,
                                                                  n_bootstrap=n_bootstrap, seed=seed)
    target = data["targets"][0]
    out["partition"] = {side: target["partition"][side]["videos"] for side in ("dev", "test")}
    out["levels"] = target["levels"]
    return out


__all__ = ["CALIBRATED_METHODS", "CALIBRATED_PAIRS", "PAIRS", "VIDEO_METHODS", "cell_metrics"]
