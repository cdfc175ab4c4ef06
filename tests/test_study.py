"""The video-signal study (vidsme.study): config and cell resolution, hashes, the content pools, and
the `--size tiny` grid end to end (train, benchmark, cell files, table, figure, resume)."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from vidsme.cli import main
from vidsme.config import ConfigError
from vidsme.data_splits import synthetic as S
from vidsme.study.config import CellSpec, load_study
from vidsme.study.video_signal import plan_study, report, run_study

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "studies" / "video_signal.yaml"
DEEPSPEED = f"deepspeed={REPO / 'configs' / 'deepspeed' / 'zero2.json'}"


def test_the_config_launches_and_every_cell_resolves():
    header = CONFIG.read_text(encoding="utf-8").splitlines()[:3]
    assert any("vidsme study video-signal configs/studies/video_signal.yaml" in line for line in header)
    cfg = load_study(CONFIG)
    plans = plan_study(cfg)
    assert len(plans) >= 8 and plans[0].spec.factor == "center"
    factors = {p.spec.factor for p in plans}
    assert {"capacity", "tokens", "strategy", "epochs", "content", "combined"} <= factors
    by = {p.spec.name: p for p in plans}
    assert by["lora"].settings.strategy == "lora" and by["lora"].settings.epochs == cfg.center.epochs
    assert by["full-vision"].settings.train_vision_tower
    assert by["tokens-36"].base.video_tokens_per_frame == 36 and by["center"].base.video_tokens_per_frame == 9
    assert by["lm-512x8"].base.model.hidden_size == 512 and by["lm-512x8"].base.model.num_hidden_layers == 8
    assert len({p.target_id for p in plans}) == len(plans)  # no two cells train the same model
    assert by["tokens-144"].base.video_tokens_per_frame == 144
    assert len({p.base_id for p in plans}) == len(cfg.bases) < len(plans)  # bases are shared by architecture


def test_hashes_key_what_changes_a_number():
    cfg = load_study(CONFIG)
    center = plan_study(cfg)[0]
    again = plan_study(load_study(CONFIG, ["cells.0.level=renamed"]))[0]
    assert (again.key, again.target_id) == (center.key, center.target_id)  # labels are not settings
    more = plan_study(load_study(CONFIG, ["n_bootstrap=200"]))[0]
    assert more.target_id == center.target_id and more.key != center.key  # evaluation only: same model
    wider = plan_study(load_study(CONFIG, ["bases.small.model.num_hidden_layers=2"]))[0]
    assert wider.base_id != center.base_id and wider.target_id != center.target_id  # a new base retrains


def test_cell_errors_name_the_cell_and_the_fix():
    cfg = load_study(CONFIG)
    with pytest.raises(ConfigError, match=r"'typo'.*epochs"):
        cfg.cell(CellSpec(name="typo", factor="epochs", level="x", overrides=["epoch=3"]))
    with pytest.raises(ConfigError, match=r"base 'huge'.*Bases: small"):
        cfg.cell(CellSpec(name="huge", factor="capacity", level="x", overrides=["base=huge"]))
    with pytest.raises(ConfigError, match="Did you mean: center"):
        load_study(CONFIG, ["only=[centre]"])
    with pytest.raises(ConfigError, match="Did you mean: tiny"):
        load_study(CONFIG, size="tinny")
    with pytest.raises(ConfigError, match="unique"):
        load_study(CONFIG, ["cells.1.name=center"])


def test_content_pools_share_the_scenes_and_differ_in_the_questions():
    temporal = S.select_videos("study-mcqa-temporal", 40, 0)
    static = S.select_videos("study-mcqa-static", 40, 0)
    public = S.select_videos("synth-mcqa", 40, 0)
    for (a, ra), (b, rb), (c, _) in zip(temporal, static, public):
        assert dataclasses.replace(a, pool="") == dataclasses.replace(b, pool="") == dataclasses.replace(c, pool="")
        assert ra[0]["video"] == rb[0]["video"] == f"study-mcqa/{a.video_id}.mp4"
        assert not rb[0]["reversal_changes_answer"]
    assert sum(rows[0]["reversal_changes_answer"] for _, rows in temporal) >= 36  # where the scene has any


@pytest.mark.integration
def test_the_tiny_study_runs_writes_its_outputs_and_resumes(tmp_path: Path):
    out, work = tmp_path / "results", tmp_path / "work"
    overrides = [f"output_dir={out}", f"work_dir={work}", DEEPSPEED]
    assert main(["study", "video-signal", str(CONFIG), *overrides, "--size", "tiny", "--quiet"]) == 0
    cfg = load_study(CONFIG, overrides, size="tiny")
    names = [c.name for c in cfg.selected()]
    assert len(names) == 3
    for name in names:
        cell = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))
        assert cell["cell"] == name and len(cell["settings_sha256"]) == 64
        assert cell["loss"]["gap"] is not None
        assert 0 <= cell["answer_loss"]["auc"]["value"] <= 1 and cell["answer_loss"]["n_frames"] == 8
        for method in ("vid_sme_position", "vid_sme_frame", "vid_sme", "other_video", "entropy_video"):
            m = cell["methods"][method]
            assert m["slice"] == "video" and m["n_candidates"] > 1
            assert m["auc"]["ci_low"] <= m["auc"]["value"] <= m["auc"]["ci_high"]
        assert "frame" in cell["methods"]["vid_sme_frame"]["attack"]
        assert "frame" not in cell["methods"]["vid_sme_position"]["attack"]
        assert cell["methods"]["entropy_video"]["family"] == "renyi"
        assert cell["methods"]["other_video"]["family"] != "vid_sme"
        assert set(cell["by_frames"]["vid_sme"]) == {"4", "8"} and cell["blind"] is not None
        assert "vid_sme - entropy_video" in cell["paired"]
    table = (out / "table.md").read_text(encoding="utf-8")
    assert all(f"| {name} |" in table for name in names)
    assert "Not in the table" not in table  # `only` is the grid: cells outside it are not "missing"
    figure = (out / "figure.png").read_bytes()
    assert figure.startswith(b"\x89PNG")
    report(cfg)
    assert (out / "figure.png").read_bytes() == figure and (out / "table.md").read_text() == table  # deterministic

    # finished cells are skipped before anything loads
    stamps = {name: (out / f"{name}.json").stat().st_mtime_ns for name in names}
    start = time.perf_counter()
    again = run_study(cfg, progress=False, log=lambda _: None)
    assert again.computed == [] and again.reused == names and time.perf_counter() - start < 10
    assert {name: (out / f"{name}.json").stat().st_mtime_ns for name in names} == stamps
    # a lost cell file (a kill before it was written) is redone from the reused models and caches
    lost = json.loads((out / "static.json").read_text(encoding="utf-8"))
    (out / "static.json").unlink()
    report(cfg)
    assert "static" in (out / "table.md").read_text(encoding="utf-8").split("Not in the table")[1]
    redo = run_study(cfg, progress=False, log=lambda _: None)
    assert redo.computed == ["static"] and redo.reused == ["center", "projector"]
    redone = json.loads((out / "static.json").read_text(encoding="utf-8"))
    assert redone["seconds"]["target"] is None  # the model was reused, not retrained
    assert redone["methods"] == lost["methods"] and redone["loss"] == lost["loss"]


def test_the_calibrated_variant_trains_shadows_and_reports_lira_and_rmia(tmp_path: Path):
    """--size calibrated-tiny: one toy cell with 4 online shadow models; LiRA/RMIA on the video slice, each
    dev-selected and test-reported beside the reference-free methods, in the cell file and the table."""
    out, work = tmp_path / "results", tmp_path / "work"
    overrides = [f"output_dir={out}", f"work_dir={work}", DEEPSPEED]
    assert main(["study", "video-signal", str(CONFIG), *overrides, "--size", "calibrated-tiny", "--quiet"]) == 0
    cell = json.loads((out / "center.json").read_text(encoding="utf-8"))
    assert cell["settings"]["evaluation"]["shadows"]["count"] == 4
    calibrated = cell["calibrated"]
    assert {"calibrated_video", "lira_video", "rmia_video", "calibrated_vid_sme", "calibrated_entropy",
            "calibrated_answer_loss"} <= set(calibrated)
    for name, m in calibrated.items():
        assert m["shadows"] == 4 and m["auc"]["ci_low"] <= m["auc"]["value"] <= m["auc"]["ci_high"]
        assert m["slice"] == ("answer" if name == "calibrated_answer_loss" else "video")
    assert calibrated["calibrated_vid_sme"]["signal"].startswith("vid_sme")
    assert calibrated["lira_video"]["family"] == "lira" and calibrated["rmia_video"]["family"] == "rmia"
    assert "calibrated_vid_sme - vid_sme" in cell["paired"] and cell["seconds"]["shadows"] is not None
    table = (out / "table.md").read_text(encoding="utf-8")
    assert "Calibrated by shadow models" in table and "| center | 4 |" in table
    # the reference-free cell of the same settings is another file: its settings hash has no shadows
    plain = load_study(CONFIG, [f"output_dir={out}", f"work_dir={work}", DEEPSPEED, "shadows=0"], size="calibrated-tiny")
    from vidsme.study.video_signal import plan_study

    assert plan_study(plain)[0].key != cell["settings_sha256"]
    assert plan_study(plain)[0].target_id == cell["settings"]["target_id"]  # ... and the same trained target


def _fake_cell(name: str, factor: str, gap: float, auc: float) -> dict:
    metric = {"value": auc, "ci_low": auc - 0.1, "ci_high": min(1.0, auc + 0.1)}
    method = {"attack": "vid_sme_frame_min_k10", "n_frames": 8, "n_candidates": 105, "auc": metric}
    return {"cell": name, "factor": factor, "level": f"{factor} level",
            "settings": {"cell": {"strategy": "full", "train_vision_tower": factor == "strategy", "epochs": 24,
                                  "content": "temporal", "train_frames": 8},
                         "base_id": "base-small-x", "target_id": f"t-{name}"},
            "model": {"hidden_size": 128, "num_hidden_layers": 4, "video_tokens_per_frame": 9},
            "loss": {"members": 0.3, "nonmembers": 0.3 + gap, "gap": gap},
            "answer_loss": {"auc": {"value": 0.8, "ci_low": 0.7, "ci_high": 0.9}},
            "methods": {k: method for k in ("vid_sme_position", "vid_sme_frame", "vid_sme", "other_video",
                                            "entropy_video")},
            "by_frames": {"vid_sme": {"4": method, "8": method}, "other_video": {"8": method}},
            "blind": {"level": "row=video", "auc": {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6}},
            "paired": {"vid_sme - blind": {"value": 0.1, "ci_low": -0.05, "ci_high": 0.25}},
            "seconds": {"base_card": 50.0, "target_card": 30.0, "evaluate": 40.0}}


def test_the_report_is_a_table_and_a_deterministic_figure(tmp_path: Path):
    from vidsme.study.report import write_report

    cells = [_fake_cell("center", "center", 0.4, 0.6), _fake_cell("full-vision", "strategy", 1.2, 0.7),
             _fake_cell("odd", "a new factor", 0.05, 0.5)]
    written = write_report(tmp_path, cells, missing=["lora"], footer=["footer line"])
    table = written["table"].read_text(encoding="utf-8")
    assert "| center | center |" in table and "full + vision tower" in table
    assert "0.600 [0.50, 0.70]" in table and "+0.100 [-0.05, +0.25] ns" in table
    assert "n/a" in table  # best other @4 is missing
    assert "lora" in table.splitlines()[-3] and table.rstrip().endswith("footer line")
    figure = written["figure"].read_bytes()
    write_report(tmp_path, cells, missing=["lora"], footer=["footer line"])
    assert written["figure"].read_bytes() == figure and figure.startswith(b"\x89PNG")
    assert "No cell" in write_report(tmp_path / "empty", [])["table"].read_text(encoding="utf-8")


@pytest.mark.parametrize("size", [None, "replication", "calibrated", "calibrated-400"])
def test_the_committed_findings_are_what_the_report_writes(tmp_path: Path, size):
    """docs/findings/ (and its copy in docs/FINDINGS.md) is generated from the committed cell files,
    one per cell of the grid: nothing in the table is typed by hand."""
    from vidsme.study.report import write_report
    from vidsme.study.video_signal import _footer

    cfg = load_study(CONFIG, size=size)
    folder = REPO / cfg.output_dir
    cells = []
    for spec in cfg.selected():
        record = json.loads((folder / f"{spec.name}.json").read_text(encoding="utf-8"))
        assert record["settings"]["cell"]["epochs"] > 0 and record["methods"]["vid_sme"]["auc"]["value"] is not None
        record.update(cell=spec.name, factor=spec.factor, level=spec.level)
        cells.append(record)
    table = write_report(tmp_path, cells, footer=_footer(cells))["table"].read_text(encoding="utf-8")
    assert table == (folder / "table.md").read_text(encoding="utf-8")
    findings = (REPO / "docs" / "FINDINGS.md").read_text(encoding="utf-8")
    body = table.split("\n", 2)[2].split("\n\n")[0]  # the main table, without the generated-file comment
    if size in ("calibrated", "calibrated-400"):  # FINDINGS.md copies the calibrated sections' tables
        body = table[table.index("| cell | shadows |"):].split("\n\n")[0]
        assert all(record.get("calibrated") for record in cells)
    assert body in findings
