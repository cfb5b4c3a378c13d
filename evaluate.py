"""Evaluate a trained model: latent classifiers, swap accuracy, swap grid, t-SNE and loss curves.

    python evaluate.py --checkpoint runs/mnist__0__20260101-120000             # a run folder
    python evaluate.py --checkpoint checkpoints/mnist_z16_s16.pt --data-root DIR --protocol published
    python evaluate.py --checkpoint RUN --eval-split val                        # choose on val, not test
    python evaluate.py --checkpoint RUN --probe-iterations 5000 --skip-tsne     # quicker

Model, dataset and code sizes come from the checkpoint's config; --data-root and --cache-dir
override its paths. The protocol (every setting also goes into results.json; the measures are in probes.py):
- codes: the encoder in eval mode (per-image instance norm) encodes the probes' train and eval images;
- probes: networks.Classifier trained with Adam on z sampled (mu + sigma * eps, a fresh sample each
  time an image is used, also when measuring accuracy: the published numbers are "after
  reparameterization"; --z-sample fixed draws one per image instead), on z mean (mu), and on s.
  --protocol default: 20,000 steps at lr 1e-4, batch 128; --protocol published: 100,000 steps, the
  published numbers' probe; any --probe-* flag overrides its preset;
- splits: probes train on the training split the model was trained on and are scored on
  --eval-split: test (report) or val (MNIST trained with --val-size, Sprites: choose recipes and
  checkpoints there). LINE-MOD: the real test images. Sprites: class = identity, so the train-split
  characters, each character's frames split 80/20 (seed 0); its val scores on 10% of each character
  carved out of the 80% (probes train on the other 70%), never on the test frames, and draws the
  grid from the val characters;
- style probes, where the dataset has style labels (Sprites action and viewpoint; LINE-MOD pose in
  8 k-means view clusters): the same three probes predict the style; z should, s should not;
- swap accuracy: a small CNN trained on the probes' train images labels Dec(mu_i, s_j) for random
  eval pairs (i, j) of different classes: the share labelled j's class (s sets the class) and the
  share labelled i's class (z leaks it); and the style they keep: the correlation of ink, slant and
  width (image moments, each standardized within its class) between x_i and Dec(mu_i, s_j), beside
  the same for Dec(mu_i, s_i), the decoder's own ceiling;
- chance: the accuracy of always answering the probe-train split's most frequent class.
Writes results.json, the swap grid <dataset>_<zdim>.png, tsne_z.png and loss_curves.png to --out
(default: the run folder) and prints the table; --images-dir also copies the pictures there.
"""
import argparse
import csv
import dataclasses
import json
import os
import shutil
import time

import numpy as np
import torch
from torchvision.utils import save_image

from data_loader import SPRITES_ACTIONS, Dataset, grid_sources, load_dataset, split_per_class, to_float
from networks import load_networks
from probes import CODES, JUDGE_BATCH, JUDGE_LR, chance, encode, run_probes, swap_accuracy, train_judge
from utils import (CLIError, HelpFormatter, check_device, checked, checkpoint_path, load_checkpoint,
                   non_negative_int, positive_float, positive_int, resolve_device, run_cli, sample_style,
                   seed_everything, swap_grid)

# Part of the protocol, not of --seed: the Sprites frame split and the LINE-MOD view bins.
FIXED_SEED = 0
WITHIN_CLASS_SPLIT = {"sprites": 0.2}  # dataset -> share of each class's images held out for the probes
WITHIN_CLASS_VAL = 0.125  # share of the rest scored under --eval-split val: 10% of each class
# The style factors probed: the loaders' other style labels are identity attributes (Sprites hair, ...)
# or bookkeeping (LINE-MOD set and file number). Float labels (pose quaternions) are binned into views.
STYLE_PROBES = {"sprites": ("action", "viewpoint"), "linemod": ("pose",)}
# The t-SNE of z is coloured by class, or by this style label where the classes are too many to tell
# apart (Sprites' 500 characters): z should cluster by it.
TSNE_COLOURS = {"sprites": ("action", SPRITES_ACTIONS)}
VIEW_BINS = 8
LOSS_PANELS = ["reconstruction", "kl", "generator", "discriminator", "disc_accuracy"]
# Probe presets. "published": the probe behind the published MNIST table (Adam, lr 1e-4, batch 128,
# 100,000 steps, on sampled z); "default": the same, 5x shorter.
PROTOCOLS = {"default": {"probe_iterations": 20000, "probe_lr": 1e-4, "probe_batch_size": 128, "z_sample": "fresh"},
             "published": {"probe_iterations": 100000, "probe_lr": 1e-4, "probe_batch_size": 128, "z_sample": "fresh"}}


def at_least_two(text):
    return checked(int(text), lambda value: value >= 2, "2 or more")


def at_least_ten(text):
    return checked(int(text), lambda value: value >= 10, "10 or more")


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    source = parser.add_argument_group("model and data")
    source.add_argument("--checkpoint", required=True, metavar="RUN_OR_CHECKPOINT",
                        help="run folder (its checkpoint.pt) or a .pt file written by train.py, full or networks only")
    source.add_argument("--data-root", default=None, help="dataset folder (default: the checkpoint's --data-root)")
    source.add_argument("--cache-dir", default=None,
                        help="decoded-image cache of Sprites/LINE-MOD/folder data (default: the checkpoint's)")
    source.add_argument("--log", default=None,
                        help="log.csv to plot (default: log.csv beside the checkpoint; skipped with a message when "
                             "there is none)")
    probes = parser.add_argument_group("latent classifiers (probes)")
    probes.add_argument("--eval-split", default="test", choices=["test", "val"],
                        help="split the probes are scored on and the swap pairs, grid and t-SNE drawn from: test to "
                             "report, val (Sprites, or MNIST trained with --val-size) to choose recipes and checkpoints")
    probes.add_argument("--protocol", default="default", choices=sorted(PROTOCOLS),
                        help="probe preset: default (20,000 Adam steps, lr 1e-4, batch 128, fresh z samples) or "
                             "published (100,000 steps: the probe of the published numbers)")
    probes.add_argument("--probe-iterations", type=positive_int, default=None,
                        help="Adam steps of each probe (default: the --protocol's)")
    probes.add_argument("--probe-lr", type=positive_float, default=None,
                        help="Adam learning rate of the probes (default: the --protocol's)")
    probes.add_argument("--z-sample", default=None, choices=["fresh", "fixed"],
                        help="z sampled: a fresh sample each time an image is used, or one sample per image drawn once"
                             " (default: the --protocol's, fresh)")
    probes.add_argument("--probe-batch-size", type=at_least_two, default=None,
                        help="codes per probe batch, 2 or more: the probe has batch norm (default: the --protocol's)")
    swap = parser.add_argument_group("swap accuracy")
    swap.add_argument("--swap-pairs", type=positive_int, default=10000,
                      help="random eval-split pairs (i, j) of different classes, decoded as Dec(z_i, s_j)")
    swap.add_argument("--judge-iterations", type=positive_int, default=1000,
                      help=f"Adam steps (batch {JUDGE_BATCH}, lr {JUDGE_LR}) of the CNN that labels the swapped images")
    swap.add_argument("--skip-swap", action="store_true", help="no swap accuracy (saves training the CNN)")
    pictures = parser.add_argument_group("pictures")
    pictures.add_argument("--tsne-images", type=at_least_ten, default=2000,
                          help="eval-split images in the t-SNE plot of z, 10 or more")
    pictures.add_argument("--skip-tsne", action="store_true", help="no t-SNE plot (the slowest picture)")
    output = parser.add_argument_group("output")
    output.add_argument("--out", default=None,
                        help="folder for results.json and the pictures (default: the run folder; runs/<name> for a "
                             "checkpoint file not named checkpoint.pt)")
    output.add_argument("--images-dir", default=None,
                        help="also copy the pictures here as <dataset>_<zdim>[_no_reparam][_tsne_z|_loss_curves].png "
                             "(the README's are in images/)")
    system = parser.add_argument_group("device and seed")
    system.add_argument("--seed", type=int, default=0,
                        help="seeds the probes, the CNN, the pairs, the grid sources and t-SNE")
    system.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto = cuda when available")
    system.add_argument("--threads", type=non_negative_int, default=1,
                        help="CPU threads of torch (0 = torch's default): the probes are too small to gain from more "
                             "threads, and lose a lot when the cores are shared with a training run")
    system.add_argument("--debug", action="store_true", help="show full tracebacks instead of one-line errors")
    return parser


def parse_args(argv=None):
    """Flags, with the probe settings the --protocol preset leaves to its own values filled in."""
    parser = build_parser()
    args = parser.parse_args(argv)
    preset = PROTOCOLS[args.protocol]
    args.protocol_overrides = sorted(name for name in preset if getattr(args, name) not in (None, preset[name]))
    for name, value in preset.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    check_device(parser, args.device)
    return args


def output_folder(args):
    if args.out:
        return args.out
    path = checkpoint_path(args.checkpoint)
    if os.path.basename(path) == "checkpoint.pt":
        return os.path.dirname(path) or "."
    return os.path.join("runs", os.path.splitext(os.path.basename(path))[0])  # a shipped checkpoint


def picture_stem(config):
    """images/<dataset>_<zdim>.png, as published; a --no-reparam or a class model must not overwrite its partner."""
    return (f"{config['dataset']}_{config['style_dim']}" + ("_class" if config.get("discriminator") == "class" else "")
            + ("_no_reparam" if config.get("no_reparam") else ""))


# ---------------------------------------------------------------------------------------------
# Model and data.

def load_data(config, args):
    """The training split the checkpoint was trained on and the --eval-split (path flags applied),
    with only the probed style labels, pose quaternions binned into views."""
    data_args = argparse.Namespace(**{"val_size": 0, **config, "data_root": args.data_root or config["data_root"],
                                      "cache_dir": args.cache_dir or config.get("cache_dir")})
    train, held_out = load_dataset(data_args, "train"), load_dataset(data_args, args.eval_split)
    trained_classes = config.get("class_names") or train.class_names[:config["num_classes"]]
    if (list(train.image_shape) != list(config["image_shape"]) or not set(train.class_names) <= set(trained_classes)
            or train.num_classes > config["num_classes"]):
        raise CLIError(f"the data in {data_args.data_root} has images {train.image_shape} and {train.num_classes} "
                       f"classes, but the checkpoint was trained on {tuple(config['image_shape'])} and "
                       f"{config['num_classes']}: pass the --data-root it was trained on")
    if train.num_classes < config["num_classes"]:  # a part of the training data, say a Sprites subset
        print(f"note: {data_args.data_root} holds {train.num_classes} of the {config['num_classes']} classes the "
              f"checkpoint was trained on: the probes and the swap judge read those only, an easier task than "
              f"the full evaluation's")
    names = [name for name in STYLE_PROBES.get(config["dataset"], ()) if name in train.style_labels]
    train, held_out = (dataclasses.replace(data, style_labels={name: data.style_labels[name] for name in names})
                       for data in (train, held_out))
    return bin_views(train, held_out)


def bin_views(train, test):
    """Float style labels (LINE-MOD pose quaternions, (N, 4)) -> VIEW_BINS view clusters, int64.

    k-means (fixed seed) is fit on the training split and assigns both splits. q and -q are the
    same rotation, so each quaternion is first flipped to a non-negative first component.
    """
    train_labels, test_labels = dict(train.style_labels), dict(test.style_labels)
    for name, values in train.style_labels.items():
        if values.is_floating_point():
            from sklearn.cluster import KMeans
            kmeans = KMeans(VIEW_BINS, random_state=FIXED_SEED, n_init=10).fit(same_hemisphere(values))
            train_labels[name] = torch.from_numpy(kmeans.labels_).long()
            test_labels[name] = torch.from_numpy(kmeans.predict(same_hemisphere(test.style_labels[name]))).long()
    return (dataclasses.replace(train, style_labels=train_labels),
            dataclasses.replace(test, style_labels=test_labels))


def same_hemisphere(quaternions):
    q = quaternions.double().numpy()
    return q * np.where(q[:, :1] < 0, -1.0, 1.0)


def probe_splits(train, held_out, dataset, eval_split):
    """The probes' (train, eval) datasets: the dataset's own splits, or for Sprites (class =
    identity, and test identities are unseen) each training class's images split at random; val
    is carved out of the probe-train share, so that choosing on it never reads the test images."""
    if dataset not in WITHIN_CLASS_SPLIT:
        return train, held_out
    kept, held = split_per_class(train.labels, WITHIN_CLASS_SPLIT[dataset], FIXED_SEED)
    if eval_split == "val":
        kept_train, kept_val = split_per_class(train.labels[kept], WITHIN_CLASS_VAL, FIXED_SEED)
        kept, held = kept[kept_train], kept[kept_val]
    return subset(train, kept), subset(train, held)


def subset(data, indices):
    return Dataset(data.images[indices], data.labels[indices], data.class_names,
                   {name: values[indices] for name, values in data.style_labels.items()})


# ---------------------------------------------------------------------------------------------
# Pictures.

def pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt
    return plt


def plot_tsne(mu, labels, class_names, count, seed, title, path):
    """2-D t-SNE of the z means (posterior means) of `count` random test images, coloured by their
    labels (class ids, or a style label), named by class_names."""
    from sklearn.manifold import TSNE
    plt = pyplot()
    chosen = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:count]
    points = TSNE(2, perplexity=min(30.0, (len(chosen) - 1) / 3), init="pca",
                  random_state=seed).fit_transform(mu.cpu()[chosen].double().numpy())
    labels = labels.cpu()[chosen].numpy()
    figure, axes = plt.subplots(figsize=(7, 7))
    colours = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    for label in np.unique(labels):
        where = labels == label
        axes.scatter(points[where, 0], points[where, 1], s=4, color=colours(label % colours.N),
                     label=class_names[label])
    if len(class_names) <= 20:  # beyond that a legend hides the plot
        axes.legend(markerscale=3, fontsize="small", loc="best")
    axes.set(xticks=[], yticks=[], title=f"{title}: t-SNE of z (mean), {len(chosen)} test images")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def read_log(path):
    """log.csv of train.py -> {column: float array}; refuses a file without the plotted columns."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    missing = [name for name in ["step"] + LOSS_PANELS if rows and name not in rows[0]]
    if missing:
        raise CLIError(f"{path} is not a train.py log.csv (no column {', '.join(missing)})")
    return {name: np.array([float(row[name]) for row in rows]) for name in ["step"] + LOSS_PANELS}


def smooth(values, window):
    """Trailing mean over `window` points (over fewer at the start)."""
    total = np.concatenate([[0.0], np.cumsum(values)])
    end = np.arange(1, len(values) + 1)
    start = np.maximum(end - window, 0)
    return (total[end] - total[start]) / (end - start)


def plot_losses(log, title, path):
    """One panel per logged loss against the step: the raw values faint, a trailing mean on top."""
    plt = pyplot()
    window = max(1, len(log["step"]) // 50)
    figure, axes = plt.subplots(1, len(LOSS_PANELS), figsize=(4 * len(LOSS_PANELS), 3.2))
    for panel, name in zip(axes, LOSS_PANELS):
        panel.plot(log["step"], log[name], color="C0", alpha=0.25, linewidth=0.8)
        panel.plot(log["step"], smooth(log[name], window), color="C0", linewidth=1.5)
        panel.set(title=name.replace("_", " "), xlabel="step")
    figure.suptitle(f"{title} (smoothed over {window} log rows)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


# ---------------------------------------------------------------------------------------------
# Report.

def percent(value):
    return f"{100 * value:.1f}%"


def markdown_table(header, rows):
    lines = [header, ["---"] * len(header)] + rows
    return "\n".join("| " + " | ".join(map(str, line)) + " |" for line in lines)


def format_report(results):
    """The published columns (z = z sampled), then z mean and chance; style probes and swap accuracy below."""
    probes, split = results["probes"], results["eval_split"]
    accuracies = ["train_acc", f"{split}_acc"]
    tables = [markdown_table(
        ["Dataset", "z dim", "s dim", "z train acc", f"z {split} acc", "s train acc", f"s {split} acc",
         "z mean train acc", f"z mean {split} acc", "chance"],
        [[results["dataset"], results["style_dim"], results["class_dim"],
          *(percent(probes[name][key]) for name in ["z_sampled", "s", "z_mean"] for key in accuracies),
          percent(results["chance"])]])]
    if probes["style"]:
        tables.append(markdown_table(
            ["Style label", "classes", "z train acc", f"z {split} acc", "z mean train acc", f"z mean {split} acc",
             "s train acc", f"s {split} acc", "chance"],
            [[label, style["num_classes"], *(percent(style[name][key]) for name in CODES for key in accuracies),
              percent(style["chance"])] for label, style in probes["style"].items()]))
    swap = results["swap"]
    if swap:
        kept = swap["style_kept"]
        tables.append(markdown_table(
            ["Swap pairs", f"judge {split} acc", "Dec(z_i, s_j) labelled j's class", "labelled i's class",
             *(f"x_i's {name} kept: swap (rebuilt)" for name in kept["swap"])],
            [[swap["pairs"], percent(swap["judge_acc"]), percent(swap["labelled_s_class"]),
              percent(swap["labelled_z_class"]),
              *(f"{kept['swap'][name]:.2f} ({kept['reconstruction'][name]:.2f})" for name in kept["swap"])]]))
    return "\n\n".join(tables)


def protocol(config, args, probe_train, probe_eval):
    dataset = config["dataset"]
    return {
        "name": args.protocol, "overridden": args.protocol_overrides,
        "split": (f"train-split classes, each class's images split {1 - WITHIN_CLASS_SPLIT[dataset]:.0%}/"
                  f"{WITHIN_CLASS_SPLIT[dataset]:.0%} (seed {FIXED_SEED})" if dataset in WITHIN_CLASS_SPLIT
                  else f"train split / {args.eval_split} split"),
        "probe_train_images": len(probe_train.labels), "probe_eval_images": len(probe_eval.labels),
        "encoder": "eval mode (per-image instance norm statistics)",
        "probe": "networks.Classifier: in-256-BN-LeakyReLU-256-BN-LeakyReLU-classes, cross-entropy, Adam",
        "probe_iterations": args.probe_iterations, "probe_lr": args.probe_lr,
        "probe_batch_size": args.probe_batch_size, "seed": args.seed,
        "z_sampled": ("z = mu (model trained with --no-reparam)" if config.get("no_reparam") else
                      "mu + sigma * eps, one eps per image drawn once" if args.z_sample == "fixed" else
                      "mu + sigma * eps, a fresh eps each time an image is used, in training and in accuracy"),
        "chance": f"{args.eval_split} accuracy of always answering the most frequent probe-train class",
        "style_labels": list(probe_train.style_labels),
        "view_bins": (f"pose quaternions (sign-fixed) in {VIEW_BINS} k-means clusters fit on the train split, "
                      f"seed {FIXED_SEED}" if "pose" in probe_train.style_labels else None),
        "swap": None if args.skip_swap else (
            f"CNN judge trained {args.judge_iterations} Adam steps (lr {JUDGE_LR}, batch {JUDGE_BATCH}) on the "
            f"probe-train images labels Dec(mu_i, s_j) for {args.swap_pairs} random {args.eval_split} pairs "
            f"of different classes"),
        "tsne_images": None if args.skip_tsne else min(args.tsne_images, len(probe_eval.labels)),
    }


# ---------------------------------------------------------------------------------------------
# The run's phases, in main's order.

def setup_device(args):
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    return device


def loss_log_path(args):
    """--log, else the log.csv beside the checkpoint (which may not exist)."""
    if args.log and not os.path.isfile(args.log):
        raise CLIError(f"no file at --log {args.log}")
    return args.log or os.path.join(os.path.dirname(checkpoint_path(args.checkpoint)), "log.csv")


def encode_codes(encoder, probe_train, probe_eval, config, args):
    """The codes of the probes' two splits; z_fixed holds one z sample per image under --z-sample fixed."""
    tick = time.time()
    train_codes = encode(encoder, probe_train.images, "encode probe train")
    eval_codes = encode(encoder, probe_eval.images, f"encode probe {args.eval_split}")
    if config.get("no_reparam"):  # the model's z is mu; its logvar head was never trained
        train_codes["logvar"] = eval_codes["logvar"] = None
    elif args.z_sample == "fixed":
        seed_everything(args.seed)
        for codes in (train_codes, eval_codes):
            codes["z_fixed"] = sample_style(codes["mu"], codes["logvar"], torch.randn_like(codes["mu"]))
    print(f"encoded in {time.time() - tick:.1f} s")
    return train_codes, eval_codes


def measure_swap(decoder, probe_train, probe_eval, eval_codes, args):
    tick = time.time()
    judge, judge_accuracy = train_judge(probe_train, probe_eval, args)
    swap = {"pairs": args.swap_pairs, "judge_acc": judge_accuracy,
            **swap_accuracy(decoder, judge, eval_codes, probe_eval.images, probe_eval.labels, args.swap_pairs,
                            args.seed)}
    print(f"swap accuracy (judge trained and applied) in {time.time() - tick:.1f} s")
    return swap


def draw_pictures(encoder, decoder, held_out, probe_eval, eval_codes, config, args, out, log_path):
    """Swap grid, t-SNE of z and loss curves into `out` (and --images-dir); returns the files written."""
    device, stem = eval_codes["mu"].device, picture_stem(config)
    title = f"{config['dataset']} z={config['style_dim']} s={config['class_dim']}" + (
        " no reparam" if config.get("no_reparam") else "")
    rows, columns = grid_sources(held_out, config["dataset"], args.seed, held_out.style_labels.get("pose"))
    grid = swap_grid(encoder, decoder, to_float(held_out.images[rows].to(device)),
                     to_float(held_out.images[columns].to(device)))
    pictures = {f"{stem}.png": f"{stem}.png"}  # file in `out` -> its name in --images-dir
    save_image(grid, os.path.join(out, f"{stem}.png"))
    if not args.skip_tsne:
        tick = time.time()
        print(f"t-SNE of {min(args.tsne_images, len(probe_eval.labels))} z means ...", flush=True)
        colour_label, colour_names = TSNE_COLOURS.get(config["dataset"], (None, probe_eval.class_names))
        colours = probe_eval.style_labels[colour_label] if colour_label else probe_eval.labels
        plot_tsne(eval_codes["mu"], colours, colour_names, args.tsne_images, args.seed,
                  title + (f", coloured by {colour_label}" if colour_label else ""), os.path.join(out, "tsne_z.png"))
        pictures["tsne_z.png"] = f"{stem}_tsne_z.png"
        print(f"t-SNE in {time.time() - tick:.1f} s")
    if os.path.isfile(log_path):
        plot_losses(read_log(log_path), title, os.path.join(out, "loss_curves.png"))
        pictures["loss_curves.png"] = f"{stem}_loss_curves.png"
    else:
        print(f"no log.csv beside the checkpoint ({log_path}): no loss curves (pass --log to plot one)")
    for name, copy_name in pictures.items():
        copy_picture(os.path.join(out, name), args.images_dir, copy_name)
    return list(pictures)


def copy_picture(path, images_dir, name):
    destination = os.path.join(images_dir, name) if images_dir else None
    # --images-dir may be the output folder itself, where the grid already has its README name
    if destination and os.path.abspath(destination) != os.path.abspath(path):
        os.makedirs(images_dir, exist_ok=True)
        shutil.copyfile(path, destination)


def main(argv=None):
    args = parse_args(argv)
    started = time.time()

    # -- setup: checkpoint, networks, data ------------------------------------------------------
    device = setup_device(args)
    state = load_checkpoint(args.checkpoint)
    config = state["config"]
    log_path = loss_log_path(args)
    encoder, decoder = load_networks(state, device)
    train, held_out = load_data(config, args)
    splits = probe_splits(train, held_out, config["dataset"], args.eval_split)
    probe_train, probe_eval = (data.to(device) for data in splits)
    out = output_folder(args)
    os.makedirs(out, exist_ok=True)
    print(f"{config['dataset']} z={config['style_dim']} s={config['class_dim']}, step {state.get('step', '?')}: "
          f"probes on {len(probe_train.labels)} train and {len(probe_eval.labels)} {args.eval_split} images "
          f"({args.protocol} protocol); device {device}; writing to {out}")

    # -- (1) codes, in eval mode ------------------------------------------------------------------
    train_codes, eval_codes = encode_codes(encoder, probe_train, probe_eval, config, args)

    # -- (2) probes -------------------------------------------------------------------------------
    tick = time.time()
    probes = run_probes(train_codes, eval_codes, probe_train, probe_eval, args)
    print(f"{len(CODES) * (1 + len(probes['style']))} probes of {args.probe_iterations} iterations "
          f"in {time.time() - tick:.1f} s")

    # -- (3) swap accuracy ------------------------------------------------------------------------
    swap = None if args.skip_swap else measure_swap(decoder, probe_train, probe_eval, eval_codes, args)

    # -- (4) pictures -----------------------------------------------------------------------------
    pictures = draw_pictures(encoder, decoder, held_out, probe_eval, eval_codes, config, args, out, log_path)

    # -- (5) results.json and the table -----------------------------------------------------------
    results = {"dataset": config["dataset"], "style_dim": config["style_dim"], "class_dim": config["class_dim"],
               "no_reparam": bool(config.get("no_reparam")), "checkpoint": checkpoint_path(args.checkpoint),
               "step": state.get("step"), "eval_split": args.eval_split,
               "chance": chance(probe_train.labels, probe_eval.labels),
               "protocol": protocol(config, args, probe_train, probe_eval), "probes": probes, "swap": swap,
               "seconds": round(time.time() - started, 1)}
    with open(os.path.join(out, "results.json"), "w") as handle:
        json.dump(results, handle, indent=2)
    print(format_report(results))
    print(f"done in {results['seconds']:.0f} s: {out}/results.json, {', '.join(pictures)}"
          + (f"; pictures copied to {args.images_dir}" if args.images_dir else ""))


if __name__ == "__main__":
    run_cli(main, build_parser())
