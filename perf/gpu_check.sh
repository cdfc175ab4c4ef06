#!/usr/bin/env bash
# The prepared GPU check (issue 13; docs/PERFORMANCE.md, "GPU check"): on one GPU, in at most
# 8 minutes, three measurements with peak GPU memory each, then a run record for the page:
#   features  token_features at vocabulary 152,064 vs the reference-style loop (target >= 100x)
#   extract   extraction with a 0.89 B LLaVA-OV-shaped model in bf16 vs two bare forwards (<= 1.15x)
#   train     a bf16 ZeRO-2 training step of that model vs a bare loop (<= 1.10x)
#
#   perf/gpu_check.sh             on a GPU machine: measure, append the record to docs/PERFORMANCE.md
#   perf/gpu_check.sh --dry-run   the same steps at toy sizes on CPU (about a minute); appends nowhere,
#                                 prints what it would append (tests/test_perf_scripts.py runs it)
#   perf/gpu_check.sh --no-append measure, but only print and save the record
#
# Environment:
#   OUT=DIR                 where the step JSONs, steps.tsv, section.md and gpu_check.log go
#                           (default runs/gpu_check, or runs/gpu_check-dry-run with --dry-run)
#   PYTHON=EXE              interpreter to use (default .venv/bin/python; no make install then,
#                           but vidsme itself is installed into it when it lacks it, see below)
#   VIDSME_SKIP_INSTALL=1   without .venv, use python3 as it is instead of running `make install`
#   VIDSME_WHEELS=DIR       first install DIR/*.whl (--no-index --no-deps) into a temp folder put on
#                           PYTHONPATH: packages the interpreter lacks (see docs/PERFORMANCE.md)
#   GIT_COMMIT=SHA          commit to record when the tree has no .git
# Without .venv, PYTHON and VIDSME_SKIP_INSTALL it runs `make install` (pinned torch from
# scripts/constraints.txt), which needs a package registry. The lent H200 has none but has its
# own CUDA torch: there run `PYTHON=python3 VIDSME_WHEELS=.whl perf/gpu_check.sh` (recipe for
# .whl in docs/PERFORMANCE.md). vidsme itself, when the interpreter lacks it, is installed with
# `pip install --no-deps --no-index --no-build-isolation -e .`.
# Exit status: 0 when every step ran (a missed target is a result, not a failure), 1 otherwise.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# one process per step, each a world of one: a launcher's (or a parent test's) rendezvous must not leak in
unset RANK LOCAL_RANK WORLD_SIZE LOCAL_WORLD_SIZE MASTER_ADDR MASTER_PORT
die() { echo "perf/gpu_check.sh: $*" >&2; exit 1; }

DRY_RUN=0
APPEND=1
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    --no-append) APPEND=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$arg'; use --dry-run, --no-append or --help" ;;
  esac
done

# Budgets, seconds: the whole check stays under 8 minutes (480 s) with 10 s left for the
# record. Steps get their budget or what is left, whichever is less; the extract and train
# scripts stop starting repeats $SLACK s before their step's limit, so they end on their own.
TOTAL_BUDGET=470
FEATURES_BUDGET=75
EXTRACT_BUDGET=190
TRAIN_BUDGET=165
SLACK=25
T0=$(date +%s)

# ------------------------------------------------------------------ the interpreter
if [[ -n "${PYTHON:-}" ]]; then
  PY="$PYTHON"
elif [[ -x .venv/bin/python ]]; then
  PY=.venv/bin/python
elif [[ "${VIDSME_SKIP_INSTALL:-0}" == 1 ]]; then
  PY=python3
else
  echo "== no .venv: make install (pinned torch from scripts/constraints.txt; needs a package registry)"
  make install || die "make install failed; where no package registry is reachable, run with PYTHON=python3 \
(an interpreter that has CUDA torch) and VIDSME_WHEELS=DIR for what it lacks, see docs/PERFORMANCE.md"
  PY=.venv/bin/python
fi
command -v "$PY" >/dev/null || die "PYTHON=$PY is not an executable; point PYTHON at a Python interpreter"

if [[ -n "${VIDSME_WHEELS:-}" ]]; then
  compgen -G "$VIDSME_WHEELS/*.whl" >/dev/null || die "VIDSME_WHEELS=$VIDSME_WHEELS holds no .whl files; \
fill it as docs/PERFORMANCE.md says or unset it"
  SITE="$(mktemp -d)/site"
  echo "== installing $(ls "$VIDSME_WHEELS"/*.whl | wc -l) wheels from $VIDSME_WHEELS into $SITE"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$VIDSME_WHEELS"/*.whl \
    || die "installing the wheels of VIDSME_WHEELS=$VIDSME_WHEELS failed (above); rebuild that folder for this \
interpreter's Python version and platform"
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! "$PY" -c "import vidsme" 2>/dev/null; then
  echo "== $PY lacks vidsme: pip install --no-deps --no-index --no-build-isolation -e ."
  "$PY" -m pip install -q --no-deps --no-index --no-build-isolation -e . \
    || die "could not install vidsme into $PY (above); use an interpreter where 'pip install -e .' works"
fi
missing=$("$PY" - <<'EOF'
import importlib.util
print(" ".join(m for m in ("torch", "transformers", "tokenizers", "deepspeed", "av", "cv2", "yaml", "vidsme")
               if importlib.util.find_spec(m) is None))
EOF
)
[[ -z "$missing" ]] || die "$PY lacks: $missing; install them (make install) or bring them as wheels \
(VIDSME_WHEELS=DIR, see docs/PERFORMANCE.md)"

# ------------------------------------------------------------------ the device
if (( DRY_RUN )); then
  DEVICE=cpu
  OUT_DIR="${OUT:-runs/gpu_check-dry-run}"
else
  DEVICE=cuda
  OUT_DIR="${OUT:-runs/gpu_check}"
  "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || die "no CUDA GPU visible to $PY ($("$PY" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)')); \
run it on a GPU machine, or pass --dry-run for the toy run on CPU"
fi
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
STEPS="$OUT_DIR/steps.tsv"
LOG="$OUT_DIR/gpu_check.log"
rm -f "$OUT_DIR"/features.json "$OUT_DIR"/extract.json "$OUT_DIR"/train_step.json "$OUT_DIR/section.md" "$STEPS" "$LOG"

commit=$(git rev-parse HEAD 2>/dev/null || echo "${GIT_COMMIT:-unknown}")
invocation=""  # the command as given, with the settings that change what runs
for v in PYTHON VIDSME_SKIP_INSTALL VIDSME_WHEELS OUT; do
  if [[ -n "${!v:-}" ]]; then invocation+="$v=${!v} "; fi
done
invocation+="perf/gpu_check.sh${*:+ $*}"
dirty=$( (git status --porcelain --untracked-files=no 2>/dev/null || true) | wc -l)
{
  printf 'meta\tstarted_utc\t%s\n' "$(date -u +'%Y-%m-%d %H:%M UTC')"
  printf 'meta\tcommand\t%s\n' "$invocation"
  printf 'meta\tdry_run\t%s\n' "$DRY_RUN"
  printf 'meta\tgit_commit\t%s\n' "$commit"
  printf 'meta\tgit_dirty\t%s\n' "$dirty"
  printf 'meta\tinterpreter\t%s\n' "$PY"
  printf 'meta\ttotal_budget_s\t%s\n' "$TOTAL_BUDGET"
  "$PY" perf/record_gpu_check.py --print-env
} > "$STEPS"
{ command -v nvidia-smi >/dev/null && nvidia-smi; cat "$STEPS"; } 2>&1 | tee -a "$LOG" || true

# ------------------------------------------------------------------ the steps
now_ms() { date +%s%3N; }
budget_for() {  # BUDGET -> BUDGET or what is left of TOTAL_BUDGET, whichever is less
  local left=$(( TOTAL_BUDGET - ($(date +%s) - T0) ))
  echo $(( $1 < left ? $1 : left ))
}
FAILED=0
run_step() {  # NAME BUDGET CMD...: time-box CMD, log its output, add its line to steps.tsv
  local name=$1 budget=$2; shift 2
  local cmd rc start ms
  cmd=$(printf '%q ' "$@")
  cmd=${cmd% }
  if (( budget < 20 )); then
    echo "== [$name] skipped: ${budget} s left of the ${TOTAL_BUDGET} s budget" | tee -a "$LOG"
    printf 'step\t%s\t%s\t%s\t%s\t%s\n' "$name" 124 0 "$budget" "$cmd" >> "$STEPS"
    FAILED=1
    return
  fi
  echo "== [$name] limit ${budget} s: $cmd" | tee -a "$LOG"
  start=$(now_ms)
  set +e
  # --preserve-status: a script that stops cleanly on SIGTERM (extract, train) exits 0 with its figures
  PYTHONUNBUFFERED=1 timeout --preserve-status --kill-after=15 "$budget" "$@" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  set -e
  ms=$(( $(now_ms) - start ))
  printf 'step\t%s\t%s\t%d.%03d\t%s\t%s\n' "$name" "$rc" $(( ms / 1000 )) $(( ms % 1000 )) "$budget" "$cmd" >> "$STEPS"
  echo "== [$name] exit $rc after $(( ms / 1000 )).$(( ms % 1000 / 100 )) s (limit ${budget} s; \
$(( $(date +%s) - T0 )) s since the start)" | tee -a "$LOG"
  (( rc == 0 )) || FAILED=1
}

PRESET=perf/llava-ov-0.5b-shape.yaml
if (( DRY_RUN )); then
  # toy sizes: the preset shrunk to a few hundred thousand parameters, a handful of videos
  TOY=(--set model.hidden_size=32 --set model.intermediate_size=64 --set model.num_hidden_layers=1
       --set model.num_attention_heads=2 --set model.num_key_value_heads=1 --set model.vision_hidden_size=32
       --set model.vision_intermediate_size=64 --set model.vision_layers=1 --set model.vision_heads=2
       --set model.image_size=32 --set model.patch_size=8)
  FEATURES_ARGS=(--positions 64 --vocab 2048 --repeats 2 --loop-tokens 64 --check-tokens 32 --bf16-check-tokens 16
                 --alt-chunk-elements 65536)
  EXTRACT_ARGS=("${TOY[@]}" --pad-vocab 4096 --n-videos 4 --n-frames 4 --batch-size 4 --repeats 2 --threads 1)
  TRAIN_ARGS=("${TOY[@]}" --pad-vocab 4096 --build-split 12 --n-frames 4 --batch 2 --steps 1 --repeats 2)
else
  # 16 frames x 144 tokens x 2 views of logits at the 7B checkpoint's vocabulary; also timed with
  # 2^26-entry chunks (441 rows) as context: the default 2^20 (6 rows) is launch-bound on a GPU
  FEATURES_ARGS=(--vocab 152064 --repeats 3 --alt-chunk-elements 67108864)
  # one batch of 8 videos x 16 frames (3,137 video tokens each) through the 0.89 B model
  EXTRACT_ARGS=(--pad-vocab 152064 --n-videos 8 --n-frames 16 --batch-size 8 --repeats 3)
  # micro-batch 8 x 8 frames (about 13.6k tokens a step) of a 32-video synth-mcqa, 8 steps a repeat
  TRAIN_ARGS=(--pad-vocab 152064 --build-split 32 --n-frames 8 --batch 8 --steps 8 --repeats 3)
fi

b=$(budget_for $FEATURES_BUDGET)
run_step features "$b" "$PY" perf/bench_features.py --device "$DEVICE" "${FEATURES_ARGS[@]}" \
  --json "$OUT_DIR/features.json"

b=$(budget_for $EXTRACT_BUDGET)
run_step extract "$b" "$PY" perf/bench_extract.py --device "$DEVICE" --dtype bfloat16 --base-config "$PRESET" \
  "${EXTRACT_ARGS[@]}" --skip no_forward --budget-s $(( b > 2 * SLACK ? b - SLACK : b / 2 )) \
  --json "$OUT_DIR/extract.json"

b=$(budget_for $TRAIN_BUDGET)
run_step train "$b" "$PY" perf/bench_train_step.py --precision bf16 --deepspeed configs/deepspeed/zero2.json \
  --base-config "$PRESET" "${TRAIN_ARGS[@]}" --budget-s $(( b > 2 * SLACK ? b - SLACK : b / 2 )) \
  --json "$OUT_DIR/train_step.json"

# ------------------------------------------------------------------ the record
printf 'meta\ttotal_s\t%s\n' $(( $(date +%s) - T0 )) >> "$STEPS"
echo "== record ($(( $(date +%s) - T0 )) s since the start)" | tee -a "$LOG"
if (( DRY_RUN )); then
  echo "== dry run: docs/PERFORMANCE.md is left alone; this is what a GPU run would append:"
  "$PY" perf/record_gpu_check.py "$OUT_DIR" | tee -a "$LOG"
elif (( APPEND )); then
  "$PY" perf/record_gpu_check.py "$OUT_DIR" --append | tee -a "$LOG"
else
  "$PY" perf/record_gpu_check.py "$OUT_DIR" | tee -a "$LOG"
fi
echo "== done in $(( $(date +%s) - T0 )) s; files in $OUT_DIR: $(cd "$OUT_DIR" && ls | tr '\n' ' ')"
exit $FAILED
