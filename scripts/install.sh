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
# The sandbox `vidsme submit` runs submitted attack code in (docs/SUBMITTING.md, section 8):
# bubblewrap, else util-linux's unshare. Installed here where we can (root with apt-get);
# otherwise we say how. Not fatal: only code submissions need it (or --no-sandbox, locally).
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing bubblewrap (the sandbox for submitted attack code)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bubblewrap \
        >/dev/null; } || echo "warning: apt-get could not install bubblewrap; vidsme submit falls back to unshare" >&2
  else
    echo "note: bubblewrap (bwrap) is not installed; vidsme submit runs submitted code in it. Install it:" \
         "sudo apt-get install bubblewrap (Debian/Ubuntu), sudo dnf install bubblewrap (Fedora)," \
         "sudo pacman -S bubblewrap (Arch); see docs/SUBMITTING.md, section 8" >&2
  fi
fi
"$py" -c "
from vidsme.benchmark.submissions.sandbox import detect_isolation, no_isolation_message
found = detect_isolation()
print(f'sandbox for submitted code: {found.tool} ({found.mode})' if found else 'warning: ' + no_isolation_message())"
