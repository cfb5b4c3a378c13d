"""How far the encoder carries s with full supervision (EXPERIMENTS.md, "changes to the method,
piloted on val", 2026-11-30; for Sprites "Sprites s over training, on val", 2026-12-06): the encoder
alone trained as a classifier with the labels (a linear head on s, cross-entropy, Adam at --lr for
two thirds of the epochs then a tenth of it); no decoder, no adversary. MNIST: on the training
digits of a --val-size split. Sprites: on the frames the identity probes of `evaluate.py --eval-split
val` train on (70% of each training character's), never on the frames they are scored on. Saved as a
networks-only checkpoint that evaluate.py reads (its decoder and discriminator untrained: only the s
probe means anything). `--norm batch` swaps the encoder's instance norm for batch norm, to ask
whether the normalization caps s; evaluate.py cannot read that checkpoint, so the script prints the
head's accuracy on the held-out images (MNIST's val digits, Sprites' val frames) itself.
Re-written from the original that the entry inlined, which borrowed the val run's config for the
data flags: the same networks, seeds and batch order, but the entry's numbers come from the
original and have not been re-run with this script.

    python experiments/supervised_ceiling.py --data-root DIR --epochs 12 RUNS/sup12.pt
    python evaluate.py --checkpoint RUNS/sup12.pt --data-root DIR --eval-split val --probe-iterations 5000 \\
        --probe-lr 1e-3 --skip-tsne
    python experiments/supervised_ceiling.py --dataset sprites --data-root SPRITES_DIR --style-dim 512 \\
        --class-dim 64 --epochs 3 RUNS/sprites_sup3.pt      # then evaluate.py as above, with SPRITES_DIR
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import train  # noqa: E402
from data_loader import load_dataset, to_float  # noqa: E402
from evaluate import probe_splits  # noqa: E402
from networks import build_models  # noqa: E402
from utils import HelpFormatter, positive_int, run_cli, save_atomically, seed_everything  # noqa: E402


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("out", help="the checkpoint file to write")
    parser.add_argument("--dataset", choices=["mnist", "sprites"], default="mnist", help="the data, as train.py names it")
    parser.add_argument("--data-root", required=True,
                        help="folder holding MNIST/raw (all 60,000 training digits) or sprites/")
    parser.add_argument("--val-size", type=positive_int, default=5000,
                        help="MNIST: the last N training digits held out as val, as in the recipe's val run")
    parser.add_argument("--style-dim", type=positive_int, default=16, help="size of z (untrained here; sets the checkpoint)")
    parser.add_argument("--class-dim", type=positive_int, default=16, help="size of s, the code the head reads")
    parser.add_argument("--epochs", type=positive_int, default=12, help="passes over the training images")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="images per batch")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate; a tenth of it for the last third")
    parser.add_argument("--norm", choices=["instance", "batch"], default="instance",
                        help="the encoder's normalization after each conv: instance (the networks' own) or batch")
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


def use_batch_norm(encoder):
    """The encoder's InstanceNorm2d layers swapped for BatchNorm2d."""
    for index, layer in enumerate(encoder.features):
        if isinstance(layer, torch.nn.InstanceNorm2d):
            encoder.features[index] = torch.nn.BatchNorm2d(layer.num_features)


@torch.no_grad()
def accuracy(encoder, head, data, batch_size=500):
    """The head's accuracy on s of every image in `data`, the encoder in eval mode."""
    encoder.eval()
    correct = sum((head(encoder(to_float(data.images[start:start + batch_size]))[2]).argmax(1)
                   == data.labels[start:start + batch_size]).sum().item()
                  for start in range(0, len(data.labels), batch_size))
    return correct / len(data.labels)


def main():
    args = build_parser().parse_args()
    # the data flags and config of a train.py run on this split, so that evaluate.py reads the result as one
    split = ["--val-size", str(args.val_size)] if args.dataset == "mnist" else []
    run_args, _ = train.parse_args(["--dataset", args.dataset, "--data-root", args.data_root, *split,
                                    "--style-dim", str(args.style_dim), "--class-dim", str(args.class_dim)])
    seed_everything(args.seed)
    data = load_dataset(run_args, "train")
    config = {**vars(run_args), "image_shape": list(data.image_shape), "num_classes": data.num_classes,
              "class_names": data.class_names}
    # MNIST: the training digits and the val ones; Sprites: only the frames val's probes train on, and those they score
    data, held_out = probe_splits(data, load_dataset(run_args, "val") if args.dataset == "mnist" else None,
                                  args.dataset, "val")
    print(f"{args.dataset}: the encoder trains on {len(data.labels)} images of {data.num_classes} classes", flush=True)
    encoder, decoder, discriminator = build_models(data.image_shape, run_args.style_dim, run_args.class_dim)
    if args.norm == "batch":
        use_batch_norm(encoder)
    head = torch.nn.Linear(run_args.class_dim, data.num_classes)
    train_classifier(encoder, head, data, args)
    print(f"the head on s, {len(held_out.labels)} held-out images: accuracy {accuracy(encoder, head, held_out):.4f}")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    save_atomically({"config": config, "epoch": args.epochs, "step": 0, "encoder": encoder.state_dict(),
                     "decoder": decoder.state_dict(), "discriminator": discriminator.state_dict()}, args.out)
    print(f"{args.out}: the encoder after {args.epochs} epochs; evaluate.py --checkpoint {args.out} reads it")


if __name__ == "__main__":
    run_cli(main, build_parser())
