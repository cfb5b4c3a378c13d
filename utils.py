"""Small shared pieces: user-facing errors, seeding and RNG state, the KL term,
atomic checkpoints, and the swap grid."""
import argparse
import os
import random
import subprocess
import sys

import numpy as np
import torch
import torch.distributed as dist


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help shows the script's docstring as written and every flag's default; a flag whose default
    is None (worked out at run time) says in its own help what it stands for."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


class CLIError(Exception):
    """A problem the user can fix; printed as one line, without a traceback."""


def run_cli(main, parser):
    """Run main(); a CLIError or a failed write becomes one 'error:' line and exit code 1.

    --debug (read with the script's own parser) shows the full traceback instead.
    """
    debug = parser.parse_known_args()[0].debug
    try:
        main()
    except (CLIError, OSError) as error:
        if debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


# Flag types: argparse turns their ValueErrors and ArgumentTypeErrors into its own one-line errors.

def positive_int(text):
    return checked(int(text), lambda value: value > 0, "positive")


def non_negative_int(text):
    return checked(int(text), lambda value: value >= 0, "0 or more")


def positive_float(text):
    return checked(float(text), lambda value: value > 0, "positive")


def non_negative_float(text):
    return checked(float(text), lambda value: value >= 0, "0 or more")


def checked(value, test, wanted):
    if not test(value):
        raise argparse.ArgumentTypeError(f"must be {wanted}, got {value}")
    return value


def check_device(parser, device):
    if device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda was asked for but this torch sees no CUDA device; use --device cpu")


def resolve_device(device):
    """--device auto|cpu|cuda -> cpu or cuda."""
    return ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device


# ---------------------------------------------------------------------------------------------
# Several processes under torchrun: one per device, each taking an equal share of every batch.
# Every process draws the same global batches (same seeds) and keeps its rows; gradients, logged
# losses and every decision (gate, non-finite loss, stop) are averaged or agreed over processes.

def join_process_group(device):
    """Join torchrun's process group (nccl on CUDA, gloo on the CPU); returns this process's device."""
    if device == "cuda":
        local_rank = int(os.environ["LOCAL_RANK"])
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    # torchrun's store outlives a restart after a failure: a prefix per attempt keeps the new
    # processes from reading the addresses of the dead ones
    store, rank, world_size = next(dist.rendezvous("env://"))
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", rank=rank, world_size=world_size,
                            store=dist.PrefixStore(f"attempt_{attempt}/", store))
    return device


def rank_and_world():
    """(this process's rank, number of processes): (0, 1) without torchrun."""
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def restarted_by_torchrun():
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0)) > 0


def global_mean(*tensors):
    """The mean of each scalar tensor over the processes, in one all-reduce; the tensors themselves
    in a single process."""
    if not dist.is_initialized():
        return tensors
    values = torch.stack([tensor.detach().float() for tensor in tensors])
    dist.all_reduce(values)
    return tuple(values / dist.get_world_size())


def average_gradients(params):
    """Replace each gradient by its mean over the processes: one coalesced all-reduce. The mean of
    per-process means over equal shares is the gradient of the global batch's mean."""
    if not dist.is_initialized():
        return
    grads = [param.grad for param in params if param.grad is not None]
    flat = torch.cat([grad.flatten() for grad in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    for grad, part in zip(grads, flat.split([grad.numel() for grad in grads])):
        grad.copy_(part.view_as(grad))


def largest_over_processes(number):
    """The largest of `number` over all processes (the number itself in a single process)."""
    if not dist.is_initialized():
        return number
    value = torch.tensor(float(number), device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return value.item()


# ---------------------------------------------------------------------------------------------
# Seeding and RNG state (restored on resume, so a resumed run draws the same numbers).

def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def rng_state(sampler):
    # Plain types and tensors only, so checkpoints load with weights_only=True.
    numpy_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
                  "position": numpy_state[2], "has_gauss": numpy_state[3], "gauss": numpy_state[4]},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "sampler": sampler.get_state(),
    }


def set_rng_state(state, sampler):
    random.setstate(to_tuples(state["python"]))
    numpy = state["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["position"],
                         numpy["has_gauss"], numpy["gauss"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    sampler.set_state(state["sampler"])


def to_tuples(value):
    """random.setstate wants the nested tuples that a checkpoint may hand back as lists."""
    return tuple(to_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


# ---------------------------------------------------------------------------------------------
# The style code z.

def sample_style(mu, logvar, noise):
    """z = mu + sigma * noise, noise ~ N(0, I): the reparameterization trick."""
    return mu + torch.exp(0.5 * logvar) * noise


def kl_divergence(mu, logvar, image_numel):
    """KL(N(mu, sigma) || N(0, I)) summed, divided by B*C*H*W (the published normalization)."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / (mu.shape[0] * image_numel)


# ---------------------------------------------------------------------------------------------
# Checkpoints: tensors and plain types only, written atomically.

def save_atomically(state, path):
    """torch.save to a temporary file in the same folder, fsync, then rename over `path`.

    A crash at any moment leaves either the old file or the new one. A failed write (a
    full disk) removes the partial file and raises a CLIError, leaving the old one intact.
    """
    temporary = f"{path}.tmp{os.getpid()}"
    try:
        with open(temporary, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        if os.path.exists(temporary):
            os.remove(temporary)
        if isinstance(error, (OSError, RuntimeError)):  # torch.save reports a full disk as RuntimeError
            raise CLIError(f"could not write {path} ({first_line(error)}): free disk space or choose "
                           f"another folder; the previous {os.path.basename(path)} is intact") from error
        raise


def first_line(error):
    """An exception's message cut to one line, for one-line errors."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def checkpoint_path(run_or_checkpoint):
    """A run folder means its checkpoint.pt; anything else is taken as the file itself."""
    if os.path.isdir(run_or_checkpoint):
        return os.path.join(run_or_checkpoint, "checkpoint.pt")
    return run_or_checkpoint


def why_unreadable(path, error):
    """What a failed weights_only torch.load means, in the user's terms."""
    if "Weights only load failed" in str(error):
        return "it holds pickled Python objects, which could run code when loaded, so it is refused"
    if os.path.getsize(path) == 0:
        return "the file is empty"
    if "central directory" in str(error) or isinstance(error, EOFError):
        return "the file is truncated (an interrupted copy or download?)"
    return f"not a torch checkpoint ({type(error).__name__}: {first_line(error)[:80]})"


def load_checkpoint(run_or_checkpoint, device="cpu"):
    """Load a checkpoint with weights_only=True: a file that would run code is refused."""
    path = checkpoint_path(run_or_checkpoint)
    if not os.path.isfile(path):
        raise CLIError(f"no checkpoint at {path}: pass a run folder holding checkpoint.pt "
                       f"or a .pt file written by train.py")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:
        raise CLIError(f"cannot read checkpoint {path}: {why_unreadable(path, error)}; "
                       f"pass a checkpoint written by train.py") from error
    if not isinstance(state, dict) or not {"config", "encoder", "decoder"} <= state.keys():
        raise CLIError(f"{path} is a torch file but not a train.py checkpoint "
                       f"(expected keys config, encoder, decoder)")
    return state


# ---------------------------------------------------------------------------------------------
# Pictures.

@torch.no_grad()
def swap_grid(encoder, decoder, style_images, class_images, separator=2):
    """Cell (i, j) = Dec(z of style image i, s of class image j), in eval mode.

    Returns one (C, H', W') image: the first row holds the class sources, the first
    column the style sources, the top-left cell is empty; cells are split by thin white lines.
    The style code is the posterior mean: pictures should not depend on a noise draw.
    """
    was_training = encoder.training, decoder.training
    encoder.eval(), decoder.eval()
    rows, cols = len(style_images), len(class_images)
    style, _, _ = encoder(style_images)
    _, _, class_code = encoder(class_images)
    cells = decoder(style.repeat_interleave(cols, 0), class_code.repeat(rows, 1))  # row-major (i, j)
    encoder.train(was_training[0]), decoder.train(was_training[1])
    channels, height, width = style_images.shape[1:]
    table = torch.zeros(rows + 1, cols + 1, channels, height, width, device=cells.device)
    table[0, 1:] = class_images
    table[1:, 0] = style_images
    table[1:, 1:] = cells.view(rows, cols, channels, height, width).float()
    return tile(table, separator)


def tile(table, separator):
    """(rows, cols, C, H, W) -> (C, rows*(H+sep)-sep, cols*(W+sep)-sep) with white separators."""
    rows, cols, channels, height, width = table.shape
    padded = torch.ones(rows, cols, channels, height + separator, width + separator, device=table.device)
    padded[..., :height, :width] = table
    image = padded.permute(2, 0, 3, 1, 4).reshape(channels, rows * (height + separator), cols * (width + separator))
    return image[:, :-separator, :-separator]


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
