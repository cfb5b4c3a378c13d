"""Where a model's z mean keeps the digit (EXPERIMENTS.md, "Where z mean keeps the digit",
2026-11-30): which dimensions of z collapsed onto the prior, and what a probe reads in each group.
Re-written from that entry after the original scratch script was lost: the entry's numbers come from
the original (whose logistic regression's training the entry does not give) and have not been re-run
with this script.

    python experiments/zmean_dims.py --checkpoint RUNS/full_recipe_s0/snapshots/step_63750.pt --data-root DIR

Prints, per dimension of z, the posterior sigma (mean over the training digits) and the spread
(standard deviation) of mu across them; a dimension whose sigma is above --collapsed-sigma has
collapsed onto the prior. Then the published probe (networks.Classifier, --probe-iterations Adam
steps at --probe-lr, batch 128), trained on the training digits' codes and scored on test, on: the
collapsed dimensions' means, the used ones' means, the used ones' samples (a fresh sample each time,
as evaluate.py's z sampled), all the means; and a logistic regression (one linear layer, trained the
same way) on all the means.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from evaluate import load_data, probe_splits  # noqa: E402
from networks import Classifier, load_networks  # noqa: E402
from probes import accuracy, code_of, encode, fit  # noqa: E402
from utils import HelpFormatter, load_checkpoint, resolve_device, run_cli, seed_everything  # noqa: E402

PROBE_BATCH = 128


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--checkpoint", required=True, metavar="RUN_OR_CHECKPOINT",
                        help="run folder or .pt file written by train.py (full or networks only)")
    parser.add_argument("--data-root", default=None, help="dataset folder (default: the checkpoint's --data-root)")
    parser.add_argument("--collapsed-sigma", type=float, default=0.95,
                        help="a dimension whose mean posterior sigma is above this has collapsed onto the prior")
    parser.add_argument("--probe-iterations", type=int, default=5000, help="Adam steps of each probe")
    parser.add_argument("--probe-lr", type=float, default=1e-3, help="Adam learning rate of the probes")
    parser.add_argument("--seed", type=int, default=0, help="seeds each probe's initialization, batches and z samples")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto = cuda when available")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks instead of one-line errors")
    return parser


def dimensions(codes, dims):
    """The codes restricted to some dimensions of z."""
    return {"mu": codes["mu"][:, dims], "logvar": codes["logvar"][:, dims], "s": codes["s"]}


def collapsed_and_used(codes, threshold):
    """Print each dimension's mean posterior sigma and spread of mu; return the collapsed and used dimensions."""
    sigma = codes["logvar"].mul(0.5).exp().mean(0)
    spread = codes["mu"].std(0)
    collapsed = sigma > threshold
    print("dimension  posterior sigma  spread of mu")
    for dim in range(len(sigma)):
        print(f"{dim:9d}  {sigma[dim]:15.2f}  {spread[dim]:12.2f}" + ("  collapsed" if collapsed[dim] else ""))
    print(f"{int(collapsed.sum())} collapsed, {int((~collapsed).sum())} used")
    return collapsed.nonzero()[:, 0], (~collapsed).nonzero()[:, 0]


def probe_accuracy(model_class, train_codes, test_codes, name, train_labels, test_labels, args):
    """Test accuracy of model_class(width, classes) trained on code `name` ("z_mean" or "z_sampled")."""
    seed_everything(args.seed)
    model = model_class(train_codes["mu"].shape[1], int(train_labels.max()) + 1).to(train_labels.device)
    fit(model, lambda i: code_of(train_codes, name, i), train_labels, args.probe_iterations, args.probe_lr,
        PROBE_BATCH, args.seed, f"probe on {name}")
    return accuracy(model, lambda i: code_of(test_codes, name, i), test_labels)


def main():
    args = build_parser().parse_args()
    device = resolve_device(args.device)
    state = load_checkpoint(args.checkpoint)
    encoder, _ = load_networks(state, device)
    data_args = argparse.Namespace(eval_split="test", data_root=args.data_root, cache_dir=None)
    train, test = (data.to(device) for data in probe_splits(*load_data(state["config"], data_args),
                                                           state["config"]["dataset"]))
    train_codes, test_codes = encode(encoder, train.images, "encode train"), encode(encoder, test.images, "encode test")

    collapsed, used = collapsed_and_used(train_codes, args.collapsed_sigma)
    every = torch.arange(train_codes["mu"].shape[1])
    readings = [("z mean, collapsed dimensions", Classifier, collapsed, "z_mean"),
                ("z mean, used dimensions", Classifier, used, "z_mean"),
                ("z sampled, used dimensions", Classifier, used, "z_sampled"),
                ("z mean, all dimensions", Classifier, every, "z_mean"),
                ("z mean, all dimensions, logistic regression", torch.nn.Linear, every, "z_mean")]
    for title, model_class, dims, name in readings:
        if len(dims):
            test_accuracy = probe_accuracy(model_class, dimensions(train_codes, dims), dimensions(test_codes, dims),
                                           name, train.labels, test.labels, args)
            print(f"{title}: test accuracy {test_accuracy:.1%}", flush=True)


if __name__ == "__main__":
    run_cli(main, build_parser())
