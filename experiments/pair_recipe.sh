#!/usr/bin/env bash
# The README's recipe on full MNIST, one training seed: the rows "our recipe, 35 epochs" and "our
# recipe without its last epoch" (EXPERIMENTS.md, 2026-11-29 to 2026-11-30: the runs full_recipe_sS),
# re-written from those entries after the original runner was lost.
# Three stages in the run folder RUNS/full_recipe_sS:
#   1. KL weight 5, the discriminator trained at every step, batch 32, lr 1e-4, to epoch 18;
#   2. lr 3e-5 to epoch 34;
#   3. KL weight 10 for one epoch, to epoch 35 (65,625 iterations).
# A stage the run has already finished is skipped and an interrupted one is resumed, so the script
# can be started again after an interruption; train.py exits non-zero when stopped by Ctrl-C or
# SIGTERM, and the script stops there. The end of each stage is kept as a networks-only snapshot
# (experiments/snapshot.sh): snapshots/step_63750.pt is the 34-epoch model. Run from the repository root:
#
#   bash experiments/pair_recipe.sh DIR RUNS SEED [THREADS]
#
# DIR holds MNIST/raw with all 60,000 training digits; RUNS is where the run folder goes; THREADS
# (default 1) is the torch threads of the run. Then, once, the test evaluation:
#
#   bash experiments/evaluate_final.sh DIR RUNS/full_recipe_sSEED 0
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 3 ] || [ $# -gt 4 ]; then
    echo "usage: bash experiments/pair_recipe.sh DIR RUNS SEED [THREADS]" >&2
    exit 2
fi
data=$1 seed=$3 run=$2/full_recipe_s$3
export OMP_NUM_THREADS=${4:-1}

epochs_done() {  # the epochs the run's checkpoint has finished; 0 before its first save
    if [ -f "$run/checkpoint.pt" ]; then
        python -c 'import sys; from utils import load_checkpoint; print(load_checkpoint(sys.argv[1])["epoch"])' "$run"
    else
        echo 0
    fi
}

stage() {  # stage EPOCHS FLAGS...: train (or resume) the run to EPOCHS epochs with FLAGS, then snapshot it
    local epochs=$1
    shift
    if [ "$(epochs_done)" -ge "$epochs" ]; then
        return
    fi
    if [ -f "$run/checkpoint.pt" ]; then
        python train.py --resume "$run" "$@" --epochs "$epochs"
    else
        mkdir -p "$(dirname "$run")"
        python train.py --dataset mnist --data-root "$data" "$@" --epochs "$epochs" --out "$run"
    fi
    bash experiments/snapshot.sh "$run"
}

stage 18 --kl-weight 5 --disc-gate 1.0 --batch-size 32 --save-every 2 --seed "$seed"
stage 34 --lr 3e-5
stage 35 --kl-weight 10
