"""Write the shippable copy of a training checkpoint: config and the three networks, nothing else.

The optimizer moments, sampler stream and RNG states that make a checkpoint resumable are
two thirds of its size and no use to someone who only evaluates or fine-tunes the model.

    python export_checkpoint.py runs/NAME checkpoints/mnist_z16_s16.pt
    python evaluate.py --checkpoint checkpoints/mnist_z16_s16.pt --data-root DIR
"""
import argparse
import os

from utils import CLIError, HelpFormatter, load_checkpoint, run_cli, save_atomically

NETWORKS_ONLY = ("config", "epoch", "step", "encoder", "decoder", "discriminator")


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT",
                        help="run folder (its checkpoint.pt) or checkpoint file written by train.py")
    parser.add_argument("destination", help="the .pt file to write (its folder is created)")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks instead of one-line errors")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    state = load_checkpoint(args.checkpoint)
    missing = [key for key in NETWORKS_ONLY if key not in state]
    if missing:
        raise CLIError(f"{args.checkpoint} lacks {', '.join(missing)}: pass a checkpoint written by train.py")
    os.makedirs(os.path.dirname(args.destination) or ".", exist_ok=True)
    save_atomically({key: state[key] for key in NETWORKS_ONLY}, args.destination)
    config = state["config"]
    print(f"{args.destination}: {config['dataset']} z={config['style_dim']} s={config['class_dim']}, "
          f"step {state['step']}, {os.path.getsize(args.destination) / 1e6:.1f} MB")


if __name__ == "__main__":
    run_cli(main, build_parser())
