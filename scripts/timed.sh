#!/usr/bin/env bash
# scripts/timed.sh LABEL COMMAND [ARGS...]: run COMMAND, then print "[time] LABEL: S s" and exit with its status.
# make demo times each stage with it, so its log gives the per-stage figures docs/PERFORMANCE.md reports.
label=$1
shift
start=$(date +%s%N)
"$@"
rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
printf '[time] %s: %d.%d s\n' "$label" $(( ms / 1000 )) $(( ms % 1000 / 100 ))
exit $rc
