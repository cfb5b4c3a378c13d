#!/usr/bin/env bash
# The published table's rows beyond MNIST 16/16 (EXPERIMENTS.md, 2026-12-04): each row trained with
# the budget declared there, then its final checkpoint evaluated once on test under the published
# probe (experiments/evaluate_final.sh, probe seed 0). The rows given run one after another, one
# thread each; start two lanes side by side. A row whose run folder holds a checkpoint is resumed,
# and a row already evaluated is left alone, so a lane can be started again after an interruption.
#
#   bash experiments/table_rows.sh MNIST_DIR SPRITES_DIR LINEMOD_DIR RUNS ROW [ROW...]
#   bash experiments/table_rows.sh DIR/mnist-full DIR DIR RUNS sprites_z512_s64_s0 mnist_z64_s64_s0 &
#
# MNIST_DIR holds MNIST/raw with all 60,000 training digits, SPRITES_DIR sprites/ with all 672
# characters, LINEMOD_DIR linemod/; RUNS is where the run folders go. Rows: sprites_z512_s64_sS,
# sprites_z1024_s512_sS, linemod_z64_s256_sS, linemod_z256_s512_sS, mnist_z64_s64_sS (the published
# flags), mnist_z16_s16_sS (the published flags, z = s = 16) and mnist_z16_s16_bf16_sS (those under
# --precision bf16), S the seed.
# EXTRA_FLAGS (say --cuda-graphs) go to train.py after a new row's own; TRAIN_ONLY=1 leaves the
# evaluation to a later call (a lent GPU trains, the CPU evaluates: experiments/device_rows.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
usage="usage: bash experiments/table_rows.sh MNIST_DIR SPRITES_DIR LINEMOD_DIR RUNS ROW [ROW...]"

row_flags() {  # row_flags NAME: the data folder and train.py flags of a row, on one line
    local seed=${1##*_s}
    case ${1%_s*} in
        sprites_z512_s64) echo "$sprites --dataset sprites --style-dim 512 --class-dim 64 --precision bf16 --epochs 15 --save-every 1" ;;
        sprites_z1024_s512) echo "$sprites --dataset sprites --style-dim 1024 --class-dim 512 --epochs 15 --save-every 1" ;;  # fp32 since 2026-12-06
        linemod_z64_s256) echo "$linemod --dataset linemod --style-dim 64 --class-dim 256 --precision bf16 --epochs 50 --save-every 5" ;;
        linemod_z256_s512) echo "$linemod --dataset linemod --style-dim 256 --class-dim 512 --precision bf16 --epochs 50 --save-every 5" ;;
        mnist_z64_s64) echo "$mnist --dataset mnist --style-dim 64 --class-dim 64 --epochs 50 --save-every 5" ;;
        mnist_z16_s16) echo "$mnist --dataset mnist --epochs 50 --save-every 5" ;;
        mnist_z16_s16_bf16) echo "$mnist --dataset mnist --precision bf16 --epochs 50 --save-every 5" ;;
        *) echo "unknown row $1; $usage" >&2; return 2 ;;
    esac
    echo " --seed $seed"
}

row() {  # row NAME: train (or resume) RUNS/NAME, then evaluate its final checkpoint on test once
    local name=$1 line data
    line=$(row_flags "$name" | tr -d '\n')
    read -r data flags <<< "$line"
    read -r -a flags <<< "$flags"
    mkdir -p "$runs"
    if [ -f "$runs/$name/checkpoint.pt" ]; then
        python train.py --resume "$runs/$name" >> "$runs/$name.out" 2>&1
    else
        python train.py --data-root "$data" "${flags[@]}" ${EXTRA_FLAGS:-} --out "$runs/$name" > "$runs/$name.out" 2>&1
    fi
    if [ -z "${TRAIN_ONLY:-}" ] && [ ! -f "$runs/$name/test_seed0/results.json" ]; then
        bash experiments/evaluate_final.sh "$data" "$runs/$name" 0 >> "$runs/$name.out" 2>&1
    fi
}

main() {  # a function, so that bash has read all of it before it starts: editing the file cannot change a run
    mnist=${1:?$usage} sprites=${2:?$usage} linemod=${3:?$usage} runs=${4:?$usage}
    shift 4
    [ $# -gt 0 ] || { echo "$usage" >&2; exit 2; }
    for name in "$@"; do
        row_flags "$name" > /dev/null
    done
    for name in "$@"; do
        row "$name"
    done
}

main "$@"
