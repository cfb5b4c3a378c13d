"""The results table's rows from evaluate.py's results.json files: one row per file (a training
seed's final model), then their mean ± sample standard deviation (ddof 1), the spread over seeds.

    python experiments/seed_rows.py RUNS/linemod_z64_s256_s*/test_seed0/results.json

Columns, as in the README: the class from z sampled, z mean and s (accuracy on the file's eval
split); each style label from z sampled / s; swap (Dec(z_i, s_j) labelled j's class / i's class);
style kept (ink / slant / width). Percentages to one decimal, correlations to two.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from utils import CLIError, HelpFormatter, run_cli  # noqa: E402

STYLE_MOMENTS = ("ink", "slant", "width")


def build_parser():
    parser = argparse.ArgumentParser(prog="python experiments/seed_rows.py", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("results", nargs="+", help="results.json files of evaluate.py, one per training seed")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks instead of one-line errors")
    return parser


def columns(path):
    """{column: [numbers]} of one results.json, in the table's order; percentages as 0-100."""
    with open(path) as file:
        try:
            results = json.load(file)
            probes, swap, split = results["probes"], results["swap"], f"{results['eval_split']}_acc"
            row = {name: [100 * probes[code][split]] for name, code in
                   (("z sampled", "z_sampled"), ("z mean", "z_mean"), ("s", "s"))}
            for label, style in probes["style"].items():
                row[f"{label} from z sampled / s"] = [100 * style["z_sampled"][split], 100 * style["s"][split]]
            row["swap"] = [100 * swap["labelled_s_class"], 100 * swap["labelled_z_class"]]
            row["style kept"] = [swap["style_kept"]["swap"][moment] for moment in STYLE_MOMENTS]
        except (ValueError, KeyError, TypeError) as error:
            raise CLIError(f"{path} is not a results.json of a whole evaluate.py run (no swap skipped): "
                           f"{type(error).__name__} {error}") from None
    return row


def cell(name, means, stds=None):
    unit, digits = ("", 2) if name == "style kept" else ("%", 1)
    if stds is None:
        return " / ".join(f"{mean:.{digits}f}{unit}" for mean in means)
    return " / ".join(f"{mean:.{digits}f} ± {std:.{digits}f}{unit}" for mean, std in zip(means, stds))


def main(argv=None):
    args = build_parser().parse_args(argv)
    rows = [columns(path) for path in args.results]
    names = list(rows[0])
    if any(list(row) != names for row in rows):
        raise CLIError("the results.json files measure different columns: pass the runs of one table row")
    print("| run | " + " | ".join(names) + " |")
    print("| --- " * (len(names) + 1) + "|")
    for path, row in zip(args.results, rows):
        print(f"| {path} | " + " | ".join(cell(name, row[name]) for name in names) + " |")
    if len(rows) > 1:
        stacked = {name: np.array([row[name] for row in rows]) for name in names}
        print(f"| mean ± std ({len(rows)} seeds) | " + " | ".join(
            cell(name, stacked[name].mean(0), stacked[name].std(0, ddof=1)) for name in names) + " |")


if __name__ == "__main__":
    run_cli(main, build_parser())
