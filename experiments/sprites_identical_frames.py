"""How much of Sprites' identity a frame can show at all (EXPERIMENTS.md, "Sprites s over training,
on val", 2026-12-06): the training frames whose exact pixels another training character also has
(two characters that differ only in a part the pose hides), by action, the attributes in which such
characters differ, and the best accuracy any identity classifier can reach on the frames
evaluate.py's probes are scored on: a frame whose pixels k characters share is named right at most
1/k of the time.

    python experiments/sprites_identical_frames.py --data-root SPRITES_DIR
"""
import argparse
import collections
import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import train  # noqa: E402
from data_loader import SPRITES_ACTIONS, SPRITES_ATTRIBUTES, load_dataset  # noqa: E402
from evaluate import probe_splits  # noqa: E402
from utils import HelpFormatter, run_cli  # noqa: E402


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--data-root", required=True, help="folder holding sprites/")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks instead of one-line errors")
    return parser


def digests(images):
    return [hashlib.md5(image.numpy().tobytes()).hexdigest() for image in images]


def main():
    args = build_parser().parse_args()
    run_args, _ = train.parse_args(["--dataset", "sprites", "--data-root", args.data_root])
    data = load_dataset(run_args, "train")
    owners = collections.defaultdict(set)  # a frame's pixels -> the characters that have them
    frames = digests(data.images)
    for frame, character in zip(frames, data.labels.tolist()):
        owners[frame].add(character)
    shared = [len(owners[frame]) > 1 for frame in frames]
    print(f"{sum(shared)} of {len(frames)} training frames ({sum(shared) / len(frames):.1%}) have pixels "
          f"another of the {data.num_classes} characters also has; by action:")
    for index, action in enumerate(SPRITES_ACTIONS):
        in_action = [is_shared for is_shared, label in zip(shared, data.style_labels["action"].tolist())
                     if label == index]
        print(f"  {action}: {sum(in_action)} of {len(in_action)} ({sum(in_action) / len(in_action):.1%})")
    attributes = zip(*(data.style_labels[name].tolist() for name in SPRITES_ATTRIBUTES))
    character_attributes = dict(zip(data.labels.tolist(), attributes))
    sharing = [characters for characters in owners.values() if len(characters) > 1]
    differing = collections.Counter(
        " and ".join(name for index, name in enumerate(SPRITES_ATTRIBUTES)
                     if len({character_attributes[character][index] for character in characters}) > 1)
        for characters in sharing)
    print(f"{len(set().union(*sharing))} characters share frames; the sharers of a frame differ in: "
          + ", ".join(f"{names} ({count} distinct frames)" for names, count in differing.most_common()))
    for split in ("test", "val"):
        _, scored = probe_splits(data, None, "sprites", split)
        ceiling = sum(1 / len(owners[frame]) for frame in digests(scored.images)) / len(scored.labels)
        print(f"identity ceiling on the {len(scored.labels)} frames the probes score under --eval-split {split}: "
              f"{ceiling:.1%}")


if __name__ == "__main__":
    run_cli(main, build_parser())
