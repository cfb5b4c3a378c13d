"""train.py with one loss added to the pair objective's autoencoder step: the pilots of
EXPERIMENTS.md's "changes to the method, piloted on val" (2026-11-30), each run for two epochs from
the recipe's val run at epoch 34 by experiments/pilot.sh. Re-written from that entry's description
after the original scratch copy of train.py was lost: the entry's numbers come from the original and
have not been re-run with this script.

    python experiments/added_losses.py --resume RUNS/val_recipe_s0/checkpoint.pt --out RUNS/pilots/zc01 \\
        --epochs 36 --save-every 1 --add labels --code z_mean --addition-weight 0.1 --addition-lr 1e-3

Every flag not listed below is train.py's (python train.py --help); without --add this is
train.py. The added network reads a code of the autoencoder step's images, x1 and its same-class
partner x1':
- judge: an MLP (2 x 256, LeakyReLU) on (|a - b|, a * b) of two codes, trained to tell (x1, x1')
  from x1 paired with the next row's partner (a random image: a tenth of them share x1's class);
- labels: the probe-shaped classifier (networks.Classifier) on x1's code, trained to name its class.
It learns its task with its own Adam, made at the start (the branch point), on the codes detached.
Then the encoder: on z mean it is trained to leave the network guessing (cross-entropy towards a
uniform answer), on s to help it (the network's own loss), weighted by --addition-weight, beside
reconstruction and KL. log.csv gains the network's loss and accuracy. Checkpoints do not hold it: a
run resumed from one starts it afresh.
"""
import argparse
import functools
import os
import sys
from typing import NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import objective  # noqa: E402
import train  # noqa: E402
from networks import Classifier  # noqa: E402
from utils import HelpFormatter, global_mean, run_cli  # noqa: E402

ADDED_COLUMNS = ["added_loss", "added_accuracy"]


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter, allow_abbrev=False)
    parser.add_argument("--add", dest="kind", choices=["judge", "labels"], default=None,
                        help="the added network: a pair judge or a class-label classifier (default: none, train.py)")
    parser.add_argument("--code", choices=["z_mean", "s"], default="z_mean",
                        help="the code it reads: z mean (the encoder works against it) or s (the encoder helps it)")
    parser.add_argument("--addition-weight", dest="weight", type=float, default=1.0,
                        help="weight of the encoder's added loss in the autoencoder step")
    parser.add_argument("--addition-lr", dest="lr", type=float, default=1e-3,
                        help="Adam learning rate of the added network")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks instead of one-line errors")
    return parser


class PairJudge(nn.Module):
    """Two codes (B, dim) each -> logits (different class, same class), from (|a - b|, a * b)."""

    def __init__(self, dim):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(2 * dim, 256), nn.LeakyReLU(0.2), nn.Linear(256, 256),
                                    nn.LeakyReLU(0.2), nn.Linear(256, 2))

    def forward(self, first, second):
        return self.layers(torch.cat([(first - second).abs(), first * second], 1))


def judge_task(judge, codes, labels):
    """Logits and targets: (x1, x1') "same", (x1, the next row's x1') "different"; codes = [x1; x1']."""
    first, partners = codes.chunk(2)
    logits = judge(torch.cat([first, first]), torch.cat([partners, partners.roll(1, 0)]))
    same, different = (torch.full((len(first),), target, device=codes.device)
                       for target in (objective.SAME, objective.DIFFERENT))
    return logits, torch.cat([same, different])


def labels_task(classifier, codes, labels):
    """Logits and targets: x1's class from x1's code; codes = [x1; x1']."""
    return classifier(codes[:len(labels)]), labels


class LabelledBatch(NamedTuple):
    images: torch.Tensor             # x1
    partners: torch.Tensor           # x1'
    noise: Optional[torch.Tensor]    # eps of z1 (None with --no-reparam)
    labels: torch.Tensor             # x1's class ids


def added_autoencoder_step(addition, nets, optimizer, batch, args):
    """objective.autoencoder_step plus the addition: (1) the added network's own update on the
    detached codes, (2) the encoder and decoder on reconstruction + KL + weight x the added loss."""
    encoder, decoder, _ = nets
    mu, _, class_code = encoder(torch.cat([batch.images, batch.partners]))
    codes = mu if addition.code == "z_mean" else class_code
    # (1) the added network learns its task
    logits, targets = addition.task(addition.net, codes.detach(), batch.labels)
    own_loss = F.cross_entropy(logits, targets)
    objective.update(addition.optimizer, own_loss, torch.isfinite(own_loss))
    # (2) the encoder works against it on z mean, with it on s; its weights stay as (1) left them
    addition.net.requires_grad_(False)
    logits, targets = addition.task(addition.net, codes, batch.labels)
    added = (-F.log_softmax(logits, 1).mean() if addition.code == "z_mean"
             else F.cross_entropy(logits, targets))
    reconstruction, kl = objective.autoencoder_losses(encoder, decoder, batch, args)
    loss = reconstruction + args.kl_weight * kl + addition.weight * added
    mean_reconstruction, mean_kl, mean_loss = global_mean(reconstruction, kl, loss)
    finite = torch.isfinite(mean_loss)
    objective.update(optimizer, loss, finite)
    addition.net.requires_grad_(True)
    return {"reconstruction": mean_reconstruction.detach(), "kl": mean_kl.detach(),
            "added_loss": own_loss.detach(), "added_accuracy": (logits.argmax(1) == targets).float().mean().detach(),
            "skipped_updates": objective.skipped(finite)}


def install(addition):
    """Change train.py's pair objective in place: the autoencoder batch carries x1's labels, the
    added network is made beside the training's own networks, and the autoencoder step trains it."""
    plain_setup, plain_draw = train.setup_training, objective.OBJECTIVES["pair"].draw

    def setup_training(data, args):
        training = plain_setup(data, args)  # on --resume, train.py then restores the RNG: the draws stay the run's
        dim = args.style_dim if addition.code == "z_mean" else args.class_dim
        network = PairJudge(dim) if addition.kind == "judge" else Classifier(dim, data.num_classes)
        addition.net = network.to(data.images.device)
        addition.optimizer = torch.optim.Adam(addition.net.parameters(), lr=addition.lr,
                                              betas=(args.beta1, args.beta2), fused=True)
        return training

    def draw(data, stream, index, sampler, args):
        iteration = plain_draw(data, stream, index, sampler, args)
        x1_labels = data.labels[iteration.indices[0]]  # the first row of indices is the autoencoder's x1
        return iteration._replace(autoencoder=LabelledBatch(*iteration.autoencoder, x1_labels))

    addition.task = judge_task if addition.kind == "judge" else labels_task
    train.setup_training = setup_training
    objective.OBJECTIVES["pair"] = objective.OBJECTIVES["pair"]._replace(draw=draw)
    objective.autoencoder_step = functools.partial(added_autoencoder_step, addition)
    # the log's columns end with skipped_updates, which pair_iteration sums apart from the means
    objective.PAIR_COLUMNS[-1:-1] = ADDED_COLUMNS


def main():
    addition, train_argv = build_parser().parse_known_args()
    if addition.kind:
        install(addition)
    train.main(train_argv)


if __name__ == "__main__":
    run_cli(main, build_parser())
