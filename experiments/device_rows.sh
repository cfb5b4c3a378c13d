#!/usr/bin/env bash
# Rows trained on a GPU machine lent for one session (EXPERIMENTS.md, 2026-12-04): rows of
# experiments/table_rows.sh and the class runs of experiments/class_mnist.sh, with --cuda-graphs,
# one after another (processes share a GPU in turns, so runs side by side finish no sooner in all,
# and a lease too short for everything still finishes the first rows). Each finished run comes back
# networks-only (final.pt, as export_checkpoint.py writes it) with its config and log, and is
# evaluated on the CPU with experiments/evaluate_final.sh: the published probe is launch-bound and
# takes over 4 minutes even on the GPU. With CHECK=1 the GPU check (.gpu/check.sh, laid out by the
# shared prepare.sh) runs first and the trainer is paused (SIGSTOP) while it times its benchmarks
# and its one-epoch run. The trainer outlives a call, so a later call collects what an earlier one
# did not wait for. From the repository root there:
#
#   [CHECK=1] bash experiments/device_rows.sh start SECONDS RUN...   # unpack, train RUNs in order, collect
#   bash experiments/device_rows.sh collect SECONDS                  # collect what finished since
#
# A RUN is a table_rows.sh row, class_authors (row (a)) or class_final:FLAGS (seeds 0 and 1 of the
# chosen class setting). .gpu/ holds the full MNIST, sprites-{train,test}.xz (carry_dataset.py) and
# the wheels. Results go to $OUT, each run in RUN.tar.partNN (parts of at most 15 MiB), at most 8
# files (check.tar among them) and 56 MiB a call; SECONDS bounds the call from its start.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
runs=/tmp/device-runs data=/tmp/dfv-data mnist=$PWD/.gpu/data started=$SECONDS

install_wheels() {  # tensorboardX, which the image lacks (the check installs its own)
    python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .gpu/whl/*.whl
    export PYTHONPATH=/tmp/site
}

train_runs() {  # train_runs RUN...: each in turn, trained only
    local run
    for run in "$@"; do
        case $run in
            class_authors) EXTRA_FLAGS=--cuda-graphs bash experiments/class_mnist.sh "$mnist" "$runs" authors ;;
            class_final:*) EXTRA_FLAGS=--cuda-graphs bash experiments/class_mnist.sh "$mnist" "$runs" final "${run#*:}" ;;
            *) EXTRA_FLAGS=--cuda-graphs TRAIN_ONLY=1 bash experiments/table_rows.sh "$mnist" "$data" "$data" "$runs" "$run" ;;
        esac
    done
}

pause_during_timings() {  # pause_during_timings CHECK_PID: the check's log names each step as it starts
    local log=$OUT/check/gpu.log
    until grep -q "^=== bench" "$log" 2>/dev/null || ! kill -0 "$1" 2>/dev/null; do sleep 1; done
    pkill -STOP -f "[t]rain.py.*$runs"
    until grep -q "^=== evaluate_published$" "$log" 2>/dev/null || ! kill -0 "$1" 2>/dev/null; do sleep 1; done
    pkill -CONT -f "[t]rain.py.*$runs"
}

collect() {  # collect SECONDS FILES: until then, or until the trainer ends, move each finished run to $OUT
    local deadline=$1 files=$2 budget=$((56 * 1024 * 1024)) last="" name size parts
    while :; do
        [ $((SECONDS - started)) -lt "$deadline" ] && pgrep -f "[t]rain_runs" > /dev/null || last=1
        for name in $(ls "$runs"/*.out 2>/dev/null | xargs -r -n1 basename | sed 's/\.out$//'); do
            [ ! -e "$runs/$name.collected" ] && grep -q "^done:" "$runs/$name.out" || continue
            [ -f "$runs/$name/final.pt" ] || python export_checkpoint.py "$runs/$name" "$runs/$name/final.pt" > /dev/null || continue
            # the TensorBoard events hold what log.csv holds
            tar -cf "$runs/$name.tar" --exclude checkpoint.pt --exclude "events.*" -C "$runs" "$name.out" "$name"
            size=$(stat -c %s "$runs/$name.tar"); parts=$((size / (15 * 1024 * 1024) + 1))
            [ "$size" -le "$budget" ] && [ "$parts" -le "$files" ] || continue  # the next call takes it
            split -b 15M -d "$runs/$name.tar" "$OUT/$name.tar.part"
            budget=$((budget - size)) files=$((files - parts))
            touch "$runs/$name.collected"; echo "collected $name ($size bytes)"
        done
        [ -z "$last" ] || break
        sleep 5
    done
    for name in $(ls "$runs"/*.out | xargs -n1 basename); do  # where each run stands
        echo "$name: $(tr '\r' '\n' < "$runs/$name" | grep -v '^\s*$' | tail -1)"
    done
}

start() {  # start SECONDS RUN...
    local seconds=$1 check="" archive; shift
    install_wheels
    for archive in .gpu/*.xz; do
        python experiments/carry_dataset.py unpack "$archive" "$data"
    done
    if [ -n "${CHECK:-}" ]; then
        OUT=$OUT/check bash .gpu/check.sh > /dev/null 2>&1 &
        check=$!
        until grep -q "^=== cuda_tests" "$OUT/check/gpu.log" 2>/dev/null || ! kill -0 $check; do sleep 1; done  # MNIST unzipped
    else
        gunzip -kf .gpu/data/MNIST/raw/*.gz
    fi
    export -f train_runs; export mnist data runs
    setsid nohup bash -c 'train_runs "$@"' train_runs "$@" > "$runs/train_runs.log" 2>&1 < /dev/null &
    if [ -n "$check" ]; then
        pause_during_timings "$check"
        wait "$check"
        tar -cf "$OUT/check.tar" -C "$OUT" check && rm -r "$OUT/check"
    fi
    collect "$seconds" $([ -n "$check" ] && echo 7 || echo 8)
}

case ${1:-} in
    start) shift; mkdir -p "$runs" "${OUT:?set OUT}"; start "$@" ;;
    collect) mkdir -p "${OUT:?set OUT}"; install_wheels; collect "$2" 8 ;;
    *) echo "usage: [CHECK=1] bash experiments/device_rows.sh start SECONDS RUN... | collect SECONDS" >&2; exit 2 ;;
esac
