"""`vidsme train target|base CONFIG --dry-run`: what a training run would hold and need, before any GPU is.

Nothing is loaded or written: the model is a skeleton on the meta device, built from the base's
config.json, or — when the base is not on this machine — from a config-only description
(configs/models/<base folder name>.json, or --architecture FILE), or for a tiny base from the
configs/base/*.yaml that builds it. The strategy is applied to the skeleton with train/loop.py's own
set_trainable / apply_lora (peft injects the adapters on the meta device too), so the trainable
counts are the ones training records.

Printed: parameters per module group (total, trainable); model-state memory per GPU for the
configured ZeRO stage, precision and world size (vidsme's accounting, and DeepSpeed's estimators
where they apply; activations are not estimated); host memory to load the base; tokens per sample
and steps per epoch. Checked: the base, the DeepSpeed config, the split (exists, members, complete),
the prompt template on every training row, every training and held-out probe video present under
data.video_root and decoding (all, or a seeded sample with quick=True), text token budgets when a
tokenizer is at hand. Every problem is listed; `ok` is False when there is any.
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

from vidsme.dry_run import SHOWN, DryRunReport, shown
from vidsme.errors import VidsmeError
from vidsme.model_files import count, shape_mismatches, skeleton
from vidsme.train.config import BaseConfig, DataConfig, OptimConfig, TargetConfig

MODELS_DIR = Path("configs/models")  # config-only base descriptions, by base folder name
BASE_CONFIGS = Path("configs/base")  # tiny-base recipes: one may build a target's missing base
QUICK_SAMPLE = 20  # videos decoded with quick=True
GIB = 2**30


def _size(n: float) -> str:
    """Bytes in GiB, MiB or KiB, whichever reads best."""
    for unit, scale in (("GiB", GIB), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n / 2**10:.2f} KiB"


def world_layout(world_size: int | None, gpus_per_node: int | None) -> tuple[int, int, int]:
    """(world size, GPUs per node, nodes): the arguments, else the launcher's WORLD_SIZE /
    LOCAL_WORLD_SIZE, else one process on one node."""
    def env(name: str) -> int | None:
        value = os.environ.get(name)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            raise VidsmeError(f"environment variable {name}={value!r} is not an integer; unset it or pass "
                              "--world-size / --gpus-per-node") from None

    world = world_size if world_size is not None else env("WORLD_SIZE") or 1
    per_node = gpus_per_node if gpus_per_node is not None else min(env("LOCAL_WORLD_SIZE") or world, world)
    if world < 1 or per_node < 1:
        raise VidsmeError(f"--world-size ({world}) and --gpus-per-node ({per_node}) must be >= 1")
    if world % per_node:
        raise VidsmeError(f"--world-size {world} is not a multiple of --gpus-per-node {per_node}: every node runs "
                          "the same number of processes")
    return world, per_node, world // per_node


def _zero_settings(path: Path, report: DryRunReport) -> tuple[int, bool, bool] | None:
    """(stage, offload optimizer, offload params) of the DeepSpeed JSON, or None (a problem is recorded)."""
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
        zero = config.get("zero_optimization", {}) or {}
        stage = int(zero.get("stage", 0))
    except FileNotFoundError:
        report.problems.append(f"DeepSpeed config {path} does not exist: set engine.deepspeed (configs/deepspeed/ "
                               "has zero2.json, zero3.json)")
        return None
    except (OSError, ValueError, TypeError, AttributeError) as err:
        report.problems.append(f"DeepSpeed config {path} is not a readable ZeRO config ({type(err).__name__}: "
                               f"{err}); fix the file or set engine.deepspeed")
        return None
    if stage not in (0, 1, 2, 3):
        report.problems.append(f"DeepSpeed config {path}: zero_optimization.stage is {stage}; use 0, 1, 2 or 3")
        return None

    def offloaded(key: str) -> bool:
        section = zero.get(key) or {}
        return isinstance(section, dict) and section.get("device") in ("cpu", "nvme")

    return stage, offloaded("offload_optimizer"), offloaded("offload_param")


# --------------------------------------------------------------------------- the model


def _tiny_skeleton(base_cfg: BaseConfig, rows: list[dict] | None):
    """(meta-device model, tokenizer) of the tiny base `base_cfg` builds; its tokenizer is trained on the
    pool's texts as pretraining does (on the template words alone when the pool is not there)."""
    import torch

    from vidsme.train.tiny_model import fixed_prompt_texts, make_tiny_vullm, tokenizer_corpus

    texts = tokenizer_corpus(rows) if rows is not None else fixed_prompt_texts()
    with torch.device("meta"):
        model, processor = make_tiny_vullm(base_cfg.model, texts)
    return model, processor.tokenizer


def _base_recipe(base: Path) -> tuple[Path, BaseConfig] | None:
    """The configs/base/*.yaml whose output_dir is `base`, if any."""
    from vidsme.config import load_config

    for path in sorted(BASE_CONFIGS.glob("*.yaml")):
        try:
            cfg = load_config(BaseConfig, path)
        except VidsmeError:
            continue
        if Path(cfg.output_dir).resolve() == Path(base).resolve():
            return path, cfg
    return None


def _pool_rows(split_name: str) -> list[dict] | None:
    from vidsme.data_splits.registry import load_split

    try:
        return load_split(split_name).rows()
    except VidsmeError:
        return None


def _describe_base(base: Path, architecture: Path | None, report: DryRunReport):
    """(skeleton, tokenizer or None) of the base a target fine-tunes, or (None, None); lines and problems
    go to `report`. The base's own config.json when it is here, else a description of it."""
    from vidsme.model_files import check_model_dir, model_fix

    base = Path(base)
    if (base / "config.json").is_file():
        try:
            check_model_dir(base, model_fix(base, "the target config's `base` (or override it: base=DIR)"))
        except VidsmeError as err:
            report.problems.append(f"base: {err}")
        try:
            model = skeleton(base)
        except Exception as err:  # noqa: BLE001 — an architecture transformers does not know, a bad config
            report.problems.append(f"base {base}: config.json does not build a model ({type(err).__name__}: {err}); "
                                   "point `base` at a Hugging Face video LLM directory")
            return None, None
        compared, misfits = shape_mismatches(model, base)
        if misfits:
            report.problems.append(f"base {base}: the weight files do not fit config.json: "
                                   f"{'; '.join(misfits[:SHOWN])}")
        report.lines.append(f"base {base}: architecture from its config.json; the weight files hold a tensor of the "
                            f"right shape for {compared - len(misfits)} of its {compared} parameters (headers only)")
        return model, _tokenizer(base, report)
    what = "is not a model directory (no config.json)" if base.exists() else "does not exist on this machine"
    recipe = _base_recipe(base)
    if recipe is not None and architecture is None:
        path, base_cfg = recipe
        report.problems.append(f"base {base} {what}: build it with `vidsme train base {path}`")
        model, tokenizer = _tiny_skeleton(base_cfg, _pool_rows(base_cfg.data.split))
        report.lines.append(f"architecture: the tiny base that {path} builds (its output_dir is the target's base)")
        return model, tokenizer
    report.problems.append(f"base {base} {what}: download or build the base checkpoint there, or override it: "
                           "base=DIR")
    described = Path(architecture) if architecture is not None else MODELS_DIR / f"{base.name}.json"
    if not described.is_file():
        hint = (f"--architecture {described} does not exist" if architecture is not None else
                f"no description {described} either")
        report.problems.append(f"no architecture to count: {hint}; pass --architecture FILE (a config.json, e.g. "
                               f"from {MODELS_DIR}/) to print the parameter and memory table")
        return None, None
    try:
        model = skeleton(described)
    except Exception as err:  # noqa: BLE001 — the description is user-editable
        report.problems.append(f"architecture {described} does not build a model ({type(err).__name__}: {err}); "
                               "fix the file or pass another --architecture")
        return None, None
    report.lines.append(f"architecture: {described} (config only: no weights, no tokenizer)")
    return model, None


def _tokenizer(model_dir: Path, report: DryRunReport):
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    except Exception as err:  # noqa: BLE001 — training would fail the same way; say why here
        report.problems.append(f"base {model_dir}: its tokenizer does not load ({type(err).__name__}: {err})")
        return None


def _apply_strategy_quietly(model, cfg: TargetConfig):
    """`cfg.strategy` applied as training applies it (train/recipes.py), quietly: peft probes a
    deprecated transformers attribute, noise in a report. Returns the model to count."""
    import warnings

    from vidsme.train.recipes import apply_strategy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return apply_strategy(model, cfg)


def _largest_layer(model) -> int:
    # DeepSpeed's rule (model_to_params): the most parameters any one module holds itself
    return max((sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules()), default=0)


def _table(counts: dict[str, dict[str, int]], how: str) -> list[str]:
    rows = [(g, c["total"], c["trainable"]) for g, c in counts.items() if c["total"] or g != "lora"]
    total = sum(c["total"] for c in counts.values())
    trainable = sum(c["trainable"] for c in counts.values())
    lines = [f"  {'module group':<16} {'total':>16} {'trainable':>16}"]
    lines += [f"  {g:<16} {n:>16,} {t:>16,}" for g, n, t in rows]
    lines.append(f"  {'all':<16} {total:>16,} {trainable:>16,}   ({count(total)} total, {count(trainable)} trainable)")
    lines.append(f"  trainable: {how}")
    return lines


# --------------------------------------------------------------------------- memory


def model_state_bytes(total: int, trainable: int, *, stage: int, world: int, bf16: bool,
                      offload_optimizer: bool = False, offload_params: bool = False) -> dict[str, float]:
    """Bytes per GPU of parameters, gradients and AdamW states, as DeepSpeed lays them out.

    Per parameter: the weights in the compute dtype (2 bytes bf16, 4 fp32). Per trainable parameter:
    gradients (bf16: 2 + an fp32 copy 4; fp32: 4) and the optimizer's fp32 master weights 4 plus two
    Adam moments 8 (fp32 at stage 0: the weights are the master, 8). ZeRO-1 partitions the optimizer
    states over `world`, ZeRO-2 also the gradients, ZeRO-3 also the weights; offloaded states take no
    GPU memory. For bf16 this is DeepSpeed's own 2 + 18 bytes per parameter. Activations, the gathered
    layer of ZeRO-3, communication buckets and the CUDA context are not included.
    """
    weight = 2 if bf16 else 4
    params = total * weight / (world if stage >= 3 else 1)
    grads = trainable * (weight + (4 if bf16 else 0)) / (world if stage >= 2 else 1)
    optim = trainable * (8 + (4 if bf16 or stage >= 1 else 0)) / (world if stage >= 1 else 1)
    if offload_optimizer:
        optim = 0.0
    if offload_params and stage >= 3:
        params = 0.0
    return {"parameters": params, "gradients": grads, "optimizer": optim, "total": params + grads + optim}


def _deepspeed_estimate(total: int, largest: int, *, stage: int, per_node: int, nodes: int,
                        offload_optimizer: bool, offload_params: bool) -> tuple[float, float, str] | None:
    """(GPU bytes, host bytes per node, function) from DeepSpeed's estimators, or None (stages 0 and 1
    have none). They assume every parameter trains in 16-bit mixed precision."""
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # as init_distributed does: no GPU probe warning
    if stage == 2:
        from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

        cpu, gpu = estimate_zero2_model_states_mem_needs(total, num_gpus_per_node=per_node, num_nodes=nodes,
                                                         cpu_offload=offload_optimizer)
        return gpu, cpu, "deepspeed.runtime.zero.stage_1_and_2.estimate_zero2_model_states_mem_needs"
    if stage == 3:
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

        # zero_init=False: every process loads the whole base before DeepSpeed partitions it (recipes.load_base)
        cpu, gpu, _ = estimate_zero3_model_states_mem_needs(
            total, largest, num_gpus_per_node=per_node, num_nodes=nodes, cpu_offload=offload_optimizer,
            cpu_offload_params=offload_params and offload_optimizer, zero_init=False)
        return gpu, cpu, "deepspeed.runtime.zero.stage3.estimate_zero3_model_states_mem_needs"
    return None


def _memory_lines(model, counts: dict, engine, layout: tuple[int, int, int], zero: tuple[int, bool, bool],
                  report: DryRunReport) -> None:
    world, per_node, nodes = layout
    stage, off_opt, off_par = zero
    bf16 = engine.precision == "bf16"
    total = sum(c["total"] for c in counts.values())
    trainable = sum(c["trainable"] for c in counts.values())
    largest = _largest_layer(model)
    mem = model_state_bytes(total, trainable, stage=stage, world=world, bf16=bf16, offload_optimizer=off_opt,
                            offload_params=off_par)
    report.figures["memory"] = mem
    dtype = "bf16" if bf16 else "fp32"
    part = {n: f"1/{world} each" if world > 1 and stage >= n else "replicated" for n in (1, 2, 3)}
    report.lines.append(f"memory per GPU, model states only (activations are NOT estimated): ZeRO-{stage} "
                        f"({engine.deepspeed}), {dtype}, AdamW, world size {world} = {nodes} node(s) x {per_node} "
                        f"GPU(s){'' if world > 1 else ' (--world-size N for N processes)'}")
    rows = [("parameters", f"{dtype} weights, {part[3]}" + (", offloaded" if off_par and stage >= 3 else "")),
            ("gradients", f"{dtype}{' + fp32 copy' if bf16 else ''} of the trainable, {part[2]}"),
            ("optimizer", f"fp32 {'master + ' if bf16 or stage >= 1 else ''}2 Adam moments of the trainable, "
                          f"{part[1]}" + (", offloaded to CPU" if off_opt else "")),
            ("total", "vidsme's accounting (trainable-aware; train/dry_run.model_state_bytes)")]
    report.lines += [f"  {name:<11} {_size(mem[name]):>12}   {what}" for name, what in rows]
    if stage >= 3:
        report.lines.append(f"  + the layer being gathered (ZeRO-3): the largest holds {count(largest)} parameters "
                            f"({_size(largest * (2 if bf16 else 4))} in {dtype})")
    if not bf16:
        report.lines.append("  DeepSpeed's estimators assume 16-bit mixed precision: not shown for fp32")
    else:
        estimate = _deepspeed_estimate(total, largest, stage=stage, per_node=per_node, nodes=nodes,
                                       offload_optimizer=off_opt, offload_params=off_par)
        if estimate is None:
            report.lines.append(f"  DeepSpeed has no estimator for ZeRO-{stage} (it has ZeRO-2 and ZeRO-3's)")
        else:
            gpu, cpu, where = estimate
            report.lines.append(f"  DeepSpeed's estimate: {_size(gpu)} per GPU, {_size(cpu)} host RAM per node "
                                f"({where}: every parameter counted as trainable"
                                + (", no zero.Init)" if stage == 3 else ")"))
    load = total * 4  # recipes.load_base loads the model in fp32 on every process before DeepSpeed takes it
    report.lines.append(f"host RAM to load the model: {_size(load)} per process (fp32, every process loads it "
                        f"whole), {_size(load * per_node)} per node of {per_node}")


# --------------------------------------------------------------------------- tokens, steps, data


def _video_tokens(config, n_frames: int) -> tuple[int, int, int] | None:
    """(tokens per frame, separator tokens, video tokens) for `n_frames`, from the family's layout."""
    from vidsme.train.families import video_token_layout

    try:
        one, two, n = (video_token_layout(config, k)[0] for k in (1, 2, n_frames))
    except NotImplementedError:
        return None
    return two - one, one - (two - one), n


def _token_lines(config, data: DataConfig, report: DryRunReport) -> tuple[list[int], list[int]] | None:
    """Record tokens per sample; returns the static (video ids, frame slots) of one video, if the family has them."""
    from vidsme.train.families import family_of, static_video_tokens

    layout = _video_tokens(config, data.n_frames)
    if layout is None:
        report.lines.append(f"tokens per sample: the video's count depends on the frame resolution the "
                            f"{family_of(config).name} processor picks (not the config); + up to "
                            f"{data.max_text_tokens} text tokens")
        return None
    per_frame, separators, video = layout
    longest = video + data.max_text_tokens
    limit = config.text_config.max_position_embeddings
    report.lines.append(f"tokens per sample: {data.n_frames} frames x {per_frame} video tokens"
                        + (f" + {separators} separator" if separators else "")
                        + f" = {video:,} video tokens, + up to {data.max_text_tokens} text tokens (max_text_tokens) "
                        f"= at most {longest:,} (the language model's max_position_embeddings: {limit:,})")
    if longest > limit:
        report.problems.append(f"a sample can reach {longest:,} tokens, over the language model's "
                               f"max_position_embeddings {limit:,}: lower data.n_frames or data.max_text_tokens")
    return static_video_tokens(config, data.n_frames)


def _prompt_checks(rows: list[dict], data: DataConfig, tokenizer, static, report: DryRunReport) -> None:
    """The template on every row; with a tokenizer, each prompt's text tokens against max_text_tokens."""
    from vidsme.prompts import encode_prompt, segments_for

    bad, over, longest = [], [], 0
    for row in rows:
        try:
            segments_for(row, data.template)
            if tokenizer is not None and static is not None:
                ids, slots = static
                text = len(encode_prompt(tokenizer, row, data.template, ids, slots).input_ids) - len(ids)
                longest = max(longest, text)
                if text > data.max_text_tokens:
                    over.append(f"{row['id']} ({text})")
        except VidsmeError as err:
            bad.append(str(err))
    if bad:
        report.problems.append(f"{len(bad)} of {len(rows)} rows cannot be written with template {data.template!r}: "
                               f"{bad[0]}{' ...' if len(bad) > 1 else ''}; set data.template")
    if tokenizer is None or static is None:
        report.lines.append(f"prompts: template {data.template!r} writes {len(rows) - len(bad)} of the {len(rows)} "
                            "rows (training + held-out probe); text tokens not counted (no tokenizer: the base is not "
                            "here)")
        return
    report.lines.append(f"prompts: template {data.template!r}; the longest prompt has {longest} text tokens of the "
                        f"{data.max_text_tokens} allowed (data.max_text_tokens)")
    if over:
        report.problems.append(f"{len(over)} sample(s) have more text tokens than data.max_text_tokens "
                               f"{data.max_text_tokens} (training refuses them, never truncates): {shown(over)}; "
                               "raise data.max_text_tokens")


def _steps_line(n: int, optim: OptimConfig, world: int, report: DryRunReport, *, opening: int = 0,
                opening_steps: int = 0) -> None:
    """The run's step count as run_training computes it (train/loop.py's data_order); `opening`: rows the opening's
    `opening_steps` steps draw from."""
    from vidsme.train.loop import data_order

    per_step = optim.micro_batch_size * optim.grad_accum * world
    steps = n // per_step  # as run_training: the tail of each epoch's order is left out
    line = (f"steps: {n} samples / (micro batch {optim.micro_batch_size} x grad accum {optim.grad_accum} x "
            f"world {world} = {per_step} per step) = {steps} steps per epoch"
            + (f" ({n - steps * per_step} samples of each epoch's order left out)" if steps and n % per_step else ""))
    if not n:
        report.lines.append(line)
        return
    try:
        total = data_order(n, optim, world, 0, range(opening), opening_steps).total_steps
    except VidsmeError as err:
        report.lines.append(line)
        report.problems.append(str(err))  # data_order's message says what to change
        return
    if opening_steps > 0:
        line += f"; an opening of {opening_steps} steps over {opening} rows"
    if optim.max_steps > 0:
        line += f"; optim.max_steps: {total} steps in all ({(total - opening_steps) / steps:.2f} epochs after the opening)"
    else:
        line += f", {optim.epochs} epoch(s) = {total} steps"
    report.lines.append(line + (f", lr schedule {optim.schedule}" if optim.schedule != "constant" else ""))
    if optim.warmup_steps > total:
        report.lines.append(f"note: optim.warmup_steps {optim.warmup_steps} > the run's {total} steps: "
                            "the learning rate never reaches optim.lr")


def _video_checks(rows: list[dict], video_root: Path, *, quick: bool, seed: int, progress: bool,
                  report: DryRunReport) -> None:
    """Every video of `rows` present under `video_root` and decoding (a seeded sample with quick)."""
    from tqdm import tqdm

    from vidsme.data_splits.verify import decode_error

    videos = sorted({r["video"] for r in rows})
    root = Path(video_root)
    if not root.is_dir():
        report.problems.append(f"video root {root} does not exist ({len(videos)} videos expected, e.g. "
                               f"{shown(videos)}): set data.video_root=DIR")
        return
    present = [v for v in videos if (root / v).is_file()]
    missing = [v for v in videos if v not in set(present)]
    if missing:
        report.problems.append(f"{len(missing)} of {len(videos)} videos missing under {root}: {shown(missing)}")
    sample = sorted(random.Random(seed).sample(present, min(QUICK_SAMPLE, len(present)))) if quick else present
    failed = []
    for video in tqdm(sample, desc="decode videos", unit="video", disable=not progress):
        err = decode_error(root / video)
        if err is not None:
            failed.append(f"{video} ({err.problem})")
    how = f"a sample of {len(sample)} (seed {seed}, --quick)" if quick else f"all {len(sample)}"
    report.lines.append(f"videos: {len(present)} of {len(videos)} present under {root}; {how} decoded, "
                        f"{len(sample) - len(failed)} decode")
    if failed:
        report.problems.append(f"{len(failed)} of {len(sample)} decoded videos do not decode: {shown(failed)}")


def _split(name: str, report: DryRunReport):
    from vidsme.data_splits.registry import load_split

    try:
        split = load_split(name)
        return split, split.rows()
    except VidsmeError as err:
        report.problems.append(f"split: {err}")
        return None, []


# --------------------------------------------------------------------------- the two dry runs


def dry_run_target(cfg: TargetConfig, *, world_size: int | None = None, gpus_per_node: int | None = None,
                   quick: bool = False, architecture: Path | None = None, progress: bool = False) -> DryRunReport:
    """Everything `vidsme train target` would need and hold for `cfg`, without loading weights or writing.

    architecture: a config.json describing the base when the base is not on this machine (default:
    configs/models/<base folder name>.json). world_size / gpus_per_node: see `world_layout`.
    """
    layout = world_layout(world_size, gpus_per_node)
    report = DryRunReport(f"target {cfg.name}: strategy {cfg.strategy}, split {cfg.data.split}, base {cfg.base}, "
                          f"output {cfg.output_dir} (dry run: nothing loaded or written)")
    zero = _zero_settings(cfg.engine.deepspeed, report)
    model, tokenizer = _describe_base(cfg.base, architecture, report)
    static = None
    if model is not None:
        config = model.config
        model = _apply_strategy_quietly(model, cfg)
        from vidsme.train.loop import trainable_counts

        counts = report.figures["counts"] = trainable_counts(model)
        if cfg.strategy == "lora" and cfg.train_vision_tower:
            report.lines.append("note: train_vision_tower is not used with strategy lora (finetune_target puts "
                                "adapters on the language model only): the vision tower stays frozen")
        report.lines += _table(counts, "train/loop.py's " + ("apply_lora (peft, on the meta device)"
                                                          if cfg.strategy == "lora" else "set_trainable")
                               + " applied to the skeleton, as finetune_target does")
        if zero is not None:
            _memory_lines(model, counts, cfg.engine, layout, zero, report)
        static = _token_lines(config, cfg.data, report)
    split, rows = _split(cfg.data.split, report)
    members = [r for r in rows if r["label"] == "member"]
    probe = [r for r in rows if r["label"] == "nonmember"][: cfg.data.heldout_nonmembers]
    if split is not None:
        if split.is_pool:
            report.problems.append(f"split {split.name!r} is a pool (unlabelled): fine-tuning needs a member/"
                                   "non-member split; set data.split")
        elif not split.card.members_available:
            report.problems.append(f"split {split.name!r} is incomplete: its member list is not available "
                                   f"({'; '.join(split.card.notes) or 'see its card'})")
        elif not members:
            report.problems.append(f"split {split.name!r} has no members to fine-tune on")
        report.lines.append(f"split {split.name} v{split.card.version}: {len(members)} member rows over "
                            f"{len({r['video'] for r in members})} videos to train on; the card's held-out probe "
                            f"scores the first {len(probe)} non-member rows (data.heldout_nonmembers)")
    _steps_line(len(members), cfg.optim, layout[0], report)
    if rows:
        _prompt_checks(members + probe, cfg.data, tokenizer, static, report)
        _video_checks(members + probe, cfg.data.video_root, quick=quick, seed=cfg.seed, progress=progress,
                      report=report)
    return report


def dry_run_base(cfg: BaseConfig, *, world_size: int | None = None, gpus_per_node: int | None = None,
                 quick: bool = False, progress: bool = False) -> DryRunReport:
    """Everything `vidsme train base` would need and hold for `cfg` (the tiny base, built on the meta
    device with its tokenizer trained on the pool as pretraining does), without writing anything."""
    from vidsme.train.loop import set_trainable
    from vidsme.train.recipes import base_trainable_groups, opening_rows

    layout = world_layout(world_size, gpus_per_node)
    report = DryRunReport(f"base {cfg.name}: tiny LLaVA-OneVision built from the config, pretrained on "
                          f"{cfg.data.split}, everything trainable, output {cfg.output_dir} (dry run: nothing written)")
    zero = _zero_settings(cfg.engine.deepspeed, report)
    split, rows = _split(cfg.data.split, report)
    if split is not None and not split.is_pool:
        report.problems.append(f"base pretraining uses a pool (e.g. synth-pretrain), not the split {split.name!r}: "
                               "its members and non-members must stay unseen by the base; set data.split")
    model, tokenizer = _tiny_skeleton(cfg, rows if split is not None else None)
    if split is None:
        report.lines.append("(the pool is missing: the vocabulary is the template words' only, smaller than "
                            "pretraining's)")
    groups = base_trainable_groups(cfg)
    counts = {g: {**c} for g, c in set_trainable(model, groups).items()}
    counts["lora"] = {"total": 0, "trainable": 0}
    report.figures["counts"] = counts
    report.lines += _table(counts, f"{', '.join(groups)} (pretrain_base's set_trainable), on the meta-device model")
    if cfg.tower.steps > 0:
        report.lines.append(
            f"tower stage first: {cfg.tower.steps} steps of {cfg.tower.batch_frames} frames (every frame of the pool's "
            f"first {cfg.tower.videos} videos), lr {cfg.tower.lr}; then the tower is "
            + ("frozen" if cfg.tower.freeze else "trained on with the LM")
            + (", the projector's first layer starts as its readout head" if cfg.tower.init_projector else ""))
    if zero is not None:
        _memory_lines(model, counts, cfg.engine, layout, zero, report)
    static = _token_lines(model.config, cfg.data, report)
    if split is not None:
        report.lines.append(f"pool {split.name} v{split.card.version}: {len(rows)} rows over "
                            f"{len({r['video'] for r in rows})} videos")
    opening, opening_steps = 0, cfg.opening.steps
    if rows and (opening_steps > 0 or cfg.opening.kinds):
        try:
            opening = len(opening_rows(rows, cfg.opening.kinds, cfg.data.split))
        except VidsmeError as err:  # listed once: the step count is then given without the opening
            report.problems.append(str(err))
            opening_steps = 0
    _steps_line(len(rows), cfg.optim, layout[0], report, opening=opening, opening_steps=opening_steps)
    if rows:
        _prompt_checks(rows, cfg.data, tokenizer, static, report)
        _video_checks(rows, cfg.data.video_root, quick=quick, seed=cfg.seed, progress=progress, report=report)
    return report


def dry_run_shadows(cfg: TargetConfig, plan, indices: list[int], *, world_size: int | None = None,
                    gpus_per_node: int | None = None, quick: bool = False, architecture: Path | None = None,
                    progress: bool = False) -> DryRunReport:
    """What `vidsme train shadows` would train for `plan` (train/shadows.py) and what it costs in all:
    the target's own dry run (the recipe every shadow copies), then the set: rows and steps per shadow,
    their total, time from the target's card when it was trained, disk, the pool's videos."""
    from vidsme.train.recipes import CARD_FILE
    from vidsme.train.shadows import missing_shadows

    layout = world_layout(world_size, gpus_per_node)
    report = DryRunReport(f"shadows of {cfg.name}: {plan.count} {plan.setting} shadow models on halves of "
                          f"{plan.pool['name']}, folder {plan.folder} (dry run: nothing loaded or written)")
    recipe = dry_run_target(cfg, world_size=world_size, gpus_per_node=gpus_per_node, quick=True,
                            architecture=architecture, progress=progress)
    recipe.title = f"recipe: the target's ({cfg.name}), which every shadow copies"
    report.sections.append(recipe)
    section = DryRunReport("shadow set")
    report.sections.append(section)
    rows_in = [len(plan.row_indices(k, True)) for k in indices]
    per_step = cfg.optim.micro_batch_size * cfg.optim.grad_accum * layout[0]
    steps = [n // per_step * cfg.optim.epochs for n in rows_in]
    finished = sorted(set(indices) - set(missing_shadows(plan)))
    section.lines.append(f"pool {plan.pool['name']}: {len(plan.rows)} rows over {len(plan.videos)} videos; each video "
                         f"IN for {plan.count // 2} of the {plan.count} shadows (seeded by the config seed {cfg.seed})")
    section.lines.append(f"shadows {indices[0]}-{indices[-1]} ({len(indices)}): {min(rows_in)}-{max(rows_in)} rows "
                         f"each (mean {sum(rows_in) / len(rows_in):.0f}), {min(steps)}-{max(steps)} steps each, "
                         f"{sum(steps)} steps in all ({cfg.optim.epochs} epochs, {per_step} samples per step)")
    if finished:
        section.lines.append(f"already finished (reused): {len(finished)} of them")
    if any(n // per_step == 0 for n in rows_in):
        section.problems.append(f"a shadow's half of the pool ({min(rows_in)} rows) is fewer than one optimizer step "
                                f"({per_step} samples)")
    card = Path(cfg.output_dir) / CARD_FILE
    try:
        trained = json.loads(card.read_text(encoding="utf-8")) if card.is_file() else None
        per = float(trained["train_seconds"]) / float(trained["steps"]) if trained else None
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
        per = None
    todo = sum(n for k, n in zip(indices, steps) if k not in finished)
    if per is not None:
        section.lines.append(f"time: about {todo * per / 60:.1f} min of training for the {len(indices) - len(finished)} "
                             f"left, at the target's own {per:.3f} s per step (its card, world size "
                             f"{trained.get('world_size')}); plus loading and the probes")
    else:
        section.lines.append(f"time: {todo} steps left; train the target first to have its seconds per step here")
    weights = sum(f.stat().st_size for f in Path(cfg.base).glob("*.safetensors")) if Path(cfg.base).is_dir() else 0
    if weights:
        section.lines.append(f"disk: about {_size(weights * len(indices))} (each shadow saves a whole model like the "
                             f"base's {_size(weights)})")
    section.figures.update(rows=rows_in, steps=steps, total_steps=sum(steps), finished=finished)
    if plan.setting == "offline":
        _video_checks(plan.rows, cfg.data.video_root, quick=quick, seed=cfg.seed, progress=progress, report=section)
    return report


__all__ = ["dry_run_base", "dry_run_shadows", "dry_run_target", "model_state_bytes", "world_layout"]
