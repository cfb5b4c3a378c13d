"""Train the model of Mathieu et al., "Disentangling factors of variation in deep
representations using adversarial training" (NIPS 2016, arXiv 1611.03383).

    python train.py --dataset mnist --data-root ./data --epochs 50          # GPU when there is one
    python train.py --dataset mnist --data-root ./data --epochs 1 --device cpu
    python train.py --resume runs/mnist__0__20260101-120000 --epochs 100    # continue a run
    torchrun --nproc_per_node 4 train.py --out runs/NAME --dataset mnist     # 4 GPUs, the same updates

One iteration = (1) autoencoder step, (2) --generator-times generator steps,
(3) --discriminator-times discriminator steps, each on freshly drawn batches.
Every run writes config.json, checkpoint.pt, log.csv and TensorBoard events to --out.
"""
import argparse
import csv
import json
import os
import signal
import sys
import time
from typing import NamedTuple, Optional

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import torchvision
from torchvision.utils import save_image
from tqdm import tqdm

from data_loader import (DATASETS, class_index, draw_indices, draw_partners, grid_sources, load_dataset, new_stream,
                         random_shift, to_float)
from networks import build_models
from utils import (CLIError, HelpFormatter, average_gradients, check_device, git_commit, global_mean,
                   join_process_group, kl_divergence, largest_over_processes, load_checkpoint, non_negative_float,
                   non_negative_int, positive_float, positive_int, rank_and_world, resolve_device,
                   restarted_by_torchrun, rng_state, run_cli, sample_style, save_atomically, seed_everything,
                   set_rng_state, swap_grid)

LOG_COLUMNS = ["reconstruction", "kl", "generator", "discriminator", "disc_accuracy", "disc_stepped",
               "skipped_updates"]
# How a flag behaves on --resume. "model": it defines the model or its data, so a resumed run must
# keep it. "command": it belongs to one command; config.json records it, --resume never restores it.
# Every other flag is restored from config.json unless typed again.
FLAG_CLASSES = {**dict.fromkeys(["dataset", "split", "val_size", "style_dim", "class_dim", "no_reparam",
                                 "batch_size"], "model"),
                **dict.fromkeys(["out", "resume", "overwrite", "debug", "max_iterations"], "command")}
SAME, DIFFERENT = 1, 0  # discriminator classes, as published


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="mnist", choices=DATASETS, help="which dataset to train on")
    data.add_argument("--data-root", default="./data",
                      help="folder holding the dataset (MNIST: DIR/MNIST/raw, downloaded there when missing; sprites: "
                           "DIR/sprites; linemod: DIR/linemod; folder: DIR/<class>/*.png)")
    data.add_argument("--split", default="train", choices=["train", "val", "test"],
                      help="split to train on (Sprites' val split is by character as in sprites_splits.mat; MNIST's "
                           "exists with --val-size)")
    data.add_argument("--val-size", type=non_negative_int, default=0,
                      help="MNIST: hold out the last N training digits as a val split that training never sees, for "
                           "choosing recipes and checkpoints (evaluate.py --eval-split val); 0 = train on all, as "
                           "published")
    data.add_argument("--cache-dir", default=None,
                      help="where decoded Sprites/LINE-MOD/folder images are cached as uint8 (default: "
                           "$XDG_CACHE_HOME/dfv or ~/.cache/dfv)")
    data.add_argument("--linemod-sets", default="real,fine,coarse",
                      help="LINE-MOD image sets in the training set (comma-separated)")
    data.add_argument("--image-size", type=positive_int, default=64,
                      help="folder dataset: images are resized to this square size")
    data.add_argument("--test-fraction", type=float, default=0.2,
                      help="folder dataset: share of each class held out as the test split")
    model = parser.add_argument_group("model")
    model.add_argument("--style-dim", type=positive_int, default=16, help="size of the unspecified (style) code z")
    model.add_argument("--class-dim", type=positive_int, default=16, help="size of the specified (class) code s")
    model.add_argument("--no-reparam", action="store_true",
                       help="train with z = mu and no KL term (the published t-SNE comparison)")
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--batch-size", type=positive_int, default=64, help="images per batch B")
    optim.add_argument("--lr", type=positive_float, default=1e-4, help="Adam learning rate of all three optimizers")
    optim.add_argument("--beta1", type=float, default=0.5, help="Adam beta1")
    optim.add_argument("--beta2", type=float, default=0.999, help="Adam beta2")
    optim.add_argument("--kl-weight", type=non_negative_float, default=1.0,
                       help="weight of the KL term (KL is summed and divided by B*C*H*W, as published)")
    optim.add_argument("--generator-times", type=positive_int, default=2, help="generator steps per iteration")
    optim.add_argument("--discriminator-times", type=positive_int, default=1, help="discriminator steps per iteration")
    optim.add_argument("--disc-gate", type=float, default=0.8,
                       help="update the discriminator only while its accuracy is below this, in (0, 1]")
    optim.add_argument("--shift", type=non_negative_int, default=0,
                       help="translate every training image by a random offset of up to this many pixels (0 = none, as"
                            " published)")
    optim.add_argument("--nan-policy", default="stop", choices=["stop", "skip"],
                       help="on a non-finite loss: stop the run, or skip that update and count it")
    schedule = parser.add_argument_group("schedule")
    schedule.add_argument("--epochs", type=positive_int, default=50, help="epochs of floor(N / B) iterations each")
    schedule.add_argument("--max-iterations", type=positive_int, default=None,
                          help="stop after this many iterations in total, saving a checkpoint")
    schedule.add_argument("--seed", type=int, default=0, help="seeds initialization, sampling and noise")
    system = parser.add_argument_group("device and speed")
    system.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto = cuda when available")
    system.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA only)")
    system.add_argument("--compile", action="store_true", help="torch.compile the three networks")
    output = parser.add_argument_group("output")
    output.add_argument("--out", default=None,
                        help="run folder (default: runs/<dataset>__<seed>__<time>; required under torchrun)")
    output.add_argument("--resume", default=None, metavar="RUN_OR_CHECKPOINT",
                        help="continue the run in this folder (or from this checkpoint file)")
    output.add_argument("--overwrite", action="store_true", help="replace a run that already exists in --out")
    output.add_argument("--save-every", type=positive_int, default=5,
                        help="save a checkpoint every this many epochs (and at the end)")
    output.add_argument("--log-every", type=positive_int, default=50,
                        help="write log.csv, TensorBoard and the progress bar every this many iterations")
    output.add_argument("--debug", action="store_true", help="show full tracebacks instead of one-line errors")
    return parser


def check_args(parser, args):
    """Reject flags that are wrong together before any work starts, the way argparse itself does."""
    if not 0 < args.disc_gate <= 1:
        parser.error(f"--disc-gate must be in (0, 1], got {args.disc_gate}")
    if args.val_size and args.dataset != "mnist":
        parser.error("--val-size holds out MNIST training digits; Sprites has a val split of its own")
    check_device(parser, args.device)
    if args.amp and resolve_device(args.device) != "cuda":
        parser.error("--amp is bfloat16 autocast for CUDA; on the CPU it was slower, so it is not offered")
    if dist.is_torchelastic_launched():
        processes = int(os.environ["WORLD_SIZE"])
        if args.batch_size % processes:
            parser.error(f"--batch-size {args.batch_size} does not split into the {processes} processes torchrun "
                         f"started: pass a multiple of {processes} (--batch-size is the global batch)")


def parse_args(argv=None):
    """Flags and the checkpoint to resume (or None).

    On --resume the run's saved config is the base and only the flags typed here change it.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if restarted_by_torchrun() and not args.resume and args.out:
        continue_restarted_job(args)
    resume = None
    if args.resume:
        resume = load_checkpoint(args.resume)
        args = restore_flags(args, typed_flags(parser, argv, args), resume["config"])
    check_args(parser, args)
    return args, resume


def continue_restarted_job(args):
    """After a failure, torchrun starts the job's processes again: they continue from the run's last
    checkpoint, or start the run again if it had none. Only a run this job started is touched."""
    job = os.environ.get("TORCHELASTIC_RUN_ID")
    saved = {}
    if os.path.isfile(os.path.join(args.out, "config.json")):
        with open(os.path.join(args.out, "config.json")) as handle:
            saved = json.load(handle)
    if saved.get("torchrun_job") != job:
        return
    if os.path.isfile(os.path.join(args.out, "checkpoint.pt")):
        args.resume = args.out
    else:
        args.overwrite = True


def typed_flags(parser, argv, args):
    """The flags typed on the command line: parse again with every default replaced by a marker."""
    unset = object()
    parser.set_defaults(**dict.fromkeys(vars(args), unset))
    return {name: value for name, value in vars(parser.parse_args(argv)).items() if value is not unset}


def restore_flags(args, typed, saved):
    """The saved config's flags, overridden by the typed ones; a typed "model" flag must not change."""
    for name, value in typed.items():
        if FLAG_CLASSES.get(name) == "model" and value != saved.get(name, getattr(args, name)):
            raise CLIError(f"cannot resume with --{name.replace('_', '-')} {value}: the checkpoint "
                           f"was trained with {saved.get(name)}; start a new run with --out instead")
    restored = {k: v for k, v in saved.items() if k in vars(args) and FLAG_CLASSES.get(k) != "command"}
    return argparse.Namespace(**{**vars(args), **restored, **typed})


# ---------------------------------------------------------------------------------------------
# One iteration's batches, named by their role in the three steps. Images are (B, C, H, W) in
# [0, 1]; noise and prior are (B, style_dim) N(0, I) draws; noise is None with --no-reparam.

class AutoencoderBatch(NamedTuple):
    images: torch.Tensor             # x1
    partners: torch.Tensor           # x1': another image of x1's class, row by row
    noise: Optional[torch.Tensor]    # eps of z1 = mu1 + sigma1 * eps


class GeneratorBatch(NamedTuple):
    style_images: torch.Tensor       # x1: z1 comes from it
    class_images: torch.Tensor       # x3: s3 comes from it; the fakes must pass as its class
    noise: Optional[torch.Tensor]    # eps of z1
    prior: torch.Tensor              # z ~ N(0, I) of the second fake, Dec(z, s3)


class DiscriminatorBatch(NamedTuple):
    style_images: torch.Tensor       # x1: the fake's z is its posterior mean
    images: torch.Tensor             # x2
    partners: torch.Tensor           # x2': real pair (x2, x2') "same", fake pair (x2', Dec(mu1, s2')) "different"


class Iteration(NamedTuple):
    indices: torch.Tensor            # dataset index of every image drawn, for the non-finite report
    autoencoder: AutoencoderBatch
    generator: list                  # --generator-times GeneratorBatch
    discriminator: list              # --discriminator-times DiscriminatorBatch


def draw_iteration(data, stream, index, sampler, args):
    """Every batch of one iteration, gathered from the uint8 dataset in one indexing operation.

    Indices, partners and --shift offsets come from `sampler`; the z noise from torch's global RNG,
    in the order the steps use it.
    """
    batch, g, d = args.batch_size, args.generator_times, args.discriminator_times
    anchors = draw_indices(stream, (1 + 2 * g + 2 * d) * batch, sampler).view(-1, batch)
    autoencoder_rows, generator_rows, discriminator_rows = anchors.split([1, 2 * g, 2 * d])
    # the autoencoder's x1 and every discriminator step's x2 (the second of its rows) need a partner
    partners = draw_partners(torch.cat([autoencoder_rows, discriminator_rows[1::2]]).flatten(),
                             data.labels, index, sampler).view(-1, batch)
    indices = torch.cat([anchors, partners])
    images = to_float(data.images[indices.flatten()])
    if args.shift:
        images = random_shift(images, args.shift, sampler)
    images = images.view(*indices.shape, *data.image_shape)
    autoencoder_images, generator_pairs, discriminator_pairs, autoencoder_partners, discriminator_partners = (
        images.split([1, 2 * g, 2 * d, 1, d]))

    def normal():
        return torch.randn(batch, args.style_dim, device=images.device)
    autoencoder = AutoencoderBatch(autoencoder_images[0], autoencoder_partners[0],
                                   None if args.no_reparam else normal())
    generator = [GeneratorBatch(x1, x3, None if args.no_reparam else normal(), normal())
                 for x1, x3 in generator_pairs.view(g, 2, *generator_pairs.shape[1:])]
    discriminator = [DiscriminatorBatch(x1, x2, partner) for (x1, x2), partner in
                     zip(discriminator_pairs.view(d, 2, *discriminator_pairs.shape[1:]), discriminator_partners)]
    return Iteration(indices, autoencoder, generator, discriminator)


def local_part(iteration, rank, world):
    """This process's equal share of the rows of every batch (the whole iteration in one process)."""
    if world == 1:
        return iteration

    def rows(tensor):
        return None if tensor is None else tensor.chunk(world)[rank]
    return Iteration(iteration.indices, AutoencoderBatch(*map(rows, iteration.autoencoder)),
                     [GeneratorBatch(*map(rows, batch)) for batch in iteration.generator],
                     [DiscriminatorBatch(*map(rows, batch)) for batch in iteration.discriminator])


# ---------------------------------------------------------------------------------------------
# The three training phases: each loss is a pure function of the nets and one batch; each step
# applies its update and returns its LOG_COLUMNS entries as tensors, averaged over processes.

class NonFiniteLoss(Exception):
    pass


def autocast(images, args):
    return torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=args.amp)


def style_code(mu, logvar, noise, images, args):
    """z sampled from the posterior and its KL term; z = mu and no KL with --no-reparam."""
    if args.no_reparam:
        return mu, torch.zeros((), device=mu.device)
    return sample_style(mu, logvar, noise), kl_divergence(mu.float(), logvar.float(), images[0].numel())


def autoencoder_losses(encoder, decoder, batch, args):
    """MSE(Dec(z1, s1), x1) + MSE(Dec(z1, s1'), x1), and the KL of z1: s must be shareable within a class."""
    x1 = batch.images
    size = len(x1)
    with autocast(x1, args):
        mu, logvar, class_code = encoder(torch.cat([x1, batch.partners]))  # one call: (2B, ...)
        z1, kl = style_code(mu[:size], logvar[:size], batch.noise, x1, args)
        rebuilt = decoder(torch.cat([z1, z1]), class_code)  # [Dec(z1, s1); Dec(z1, s1')]
        reconstruction = F.mse_loss(rebuilt[:size].float(), x1) + F.mse_loss(rebuilt[size:].float(), x1)
    return reconstruction, kl


def generator_losses(encoder, decoder, discriminator, batch, args):
    """Dec(z1, s3) and Dec(z ~ N(0, I), s3) judged "same class as x3" (cross-entropy), and the KL of z1."""
    x1, x3 = batch.style_images, batch.class_images
    size = len(x1)
    with autocast(x1, args):
        mu, logvar, class_code = encoder(torch.cat([x1, x3]))
        z1, kl = style_code(mu[:size], logvar[:size], batch.noise, x1, args)
        s3 = class_code[size:]
        fakes = decoder(torch.cat([z1, batch.prior]), torch.cat([s3, s3]))
        logits = discriminator(torch.cat([x3, x3]), fakes)
        same = torch.full((2 * size,), SAME, device=x1.device)
        adversarial = 2 * F.cross_entropy(logits.float(), same)  # = CE(fake_a) + CE(fake_b), each a mean over B
    return adversarial, kl


def discriminator_loss(encoder, decoder, discriminator, batch, args):
    """(x2, x2') "same" against (x2', Dec(mu1, s2')) "different": cross-entropy and accuracy.

    As published, the fake's class source is x2's partner, so real and fake pairs share an image.
    """
    x1, x2, partner = batch
    size = len(x1)
    with autocast(x1, args):
        with torch.no_grad():  # encoder and decoder only supply the fake; no backward through them
            mu, _, class_code = encoder(torch.cat([x1, partner]))
            fake = decoder(mu[:size], class_code[size:])
        logits = discriminator(torch.cat([x2, partner]), torch.cat([partner, fake.to(partner.dtype)]))
        target = torch.cat([torch.full((size,), SAME, device=x1.device),
                            torch.full((size,), DIFFERENT, device=x1.device)])
        loss = 2 * F.cross_entropy(logits.float(), target)  # = CE(real) + CE(fake)
    return loss, (logits.argmax(1) == target).float().mean()


def usable(loss, name, args):
    """Whether a loss may be backpropagated. A non-finite one stops the run (--nan-policy stop)
    or is skipped (skip). A host sync, but it must come before a bad update lands."""
    if torch.isfinite(loss):
        return True
    if args.nan_policy == "stop":
        raise NonFiniteLoss(name)
    return False


def update(optimizer, loss):
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    average_gradients([param for group in optimizer.param_groups for param in group["params"]])
    optimizer.step()


def autoencoder_step(nets, optimizer, batch, args):
    encoder, decoder, _ = nets
    reconstruction, kl = autoencoder_losses(encoder, decoder, batch, args)
    loss = reconstruction + args.kl_weight * kl
    mean_reconstruction, mean_kl, mean_loss = global_mean(reconstruction, kl, loss)
    applied = usable(mean_loss, "autoencoder", args)
    if applied:
        update(optimizer, loss)
    return {"reconstruction": mean_reconstruction.detach(), "kl": mean_kl.detach(),
            "skipped_updates": float(not applied)}


def generator_step(nets, optimizer, batch, args):
    encoder, decoder, discriminator = nets
    discriminator.requires_grad_(False)  # its weights must not move here, and need no gradients
    adversarial, kl = generator_losses(encoder, decoder, discriminator, batch, args)
    loss = adversarial + args.kl_weight * kl
    mean_adversarial, mean_loss = global_mean(adversarial, loss)
    applied = usable(mean_loss, "generator", args)
    if applied:
        update(optimizer, loss)
    discriminator.requires_grad_(True)
    return {"generator": mean_adversarial.detach(), "skipped_updates": float(not applied)}


def discriminator_step(nets, optimizer, batch, args):
    """Steps only while the discriminator's accuracy (over all processes) is below --disc-gate (a host
    sync), so the generator still gets a useful signal."""
    loss, accuracy = discriminator_loss(*nets, batch, args)
    mean_loss, mean_accuracy = global_mean(loss, accuracy)
    finite = usable(mean_loss, "discriminator", args)
    gate_open = bool(mean_accuracy < args.disc_gate)
    if finite and gate_open:
        update(optimizer, loss)
    return {"discriminator": mean_loss.detach(), "disc_accuracy": mean_accuracy,
            "disc_stepped": float(finite and gate_open), "skipped_updates": float(not finite)}


def train_iteration(nets, optimizers, iteration, args):
    """One full iteration on the batches of draw_iteration; returns the LOG_COLUMNS as one tensor.

    Generator and discriminator columns are means over their steps; skipped_updates counts the
    updates skipped for a non-finite loss (--nan-policy skip). A discriminator step that is not
    skipped and not stepped found its gate closed.
    """
    # (1) autoencoder step
    logs = [autoencoder_step(nets, optimizers["autoencoder"], iteration.autoencoder, args)]
    # (2) generator steps
    logs += [generator_step(nets, optimizers["generator"], batch, args) for batch in iteration.generator]
    # (3) discriminator steps
    logs += [discriminator_step(nets, optimizers["discriminator"], batch, args) for batch in iteration.discriminator]
    device = iteration.indices.device
    columns = {name: torch.stack([torch.as_tensor(log[name], device=device, dtype=torch.float32)
                                  for log in logs if name in log]) for name in LOG_COLUMNS}
    return torch.stack([values.sum() if name == "skipped_updates" else values.mean()
                        for name, values in columns.items()])


# ---------------------------------------------------------------------------------------------
# Setup, checkpoints and the run folder.

class Training(NamedTuple):
    nets: tuple          # encoder, decoder, discriminator
    step_nets: tuple     # the same, torch.compile'd under --compile: used for training steps only
    optimizers: dict     # autoencoder, generator, discriminator
    index: dict          # class-sorted index of the labels, for partner draws
    sampler: torch.Generator  # batch indices, partners and shifts
    stream: dict         # position in the endless stream of reshuffled passes


def make_optimizers(encoder, decoder, discriminator, args):
    # Two optimizers over the same encoder + decoder parameters, as published: the
    # autoencoder and generator steps keep separate Adam moments.
    adam = dict(lr=args.lr, betas=(args.beta1, args.beta2))
    autoencoder_params = list(encoder.parameters()) + list(decoder.parameters())
    return {"autoencoder": torch.optim.Adam(autoencoder_params, **adam),
            "generator": torch.optim.Adam(autoencoder_params, **adam),
            "discriminator": torch.optim.Adam(discriminator.parameters(), **adam)}


def setup_training(data, args):
    """Networks, their optimizers and the batch sampler for `data`, already on its device."""
    device = data.images.device
    nets = tuple(net.to(device) for net in build_models(data.image_shape, args.style_dim, args.class_dim))
    step_nets = tuple(torch.compile(net) for net in nets) if args.compile else nets
    sampler = torch.Generator(device).manual_seed(args.seed)
    return Training(nets, step_nets, make_optimizers(*nets, args), class_index(data.labels, data.num_classes),
                    sampler, new_stream(len(data.labels), sampler))


def checkpoint_state(training, epoch, step, config):
    encoder, decoder, discriminator = training.nets
    return {"config": config, "epoch": epoch, "step": step,
            "encoder": encoder.state_dict(), "decoder": decoder.state_dict(),
            "discriminator": discriminator.state_dict(),
            "optimizers": {name: opt.state_dict() for name, opt in training.optimizers.items()},
            "stream": {"order": training.stream["order"].cpu(), "position": training.stream["position"]},
            "rng": rng_state(training.sampler)}


def restore(resume, training, args):
    """Load a full checkpoint into the fresh training state; returns the step it was saved at."""
    if "optimizers" not in resume:
        raise CLIError("this checkpoint holds networks only (a shipped checkpoint): it can be evaluated, not resumed")
    for net, name in zip(training.nets, ["encoder", "decoder", "discriminator"]):
        net.load_state_dict(resume[name])  # load_state_dict copies onto the nets' device
    for name, optimizer in training.optimizers.items():
        optimizer.load_state_dict(resume["optimizers"][name])
        for group in optimizer.param_groups:  # the saved groups hold the old values: typed flags win
            group.update(lr=args.lr, betas=(args.beta1, args.beta2))
    set_rng_state(resume["rng"], training.sampler)
    training.stream.update(order=resume["stream"]["order"].to(training.stream["order"].device),
                           position=resume["stream"]["position"])
    return resume["step"]


def default_run_folder(args):
    if args.resume:  # the run continues where it was
        return args.resume if os.path.isdir(args.resume) else os.path.dirname(os.path.abspath(args.resume))
    return os.path.join("runs", f"{args.dataset}__{args.seed}__{time.strftime('%Y%m%d-%H%M%S')}")


def prepare_run_folder(args):
    """Create --out; refuse to mix with an existing run unless --resume or --overwrite."""
    run_files = ["config.json", "checkpoint.pt", "log.csv"]
    existing = ([f for f in os.listdir(args.out) if f in run_files or f.startswith("events.")]
                if os.path.isdir(args.out) else [])
    if existing and not args.resume:
        if not args.overwrite:
            raise CLIError(f"{args.out} already holds a run ({', '.join(sorted(existing))}); "
                           f"pass --resume {args.out} to continue it, --overwrite to replace it, or another --out")
        print(f"--overwrite: removing {', '.join(sorted(existing))} from {args.out}")
        for name in existing:
            os.remove(os.path.join(args.out, name))
    os.makedirs(args.out, exist_ok=True)


def write_config(args, data):
    """config.json: every flag, what the data turned out to be, library versions and the commit."""
    config = {**vars(args), "image_shape": list(data.image_shape), "num_classes": data.num_classes,
              "class_names": data.class_names,
              "versions": {"python": sys.version.split()[0], "torch": str(torch.__version__),
                           "torchvision": torchvision.__version__, "numpy": np.__version__},
              "git_commit": git_commit(), "torchrun_job": os.environ.get("TORCHELASTIC_RUN_ID"),
              "processes": rank_and_world()[1]}
    with open(os.path.join(args.out, "config.json"), "w") as handle:
        json.dump(config, handle, indent=2)
    return config


class RunLog:
    """log.csv and TensorBoard. Rows stay on the device until written, every --log-every, so
    training reads one tensor from the device per write, not one per iteration. With run_dir None
    (every process but the first under torchrun) it writes nothing."""

    def __init__(self, run_dir, resume_step):
        self.pending = []  # (epoch, iteration, step, row tensor)
        self.handle = self.tensorboard = None
        if run_dir is None:
            return
        self.path = os.path.join(run_dir, "log.csv")
        kept = []  # on resume, rows past the checkpoint's step are dropped: they will be redone
        if resume_step is not None and os.path.exists(self.path):
            with open(self.path, newline="") as handle:
                kept = [row for row in csv.DictReader(handle) if int(row["step"]) <= resume_step]
        self.handle = open(self.path, "w", newline="")
        self.csv = csv.DictWriter(self.handle, fieldnames=["epoch", "iteration", "step"] + LOG_COLUMNS)
        self.csv.writeheader()
        self.csv.writerows(kept)
        self.tensorboard = open_tensorboard(run_dir, resume_step)

    def append(self, epoch, iteration, step, row):
        if self.handle:
            self.pending.append((epoch, iteration, step, row))

    def write(self):
        """Write the pending rows; returns the last one as a dict (None when there was none)."""
        if not self.pending:
            return None
        values = torch.stack([row for *_, row in self.pending]).tolist()  # the one host sync per write
        for (epoch, iteration, step, _), row in zip(self.pending, values):
            self.csv.writerow({"epoch": epoch, "iteration": iteration, "step": step, **dict(zip(LOG_COLUMNS, row))})
            for name, value in zip(LOG_COLUMNS, row):
                group = "losses" if name in ("reconstruction", "kl", "generator", "discriminator") else "charts"
                self.add_scalar(f"{group}/{name}", value, step)
        self.pending.clear()
        return dict(zip(LOG_COLUMNS, values[-1]))

    def add_scalar(self, name, value, step):
        if self.tensorboard:
            self.tensorboard.add_scalar(name, value, step)

    def add_image(self, name, image, step):
        if self.tensorboard:
            self.tensorboard.add_image(name, image, step)

    def close(self):
        if self.handle:
            self.handle.close()
        if self.tensorboard:
            self.tensorboard.close()


def open_tensorboard(run_dir, resume_step):
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        print("tensorboardX is not installed: no TensorBoard events (pip install tensorboardX)")
        return None
    return SummaryWriter(run_dir, purge_step=resume_step)


# ---------------------------------------------------------------------------------------------
# The run.

def setup_device(args):
    """This process's device; under torchrun, after joining the process group."""
    device = resolve_device(args.device)
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
    return join_process_group(device) if dist.is_torchelastic_launched() else device


def load_data(args, device):
    """The training split on `device`, and the fixed test images of the per-epoch swap grid."""
    started = time.time()
    data = load_dataset(args, args.split).to(device)
    test = load_dataset(args, "test")
    rows, columns = grid_sources(test, args.dataset, args.seed)
    report(f"{args.dataset}: {len(data.labels)} training images {data.image_shape}, {data.num_classes} classes; "
           f"loaded in {time.time() - started:.1f} s")
    return data, (to_float(test.images[rows]).to(device), to_float(test.images[columns]).to(device))


def report(message):
    """Print, once: in the first process only under torchrun."""
    if rank_and_world()[0] == 0:
        print(message, flush=True)


def iteration_counts(args, training_images):
    """(iterations per epoch, iterations of the whole run): the published epoch is floor(N / B)."""
    per_epoch = training_images // args.batch_size
    if per_epoch == 0:
        raise CLIError(f"--batch-size {args.batch_size} is larger than the {training_images} training images")
    return per_epoch, min(args.epochs * per_epoch, args.max_iterations or sys.maxsize)


def stop_requests():
    """A list that SIGINT / SIGTERM append themselves to; the loop checks it between iterations."""
    requests = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: requests.append(signal.Signals(signum)))
    return requests


def report_non_finite(error, step, epoch, iteration, indices, args):
    """Write the (global) batch of a non-finite loss next to the run and stop with a one-line error."""
    bad_batch = os.path.join(args.out, f"nonfinite_step{step}.json")
    if rank_and_world()[0] == 0:
        with open(bad_batch, "w") as handle:
            json.dump({"step": step, "loss": str(error), "batch_indices": indices.tolist()}, handle)
    raise CLIError(f"non-finite {error} loss at step {step} (epoch {epoch + 1}, iteration {iteration}); "
                   f"stopped, the last good checkpoint is kept; batch indices in {bad_batch}; "
                   f"--nan-policy skip skips such updates instead") from None


def train_epoch(epoch, iterations, step, data, training, log, stop, args):
    """Train `iterations` (a range of iteration numbers within `epoch`), or until a stop is requested.

    Returns the sum of the iterations' log rows and the step reached.
    """
    rank, world = rank_and_world()
    epoch_sum = torch.zeros(len(LOG_COLUMNS), device=data.images.device)
    progress = tqdm(iterations, desc=f"epoch {epoch + 1}/{args.epochs}", leave=False, dynamic_ncols=True,
                    disable=None if rank == 0 else True)
    for iteration in progress:
        batches = draw_iteration(data, training.stream, training.index, training.sampler, args)
        try:
            row = train_iteration(training.step_nets, training.optimizers, local_part(batches, rank, world), args)
        except NonFiniteLoss as error:
            log.write()
            report_non_finite(error, step, epoch, iteration, batches.indices, args)
        step += 1
        epoch_sum += row
        log.append(epoch, iteration, step, row)
        if step % args.log_every == 0 and rank == 0:
            show_progress(progress, log.write())
        signalled = largest_over_processes(stop[0] if stop else 0)  # every process stops at the same step
        if signalled:
            stop[:] = [signal.Signals(int(signalled))]  # and exits as the signalled one does
            break
    progress.close()
    log.write()
    return epoch_sum, step


def show_progress(progress, latest):
    progress.set_postfix(rec=f"{latest['reconstruction']:.4f}", gen=f"{latest['generator']:.3f}",
                         disc=f"{latest['discriminator']:.3f}", acc=f"{latest['disc_accuracy']:.2f}")


def end_epoch(epoch, epoch_sum, done, seconds, step, training, grid_images, log, args):
    """Print the epoch's mean losses, draw the swap grid of fixed test images."""
    mean = dict(zip(LOG_COLUMNS, (epoch_sum / done).tolist()))
    print(f"epoch {epoch + 1}/{args.epochs} step {step}: reconstruction {mean['reconstruction']:.4f} "
          f"kl {mean['kl']:.4f} generator {mean['generator']:.3f} discriminator {mean['discriminator']:.3f} "
          f"disc accuracy {mean['disc_accuracy']:.3f} (stepped {mean['disc_stepped']:.0%}) | "
          f"{seconds:.1f} s, {seconds / done:.3f} s/iteration", flush=True)
    grid = swap_grid(training.nets[0], training.nets[1], *grid_images)
    save_image(grid, os.path.join(args.out, "swap_grid.png"))
    log.add_scalar("charts/s_per_iteration", seconds / done, step)
    log.add_image("swap_grid", grid, step)


def main(argv=None):
    args, resume = parse_args(argv)
    if dist.is_torchelastic_launched() and not args.out:
        raise CLIError("under torchrun pass --out RUN, so that every process and every restart uses one run folder")

    # -- setup: device, seed, data, models, run folder ---------------------------------------
    device = setup_device(args)
    seed_everything(args.seed)
    data, grid_images = load_data(args, device)
    per_epoch, total_iterations = iteration_counts(args, len(data.labels))
    training = setup_training(data, args)
    step = restore(resume, training, args) if resume else 0
    args.out = args.out or default_run_folder(args)
    writer = rank_and_world()[0] == 0  # the one process that writes the run folder
    if writer:
        prepare_run_folder(args)  # only once data and checkpoint are in: a failed start leaves nothing behind
        config = write_config(args, data)
    log = RunLog(args.out if writer else None, step if resume else None)
    report(f"{per_epoch} iterations per epoch of batch {args.batch_size}, {total_iterations} in all; device "
           f"{device}; run folder {args.out}" + (f"; resuming from step {step} of {args.resume}" if resume else ""))
    stop = stop_requests()

    def save(epoch):
        if writer:
            save_atomically(checkpoint_state(training, epoch, step, config), os.path.join(args.out, "checkpoint.pt"))

    # -- the loop: an epoch of iterations, then its summary, grid and checkpoint ------------------
    try:
        while step < total_iterations:
            epoch, first = divmod(step, per_epoch)
            epoch_start, epoch_first_step = time.time(), step
            iterations = range(first, min(per_epoch, first + total_iterations - step))
            epoch_sum, step = train_epoch(epoch, iterations, step, data, training, log, stop, args)
            if stop:
                save(epoch)
                launcher = "torchrun ... train.py" if dist.is_initialized() else "python train.py"
                report(f"\n{stop[0].name}: saved step {step} to {args.out}/checkpoint.pt; "
                       f"resume with: {launcher} --resume {args.out}")
                # the shell's status for a signalled process, so that a script running the recipe's
                # stages one after another stops here instead of starting the next stage early
                sys.exit(128 + stop[0])
            if writer:
                end_epoch(epoch, epoch_sum, step - epoch_first_step, time.time() - epoch_start, step, training,
                          grid_images, log, args)
            finished_epoch = step % per_epoch == 0
            if step >= total_iterations or (finished_epoch and (epoch + 1) % args.save_every == 0):
                save(epoch + 1 if finished_epoch else epoch)
    finally:
        log.close()
    report(f"done: {step} iterations; run folder {args.out} (checkpoint.pt, log.csv, swap_grid.png, "
           f"TensorBoard events)")


if __name__ == "__main__":
    try:
        run_cli(main, build_parser())
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
