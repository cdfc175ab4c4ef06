"""One cell of the study: its plan (settings, hashes, folders) and its run (base -> target -> benchmark
-> <cell>.json).

Every stage resumes on its own: a base or target whose card holds the same config hash is reused
(a killed training continues from its last checkpoint), extracted feature batches are reused, and
a suite whose results.json has the same fingerprint is not re-evaluated. A cell's JSON is written
last, atomically, with its settings hash: a file with the current hash means the cell is done.

Folders under <work_dir> are named by hashes of what makes them, so cells with identical settings
share a model, and a changed base retrains every target built on it:
    models/base-<name>-<hash>/     models/t-<hash>/     bench/t-<hash>/     cache/ (features, video stats)
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from vidsme import __version__
from vidsme.config import config_hash, config_to_dict
from vidsme.errors import VidsmeError
from vidsme.study.config import CellSettings, CellSpec, StudyBase, StudyConfig
from vidsme.study.splits import PRETRAIN_POOL, PROBE_POOL, content_split, population_split
from vidsme.provenance import sha256_file

STUDY_VERSION = 1  # bump when a change alters any cell's numbers (invalidates every cell file)
SLICES = ["video", "answer"]
# The calibrated variant's signals (shadows > 0): Vid-SME (both alignments, and the sequence score), the
# single-order entropy, the other video-slice families, and the answer-slice loss for comparison.
CALIBRATION_SIGNALS = ("vid_sme_mean", "vid_sme_frame_mean", "vid_sme_min_k30", "vid_sme_sequence",
                       "max_k_renyi_a1_k100", "loss", "min_k_prob_k30", "min_k_pp_k30", "modified_entropy",
                       "max_prob_gap")


@dataclass(frozen=True)
class CellPlan:
    """A cell resolved: its settings, base, the hashes that key its folders and its results file."""

    spec: CellSpec
    settings: CellSettings
    base: StudyBase
    base_id: str  # models/<base_id>
    target_id: str  # models/<target_id>, bench/<target_id>
    key: str  # settings hash of the cell's results (everything that changes a number)
    record: dict  # the settings as recorded in the cell file

    def results_file(self, out: Path) -> Path:
        """<out>/<cell name>.json."""
        return Path(out) / f"{self.spec.name}.json"


def study_attacks(reference_view: bool) -> list[str]:
    """The built-in attacks that score the video slice (reference calibration only with the reference
    view); `loss` among them also gives the answer-slice number."""
    from vidsme.attack.registry import list_attacks

    return [s.name for s in list_attacks() if s.source.startswith("vidsme.attack.attacks.") and "video" in s.slices
            and (reference_view or not any(n.startswith("reference.") for n in s.needs))]


def _hash(obj: object) -> str:
    return config_hash({"value": obj})


def _deepspeed_sha256(path: Path, where: str) -> str:
    """The ZeRO config's content hash (its content, not its path, decides the training)."""

    if not Path(path).is_file():
        raise VidsmeError(f"{where}: deepspeed config {path} does not exist; run from the repository root or set "
                          "deepspeed=PATH (e.g. configs/deepspeed/zero2.json)")
    return sha256_file(path)


def plan_cell(cfg: StudyConfig, spec: CellSpec, where: str = "the study config") -> CellPlan:
    """Resolve a cell of `cfg` (settings = center + overrides) and hash what its outputs depend on."""
    settings = cfg.cell(spec, where)
    base = cfg.bases[settings.base]
    data = {"split_videos": cfg.split_videos, "pretrain_videos": cfg.pretrain_videos, "data_seed": cfg.data_seed,
            "generator": "vidsme.data_splits.synthetic"}
    base_record = {"name": settings.base, **config_to_dict(base),
                   "video_tokens_per_frame": base.video_tokens_per_frame}
    base_id = f"base-{settings.base}-{_hash([base_record, data])[:10]}"
    training = {"max_text_tokens": cfg.max_text_tokens, "heldout_probe": cfg.heldout_probe,
                "deepspeed_sha256": _deepspeed_sha256(cfg.deepspeed, where)}
    target_id = "t-" + _hash([base_id, config_to_dict(settings), data, training])[:12]
    evaluation = {"frame_counts": list(cfg.frame_counts), "n_bootstrap": cfg.n_bootstrap,
                  "reference_view": cfg.reference_view, "batch_size": cfg.batch_size, "slices": SLICES,
                  "attacks": study_attacks(cfg.reference_view), "selection": "auc on dev, reported on test"}
    if cfg.shadows:  # only then: the reference-free cells keep their settings hash (and their committed files)
        evaluation["shadows"] = {"count": cfg.shadows, "setting": "online", "signals": list(CALIBRATION_SIGNALS),
                                 "population": "the content split's population pool (RMIA)"}
    record = {"study_version": STUDY_VERSION, "cell": config_to_dict(settings), "base": base_record, "data": data,
              "training": training, "evaluation": evaluation, "base_id": base_id, "target_id": target_id}
    return CellPlan(spec=spec, settings=settings, base=base, base_id=base_id, target_id=target_id,
                    key=_hash(record), record=record)


def is_done(plan: CellPlan, out: Path) -> bool:
    """The cell's results file exists and holds this plan's settings hash."""
    path = plan.results_file(out)
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("settings_sha256") == plan.key
    except (OSError, ValueError, AttributeError):
        return False  # damaged: the cell is computed again


def _card(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise VidsmeError(f"{path} is unreadable ({err}); delete its folder and rerun the study") from None


def train_base(cfg: StudyConfig, plan: CellPlan, video_root: Path, models: Path,
               progress: bool = True) -> tuple[Path, bool, float]:
    """Pretrain (or reuse) the cell's base; returns (folder, trained now, seconds)."""
    from vidsme.train.config import BaseConfig, DataConfig, EngineConfig, OptimConfig, ProbeConfig
    from vidsme.train.recipes import train_or_reuse

    out = models / plan.base_id
    base = plan.base
    bcfg = BaseConfig(name=plan.base_id, output_dir=out,
                      data=DataConfig(split=PRETRAIN_POOL, video_root=video_root, n_frames=base.n_frames,
                                      max_text_tokens=cfg.max_text_tokens),
                      model=base.model,
                      optim=OptimConfig(lr=base.lr, epochs=base.epochs, micro_batch_size=base.micro_batch_size,
                                        warmup_steps=base.warmup_steps),
                      engine=EngineConfig(deepspeed=cfg.deepspeed),
                      probe=ProbeConfig(split=PROBE_POOL, video_root=video_root), seed=cfg.data_seed)
    start = time.perf_counter()
    trained = train_or_reuse(bcfg, progress=progress)
    return out, trained, time.perf_counter() - start


def train_target(cfg: StudyConfig, plan: CellPlan, base_dir: Path, video_root: Path,
                 models: Path, progress: bool = True) -> tuple[Path, bool, float]:
    """Fine-tune (or reuse) the cell's target; returns (folder, trained now, seconds)."""
    from vidsme.train.recipes import train_or_reuse

    tcfg = target_config(cfg, plan, base_dir, video_root, models)
    start = time.perf_counter()
    trained = train_or_reuse(tcfg, progress=progress)
    return tcfg.output_dir, trained, time.perf_counter() - start


def target_config(cfg: StudyConfig, plan: CellPlan, base_dir: Path, video_root: Path, models: Path):
    """The TargetConfig of a cell (its shadows copy it)."""
    from vidsme.train.config import DataConfig, EngineConfig, LoraSettings, OptimConfig, TargetConfig

    s = plan.settings
    out = models / plan.target_id
    return TargetConfig(name=plan.target_id, base=base_dir, output_dir=out, strategy=s.strategy,
                        data=DataConfig(split=content_split(s.content), video_root=video_root, n_frames=s.train_frames,
                                        max_text_tokens=cfg.max_text_tokens, heldout_nonmembers=cfg.heldout_probe),
                        optim=OptimConfig(lr=s.lr, epochs=s.epochs, micro_batch_size=s.micro_batch_size),
                        lora=LoraSettings(r=s.lora_r, alpha=2 * s.lora_r),
                        engine=EngineConfig(deepspeed=cfg.deepspeed), train_vision_tower=s.train_vision_tower,
                        seed=s.seed)


def train_cell_shadows(cfg: StudyConfig, plan: CellPlan, base_dir: Path, video_root: Path, models: Path,
                       progress: bool = True) -> tuple[Path, float]:
    """Train (or reuse) the cell's online shadow set of `cfg.shadows` models; returns (its folder, seconds)."""
    from vidsme.train.shadows import assemble_set, plan_shadows, train_shadows

    tcfg = target_config(cfg, plan, base_dir, video_root, models)
    shadows = plan_shadows(tcfg, cfg.shadows, output_dir=models / f"{plan.target_id}-shadows-online-{cfg.shadows}")
    start = time.perf_counter()
    train_shadows(tcfg, shadows, list(range(cfg.shadows)), progress=progress)
    assemble_set(shadows)
    return shadows.folder, time.perf_counter() - start


def benchmark_target(cfg: StudyConfig, plan: CellPlan, target_dir: Path, video_root: Path,
                     progress: bool, shadows: Path | None = None) -> tuple[Path, float]:
    """Run the benchmark on the cell's target (a one-target suite, lean: video + answer slices, the
    study's attacks, no plots; with `shadows`, its calibrated attacks too); returns (results.json, seconds)."""
    from vidsme.benchmark.config import SuiteConfig, SuiteTarget
    from vidsme.benchmark.suite import run_suite

    work = Path(cfg.work_dir)
    content = plan.settings.content
    calibrated = {} if shadows is None else {"shadows": [shadows], "population": population_split(content),
                                             "population_video_root": video_root}
    signals = {} if shadows is None else {"calibration_signals": list(CALIBRATION_SIGNALS)}
    bench = work / "bench" / (plan.target_id + (f"-shadows-{cfg.shadows}" if shadows is not None else ""))
    suite = SuiteConfig(name=plan.target_id, output_dir=bench, cache_dir=work / "cache",
                        targets=[SuiteTarget(name=plan.target_id, path=target_dir, split=content_split(content),
                                             video_root=video_root, **calibrated)], **signals,
                        frame_counts=list(cfg.frame_counts), slices=list(SLICES),
                        reference_view=cfg.reference_view, attacks=plan.record["evaluation"]["attacks"],
                        batch_size=cfg.batch_size, n_bootstrap=cfg.n_bootstrap, primary_metric="auc", plots=False,
                        seed=0)
    start = time.perf_counter()
    path = run_suite(suite, progress=progress, command=f"vidsme study video-signal (cell {plan.spec.name})")
    if path is None:
        raise VidsmeError("the study runs in one process; launch it without torchrun/deepspeed")
    return path, time.perf_counter() - start


def run_cell(cfg: StudyConfig, plan: CellPlan, data: dict, *, progress: bool = True) -> dict:
    """Train and benchmark one cell (each stage reused where done); returns its record (not yet written).
    Call inside `using_splits_dir(<work_dir>/splits)`."""
    from vidsme.provenance import git_commit, library_versions
    from vidsme.study.metrics import cell_metrics
    from vidsme.train.recipes import BASE_CARD_FILE, CARD_FILE

    work = Path(cfg.work_dir)
    videos, models = work / "videos", work / "models"
    base_dir, base_trained, base_seconds = train_base(cfg, plan, videos, models, progress)
    target_dir, target_trained, target_seconds = train_target(cfg, plan, base_dir, videos, models, progress)
    shadows, shadow_seconds = (train_cell_shadows(cfg, plan, base_dir, videos, models, progress) if cfg.shadows
                               else (None, None))
    results, eval_seconds = benchmark_target(cfg, plan, target_dir, videos, progress, shadows)
    metrics = cell_metrics(results, plan.settings.train_frames)
    card = _card(target_dir / CARD_FILE)
    base_card = _card(base_dir / BASE_CARD_FILE)
    split = data[plan.settings.content]
    members, nonmembers = card.get("loss_members_probe"), card.get("loss_heldout_nonmembers")
    return {
        "study": cfg.name,
        "cell": plan.spec.name,
        "factor": plan.spec.factor,
        "level": plan.spec.level,
        "overrides": list(plan.spec.overrides),
        "settings_sha256": plan.key,
        "settings": plan.record,
        "model": {"hidden_size": plan.base.model.hidden_size, "num_hidden_layers": plan.base.model.num_hidden_layers,
                  "video_tokens_per_frame": plan.base.video_tokens_per_frame,
                  "trainable_parameters": card.get("trainable_parameters")},
        "split": {"name": split["name"], "manifest_sha256": split["manifest_sha256"], "counts": split["counts"],
                  "notes": split["notes"]},
        "loss": {"members": members, "nonmembers": nonmembers,
                 "gap": None if members is None or nonmembers is None else nonmembers - members,
                 "n_probe": card.get("n_heldout_nonmembers"), "final_train_loss": card.get("final_train_loss"),
                 "steps": card.get("steps")},
        **metrics,
        "seconds": {"base": round(base_seconds, 1) if base_trained else None,
                    "base_card": base_card.get("train_seconds"),
                    "target": round(target_seconds, 1) if target_trained else None,
                    "target_card": card.get("train_seconds"), "evaluate": round(eval_seconds, 1),
                    **({"shadows": round(shadow_seconds, 1)} if shadows is not None else {})},
        "provenance": {"git_commit": git_commit(), "vidsme": __version__, "libraries": library_versions(),
                       "base_card_sha256": sha256_file(base_dir / BASE_CARD_FILE),
                       "target_card_sha256": sha256_file(target_dir / CARD_FILE)},
    }


__all__ = ["CALIBRATION_SIGNALS", "STUDY_VERSION", "CellPlan", "benchmark_target", "is_done", "plan_cell", "run_cell",
           "study_attacks", "target_config", "train_base", "train_cell_shadows", "train_target"]
