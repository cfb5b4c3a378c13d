"""How far the golden regression's rows move between CPU kernel paths: the spread behind the
tolerances of tests/test_objective.py::test_golden_first_iterations.

    python experiments/golden_spread.py                 # every golden run on each ATEN_CPU_CAPABILITY
    python experiments/golden_spread.py --record        # print the rows of this machine's default path

Each golden run (train.py's first iterations on the tests' fixture, one thread) is repeated with
ATEN_CPU_CAPABILITY=default, avx2 and avx512 (a path the CPU lacks runs as the best it has), and
the largest relative difference from the recorded rows is printed per row.
"""
import argparse
import csv
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
from conftest import make_mnist  # noqa: E402
from test_objective import GOLDEN, golden_command  # noqa: E402

CAPABILITIES = ("default", "avx2", "avx512")


def logged_rows(data, out, flags, capability):
    env = dict(os.environ, OMP_NUM_THREADS="1", ATEN_CPU_CAPABILITY=capability)
    subprocess.run([sys.executable, *golden_command(data, out, flags)], env=env, cwd=ROOT, check=True,
                   capture_output=True)
    with open(os.path.join(out, "log.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [[float(value) for name, value in row.items() if name not in ("epoch", "iteration", "step")] for row in rows]


def relative_difference(got, want):
    return max(abs(g - w) / max(abs(w), 1e-12) for g, w in zip(got, want))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record", action="store_true", help="print this machine's rows instead of differences")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data = make_mnist(os.path.join(folder, "data"))
        for name, (flags, recorded) in GOLDEN.items():
            for capability in ("default",) if args.record else CAPABILITIES:
                rows = logged_rows(data, os.path.join(folder, "run"), flags, capability)
                if args.record:
                    print(name, rows)
                else:
                    print(f"{name:40s} {capability:8s} " + "  ".join(
                        f"row {k + 1}: {relative_difference(got, want):.1e}"
                        for k, (got, want) in enumerate(zip(rows, recorded))))


if __name__ == "__main__":
    main()
