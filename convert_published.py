"""Load the published implementation's MNIST checkpoint into our networks, to evaluate it
with the same probes, data and judge as ours.

    python convert_published.py PUBLISHED_DIR checkpoints/published_mnist.pt
    python evaluate.py --checkpoint checkpoints/published_mnist.pt --data-root DIR --protocol published

PUBLISHED_DIR holds `encoder`, `decoder` and `discriminator` from the checkpoints/ folder of
ananyahjha93/disentangling-factors-of-variation-using-adversarial-training (z = s = 16).
Its layers are ours under other names. Two things differ, and the converted file says which:
- its instance norm tracks running statistics, which its eval mode uses; ours normalizes every
  image by its own statistics in both modes, so the running statistics are dropped;
- its decoder grows 2 -> 6 -> 14 -> 28 and crops, ours 2 -> 6 -> 13 -> 28: the converted model
  keeps the published geometry (config "decoder_geometry": "published"), so its swapped images
  are the ones its own decoder draws.
"""
import argparse
import os
import re

import torch

from networks import build_models
from utils import CLIError, HelpFormatter, first_line, run_cli, save_atomically

# published name pattern -> ours; the convs sit at every third place of our Sequentials
# (conv, instance norm, activation)
RENAMES = {
    "encoder": [(r"conv_model\.convolution_(\d)\.", "features.{}."), (r"class_output\.", "class_code.")],
    "decoder": [(r"deconv_model\.deconvolution_(\d)\.", "deconv.{}.")],
    "discriminator": [(r"conv_model\.convolution_(\d)\.", "features.{}."), (r"fully_connected_model\.", "")],
}
SHAPE, STYLE_DIM, CLASS_DIM = (1, 28, 28), 16, 16


def our_name(name, renames):
    for pattern, replacement in renames:
        match = re.match(pattern, name)
        if match:
            place = [str(3 * (int(level) - 1)) for level in match.groups()]
            return replacement.format(*place) + name[match.end():]
    return name


def convert(published_dir):
    """{network name: our state dict} of the published files, checked by loading them strictly."""
    nets = dict(zip(RENAMES, build_models(SHAPE, STYLE_DIM, CLASS_DIM, decoder_geometry="published")))
    converted = {}
    for name, net in nets.items():
        path = os.path.join(published_dir, name)
        try:
            published = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError) as error:
            raise CLIError(f"cannot read {path} ({first_line(error)}): pass the folder holding the published "
                           f"encoder, decoder and discriminator files") from error
        state = {our_name(key, RENAMES[name]): value for key, value in published.items()
                 if not key.endswith(("running_mean", "running_var", "num_batches_tracked"))}
        try:
            net.load_state_dict(state)
        except RuntimeError as error:
            raise CLIError(f"{path} is not the published MNIST z = s = 16 {name}: {first_line(error)}") from error
        converted[name] = net.state_dict()
    return converted


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("published_dir", help="folder holding the published encoder, decoder and discriminator")
    parser.add_argument("destination", help="the .pt file to write, networks only (its folder is created)")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks instead of one-line errors")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    networks = convert(args.published_dir)
    config = {"dataset": "mnist", "data_root": "./data", "val_size": 0, "style_dim": STYLE_DIM,
              "class_dim": CLASS_DIM, "no_reparam": False, "image_shape": list(SHAPE), "num_classes": 10,
              "class_names": [str(digit) for digit in range(10)], "decoder_geometry": "published",
              "source": "published implementation (ananyahjha93), converted by convert_published.py; "
                        "instance norm running statistics dropped"}
    os.makedirs(os.path.dirname(args.destination) or ".", exist_ok=True)
    save_atomically({"config": config, "epoch": None, "step": None, **networks}, args.destination)
    print(f"{args.destination}: the published MNIST model in our networks (decoder geometry 2-6-14-28)")


if __name__ == "__main__":
    run_cli(main, build_parser())
