"""How far the encoder carries s with full supervision (EXPERIMENTS.md, "changes to the method,
piloted on val", 2026-11-30): the encoder alone trained as a classifier with the labels (a linear
head on s, cross-entropy, Adam at --lr for two thirds of the epochs then a tenth of it), on the
training digits of a --val-size split; no decoder, no adversary. Saved as a networks-only checkpoint
that evaluate.py reads (its decoder and discriminator untrained: only the s probe means anything).
Re-written from the original that the entry inlined, which borrowed the val run's config for the
data flags: the same networks, seeds and batch order, but the entry's numbers come from the
original and have not been re-run with this script.

    python experiments/supervised_ceiling.py --data-root DIR --epochs 12 RUNS/sup12.pt
    python evaluate.py --checkpoint RUNS/sup12.pt --data-root DIR --eval-split val --probe-iterations 5000 \\
        --probe-lr 1e-3 --skip-tsne
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import train  # noqa: E402
from data_loader import load_dataset, to_float  # noqa: E402
from networks import build_models  # noqa: E402
from utils import HelpFormatter, positive_int, run_cli, save_atomically, seed_everything  # noqa: E402


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("out", help="the checkpoint file to write")
    parser.add_argument("--data-root", required=True, help="folder holding MNIST/raw (all 60,000 training digits)")
    parser.add_argument("--val-size", type=positive_int, default=5000,
                        help="the last N training digits held out as val, as in the recipe's val run")
    parser.add_argument("--epochs", type=positive_int, default=12, help="passes over the training digits")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="digits per batch")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate; a tenth of it for the last third")
    parser.add_argument("--seed", type=int, default=0, help="seeds the networks and the batch order")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks instead of one-line errors")
    return parser


def train_classifier(encoder, head, data, args):
    """Cross-entropy of head(s) on the labels, one random order per epoch; prints each epoch's accuracy."""
    optimizer = torch.optim.Adam(list(encoder.parameters()) + list(head.parameters()), lr=args.lr)
    order_rng = torch.Generator().manual_seed(args.seed)
    batches = len(data.labels) // args.batch_size
    for epoch in range(args.epochs):
        if epoch == 2 * args.epochs // 3:
            for group in optimizer.param_groups:
                group["lr"] = args.lr / 10
        order = torch.randperm(len(data.labels), generator=order_rng)
        correct = 0
        for batch in order[:batches * args.batch_size].view(batches, args.batch_size):
            _, _, class_code = encoder(to_float(data.images[batch]))
            logits = head(class_code)
            loss = F.cross_entropy(logits, data.labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            correct += (logits.argmax(1) == data.labels[batch]).sum().item()
        print(f"epoch {epoch + 1}: train batch accuracy {correct / (batches * args.batch_size):.4f}", flush=True)


def main():
    args = build_parser().parse_args()
    # the data flags and config of a train.py run on this split, so that evaluate.py reads the result as one
    run_args, _ = train.parse_args(["--dataset", "mnist", "--data-root", args.data_root,
                                    "--val-size", str(args.val_size)])
    seed_everything(args.seed)
    data = load_dataset(run_args, "train")
    encoder, decoder, discriminator = build_models(data.image_shape, run_args.style_dim, run_args.class_dim)
    head = torch.nn.Linear(run_args.class_dim, data.num_classes)
    train_classifier(encoder, head, data, args)
    config = {**vars(run_args), "image_shape": list(data.image_shape), "num_classes": data.num_classes,
              "class_names": data.class_names}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    save_atomically({"config": config, "epoch": args.epochs, "step": 0, "encoder": encoder.state_dict(),
                     "decoder": decoder.state_dict(), "discriminator": discriminator.state_dict()}, args.out)
    print(f"{args.out}: the encoder after {args.epochs} epochs; evaluate.py --checkpoint {args.out} reads it")


if __name__ == "__main__":
    run_cli(main, build_parser())
