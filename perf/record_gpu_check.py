"""Turn a perf/gpu_check.sh output folder into a run record for docs/PERFORMANCE.md.

Reads DIR/steps.tsv (written by gpu_check.sh: the run's metadata, then each step's exit
code, time, budget and exact command) and the JSON each step wrote (features.json,
extract.json, train_step.json); writes DIR/section.md and prints it. With --append it also
inserts the section into --doc at the end of its "GPU check" section (after the line
APPEND_MARKER, before the next "## " heading) and sets the status cell of each GPU figure
measured in the table between the STATUS_BEGIN / STATUS_END markers. Without --append it
changes no file besides DIR/section.md and prints what it would change in --doc.

The device machine only returns what is under $OUT, so a GPU run's record is applied here:

    .venv/bin/python perf/record_gpu_check.py DIR_WITH_THE_RETURNED_FILES --append

Imports no torch (except --print-env), so it runs in a second on any machine.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APPEND_MARKER = "<!-- perf/record_gpu_check.py appends each GPU run below this line -->"
STATUS_BEGIN = "<!-- gpu-check-status:begin -->"
STATUS_END = "<!-- gpu-check-status:end -->"
STEPS_FILE = "steps.tsv"
SECTION_FILE = "section.md"


@dataclass(frozen=True)
class Figure:
    key: str  # step name in steps.tsv
    json_name: str
    row: str  # first cell of its row in the status table (and of the run table)
    target: str
    limit: float
    higher_is_better: bool
    label: str  # short name in the peak-memory status


FIGURES = (
    Figure("features", "features.json", "token features, vocabulary 152,064, vs the reference-style loop",
           "≥ 100× faster per token", 100.0, True, "token features"),
    Figure("extract", "extract.json", "extraction, ~1B LLaVA-OV-shaped model in bf16, vs two bare forwards",
           "≤ 1.15×", 1.15, False, "extraction"),
    Figure("train", "train_step.json", "training step, bf16 ZeRO-2, vs a bare loop", "≤ 1.10×", 1.10, False, "training step"),
)
PEAK_ROW = "peak GPU memory of each"


class RecordError(Exception):
    """A missing or malformed input; the message names the file and the fix."""


# ----------------------------------------------------------------------------- inputs
def read_steps(folder: Path) -> tuple[dict[str, str], dict[str, dict]]:
    """(metadata, {step name: {rc, seconds, budget, command}}) from DIR/steps.tsv."""
    path = folder / STEPS_FILE
    if not path.is_file():
        raise RecordError(f"{path}: not found; point at the folder perf/gpu_check.sh wrote ($OUT or runs/gpu_check)")
    meta: dict[str, str] = {}
    steps: dict[str, dict] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if fields[0] == "meta" and len(fields) == 3:
            meta[fields[1]] = fields[2]
        elif fields[0] == "step" and len(fields) == 6:
            _, name, rc, seconds, budget, command = fields
            steps[name] = {"rc": int(rc), "seconds": float(seconds), "budget": float(budget), "command": command}
        else:
            raise RecordError(f"{path}:{n}: not a 'meta KEY VALUE' or 'step NAME RC SECONDS BUDGET COMMAND' line "
                              "(tab-separated); rerun perf/gpu_check.sh rather than editing it")
    return meta, steps


def read_json(folder: Path, name: str) -> dict | None:
    path = folder / name
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path}: not valid JSON ({exc}); the step was cut off while writing it, rerun it") from None


# ----------------------------------------------------------------------------- formatting
def gib(n: int | float | None) -> str:
    return "n/a" if n is None else f"{n / 2**30:.1f} GiB"


def secs(t: float) -> str:
    return f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s"


def params(n: float) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e8 else f"{n / 1e6:.2f} M"


def per_token(t: float) -> str:
    return f"{t * 1e6:.1f} µs" if t < 1e-3 else f"{t * 1e3:.2f} ms"


def short_command(command: str) -> str:
    return command.replace(str(ROOT) + "/", "")


def met(fig: Figure, value: float) -> bool:
    return value >= fig.limit if fig.higher_is_better else value <= fig.limit


def summarize(fig: Figure, rec: dict) -> dict:
    """{value, peak, details} of one figure from its step's JSON."""
    if fig.key == "features":
        f = rec["figures"]
        shape = rec["inputs"]["logits_shape"]
        peaks = f.get("peak_memory_bytes")
        errs = max(max(f["worst_rel_error_float32"].values()), max(f["worst_rel_error_bf16"].values()))
        alt = f.get("alt_chunk")
        alt_text = ("" if not alt else f"; context: with chunk_elements={alt['chunk_elements']:,} token_features "
                    f"takes {secs(alt['features_s'])}, a speed-up per token over the loop of {alt['speedup_per_token']:.1f}×")
        return {
            "value": f["speedup_per_token"],
            "peak": None if not peaks else f"features {gib(peaks['features'])}, loop {gib(peaks['loop'])}",
            "peak_main": None if not peaks else peaks["features"],
            "details": (f"logits {shape} float32: token_features {secs(f['features_s'])} per call "
                        f"({per_token(f['features_per_token_s'])} per token), bf16 logits {secs(f['bf16_features_s'])}; "
                        f"log_softmax + exp floor {secs(f['floor_s'])} (features / floor "
                        f"{f['ratio_features_over_floor']:.2f}×); reference-style loop "
                        f"{per_token(f['loop_per_token_best_block_s'])} per token (best 64-token block; mean "
                        f"{per_token(f['loop_per_token_mean_s'])}, speed-up from the mean "
                        f"{f['speedup_per_token_loop_mean']:.1f}×) over {f['loop_tokens_timed']} tokens; values "
                        f"{'OK' if f['values_ok'] else 'FAILED'} (worst relative error {errs:.1e}){alt_text}"),
        }
    if fig.key == "extract":
        f, i = rec["figures"], rec["inputs"]
        peaks = f.get("peak_memory_bytes")
        ratio = f["median_ratio_to_floor"]
        vps = f.get("videos_per_s", {})
        peak = None
        if peaks:
            bare = max(peaks.get("bare_two", 0), peaks.get("bare_2b", 0))
            peak = f"pipeline {gib(peaks['pipeline_predecoded'])}, bare {gib(bare)}"
        extra = f"; with decoding {ratio['pipeline']:.2f}×" if "pipeline" in ratio else ""
        return {
            "value": ratio["pipeline_predecoded"],
            "peak": peak,
            "peak_main": None if not peaks else peaks["pipeline_predecoded"],
            "details": (f"{params(i['model']['params'])} parameters (vocabulary {i.get('model_vocab', '?')}), "
                        f"{i['dtype']}, {i['rows']} videos × {i['n_frames']} frames ({i['video_tokens']} video "
                        f"tokens, sequences {i['sequence_tokens_min_max'][0]}–{i['sequence_tokens_min_max'][1]}), "
                        f"batch {i['batch_size']}: pipeline (pre-decoded) {secs(f['median_s']['pipeline_predecoded'])}"
                        f" per pass, floor {secs(f['median_s']['floor'])}{extra}; "
                        f"{vps.get('pipeline_predecoded', 0):.1f} videos/s pre-decoded; "
                        f"{f.get('repeats_done', i['repeats'])} timed repeats"
                        + (f" ({f['stopped_early']})" if f.get("stopped_early") else "")),
        }
    # train
    i = rec.get("inputs", {})
    peaks = rec.get("peak_memory_bytes")
    best, ratio = rec["best_s"], rec["median_ratio"]
    tps = rec.get("tokens_per_s_best", {})
    model = i.get("model", {})
    return {
        "value": ratio["pipeline"],
        "peak": None if not peaks else f"pipeline {gib(peaks['pipeline'])}, bare {gib(peaks['bare'])}",
        "peak_main": None if not peaks else peaks["pipeline"],
        "details": (f"{params(model.get('params', 0))} parameters ({params(model.get('trainable', 0))} "
                    f"trainable), {i.get('precision', '?')}, ZeRO-{i.get('zero_stage', '?')}, micro-batch "
                    f"{i.get('batch', '?')}, {i.get('n_frames', '?')} frames, {rec.get('tokens_per_step', '?')} tokens "
                    f"per step: pipeline {secs(best['pipeline'])} per step ({tps.get('pipeline', 0):,.0f} tokens/s), "
                    f"bare {secs(best['bare'])}; engine alone {ratio['engine']:.2f}×, cold (decoding every step) "
                    f"{ratio['cold']:.2f}×; {rec.get('repeats_done', '?')} timed repeats"
                    + (f" ({rec['stopped_early']})" if rec.get("stopped_early") else "")),
    }


def evaluate(folder: Path) -> tuple[dict[str, str], dict[str, dict], dict[str, dict]]:
    """(meta, steps, {figure key: summary or {'missing': why}})."""
    meta, steps = read_steps(folder)
    results: dict[str, dict] = {}
    for fig in FIGURES:
        step = steps.get(fig.key)
        rec = read_json(folder, fig.json_name)
        if step is None:
            results[fig.key] = {"missing": "not run"}
        elif rec is None:  # gpu_check.sh removes old JSONs first: none means the step wrote none
            why = {124: "time limit", 137: "killed at the time limit", 143: "stopped at the time limit"}.get(
                step["rc"], "failed")
            results[fig.key] = {"missing": f"exit {step['rc']} ({why}) after {step['seconds']:.0f} s"}
        else:
            try:
                results[fig.key] = summarize(fig, rec)
            except (KeyError, TypeError, ValueError) as exc:
                raise RecordError(f"{folder / fig.json_name}: lacks {exc} — written by an older version of its "
                                  "perf script? rerun perf/gpu_check.sh") from None
            if step["rc"] != 0:  # e.g. bench_features' value check failed: the figure stands, flagged
                results[fig.key]["warning"] = f"step exited {step['rc']}"
    return meta, steps, results


def render(meta: dict[str, str], steps: dict[str, dict], results: dict[str, dict]) -> str:
    """The markdown run record."""
    dry = meta.get("dry_run") == "1"
    gpu = meta.get("gpu") or "no GPU"
    when = meta.get("started_utc", "?")
    commit = meta.get("git_commit", "unknown")
    dirty = meta.get("git_dirty", "0") not in ("0", "")
    title = (f"### Dry run {when} (toy sizes on CPU: checks the script, measures nothing)" if dry
             else f"### GPU run {when}: {gpu}")
    lines = [title, ""]
    versions = ", ".join(f"{k} {meta[k]}" for k in ("torch", "cuda", "transformers", "deepspeed", "python")
                         if meta.get(k))
    lines.append(f"Commit `{commit[:12]}`" + (" plus uncommitted changes (each JSON holds the sha256 of the measured "
                                                "sources)" if dirty else "") + f"; {versions}.")
    total = meta.get("total_s")
    lines.append(f"Command: `{meta.get('command', 'perf/gpu_check.sh')}`"
                 + (f", {float(total):.0f} s in all (limit {meta.get('total_budget_s', '?')} s)." if total else "."))
    if meta.get("gpu_detail"):
        lines.append(f"GPU: {meta['gpu_detail']}.")
    lines += ["", "| figure | measured | target | verdict | peak GPU memory | step time / budget |",
              "|---|---:|---|---|---|---:|"]
    for fig in FIGURES:
        res, step = results[fig.key], steps.get(fig.key)
        timing = f"{step['seconds']:.0f} / {step['budget']:.0f} s" if step else "—"
        if "missing" in res:
            lines.append(f"| {fig.row} | not measured: {res['missing']} | {fig.target} | — | — | {timing} |")
            continue
        verdict = "— (toy size)" if dry else ("met" if met(fig, res["value"]) else "**missed**")
        if res.get("warning"):
            verdict += f" ({res['warning']})"
        lines.append(f"| {fig.row} | {res['value']:.2f}× | {fig.target} | {verdict} | {res['peak'] or 'n/a (CPU)'} "
                     f"| {timing} |")
    lines += ["", "Each step's exact command and what lies behind its figure:", ""]
    for fig in FIGURES:
        res, step = results[fig.key], steps.get(fig.key)
        if step is None:
            continue
        lines.append(f"* {fig.key}: `{short_command(step['command'])}`"
                     + (f" — {res['details']}." if "details" in res else f" — not measured: {res['missing']}."))
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- the doc
def status_updates(meta: dict[str, str], results: dict[str, dict]) -> dict[str, str]:
    """{status-table row key: new status cell} for the figures a GPU run measured."""
    if meta.get("dry_run") == "1":
        return {}
    day = meta.get("started_utc", "?")[:10]
    gpu = meta.get("gpu") or "GPU"
    out = {}
    peaks = []
    for fig in FIGURES:
        res = results[fig.key]
        if "missing" in res:
            continue
        verdict = "met" if met(fig, res["value"]) else "missed"
        out[fig.row] = f"**measured** {day} on {gpu}: {res['value']:.2f}× ({verdict}); run record below"
        if res.get("peak_main") is not None:
            peaks.append(f"{fig.label} {gib(res['peak_main'])}")
    if peaks:
        out[PEAK_ROW] = f"**measured** {day} on {gpu}: " + ", ".join(peaks) + " (vidsme's side; baselines in the record)"
    return out


def apply(doc: str, section: str, updates: dict[str, str], doc_name: str) -> tuple[str, list[str]]:
    """(new doc text, notes): the section inserted at the end of the GPU check section, status cells set."""
    lines = doc.split("\n")
    try:
        at = next(n for n, line in enumerate(lines) if line.strip() == APPEND_MARKER)
    except StopIteration:
        raise RecordError(f"{doc_name}: no line {APPEND_MARKER!r}; put it back at the end of the "
                          "'GPU check (perf/gpu_check.sh)' section (git show HEAD:docs/PERFORMANCE.md)") from None
    end = next((n for n in range(at + 1, len(lines)) if lines[n].startswith("## ")), len(lines))
    while end > at + 1 and not lines[end - 1].strip():  # insert after the section's last text
        end -= 1
    new = lines[:end] + [""] + section.rstrip("\n").split("\n") + lines[end:]
    notes = [f"append {len(section.splitlines())} lines at line {end + 1} of {doc_name}"]
    if updates:
        try:
            begin = next(n for n, line in enumerate(new) if line.strip() == STATUS_BEGIN)
            stop = next(n for n in range(begin, len(new)) if new[n].strip() == STATUS_END)
        except StopIteration:
            raise RecordError(f"{doc_name}: the status table's markers {STATUS_BEGIN!r} / {STATUS_END!r} are "
                              "missing; restore them from git") from None
        for key, status in updates.items():
            for n in range(begin, stop):
                cells = new[n].split("|")
                if len(cells) >= 6 and cells[1].strip() == key:
                    cells[3] = f" {status} "
                    new[n] = "|".join(cells)
                    notes.append(f"set status of '{key}': {status}")
                    break
            else:
                notes.append(f"WARNING: no status row '{key}' in {doc_name}; left as it is")
    return "\n".join(new), notes


def print_env() -> None:
    """meta lines (tab-separated) for steps.tsv: library versions and the GPU, as this interpreter sees them."""
    import importlib.metadata
    import platform

    import torch

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    rows = {"torch": torch.__version__, "cuda": torch.version.cuda or "none",
            "transformers": version("transformers"), "deepspeed": version("deepspeed"),
            "python": platform.python_version()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        rows["gpu"] = torch.cuda.get_device_name(0)
        rows["gpu_detail"] = (f"{torch.cuda.device_count()} visible, {props.total_memory / 2**30:.0f} GiB, "
                              f"{props.multi_processor_count} SMs, compute capability {props.major}.{props.minor}")
    for key, value in rows.items():
        print(f"meta\t{key}\t{value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, nargs="?", help="what perf/gpu_check.sh wrote (its $OUT)")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs/PERFORMANCE.md", help="the page to append to")
    parser.add_argument("--append", action="store_true", help="write the record into --doc (default: only print)")
    parser.add_argument("--print-env", action="store_true", help="print steps.tsv meta lines for this interpreter")
    args = parser.parse_args(argv)
    if args.print_env:
        print_env()
        return 0
    if args.folder is None:
        parser.error("give the folder perf/gpu_check.sh wrote")
    try:
        meta, steps, results = evaluate(args.folder)
        section = render(meta, steps, results)
        (args.folder / SECTION_FILE).write_text(section, encoding="utf-8")
        if not args.doc.is_file():
            raise RecordError(f"{args.doc}: not found; pass --doc docs/PERFORMANCE.md (from the repository root)")
        if args.append and meta.get("dry_run") == "1":
            raise RecordError(f"{args.folder}: a dry run measures nothing; it is never appended to {args.doc}")
        new_doc, notes = apply(args.doc.read_text(encoding="utf-8"), section, status_updates(meta, results),
                               str(args.doc))
    except RecordError as exc:
        print(f"record_gpu_check: {exc}", file=sys.stderr)
        return 1
    print(section)
    if args.append:
        args.doc.write_text(new_doc, encoding="utf-8")
        print("\n".join(notes))
    else:
        print("\n".join(["would " + n if not n.startswith("WARNING") else n for n in notes]))
        print(f"(nothing written to {args.doc}; the record is in {args.folder / SECTION_FILE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
