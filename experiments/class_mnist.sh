#!/usr/bin/env bash
# The full-MNIST runs of --discriminator class at the authors' pixel scale (EXPERIMENTS.md,
# 2026-12-04): the four settings on val, row (a) (the authors' defaults), and the chosen setting's
# seeds on all 60,000 digits. Two runs at a time, one thread each; a run whose folder holds a
# checkpoint is resumed, so the script can be started again after an interruption. (The 2026-11-30
# runs, before the pixel scale, used this script at commit cee5485; the later runs before the
# authors' three remaining choices became the class version's own, at 36d30fd.)
#
#   bash experiments/class_mnist.sh DIR RUNS val                    # settings A-D on val, then row (a)
#   bash experiments/class_mnist.sh DIR RUNS authors                # row (a) alone
#   bash experiments/class_mnist.sh DIR RUNS final "FLAGS"          # the chosen setting, seeds 0 and 1
#   bash experiments/class_mnist.sh DIR RUNS differences            # the authors' differences, one at a time
#   bash experiments/class_mnist.sh DIR RUNS theirs                 # setting D with and without those three, on val
#
# DIR holds MNIST/raw with all 60,000 training digits; RUNS is where the run folders go. EXTRA_FLAGS
# (say --cuda-graphs) go to train.py after a new run's own.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
usage="usage: experiments/class_mnist.sh DIR RUNS val|authors|final|differences|theirs [FLAGS]"

run() {  # run NAME FLAGS...: train, or resume the run folder RUNS/NAME
    local name=$1; shift
    if [ -f "$runs/$name/checkpoint.pt" ]; then
        python train.py --resume "$runs/$name" >> "$runs/$name.out" 2>&1
    else
        mkdir -p "$runs"
        python train.py --dataset mnist --data-root "$data" --discriminator class --epochs 10 --save-every 1 \
            --out "$runs/$name" "$@" ${EXTRA_FLAGS:-} > "$runs/$name.out" 2>&1
    fi
}

patched() {  # patched NAME DIFFERENCE FLAGS...: train, or resume, RUNS/NAME under experiments/class_differences.py
    local name=$1 difference=$2; shift 2
    mkdir -p "$(dirname "$runs/$name")"
    if [ -f "$runs/$name/checkpoint.pt" ]; then
        python experiments/class_differences.py "$difference" --resume "$runs/$name" >> "$runs/$name.out" 2>&1
    else
        python experiments/class_differences.py "$difference" --dataset mnist --data-root "$data" --discriminator class \
            --save-every 1 --out "$runs/$name" "$@" > "$runs/$name.out" 2>&1
    fi
}

on_val() {  # on_val NAME FOLDER [EVALUATE FLAGS...]: RUNS/NAME's last checkpoint evaluated once on val, into RUNS/NAME/FOLDER
    local name=$1 folder=$2; shift 2
    if [ ! -f "$runs/$name/$folder/results.json" ]; then
        python evaluate.py --checkpoint "$runs/$name" --eval-split val --skip-tsne --out "$runs/$name/$folder" "$@" \
            >> "$runs/$name.out" 2>&1
    fi
}

pilot() {  # pilot NAME DIFFERENCE FLAGS...: 2 epochs of setting A with one difference, evaluated on val
    local name=$1 difference=$2; shift 2
    patched "$name" "$difference" --val-size 5000 --lr 1e-3 --epochs 2 "$@"
    on_val "$name" val
}

main() {  # a function, so that bash has read all of it before it starts: editing the file cannot change a run
    data=${1:?$usage} runs=${2:?$usage} stage=${3:?$usage}
    case $stage in
        val)
            run val_class_A --val-size 5000 --lr 1e-3 &
            run val_class_B --val-size 5000 --lr 1e-3 --adversarial-weight 0.03 &
            wait
            run val_class_C --val-size 5000 --lr 1e-3 --adversarial-weight 0.1 &
            run val_class_D --val-size 5000 --lr 3e-4 --adversarial-weight 0.03 &
            wait
            run full_class_authors_s0 --seed 0 ;;
        authors)
            run full_class_authors_s0 --seed 0 ;;
        final)
            read -r -a flags <<< "${4:?$usage}"
            run full_class_s0 --seed 0 "${flags[@]}" &
            run full_class_s1 --seed 1 "${flags[@]}" &
            wait ;;
        theirs)  # setting D with the authors' three choices (the defaults since 2026-12-06) and without them, on val
            d="--val-size 5000 --lr 3e-4 --adversarial-weight 0.03"
            (run val_class_D_theirs $d && on_val val_class_D_theirs val_published --protocol published) &
            (patched val_class_D_ours none $d --epochs 10 && on_val val_class_D_ours val_published --protocol published) &
            wait ;;
        differences)  # setting A, 2 epochs on val, each of the authors' differences put back alone; a lane per seed
            for seed in 0 1; do
                for difference in none uniform_x3 bn_uniform grey_padding; do
                    pilot "differences/${difference}_s$seed" "$difference" --seed "$seed"
                done &
            done
            wait ;;
        *)
            echo "$usage" >&2; exit 2 ;;
    esac
}

main "$@"
