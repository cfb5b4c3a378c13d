"""Train the model of Mathieu et al., "Disentangling factors of variation in deep
representations using adversarial training" (NIPS 2016, arXiv 1611.03383).

    python train.py --dataset mnist --data-root ./data --epochs 50          # GPU when there is one
    python train.py --dataset mnist --data-root ./data --epochs 1 --device cpu
    python train.py --resume runs/mnist__0__20260101-120000 --epochs 100    # continue a run

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

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torchvision.utils import save_image
from tqdm import tqdm

from data_loader import (DATASETS, class_index, draw_indices, draw_partners, load_dataset, new_stream,
                         one_of_each, random_shift, to_float)
from networks import build_models
from utils import (CLIError, HelpFormatter, git_commit, kl_divergence, load_checkpoint, resolve_device, rng_state, run_cli,
                   sample_style, save_atomically, seed_everything, set_rng_state, swap_grid)

LOG_COLUMNS = ["reconstruction", "kl", "generator", "discriminator", "disc_accuracy", "disc_stepped",
               "skipped_updates"]
# What defines the model and its data: a resumed run must keep these.
FIXED_ON_RESUME = ["dataset", "split", "val_size", "style_dim", "class_dim", "no_reparam", "batch_size"]
# Flags of one invocation, never taken from a saved config.
PER_INVOCATION = ["out", "resume", "overwrite", "debug", "max_iterations"]
SAME, DIFFERENT = 1, 0  # discriminator classes, as published


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="mnist", choices=DATASETS, help="which dataset to train on")
    data.add_argument("--data-root", default="./data", help="folder holding the dataset (MNIST: DIR/MNIST/raw, downloaded there when missing; sprites: DIR/sprites; linemod: DIR/linemod; folder: DIR/<class>/*.png)")
    data.add_argument("--split", default="train", choices=["train", "val", "test"], help="split to train on (Sprites' val split is by character as in sprites_splits.mat; MNIST's exists with --val-size)")
    data.add_argument("--val-size", type=int, default=0, help="MNIST: hold out the last N training digits as a val split that training never sees, for choosing recipes and checkpoints (evaluate.py --eval-split val); 0 = train on all, as published")
    data.add_argument("--cache-dir", default=None, help="where decoded Sprites/LINE-MOD/folder images are cached as uint8 (default: ~/.cache/dfv)")
    data.add_argument("--linemod-sets", default="real,fine,coarse", help="LINE-MOD image sets in the training set (comma-separated)")
    data.add_argument("--image-size", type=int, default=64, help="folder dataset: images are resized to this square size")
    data.add_argument("--test-fraction", type=float, default=0.2, help="folder dataset: share of each class held out as the test split")
    model = parser.add_argument_group("model")
    model.add_argument("--style-dim", type=int, default=16, help="size of the unspecified (style) code z")
    model.add_argument("--class-dim", type=int, default=16, help="size of the specified (class) code s")
    model.add_argument("--no-reparam", action="store_true", help="train with z = mu and no KL term (the published t-SNE comparison)")
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--batch-size", type=int, default=64, help="images per batch B")
    optim.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate of all three optimizers")
    optim.add_argument("--beta1", type=float, default=0.5, help="Adam beta1")
    optim.add_argument("--beta2", type=float, default=0.999, help="Adam beta2")
    optim.add_argument("--kl-weight", type=float, default=1.0, help="weight of the KL term (KL is summed and divided by B*C*H*W, as published)")
    optim.add_argument("--generator-times", type=int, default=2, help="generator steps per iteration")
    optim.add_argument("--discriminator-times", type=int, default=1, help="discriminator steps per iteration")
    optim.add_argument("--disc-gate", type=float, default=0.8, help="update the discriminator only while its accuracy is below this, in (0, 1]")
    optim.add_argument("--shift", type=int, default=0, help="translate every training image by a random offset of up to this many pixels (0 = none, as published)")
    optim.add_argument("--nan-policy", default="stop", choices=["stop", "skip"], help="on a non-finite loss: stop the run, or skip that update and count it")
    schedule = parser.add_argument_group("schedule")
    schedule.add_argument("--epochs", type=int, default=50, help="epochs of floor(N / B) iterations each")
    schedule.add_argument("--max-iterations", type=int, default=None, help="stop after this many iterations in total, saving a checkpoint")
    schedule.add_argument("--seed", type=int, default=0, help="seeds initialization, sampling and noise")
    system = parser.add_argument_group("device and speed")
    system.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto = cuda when available")
    system.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA only)")
    system.add_argument("--compile", action="store_true", help="torch.compile the three networks")
    output = parser.add_argument_group("output")
    output.add_argument("--out", default=None, help="run folder (default runs/<dataset>__<seed>__<time>)")
    output.add_argument("--resume", default=None, metavar="RUN_OR_CHECKPOINT", help="continue the run in this folder (or from this checkpoint file)")
    output.add_argument("--overwrite", action="store_true", help="replace a run that already exists in --out")
    output.add_argument("--save-every", type=int, default=5, help="save a checkpoint every this many epochs (and at the end)")
    output.add_argument("--log-every", type=int, default=50, help="write log.csv, TensorBoard and the progress bar every this many iterations")
    output.add_argument("--debug", action="store_true", help="show full tracebacks instead of one-line errors")
    return parser


def check_args(parser, args):
    """Reject bad flags before any work starts, the way argparse itself does."""
    for name in ["style_dim", "class_dim", "batch_size", "epochs", "generator_times", "discriminator_times",
                 "save_every", "log_every"]:
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.max_iterations is not None and args.max_iterations <= 0:
        parser.error(f"--max-iterations must be positive, got {args.max_iterations}")
    if args.shift < 0 or args.val_size < 0:
        parser.error(f"--shift and --val-size must be 0 or more, got {args.shift} and {args.val_size}")
    if args.val_size and args.dataset != "mnist":
        parser.error("--val-size holds out MNIST training digits; Sprites has a val split of its own")
    if not 0 < args.disc_gate <= 1:
        parser.error(f"--disc-gate must be in (0, 1], got {args.disc_gate}")
    if args.lr <= 0 or args.kl_weight < 0:
        parser.error("--lr must be positive and --kl-weight non-negative")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda was asked for but this torch sees no CUDA device; use --device cpu")
    if args.amp and resolve_device(args.device) != "cuda":
        parser.error("--amp is bfloat16 autocast for CUDA; on the CPU it was slower, so it is not offered")


def parse_args(argv=None):
    """Flags and the checkpoint to resume (or None).

    On --resume the run's saved config is the base and only the flags typed here change it.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    resume = None
    if args.resume:
        # Which flags were typed: parse again with every default replaced by a marker.
        unset = object()
        parser.set_defaults(**dict.fromkeys(vars(args), unset))
        typed = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not unset}
        resume = load_checkpoint(args.resume)
        saved = resume["config"]
        for name in FIXED_ON_RESUME:
            if name in typed and typed[name] != saved.get(name):
                raise CLIError(f"cannot resume with --{name.replace('_', '-')} {typed[name]}: the checkpoint "
                               f"was trained with {saved.get(name)}; start a new run with --out instead")
        restored = {k: v for k, v in saved.items() if k in vars(args) and k not in PER_INVOCATION}
        args = argparse.Namespace(**{**vars(args), **restored, **typed})
    check_args(parser, args)
    return args, resume


# ---------------------------------------------------------------------------------------------
# The three training phases. Each is pure of I/O and returns its losses as tensors.

class NonFiniteLoss(Exception):
    pass


def apply_update(optimizer, loss, name, args, gate_open=True):
    """Backpropagate and step, unless the loss is not finite (then stop or skip, by --nan-policy)
    or the discriminator gate is closed. Returns whether the weights moved."""
    if not torch.isfinite(loss):  # a host sync, but it must come before a bad update lands
        if args.nan_policy == "stop":
            raise NonFiniteLoss(name)
        return False
    if not gate_open:
        return False
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return True


def autocast(args):
    return torch.autocast(args.device_type, dtype=torch.bfloat16, enabled=args.amp)


def style_code(mu, logvar, images, args):
    """z sampled from the posterior and its KL term; z = mu and no KL with --no-reparam."""
    if args.no_reparam:
        return mu, torch.zeros((), device=mu.device)
    return sample_style(mu, logvar), kl_divergence(mu.float(), logvar.float(), images[0].numel())


def autoencoder_step(encoder, decoder, optimizer, x1, x1_partner, args):
    """MSE(Dec(z1, s1), x1) + MSE(Dec(z1, s1'), x1) + kl_weight * KL: s must be shareable within a class."""
    batch = len(x1)
    with autocast(args):
        mu, logvar, class_code = encoder(torch.cat([x1, x1_partner]))  # one call: (2B, ...)
        style, kl = style_code(mu[:batch], logvar[:batch], x1, args)
        rebuilt = decoder(torch.cat([style, style]), class_code)  # [Dec(z1, s1); Dec(z1, s1')]
        reconstruction = F.mse_loss(rebuilt[:batch].float(), x1) + F.mse_loss(rebuilt[batch:].float(), x1)
    stepped = apply_update(optimizer, reconstruction + args.kl_weight * kl, "autoencoder", args)
    return reconstruction.detach(), kl.detach(), stepped


def generator_step(encoder, decoder, discriminator, optimizer, x1, x3, args):
    """Make Dec(z1, s3) and Dec(z ~ N(0, I), s3) pass as x3's class in the discriminator's eyes."""
    batch = len(x1)
    discriminator.requires_grad_(False)  # its weights must not move here, and need no gradients
    with autocast(args):
        mu, logvar, class_code = encoder(torch.cat([x1, x3]))
        style, kl = style_code(mu[:batch], logvar[:batch], x1, args)
        class_3 = class_code[batch:]
        prior = torch.randn_like(style)
        fakes = decoder(torch.cat([style, prior]), torch.cat([class_3, class_3]))
        logits = discriminator(torch.cat([x3, x3]), fakes)
        same = torch.full((2 * batch,), SAME, device=x1.device)
        generator = 2 * F.cross_entropy(logits.float(), same)  # = CE(fake_a) + CE(fake_b), each a mean over B
    stepped = apply_update(optimizer, generator + args.kl_weight * kl, "generator", args)
    discriminator.requires_grad_(True)
    return generator.detach(), stepped


def discriminator_step(encoder, decoder, discriminator, optimizer, x1, x2, x2_partner, args):
    """Tell (x2, x2') "same" from (x3, Dec(mu1, s3)) "different"; step only while accuracy < --disc-gate.

    As published, x3 is x2's partner, so the real and fake pairs share their first image.
    """
    batch = len(x1)
    x3 = x2_partner
    with autocast(args):
        with torch.no_grad():  # encoder and decoder only supply the fake; no backward through them
            mu, _, class_code = encoder(torch.cat([x1, x3]))
            fake = decoder(mu[:batch], class_code[batch:])
        logits = discriminator(torch.cat([x2, x3]), torch.cat([x3, fake.to(x3.dtype)]))
        target = torch.cat([torch.full((batch,), SAME, device=x1.device), torch.full((batch,), DIFFERENT, device=x1.device)])
        loss = 2 * F.cross_entropy(logits.float(), target)  # = CE(real) + CE(fake)
    accuracy = (logits.argmax(1) == target).float().mean()
    # The gate (a host sync): no update while D is far ahead, so G still gets a useful signal.
    stepped = apply_update(optimizer, loss, "discriminator", args, gate_open=bool(accuracy < args.disc_gate))
    return loss.detach(), accuracy, stepped


def iteration_layout(args):
    """Rows of the anchor batches drawn per iteration, and which of them need a same-class partner."""
    g, d = args.generator_times, args.discriminator_times
    rows = 1 + 2 * g + 2 * d  # AE x1 | g x (x1, x3) | d x (x1, x2)
    partner_rows = [0] + [2 + 2 * g + 2 * k for k in range(d)]  # AE x1 and every discriminator x2
    return rows, partner_rows


def draw_iteration(data, stream, index, generator, args):
    """Every batch of one iteration in one gather: (indices (R, B), images (R, B, C, H, W) float)."""
    rows, partner_rows = iteration_layout(args)
    anchors = draw_indices(stream, rows * args.batch_size, generator).view(rows, args.batch_size)
    partners = draw_partners(anchors[partner_rows].flatten(), data.labels, index, generator)
    indices = torch.cat([anchors, partners.view(len(partner_rows), args.batch_size)])
    images = to_float(data.images[indices.flatten()])
    if args.shift:
        images = random_shift(images, args.shift, generator)
    return indices, images.view(*indices.shape, *data.image_shape)


def train_iteration(nets, optimizers, images, args):
    """One full iteration on the batches of draw_iteration; returns the LOG_COLUMNS as one tensor."""
    encoder, decoder, discriminator = nets
    rows, _ = iteration_layout(args)
    g = args.generator_times
    reconstruction, kl, ae_stepped = autoencoder_step(encoder, decoder, optimizers["autoencoder"],
                                                      images[0], images[rows], args)
    generator_losses, skipped = [], int(not ae_stepped)
    for k in range(g):
        loss, stepped = generator_step(encoder, decoder, discriminator, optimizers["generator"],
                                       images[1 + 2 * k], images[2 + 2 * k], args)
        generator_losses.append(loss)
        skipped += not stepped
    for k in range(args.discriminator_times):
        disc_loss, accuracy, disc_stepped = discriminator_step(
            encoder, decoder, discriminator, optimizers["discriminator"],
            images[1 + 2 * g + 2 * k], images[2 + 2 * g + 2 * k], images[rows + 1 + k], args)
    # autoencoder and generator updates skipped for a non-finite loss (only under --nan-policy skip;
    # "stop" raises instead); a skipped discriminator update shows as disc_stepped 0
    return torch.stack([reconstruction, kl, torch.stack(generator_losses).mean(), disc_loss, accuracy,
                        torch.tensor(float(disc_stepped), device=accuracy.device),
                        torch.tensor(float(skipped), device=accuracy.device)])


def make_optimizers(encoder, decoder, discriminator, args):
    # Two optimizers over the same encoder + decoder parameters, as published: the
    # autoencoder and generator steps keep separate Adam moments.
    adam = dict(lr=args.lr, betas=(args.beta1, args.beta2))
    autoencoder_params = list(encoder.parameters()) + list(decoder.parameters())
    return {"autoencoder": torch.optim.Adam(autoencoder_params, **adam),
            "generator": torch.optim.Adam(autoencoder_params, **adam),
            "discriminator": torch.optim.Adam(discriminator.parameters(), **adam)}


def setup_training(data, args):
    """Networks, their optimizers and the batch sampler for `data`, already on its device.

    Returns (nets, step_nets, optimizers, index, generator, stream): step_nets are the
    torch.compile'd nets under --compile (the plain nets otherwise), used for training steps only.
    """
    device = data.images.device
    nets = tuple(net.to(device) for net in build_models(data.image_shape, args.style_dim, args.class_dim))
    step_nets = tuple(torch.compile(net) for net in nets) if args.compile else nets
    generator = torch.Generator(device).manual_seed(args.seed)  # batch sampling only
    return (nets, step_nets, make_optimizers(*nets, args), class_index(data.labels, data.num_classes),
            generator, new_stream(len(data.labels), generator))


# ---------------------------------------------------------------------------------------------
# Run folder, logging and checkpoints.

def prepare_run_folder(args):
    """Create --out; refuse to mix with an existing run unless --resume or --overwrite."""
    run_files = ["config.json", "checkpoint.pt", "log.csv"]
    existing = [f for f in os.listdir(args.out) if f in run_files or f.startswith("events.")] if os.path.isdir(args.out) else []
    if existing and not args.resume:
        if not args.overwrite:
            raise CLIError(f"{args.out} already holds a run ({', '.join(sorted(existing))}); "
                           f"pass --resume {args.out} to continue it, --overwrite to replace it, or another --out")
        print(f"--overwrite: removing {', '.join(sorted(existing))} from {args.out}")
        for name in existing:
            os.remove(os.path.join(args.out, name))
    os.makedirs(args.out, exist_ok=True)


def open_log(path, resume_step):
    """log.csv for appending; on resume, rows past the checkpoint's step are dropped (they will be redone)."""
    header = ["epoch", "iteration", "step"] + LOG_COLUMNS
    rows = []
    if resume_step is not None and os.path.exists(path):
        with open(path, newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if int(row["step"]) <= resume_step]
    handle = open(path, "w", newline="")
    writer = csv.DictWriter(handle, fieldnames=header)
    writer.writeheader()
    writer.writerows(rows)
    return handle, writer


def open_tensorboard(run_dir, resume_step):
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        print("tensorboardX is not installed: no TensorBoard events (pip install tensorboardX)")
        return None
    return SummaryWriter(run_dir, purge_step=resume_step)


def checkpoint_state(nets, optimizers, epoch, step, config, stream, generator):
    encoder, decoder, discriminator = nets
    return {"config": config, "epoch": epoch, "step": step,
            "encoder": encoder.state_dict(), "decoder": decoder.state_dict(),
            "discriminator": discriminator.state_dict(),
            "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
            "stream": {"order": stream["order"].cpu(), "position": stream["position"]},
            "rng": rng_state(generator)}


def restore(resume, nets, optimizers, generator, data, args):
    """Load a full checkpoint into the fresh nets and optimizers; returns (step, stream)."""
    if "optimizers" not in resume:
        raise CLIError("this checkpoint holds networks only (a shipped checkpoint): it can be evaluated, not resumed")
    for net, name in zip(nets, ["encoder", "decoder", "discriminator"]):
        net.load_state_dict(resume[name])  # load_state_dict copies onto the nets' device
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(resume["optimizers"][name])
        for group in optimizer.param_groups:  # the saved groups hold the old values: typed flags win
            group.update(lr=args.lr, betas=(args.beta1, args.beta2))
    set_rng_state(resume["rng"], generator)
    stream = {"size": len(data.labels), "order": resume["stream"]["order"].to(data.images.device),
              "position": resume["stream"]["position"]}
    return resume["step"], stream


def write_log(pending, log_writer, tensorboard):
    """Write buffered (epoch, iteration, step, row) entries; returns the last row as a dict."""
    if not pending:
        return None
    values = torch.stack([row for *_, row in pending]).tolist()  # the one host sync per --log-every
    for (epoch, iteration, step, _), row in zip(pending, values):
        log_writer.writerow({"epoch": epoch, "iteration": iteration, "step": step, **dict(zip(LOG_COLUMNS, row))})
        if tensorboard:
            for name, value in zip(LOG_COLUMNS, row):
                group = "losses" if name in ("reconstruction", "kl", "generator", "discriminator") else "charts"
                tensorboard.add_scalar(f"{group}/{name}", value, step)
    pending.clear()
    return dict(zip(LOG_COLUMNS, values[-1]))


def default_run_folder(args):
    if args.resume:  # the run continues where it was
        return args.resume if os.path.isdir(args.resume) else os.path.dirname(os.path.abspath(args.resume))
    return os.path.join("runs", f"{args.dataset}__{args.seed}__{time.strftime('%Y%m%d-%H%M%S')}")


def main(argv=None):
    args, resume = parse_args(argv)

    # -- setup: device, seed, data, models, run folder ---------------------------------------
    device = resolve_device(args.device)
    args.device_type = device
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
    seed_everything(args.seed)
    args.out = args.out or default_run_folder(args)
    started = time.time()
    data = load_dataset(args, args.split).to(device)
    test = load_dataset(args, "test").to(device)
    iterations_per_epoch = len(data.labels) // args.batch_size  # the published epoch: floor(N / B)
    if iterations_per_epoch == 0:
        raise CLIError(f"--batch-size {args.batch_size} is larger than the {len(data.labels)} training images")
    total_iterations = min(args.epochs * iterations_per_epoch, args.max_iterations or sys.maxsize)
    nets, step_nets, optimizers, index, generator, stream = setup_training(data, args)
    step = 0
    if resume:
        step, stream = restore(resume, nets, optimizers, generator, data, args)
    prepare_run_folder(args)  # only once data and checkpoint are in: a failed start leaves nothing behind

    config = {k: v for k, v in vars(args).items() if k not in ("resume", "overwrite", "debug", "device_type")}
    config.update(image_shape=list(data.image_shape), num_classes=data.num_classes, class_names=data.class_names,
                  versions={"python": sys.version.split()[0], "torch": str(torch.__version__),
                            "torchvision": torchvision.__version__, "numpy": np.__version__},
                  git_commit=git_commit())
    with open(os.path.join(args.out, "config.json"), "w") as handle:
        json.dump(config, handle, indent=2)
    log_handle, log_writer = open_log(os.path.join(args.out, "log.csv"), step if resume else None)
    tensorboard = open_tensorboard(args.out, step if resume else None)
    # fixed test images for the per-epoch swap grid: a random one of each of the first 10 classes
    test_labels = test.labels.cpu()
    grid_sources = to_float(test.images[one_of_each(test_labels, torch.unique(test_labels)[:10],
                                                    torch.Generator().manual_seed(args.seed)).to(device)])
    print(f"{args.dataset}: {len(data.labels)} training images {data.image_shape}, {data.num_classes} classes; "
          f"{iterations_per_epoch} iterations per epoch of batch {args.batch_size}; device {device}; "
          f"run folder {args.out}; loaded in {time.time() - started:.1f} s")
    if resume:
        print(f"resuming from step {step} (epoch {step // iterations_per_epoch}) of {args.resume}")

    stop_signal = []  # set by SIGINT / SIGTERM, acted on between iterations
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop_signal.append(signal.Signals(signum).name))

    def save(epoch):
        save_atomically(checkpoint_state(nets, optimizers, epoch, step, config, stream, generator),
                        os.path.join(args.out, "checkpoint.pt"))

    # -- the loop: draw, step, log, stop check; per epoch: summary, grid, save -------------------
    pending = []  # (epoch, iteration, step, row) not yet written: rows stay on the device until then
    try:
        while step < total_iterations:
            epoch, first = divmod(step, iterations_per_epoch)
            epoch_start, epoch_first_step = time.time(), step
            epoch_sum = torch.zeros(len(LOG_COLUMNS), device=device)
            progress = tqdm(range(first, min(iterations_per_epoch, first + total_iterations - step)),
                            desc=f"epoch {epoch + 1}/{args.epochs}", leave=False, dynamic_ncols=True, disable=None)
            for iteration in progress:
                indices, images = draw_iteration(data, stream, index, generator, args)
                try:
                    row = train_iteration(step_nets, optimizers, images, args)
                except NonFiniteLoss as error:
                    write_log(pending, log_writer, tensorboard)
                    bad_batch = os.path.join(args.out, f"nonfinite_step{step}.json")
                    with open(bad_batch, "w") as handle:
                        json.dump({"step": step, "loss": str(error), "batch_indices": indices.tolist()}, handle)
                    raise CLIError(f"non-finite {error} loss at step {step} (epoch {epoch + 1}, iteration {iteration}); "
                                   f"stopped, the last good checkpoint is kept; batch indices in {bad_batch}; "
                                   f"--nan-policy skip skips such updates instead") from None
                step += 1
                epoch_sum += row
                pending.append((epoch, iteration, step, row))
                if step % args.log_every == 0:
                    latest = write_log(pending, log_writer, tensorboard)
                    progress.set_postfix(rec=f"{latest['reconstruction']:.4f}", gen=f"{latest['generator']:.3f}",
                                         disc=f"{latest['discriminator']:.3f}", acc=f"{latest['disc_accuracy']:.2f}")
                if stop_signal:
                    write_log(pending, log_writer, tensorboard)
                    save(epoch)
                    print(f"\n{stop_signal[0]}: saved step {step} to {args.out}/checkpoint.pt; "
                          f"resume with: python train.py --resume {args.out}")
                    return
            progress.close()
            write_log(pending, log_writer, tensorboard)
            log_handle.flush()

            done, seconds = step - epoch_first_step, time.time() - epoch_start
            mean = dict(zip(LOG_COLUMNS, (epoch_sum / done).tolist()))
            print(f"epoch {epoch + 1}/{args.epochs} step {step}: reconstruction {mean['reconstruction']:.4f} "
                  f"kl {mean['kl']:.4f} generator {mean['generator']:.3f} discriminator {mean['discriminator']:.3f} "
                  f"disc accuracy {mean['disc_accuracy']:.3f} (stepped {mean['disc_stepped']:.0%}) | "
                  f"{seconds:.1f} s, {seconds / done:.3f} s/iteration", flush=True)
            grid = swap_grid(nets[0], nets[1], grid_sources, grid_sources)
            save_image(grid, os.path.join(args.out, "swap_grid.png"))
            if tensorboard:
                tensorboard.add_scalar("charts/s_per_iteration", seconds / done, step)
                tensorboard.add_image("swap_grid", grid, step)
            finished_epoch = step % iterations_per_epoch == 0
            if step >= total_iterations or (finished_epoch and (epoch + 1) % args.save_every == 0):
                save(epoch + 1 if finished_epoch else epoch)
    finally:
        log_handle.close()
        if tensorboard:
            tensorboard.close()
    print(f"done: {step} iterations; run folder {args.out} (checkpoint.pt, log.csv, swap_grid.png, TensorBoard events)")


if __name__ == "__main__":
    run_cli(main)
