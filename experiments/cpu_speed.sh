#!/usr/bin/env bash
# This checkout against an earlier commit on the CPU, in one run, nothing else running:
# - bench: bench.py's training iteration on real data (median of 100 after 20 warm-up), 1 and 2
#   threads, the two trees taking turns ROUNDS times (default 3); then this checkout's --compile and
#   --discriminator class;
# - evaluate: the whole of evaluate.py --protocol published on the shipped pairwise checkpoint, the
#   earlier commit at its default of one thread, this checkout at one and at two.
#
#   bash experiments/cpu_speed.sh DIR COMMIT [bench|evaluate]     # both when neither is named
#   ROUNDS=5 bash experiments/cpu_speed.sh DIR COMMIT bench
#
# DIR holds MNIST/raw with the full MNIST.
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: experiments/cpu_speed.sh DIR COMMIT [bench|evaluate]"

bench() {  # bench TREE THREADS FLAGS...: one bench.py line
    local tree=$1 threads=$2; shift 2
    echo "bench.py $*, $threads threads, $tree"
    (cd "$tree" && OMP_NUM_THREADS=$threads python bench.py --device cpu --data-root "$data" --iterations 100 \
        --warmup 20 "$@" | tail -n 1)
}

evaluate() {  # evaluate TREE THREADS: the published protocol's timings
    local tree=$1 threads=$2
    echo "evaluate.py --protocol published, --threads $threads, $tree"
    (cd "$tree" && python evaluate.py --checkpoint "$PWD/checkpoints/mnist_z16_s16.pt" --data-root "$data" \
        --protocol published --threads "$threads" --out "$scratch/eval_$threads" | grep -E "probes of|swap acc|t-SNE in|done in")
}

main() {  # a function, so that bash has read all of it before it starts
    [ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }
    data=$(cd "$1" && pwd) base=$2 part=${3:-all}
    scratch=$(mktemp -d)
    git worktree add -q --detach "$scratch/before" "$base"
    trap 'git worktree remove --force "$scratch/before"' EXIT
    if [ "$part" != evaluate ]; then
        for round in $(seq "${ROUNDS:-3}"); do
            for threads in 1 2; do
                bench "$scratch/before" "$threads"
                bench . "$threads"
            done
        done
        bench . 1 --compile
        bench . 1 --discriminator class
    fi
    if [ "$part" != bench ]; then
        evaluate "$scratch/before" 1
        evaluate . 1
        evaluate . 2
    fi
}

main "$@"
