"""The three choices of the authors' Torch7 code that --discriminator class took last (EXPERIMENTS.md,
2026-12-06: "which differences matter"), each put back alone into the class version as it was
before them, so that a short run of each can be set beside the same run without any.

    python experiments/class_differences.py DIFFERENCE TRAIN FLAGS...
    python experiments/class_differences.py uniform_x3 --dataset mnist --data-root DIR --val-size 5000 \\
        --discriminator class --lr 1e-3 --epochs 2 --seed 0 --out RUNS/diff_uniform_x3_s0

DIFFERENCE is one of:
- none: none of the three (the baseline): x3 from the stream of passes, classes at their data
  frequency; the discriminator's batch-norm scales start at 1, PyTorch's; it pads 28 -> 32 with 0,
  the background;
- uniform_x3: x3 drawn as theirs is, a class uniformly, then an image of it;
- bn_uniform: the batch-norm scales start uniform in [0, 1], Torch7's default;
- grey_padding: the padding is mid-grey, their 0 in [-1, 1].
The runs of that entry were made at commit 36d30fd, where `none` was train.py's own class version
and no batch-norm scale was drawn at construction; now every variant draws them (and sets them to
1 where not bn_uniform), so the runs repeat in distribution, not bit for bit. The run folder does
not record the difference: name it in --out, and resume with the same one.
"""
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import networks  # noqa: E402
import objective  # noqa: E402
import train  # noqa: E402
from data_loader import draw_indices, draw_partners  # noqa: E402
from objective import class_iteration_at  # noqa: E402

DIFFERENCES = ("none", "uniform_x3", "bn_uniform", "grey_padding")


def draw_with_stream_x3(data, stream, index, sampler, args):
    """The class iteration's batches with x3 from the stream of passes, as x1."""
    anchors = draw_indices(stream, 2 * args.batch_size, sampler).view(2, -1)
    indices = torch.stack([anchors[0], draw_partners(anchors[0], data.labels, index, sampler), anchors[1]])
    return class_iteration_at(indices, data, sampler, args)


def build_with_ours(difference):
    """networks.build_models with the discriminator's batch-norm scales and padding as ours, but for `difference`."""
    def build(*args, **kwargs):
        nets = networks.build_models(*args, **kwargs)
        for module in nets[2].modules():
            if difference != "bn_uniform" and isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
            if difference != "grey_padding" and isinstance(module, networks.ClassDiscriminator):
                module.padding_value = 0.0
        return nets
    return build


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in DIFFERENCES:
        asked = sys.argv[1:2] == ["--help"]
        print(f"usage: python experiments/class_differences.py {{{','.join(DIFFERENCES)}}} TRAIN FLAGS...\n\n"
              + __doc__, file=sys.stdout if asked else sys.stderr)
        sys.exit(0 if asked else 2)
    difference, argv = sys.argv[1], sys.argv[2:]
    if difference != "uniform_x3":
        objective.OBJECTIVES["class"] = objective.OBJECTIVES["class"]._replace(draw=draw_with_stream_x3)
    train.build_models = build_with_ours(difference)
    train.run_cli(lambda: train.main(argv), train.build_parser())


if __name__ == "__main__":
    main()
