"""Train the model of Mathieu et al., "Disentangling factors of variation in deep
representations using adversarial training" (NIPS 2016, arXiv 1611.03383).

    python train.py --dataset mnist --data-root ./data --epochs 50          # GPU when there is one
    python train.py --dataset mnist --data-root ./data --epochs 1 --device cpu
    python train.py --dataset mnist --data-root ./data --discriminator class  # the authors' version
    python train.py --resume runs/mnist__0__20260101-120000 --epochs 100    # continue a run
    torchrun --nproc_per_node 4 train.py --out runs/NAME --dataset mnist     # 4 GPUs, the same updates

--discriminator pair (the published PyTorch code): one iteration = (1) autoencoder step,
(2) --generator-times generator steps, (3) --discriminator-times discriminator steps, each on
freshly drawn batches. --discriminator class (the authors' Torch7 code): (1) one generator step,
(2) one discriminator step. objective.py holds both. Every run writes config.json, checkpoint.pt,
log.csv and TensorBoard events to --out.
"""
import argparse
import csv
import json
import os
import signal
import sys
import time
from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist
import torchvision
from torchvision.utils import save_image
from tqdm import tqdm

from data_loader import DATASETS, class_index, grid_sources, load_dataset, new_stream, to_float
from networks import DISCRIMINATORS, build_models
from objective import OBJECTIVES, local_part, map_tensors, tensors_of
from utils import (CLIError, HelpFormatter, check_device, git_commit, join_process_group, largest_over_processes,
                   load_checkpoint, non_negative_float, non_negative_int, positive_float, positive_int,
                   rank_and_world, resolve_device, restarted_by_torchrun, rng_state, run_cli, save_atomically,
                   seed_everything, set_rng_state, swap_grid)

# How a flag behaves on --resume. "model": it defines the model or its data, so a resumed run must
# keep it. "command": it belongs to one command; config.json records it, --resume never restores it.
# Every other flag is restored from config.json unless typed again.
FLAG_CLASSES = {**dict.fromkeys(["dataset", "split", "val_size", "style_dim", "class_dim", "no_reparam",
                                 "batch_size", "discriminator"], "model"),
                **dict.fromkeys(["out", "resume", "overwrite", "debug", "max_iterations"], "command")}
# Flags whose default depends on --discriminator: the published settings for pair, the authors'
# code's for class. None: the flag has no meaning in that version, and typing it is an error.
MODE_DEFAULTS = {
    "batch_size": {"pair": 64, "class": 16},
    "lr": {"pair": 1e-4, "class": 1e-2},
    "kl_weight": {"pair": 1.0, "class": 0.1},
    "generator_times": {"pair": 2, "class": None},
    "discriminator_times": {"pair": 1, "class": None},
    "disc_gate": {"pair": 0.8, "class": None},
    "reconstruction_weight": {"pair": None, "class": 0.5},
    "swap_weight": {"pair": None, "class": 1.0},
    "adversarial_weight": {"pair": None, "class": 0.01},
    "real_target": {"pair": None, "class": 0.95},
}


def default_by_mode(name):
    """A flag's defaults for its help: "(default: 64 pair, 16 class)", or the one version's that has it."""
    defaults = {mode: value for mode, value in MODE_DEFAULTS[name].items() if value is not None}
    if len(defaults) == 1:
        return f"(default: {next(iter(defaults.values())):g})"
    return "(default: " + ", ".join(f"{value:g} {mode}" for mode, value in defaults.items()) + ")"


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
    model.add_argument("--discriminator", default="pair", choices=DISCRIMINATORS,
                       help="pair: judges whether two images share a class (the published PyTorch code); class: "
                            "judges one image with its class id real or fake (the authors' Torch7 code)")
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--batch-size", type=positive_int, default=None,
                       help="images per batch B (class: per group, 3B images per step) " + default_by_mode("batch_size"))
    optim.add_argument("--lr", type=positive_float, default=None,
                       help="Adam learning rate of every optimizer " + default_by_mode("lr"))
    optim.add_argument("--beta1", type=float, default=0.5, help="Adam beta1")
    optim.add_argument("--beta2", type=float, default=0.999, help="Adam beta2")
    optim.add_argument("--kl-weight", type=non_negative_float, default=None,
                       help="weight of the KL term, summed and divided by B*C*H*W (class: then times 6, as the "
                            "authors') " + default_by_mode("kl_weight"))
    optim.add_argument("--generator-times", type=positive_int, default=None,
                       help="pair: generator steps per iteration " + default_by_mode("generator_times"))
    optim.add_argument("--discriminator-times", type=positive_int, default=None,
                       help="pair: discriminator steps per iteration " + default_by_mode("discriminator_times"))
    optim.add_argument("--disc-gate", type=float, default=None,
                       help="pair: update the discriminator only while its accuracy is below this, in (0, 1] "
                            + default_by_mode("disc_gate"))
    optim.add_argument("--reconstruction-weight", type=non_negative_float, default=None,
                       help="class: weight of each group's reconstruction from its own codes (MSE with the pixels in "
                            "[-1, 1], as the authors': 4x the MSE in [0, 1]) " + default_by_mode("reconstruction_weight"))
    optim.add_argument("--swap-weight", type=non_negative_float, default=None,
                       help="class: weight of the same-class swaps Dec(z1, s2), Dec(z2, s1) against x1, x2 "
                            + default_by_mode("swap_weight"))
    optim.add_argument("--adversarial-weight", type=non_negative_float, default=None,
                       help="class: weight of the generator's adversarial loss " + default_by_mode("adversarial_weight"))
    optim.add_argument("--real-target", type=float, default=None,
                       help="class: the discriminator's target for real images, in (0, 1] " + default_by_mode("real_target"))
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
    system.add_argument("--compile", action="store_true", help="torch.compile the three networks")
    system.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                        help="bf16: the networks run under bfloat16 autocast (weights, Adam and the losses stay "
                             "float32); about 1.9x faster on a CPU with AMX, slower where bfloat16 is emulated")
    system.add_argument("--cuda-graphs", action="store_true",
                        help="CUDA: after a few eager iterations, capture one iteration as a CUDA graph and replay it "
                             "(one process, without --compile)")
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


def fill_mode_defaults(parser, args):
    """The --discriminator version's defaults for the flags left unset; a flag of the other version is an error."""
    for name, defaults in MODE_DEFAULTS.items():
        default = defaults[args.discriminator]
        if default is None and getattr(args, name) is not None:
            other = next(mode for mode, value in defaults.items() if value is not None)
            parser.error(f"--{name.replace('_', '-')} belongs to --discriminator {other}; "
                         f"drop it or pass --discriminator {other}")
        if getattr(args, name) is None:
            setattr(args, name, default)


def check_args(parser, args):
    """Reject flags that are wrong together before any work starts, the way argparse itself does."""
    for name in ("disc_gate", "real_target"):
        value = getattr(args, name)
        if value is not None and not 0 < value <= 1:
            parser.error(f"--{name.replace('_', '-')} must be in (0, 1], got {value}")
    if args.val_size and args.dataset != "mnist":
        parser.error("--val-size holds out MNIST training digits; Sprites has a val split of its own")
    check_device(parser, args.device)
    if args.cuda_graphs and (resolve_device(args.device) != "cuda" or args.compile or
                             dist.is_torchelastic_launched()):
        parser.error("--cuda-graphs replays the iteration on one CUDA device, eagerly compiled: it needs CUDA, "
                     "one process and no --compile; drop one of them")
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
        saved = {"discriminator": "pair", **resume["config"]}  # runs from before the flag are pair runs
        args = restore_flags(args, typed_flags(parser, argv, args), saved)
    fill_mode_defaults(parser, args)
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
# Setup, checkpoints and the run folder.

class Training(NamedTuple):
    nets: tuple          # encoder, decoder, discriminator
    step_nets: tuple     # the same, torch.compile'd under --compile: used for training steps only
    optimizers: dict     # pair: autoencoder, generator, discriminator; class: generator, discriminator
    index: dict          # class-sorted index of the labels, for partner draws
    sampler: torch.Generator  # batch indices, partners and shifts
    stream: dict         # position in the endless stream of reshuffled passes


def make_optimizers(encoder, decoder, discriminator, args):
    """One Adam per name of the objective: the last steps the discriminator, the others the encoder and
    decoder. Pair has two of those, as published: its autoencoder and generator steps keep separate
    moments. Fused Adam: one kernel per step, and a step it can skip on the device (objective.update);
    capturable under --cuda-graphs, so a CUDA graph can replay it."""
    adam = dict(lr=args.lr, betas=(args.beta1, args.beta2), fused=True, capturable=args.cuda_graphs)
    *coder_steps, _ = OBJECTIVES[args.discriminator].optimizers
    coder_params = list(encoder.parameters()) + list(decoder.parameters())
    return {**{name: torch.optim.Adam(coder_params, **adam) for name in coder_steps},
            "discriminator": torch.optim.Adam(discriminator.parameters(), **adam)}


def compiled(nets, device):
    if device.startswith("cuda"):
        # Inductor's channels-last layout makes cuDNN's transposed-convolution backward return strides
        # its own shape rules do not predict, and the first backward fails (pytorch/pytorch#171622);
        # without the layout change the strides agree.
        from torch._inductor import config
        config.layout_optimization = False
    return tuple(torch.compile(net) for net in nets)


def setup_training(data, args):
    """Networks, their optimizers and the batch sampler for `data`, already on its device."""
    device = data.images.device
    nets = tuple(net.to(device) for net in build_models(data.image_shape, args.style_dim, args.class_dim,
                                                        discriminator=args.discriminator,
                                                        num_classes=data.num_classes))
    if args.discriminator == "class" and dist.is_initialized() and device.type == "cuda":
        # the class discriminator's batch norm: statistics of the global batch, as one process has them
        nets = (*nets[:2], torch.nn.SyncBatchNorm.convert_sync_batchnorm(nets[2]))
    step_nets = compiled(nets, str(device)) if args.compile else nets
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
    """log.csv and TensorBoard. Rows stay on the device until read, every --log-every iterations and
    at the end of an epoch: training reads one tensor from the device per read, not one per
    iteration. With run_dir None (every process but the first under torchrun) it keeps and reads
    the rows, so every process sees the same non-finite losses, but writes nothing."""

    def __init__(self, run_dir, columns, resume_step):
        self.columns = columns
        self.pending = []  # (epoch, iteration, step, row, skips per optimizer, batch indices), on the device
        self.handle = self.tensorboard = None
        if run_dir is None:
            return
        self.path = os.path.join(run_dir, "log.csv")
        kept = []  # on resume, rows past the checkpoint's step are dropped: they will be redone
        if resume_step is not None and os.path.exists(self.path):
            with open(self.path, newline="") as handle:
                kept = [row for row in csv.DictReader(handle) if int(row["step"]) <= resume_step]
        self.handle = open(self.path, "w", newline="")
        self.csv = csv.DictWriter(self.handle, fieldnames=["epoch", "iteration", "step"] + columns)
        self.csv.writeheader()
        self.csv.writerows(kept)
        self.tensorboard = open_tensorboard(run_dir, resume_step)

    def append(self, epoch, iteration, step, row, skips, indices):
        self.pending.append((epoch, iteration, step, row, skips, indices))

    def read(self):
        """Write the pending rows and forget them; returns them as dicts, each with its iteration's
        "skips" (per optimizer) and "indices" (still on the device)."""
        if not self.pending:
            return []
        values = torch.cat([torch.stack([row for *_, row, _, _ in self.pending]),
                            torch.stack([skips for *_, skips, _ in self.pending])], 1).tolist()  # the one sync
        rows = []
        for (epoch, iteration, step, *_, indices), numbers in zip(self.pending, values):
            row = {"epoch": epoch, "iteration": iteration, "step": step, **dict(zip(self.columns, numbers))}
            self.write(row)
            rows.append({**row, "skips": numbers[len(self.columns):], "indices": indices})
        self.pending.clear()
        return rows

    def write(self, row):
        if not self.handle:
            return
        self.csv.writerow(row)
        for name in self.columns:
            group = "charts" if name in ("disc_accuracy", "disc_stepped", "skipped_updates") else "losses"
            self.add_scalar(f"{group}/{name}", row[name], row["step"])

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


def stop_at_non_finite(rows, optimizers, args):
    """Under --nan-policy stop: the first row whose iteration skipped an update for a non-finite loss
    stops the run with a one-line error naming the step and the loss, its batch written next to
    the run. The update itself never landed: it was skipped on the device."""
    bad = next((row for row in rows if any(row["skips"])), None)
    if bad is None or args.nan_policy != "stop":
        return
    loss = next(name for name, count in zip(optimizers, bad["skips"]) if count)
    step = bad["step"] - 1  # iterations done before it
    bad_batch = os.path.join(args.out, f"nonfinite_step{step}.json")
    if rank_and_world()[0] == 0:
        with open(bad_batch, "w") as handle:
            json.dump({"step": step, "loss": loss, "batch_indices": bad["indices"].tolist()}, handle)
    raise CLIError(f"non-finite {loss} loss at step {step} (epoch {bad['epoch'] + 1}, iteration {bad['iteration']}); "
                   f"stopped, the last good checkpoint is kept; batch indices in {bad_batch}; "
                   f"--nan-policy skip skips such updates instead")


def read_device_log(log, training, progress, args):
    """The one host read of the iterations since the last: write the log, update the progress bar,
    stop at a non-finite loss (--nan-policy stop)."""
    rows = log.read()
    stop_at_non_finite(rows, list(training.optimizers), args)
    if rows:
        progress.set_postfix({name: f"{rows[-1][name]:.4g}" for name in ("reconstruction", "generator",
                                                                          "discriminator", "disc_accuracy")})


def cuda_graph_replay(iterate, eager_iterations=3):
    """`iterate` (batches -> outputs) as a CUDA graph: after `eager_iterations` eager calls, run on a
    side stream as CUDA graphs require so that cuDNN picks its algorithms and Adam creates its state,
    one call is captured, and every later one copies its batches (drawn eagerly) into the graph's
    static inputs in one operation and replays it: one launch instead of hundreds."""
    graph, inputs, outputs, eager_left = None, None, None, eager_iterations

    def replay(batches):
        nonlocal graph, inputs, outputs, eager_left
        if eager_left:
            eager_left -= 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                eager_outputs = iterate(batches)
            torch.cuda.current_stream().wait_stream(side)
            return eager_outputs
        if graph is None:
            inputs, graph = map_tensors(torch.clone, batches), torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):  # records, runs nothing: the replay below runs it
                outputs = iterate(inputs)
        torch._foreach_copy_(tensors_of(inputs), tensors_of(batches))
        graph.replay()
        return tuple(output.clone() for output in outputs)  # the next replay overwrites them
    return replay


def iteration_runner(training, args):
    """batches -> (log row, skipped updates per optimizer): the objective's iteration on this
    process's share of the batches, eager or replayed as a CUDA graph (--cuda-graphs)."""
    iterate = OBJECTIVES[args.discriminator].iterate
    rank, world = rank_and_world()

    device_type = next(training.nets[0].parameters()).device.type

    def eager(batches):
        # no cast cache: one iteration holds several updates, and the cache would hand a later step
        # the bfloat16 copies of weights from before them
        with torch.autocast(device_type, torch.bfloat16, enabled=args.precision == "bf16", cache_enabled=False):
            return iterate(training.step_nets, training.optimizers, local_part(batches, rank, world), args)
    return cuda_graph_replay(eager) if args.cuda_graphs else eager


def train_epoch(epoch, iterations, step, data, training, run_iteration, log, stop, args):
    """Train `iterations` (a range of iteration numbers within `epoch`), or until a stop is requested.

    Returns the sum of the iterations' log rows and the step reached. Nothing in an iteration
    waits for the device; the host reads the log every --log-every iterations and at the end.
    """
    columns = OBJECTIVES[args.discriminator].columns
    epoch_sum = torch.zeros(len(columns), device=data.images.device)
    progress = tqdm(iterations, desc=f"epoch {epoch + 1}/{args.epochs}", leave=False, dynamic_ncols=True,
                    disable=None if rank_and_world()[0] == 0 else True)
    for iteration in progress:
        batches = OBJECTIVES[args.discriminator].draw(data, training.stream, training.index, training.sampler, args)
        row, skips = run_iteration(batches)
        step += 1
        epoch_sum += row
        log.append(epoch, iteration, step, row, skips, batches.indices)
        read_now = step % args.log_every == 0
        if read_now:
            read_device_log(log, training, progress, args)
        if read_now or not dist.is_initialized():  # under torchrun, agreeing on a stop is a sync: at reads only
            signalled = largest_over_processes(stop[0] if stop else 0)  # every process stops at the same step
            if signalled:
                stop[:] = [signal.Signals(int(signalled))]  # and exits as the signalled one does
                break
    read_device_log(log, training, progress, args)
    progress.close()
    return epoch_sum, step


def end_epoch(epoch, epoch_sum, done, seconds, step, training, grid_images, log, args):
    """Print the epoch's mean losses, draw the swap grid of fixed test images."""
    mean = dict(zip(OBJECTIVES[args.discriminator].columns, (epoch_sum / done).tolist()))
    stepped = f" (stepped {mean['disc_stepped']:.0%})" if "disc_stepped" in mean else ""
    swap = f" swap {mean['swap_reconstruction']:.4f}" if "swap_reconstruction" in mean else ""
    print(f"epoch {epoch + 1}/{args.epochs} step {step}: reconstruction {mean['reconstruction']:.4f}{swap} "
          f"kl {mean['kl']:.4f} generator {mean['generator']:.3f} discriminator {mean['discriminator']:.3f} "
          f"disc accuracy {mean['disc_accuracy']:.3f}{stepped} | "
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
    log = RunLog(args.out if writer else None, OBJECTIVES[args.discriminator].columns, step if resume else None)
    run_iteration = iteration_runner(training, args)
    report(f"{per_epoch} iterations per epoch of batch {args.batch_size}, {total_iterations} in all; device "
           f"{device}; run folder {args.out}" + (f"; resuming from step {step} of {args.resume}" if resume else ""))
    if args.precision == "bf16" and device == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        report("note: this CPU has no native bfloat16 (AVX512-BF16 or AMX): --precision bf16 will be slower "
               "than fp32 here")
    if args.discriminator == "class" and dist.is_initialized() and not str(device).startswith("cuda"):
        report("note: on the CPU (gloo) the class discriminator's batch norm uses each process's share of the "
               "batch; CUDA (NCCL) synchronizes it across processes")
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
            epoch_sum, step = train_epoch(epoch, iterations, step, data, training, run_iteration, log, stop, args)
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
