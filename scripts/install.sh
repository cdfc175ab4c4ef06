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
# The sandbox `vidsme submit` runs submitted code in (docs/SUBMITTING.md, section 8; docs/SECURITY.md):
# bubblewrap, else util-linux's unshare, and libseccomp2 for the system-call filter the child loads.
# Installed here where we can (root with apt-get); otherwise we say how. Not fatal: only code
# submissions need them (a missing one is recorded with every submission and printed).
if ! command -v bwrap >/dev/null 2>&1 || ! ldconfig -p 2>/dev/null | grep -q libseccomp.so.2; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing bubblewrap and libseccomp2 (the sandbox for submitted attack code)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bubblewrap \
        libseccomp2 >/dev/null; } || echo "warning: apt-get could not install bubblewrap/libseccomp2; vidsme submit" \
        "falls back to unshare, or runs without a system-call filter (and says so)" >&2
  else
    echo "note: bubblewrap (bwrap) or libseccomp2 is missing; vidsme submit runs submitted code under them. Install" \
         "them: sudo apt-get install bubblewrap libseccomp2 (Debian/Ubuntu), sudo dnf install bubblewrap libseccomp" \
         "(Fedora), sudo pacman -S bubblewrap libseccomp (Arch); see docs/SECURITY.md" >&2
  fi
fi
"$py" -c "
from vidsme.benchmark.submissions.sandbox import detect_isolation, no_isolation_message
found = detect_isolation()
print(f'sandbox for submitted code: {found.tool} ({found.mode})' if found else 'warning: ' + no_isolation_message())"
