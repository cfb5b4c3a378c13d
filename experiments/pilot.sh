#!/usr/bin/env bash
# One pilot of EXPERIMENTS.md's "changes to the method, piloted on val" (2026-11-30): a branch of the
# recipe's val run trained on with experiments/added_losses.py, then read on val. Re-written from that
# entry after the original runner was lost; the entry's numbers come from the original.
#   1. train from the checkpoint START (default RUNS/val_recipe_s0/checkpoint.pt, the val run at
#      epoch 34) to epoch EPOCHS in RUNS/pilots/NAME, saving every epoch, with FLAGS (added_losses.py's
#      and train.py's); a pilot started again starts again from START, its added network afresh;
#   2. its networks-only copy RUNS/pilots/NAME/final.pt, evaluated on val with a 5,000-step probe
#      (results in RUNS/pilots/NAME/val).
# Run from the repository root:
#
#   [START=CHECKPOINT] [THREADS=1] bash experiments/pilot.sh DIR RUNS NAME EPOCHS [FLAGS...]
#   bash experiments/pilot.sh DIR RUNS zc01 36 --add labels --code z_mean --addition-weight 0.1 --addition-lr 1e-3
#
# DIR holds MNIST/raw with all 60,000 training digits (the val run holds out the last 5,000).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 4 ]; then
    echo "usage: [START=CHECKPOINT] [THREADS=1] bash experiments/pilot.sh DIR RUNS NAME EPOCHS [FLAGS...]" >&2
    exit 2
fi
data=$1 start=${START:-$2/val_recipe_s0/checkpoint.pt} run=$2/pilots/$3 epochs=$4
shift 4
export OMP_NUM_THREADS=${THREADS:-1}
python experiments/added_losses.py --resume "$start" --out "$run" --epochs "$epochs" --save-every 1 "$@"
python export_checkpoint.py "$run" "$run/final.pt"
python evaluate.py --checkpoint "$run/final.pt" --data-root "$data" --eval-split val --probe-iterations 5000 \
    --probe-lr 1e-3 --skip-tsne --out "$run/val"
