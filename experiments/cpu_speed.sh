#!/usr/bin/env bash
# This checkout against an earlier commit on the CPU, in one run, one after the other: bench.py's
# training iteration (median of 100 after 20 warm-up, 1 and 2 threads) and the whole of
# evaluate.py --protocol published on the shipped pairwise checkpoint (one thread, its default;
# then this checkout with two). Nothing else should run meanwhile.
#
#   bash experiments/cpu_speed.sh DIR COMMIT          # DIR/MNIST/raw holds the full MNIST
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:?usage: experiments/cpu_speed.sh DIR COMMIT} base=${2:?usage: experiments/cpu_speed.sh DIR COMMIT}
data=$(cd "$data" && pwd)
before=$(mktemp -d)
git worktree add -q --detach "$before/tree" "$base"
trap 'git worktree remove --force "$before/tree"' EXIT
checkpoint=$PWD/checkpoints/mnist_z16_s16.pt
for threads in 1 2; do
    for tree in "$before/tree" .; do
        echo "bench.py, $threads threads, $( [ "$tree" = . ] && echo this checkout || echo "$base")"
        (cd "$tree" && OMP_NUM_THREADS=$threads python bench.py --device cpu --data-root "$data" --iterations 100 \
            --warmup 20 | tail -n 1)
    done
done
for run in "$before/tree 1" ". 1" ". 2"; do
    read -r tree threads <<< "$run"
    echo "evaluate.py --protocol published, --threads $threads, $( [ "$tree" = . ] && echo this checkout || echo "$base")"
    (cd "$tree" && python evaluate.py --checkpoint "$checkpoint" --data-root "$data" --protocol published \
        --threads "$threads" --out "$before/eval" | grep -E "probes of|swap accuracy|t-SNE in|done in")
done
