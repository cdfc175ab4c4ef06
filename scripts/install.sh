#!/usr/bin/env bash
# The one install recipe: used by `make demo`, `make test`, .ci/run and docker/Dockerfile.
# Usage: scripts/install.sh PYTHON [EXTRAS]
#   PYTHON  interpreter of the environment to install into (e.g. .venv/bin/python)
#   EXTRAS  setup.py extras, comma-separated (default: test)
set -euo pipefail
py="${1:?usage: scripts/install.sh PYTHON [EXTRAS]}"
extras="${2:-test}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cons="$root/scripts/constraints.txt"
# torch first, pinned, so no later resolver step can swap it for another build.
"$py" -m pip install --quiet --upgrade pip
"$py" -m pip install --quiet -c "$cons" torch torchvision
"$py" -m pip install --quiet -c "$cons" -e "$root[$extras]"
"$py" -c "import torch, vidsme; print(f'vidsme {vidsme.__version__} installed (torch {torch.__version__})')"
