#!/usr/bin/env bash
# Fill .whl/ with the wheels the lent H200's python3 lacks for perf/gpu_check.sh (it reaches
# no package registry; its image has CUDA torch, transformers, peft, accelerate, numpy, opencv,
# einops, msgpack, ninja, psutil, py-cpuinfo, tqdm), for its Python 3.12 on x86-64 Linux, at
# the versions installed in .venv (those the tests ran with). Then, on the device:
#   PYTHON=python3 VIDSME_WHEELS=.whl perf/gpu_check.sh        (carry: [".whl"])
# Usage: perf/gpu_wheels.sh [DIR]   (default .whl; needs .venv and a package registry here)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
dest="${1:-.whl}"
py=.venv/bin/python
[[ -x $py ]] || { echo "perf/gpu_wheels.sh: no $py; run make install first" >&2; exit 1; }
# DeepSpeed's requirements the image lacks, PyAV (decoding and writing the synthetic videos),
# and typing_extensions (pydantic needs a recent one)
names=(deepspeed hjson pydantic pydantic_core annotated_types typing_inspection typing_extensions av)
mkdir -p "$dest"
# keep a folder inside the checkout out of git (the device tool carries it as an ignored path)
if [[ $dest != /* && -d .git ]] && ! git check-ignore -q "$dest"; then
  mkdir -p .git/info && echo "/${dest#./}/" >> .git/info/exclude
fi
pins=()
for n in "${names[@]}"; do
  pins+=("$n==$("$py" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$n")")
done
echo "wheels for python 3.12, manylinux x86-64: ${pins[*]}"
# deepspeed is published as a source archive only: build its (pure Python) wheel here
"$py" -m pip wheel -q --no-deps --no-build-isolation -w "$dest" "${pins[0]}"
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$dest" "${pins[@]:1}"
ls -la "$dest"
du -sh "$dest"
