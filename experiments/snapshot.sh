#!/usr/bin/env bash
# Networks-only copies of a run's checkpoint, kept beside it as RUN/snapshots/step_N.pt (N = the
# step it was saved at): train.py overwrites RUN/checkpoint.pt at every save, and the snapshots keep
# the epochs EXPERIMENTS.md evaluates later (the recipe's epoch 34, each epoch of a branch, the val
# runs' every second epoch). Re-written after the original script was lost. Run from the repository root:
#
#   bash experiments/snapshot.sh RUN              # the checkpoint as it is now
#   bash experiments/snapshot.sh RUN SECONDS      # each new checkpoint, looked for every SECONDS, until stopped
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: bash experiments/snapshot.sh RUN [SECONDS]" >&2
    exit 2
fi
run=$1 every=${2:-}

snapshot() {  # the copy is named after the step it holds, read back from the copy itself
    mkdir -p "$run/snapshots"
    local copy="$run/snapshots/exporting.pt" step
    python export_checkpoint.py "$run" "$copy" > /dev/null
    step=$(python -c 'import sys; from utils import load_checkpoint; print(load_checkpoint(sys.argv[1])["step"])' \
        "$copy")
    mv "$copy" "$run/snapshots/step_$step.pt"
    echo "$run/snapshots/step_$step.pt"
}

if [ -z "$every" ]; then
    snapshot
    exit
fi
saved=""
while true; do  # train.py replaces checkpoint.pt atomically: a new modification time is a new save
    stamp=$(stat -c %Y "$run/checkpoint.pt" 2> /dev/null || true)
    if [ -n "$stamp" ] && [ "$stamp" != "$saved" ]; then
        snapshot
        saved=$stamp
    fi
    sleep "$every"
done
