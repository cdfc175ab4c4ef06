"""`vidsme study video-signal CONFIG`: where does the video signal live? (issue 12, docs/FINDINGS.md)

On every target the demo trains, the answer-slice loss attack beats every video-slice attack,
Vid-SME included; the paper reports the opposite on 7B video LLMs. This study trains a grid of
targets, one factor at a time around a strong cell, then combinations, and benchmarks each:

    capacity   LM width x depth (128 x 4 ... 512 x 8) and video tokens per frame (9, 36, ...)
    strategy   full | LoRA | projector | full with the vision tower unfrozen
    epochs     from under- to over-fitted (member/non-member loss gap)
    frames     trained at 8, evaluated at every `frame_counts` (every cell; no extra training)
    content    temporal questions (reversal changes the answer) vs static ones, same videos

Per cell, <output_dir>/<cell>.json holds the settings (and their hash), the loss gap, the
answer-slice loss AUC, and on the video slice the dev-selected, test-reported AUC with CI of
Vid-SME position- and frame-aligned, the best other video-slice attack and a single-order
entropy attack, next to the blind baseline (study/metrics.py). table.md and figure.png are
rewritten from the cell files at the end of every run.

Resuming: a cell whose file holds the current settings hash is skipped before anything is
loaded; otherwise its stages (base, target, features, evaluation) resume where they stopped.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vidsme.atomic import write_json_atomic
from vidsme.study.cells import CellPlan, is_done, plan_cell, run_cell
from vidsme.study.config import StudyConfig
from vidsme.study.report import write_report


@dataclass
class StudyRun:
    """What a run did: cells computed and reused (by name), files written, wall-clock seconds."""

    computed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    written: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0


def plan_study(cfg: StudyConfig, where: str = "the study config") -> list[CellPlan]:
    """Every cell of the grid resolved and hashed (nothing is read or written)."""
    return [plan_cell(cfg, spec, where) for spec in cfg.cells]


def _load_done(plans: list[CellPlan], out: Path) -> tuple[list[dict], list[str]]:
    """(current cell records in grid order, names of grid cells without one)."""
    cells, missing = [], []
    for plan in plans:
        if is_done(plan, out):
            record = json.loads(plan.results_file(out).read_text(encoding="utf-8"))
            # labels are not settings: the config's current ones go into the table
            record.update(cell=plan.spec.name, factor=plan.spec.factor, level=plan.spec.level)
            cells.append(record)
        else:
            missing.append(plan.spec.name)
    return cells, missing


def _footer(cells: list[dict]) -> list[str]:
    """Recorded compute of the cells in the table (deterministic: from the cell files only)."""
    bases = {c["settings"]["base_id"]: c["seconds"].get("base_card") or 0.0 for c in cells}
    targets = {c["settings"]["target_id"]: c["seconds"].get("target_card") or 0.0 for c in cells}
    evaluate = sum(c["seconds"].get("evaluate") or 0.0 for c in cells)
    shadows = sum(c["seconds"].get("shadows") or 0.0 for c in cells)  # the calibrated variant's shadow sets
    total = sum(bases.values()) + sum(targets.values()) + shadows + evaluate
    with_shadows = f", shadow sets {shadows:.0f} s" if any("shadows" in c["seconds"] for c in cells) else ""
    return [f"Recorded compute of these {len(cells)} cells: {len(bases)} base(s) {sum(bases.values()):.0f} s, "
            f"{len(targets)} target(s) {sum(targets.values()):.0f} s (training only){with_shadows}, evaluation "
            f"{evaluate:.0f} s; {total / 60:.1f} min in all, without data generation and model loading (time the "
            "whole command for that)."]


def report(cfg: StudyConfig, plans: list[CellPlan] | None = None) -> dict[str, Path]:
    """Rewrite table.md and figure.png from the current cell files of the grid (cells outside
    `only` are shown when their files are current, and not listed as missing when they are not)."""
    plans = plan_study(cfg) if plans is None else plans
    cells, missing = _load_done(plans, Path(cfg.output_dir))
    selected = {spec.name for spec in cfg.selected()}
    missing = [name for name in missing if name in selected]
    return write_report(Path(cfg.output_dir), cells, missing=missing, footer=_footer(cells) if cells else ())


def run_study(cfg: StudyConfig, *, where: str = "the study config", progress: bool = True,
              log: Callable[[str], None] = print) -> StudyRun:
    """Compute every selected cell that has no current results file, then write the table and figure."""
    from vidsme.paths import using_splits_dir
    from vidsme.study.splits import build_study_data

    start = time.perf_counter()
    out, work = Path(cfg.output_dir), Path(cfg.work_dir)
    plans = plan_study(cfg, where)
    selected = {spec.name for spec in cfg.selected()}
    todo = [p for p in plans if p.spec.name in selected and not is_done(p, out)]
    run = StudyRun(reused=[p.spec.name for p in plans if p.spec.name in selected and p not in todo])
    for name in run.reused:
        log(f"{name}: up to date ({out / (name + '.json')}), skipped")
    if todo:
        out.mkdir(parents=True, exist_ok=True)
        with using_splits_dir(work / "splits"):
            t0 = time.perf_counter()
            data = build_study_data([p.settings.content for p in todo], work / "videos",
                                    split_videos=cfg.split_videos, pretrain_videos=cfg.pretrain_videos,
                                    seed=cfg.data_seed, progress=progress, populations=cfg.shadows > 0)
            sizes = ", ".join(f"{d['name']} {d['counts']['videos']}" for d in data.values())
            log(f"data: {sizes} videos ({time.perf_counter() - t0:.0f} s)")
            for i, plan in enumerate(todo, start=1):
                t0 = time.perf_counter()
                log(f"[{i}/{len(todo)}] {plan.spec.name} ({plan.spec.factor}: {plan.spec.level}) -> {plan.target_id}")
                record = run_cell(cfg, plan, data, progress=progress)
                write_json_atomic(plan.results_file(out), record)
                run.computed.append(plan.spec.name)
                vid = record["methods"]["vid_sme"]["auc"]["value"]
                log(f"    gap {record['loss']['gap']:.3f}, answer loss AUC {record['answer_loss']['auc']['value']:.3f}, "
                    f"Vid-SME {vid:.3f} ({time.perf_counter() - t0:.0f} s)")
    run.written = report(cfg, plans)
    run.seconds = time.perf_counter() - start
    return run


__all__ = ["StudyRun", "plan_study", "report", "run_study"]
