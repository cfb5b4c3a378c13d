#!/usr/bin/env bash
# A finished run's test evaluation, as every trained row of the README's Results was made
# (EXPERIMENTS.md, 2026-11-29 to 2026-11-30): the run's networks-only copy RUN/final.pt (what
# checkpoints/ ships), evaluated on test under the published probe with the run's loss curves.
# Results and pictures go to RUN/test_seedN. Re-written after the original runner was lost. Run from
# the repository root:
#
#   bash experiments/evaluate_final.sh DIR RUN PROBE_SEED [EVALUATE FLAGS...]
#   bash experiments/evaluate_final.sh DIR RUNS/full_recipe_s0 1 --skip-tsne     # the probe's seed 1
#
# DIR is the data folder the run was trained on (MNIST/raw); flags after PROBE_SEED go to evaluate.py.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 3 ]; then
    echo "usage: bash experiments/evaluate_final.sh DIR RUN PROBE_SEED [EVALUATE FLAGS...]" >&2
    exit 2
fi
data=$1 run=$2 seed=$3
shift 3
python export_checkpoint.py "$run" "$run/final.pt"
python evaluate.py --checkpoint "$run/final.pt" --data-root "$data" --protocol published --log "$run/log.csv" \
    --seed "$seed" --out "$run/test_seed$seed" "$@"
