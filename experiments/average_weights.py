"""The elementwise mean of several checkpoints' network weights, as stochastic weight averaging takes
it (EXPERIMENTS.md, "Weight averaging over the low-learning-rate epochs does not raise s",
2026-11-30), written as a networks-only checkpoint that evaluate.py reads, with the config, epoch and
step of the last one. Re-written from that entry after the original scratch script was lost: the
entry's numbers come from the original and have not been re-run with this script.

    python experiments/average_weights.py RUNS/val_recipe_s0/mean_30_34.pt \\
        RUNS/val_recipe_s0/snapshots/step_51540.pt RUNS/val_recipe_s0/snapshots/step_54976.pt \\
        RUNS/val_recipe_s0/snapshots/step_58412.pt
    python evaluate.py --checkpoint RUNS/val_recipe_s0/mean_30_34.pt --data-root DIR --eval-split val \\
        --probe-iterations 5000 --probe-lr 1e-3 --skip-tsne
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from utils import HelpFormatter, load_checkpoint, run_cli, save_atomically  # noqa: E402

NETWORKS = ("encoder", "decoder", "discriminator")


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("out", help="the checkpoint file to write")
    parser.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT",
                        help="checkpoints of one run (full or networks only), the last one's config kept")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks instead of one-line errors")
    return parser


def mean_weights(states, network):
    """The mean of each floating-point tensor of `network` over the states; other tensors (batch-norm
    counters) as the last state has them."""
    last = states[-1][network]
    return {key: torch.stack([state[network][key] for state in states]).mean(0) if value.is_floating_point()
            else value for key, value in last.items()}


def main():
    args = build_parser().parse_args()
    states = [load_checkpoint(path) for path in args.checkpoints]
    last = states[-1]
    save_atomically({"config": last["config"], "epoch": last["epoch"], "step": last["step"],
                     **{network: mean_weights(states, network) for network in NETWORKS}}, args.out)
    print(f"{args.out}: the mean of {len(states)} checkpoints' weights, config of step {last['step']}")


if __name__ == "__main__":
    run_cli(main, build_parser())
