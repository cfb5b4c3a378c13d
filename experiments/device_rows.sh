#!/usr/bin/env bash
# Rows trained on a GPU machine lent for one session (EXPERIMENTS.md, 2026-12-04), beside the GPU
# check (.gpu/check.sh, laid out by the shared prepare.sh): rows of experiments/table_rows.sh and
# experiments/class_mnist.sh with --cuda-graphs, each then evaluated on test as every
# row is (experiments/evaluate_final.sh: --protocol published, probe seed 0). Each run comes back
# networks-only (final.pt, as export_checkpoint.py writes it) with its config, log and evaluation; a
# run whose evaluation is not done when the call ends comes back without it, to be evaluated with
# the same script elsewhere. The table rows train side by side first and the class runs after them:
# processes share the GPU in turns, so runs side by side finish no sooner in all, and a lease too short
# for everything still finishes the first. The trainers are paused (SIGSTOP) while the check times its benchmarks
# and its one-epoch run, so those timings are the check's alone. The trainers outlive a call, so a
# second call can collect what the first did not wait for. From the repository root there:
#
#   bash experiments/device_rows.sh start "CLASS_FLAGS" SECONDS ROW...   # unpack, start, check, collect
#   bash experiments/device_rows.sh collect SECONDS                      # collect what finished since
#
# .gpu/ holds the check, the full MNIST and sprites-{train,test}.xz (experiments/carry_dataset.py); ROWs are
# table_rows.sh rows. Results go to $OUT: the check's files in check.tar, each run in RUN.tar.partNN
# (parts of at most 15 MiB), at most 8 files and 56 MiB a call; SECONDS bounds the call from its start.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
runs=/tmp/device-runs data=/tmp/dfv-data mnist=$PWD/.gpu/data started=$SECONDS

install_wheels() {  # tensorboardX, which the image lacks, for the trainers (the check installs its own)
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl
    export PYTHONPATH=/tmp/site
}

lane() {  # lane NAME COMMAND: one trainer in a session of its own, so that it outlives this call
    echo "$1" >> "$runs/lanes"
    setsid nohup bash -c "$2" > "$runs/lane_$1.log" 2>&1 < /dev/null &
}

table_row() {  # table_row ROW: with --cuda-graphs; if the graphs fail, again eagerly in a fresh folder
    local args=("$mnist" "$data" "$data" "$runs" "$1")
    EXTRA_FLAGS=--cuda-graphs bash experiments/table_rows.sh "${args[@]}" && return
    grep -q "^done:" "$runs/$1.out" && return  # trained; the evaluation failed, and will be redone elsewhere
    [ ! -d "$runs/$1" ] || mv "$runs/$1" "$runs/$1.graphs_failed"
    mv "$runs/$1.out" "$runs/$1.graphs_failed.out"
    bash experiments/table_rows.sh "${args[@]}"
}

class_runs() {  # class_runs STAGE [FLAGS]: class_mnist.sh's runs of STAGE with --cuda-graphs, each then evaluated
    EXTRA_FLAGS=--cuda-graphs bash experiments/class_mnist.sh "$mnist" "$runs" "$@"
    local name
    for name in $([ "$1" = authors ] && echo full_class_authors_s0 || echo full_class_s0 full_class_s1); do
        bash experiments/evaluate_final.sh "$mnist" "$runs/$name" 0 >> "$runs/$name.out" 2>&1
    done
}

pause_during_timings() {  # pause_during_timings CHECK_PID: the check's log names each step as it starts
    local log=$OUT/check/gpu.log
    until grep -q "^=== bench" "$log" 2>/dev/null || ! kill -0 "$1" 2>/dev/null; do sleep 1; done
    pkill -STOP -f "train.py.*$runs"
    until grep -q "^=== evaluate_published$" "$log" 2>/dev/null || ! kill -0 "$1" 2>/dev/null; do sleep 1; done
    pkill -CONT -f "train.py.*$runs"
}

collect() {  # collect SECONDS FILES: until then, move each evaluated run (networks only) to $OUT; then the trained ones
    local deadline=$1 files=$2 budget=$((56 * 1024 * 1024)) last="" name size parts
    while :; do
        [ $((SECONDS - started)) -lt "$deadline" ] && pgrep -f "(train|evaluate).py" > /dev/null || last=1
        for name in $(ls "$runs"/*.out 2>/dev/null | xargs -r -n1 basename | sed 's/\.out$//'); do
            [ ! -e "$runs/$name.collected" ] && grep -q "^done:" "$runs/$name.out" || continue
            [ -f "$runs/$name/test_seed0/results.json" ] || [ -n "$last" ] || continue
            [ -f "$runs/$name/final.pt" ] || python export_checkpoint.py "$runs/$name" "$runs/$name/final.pt" > /dev/null || continue
            # the TensorBoard events hold what log.csv holds
            tar -cf "$runs/$name.tar" --exclude checkpoint.pt --exclude "events.*" -C "$runs" "$name.out" "$name"
            size=$(stat -c %s "$runs/$name.tar") parts=$(( $(stat -c %s "$runs/$name.tar") / (15 * 1024 * 1024) + 1 ))
            [ "$size" -le "$budget" ] && [ "$parts" -le "$files" ] || continue  # the next call takes it
            split -b 15M -d "$runs/$name.tar" "$OUT/$name.tar.part"
            budget=$((budget - size)) files=$((files - parts))
            touch "$runs/$name.collected"; echo "collected $name ($size bytes)"
        done
        [ -z "$last" ] || break
        sleep 5
    done
    for name in $(cat "$runs/lanes"); do  # where each lane stands
        echo "$name: $(tail -c 300 "$runs/lane_$name.log" | tr '\r' '\n' | tail -1)"
    done
    for name in $(ls "$runs"/*.out | xargs -n1 basename); do
        echo "$name: $(tr '\r' '\n' < "$runs/$name" | grep -v '^\s*$' | tail -1)"
    done
}

start() {  # start "CLASS_FLAGS" SECONDS ROW...
    local class_flags=$1 seconds=$2 row check archive; shift 2
    install_wheels
    for archive in .gpu/*.xz; do
        python experiments/carry_dataset.py unpack "$archive" "$data"
    done
    OUT=$OUT/check bash .gpu/check.sh > /dev/null 2>&1 &
    check=$!
    until grep -q "^=== cuda_tests" "$OUT/check/gpu.log" 2>/dev/null || ! kill -0 $check; do sleep 1; done  # MNIST unzipped
    export -f table_row class_runs; export mnist data runs
    for row in "$@"; do
        lane "$row" "table_row $row"
    done
    local rows_training="sleep 30; while pgrep -f 'train.py --data-root $data' > /dev/null; do sleep 5; done"
    lane class_authors "$rows_training; class_runs authors"
    lane class_final "$rows_training; class_runs final '$class_flags'"
    pause_during_timings "$check"
    wait "$check"
    tar -cf "$OUT/check.tar" -C "$OUT" check && rm -r "$OUT/check"
    collect "$seconds" 7  # and check.tar: 8 files
}

case ${1:-} in
    start) shift; mkdir -p "$runs" "${OUT:?set OUT}"; start "$@" ;;
    collect) mkdir -p "$OUT"; install_wheels; collect "$2" 8 ;;
    *) echo "usage: bash experiments/device_rows.sh start \"CLASS_FLAGS\" SECONDS ROW... | collect SECONDS" >&2; exit 2 ;;
esac
