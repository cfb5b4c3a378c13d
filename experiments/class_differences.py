"""The differences from the authors' Torch7 code that --discriminator class keeps, each put back
alone (EXPERIMENTS.md, 2026-12-04: "which differences matter"): train.py runs with one of them
patched in, so that a short run of each can be set beside the same run without it.

    python experiments/class_differences.py DIFFERENCE TRAIN FLAGS...
    python experiments/class_differences.py uniform_x3 --dataset mnist --data-root DIR --val-size 5000 \\
        --discriminator class --lr 1e-3 --epochs 2 --seed 0 --out RUNS/diff_uniform_x3_s0

DIFFERENCE is one of:
- none: train.py as it is (the baseline);
- uniform_x3: x3 drawn as theirs is, a class uniformly, then an image of it (ours: the stream of
  passes, classes at their data frequency);
- bn_uniform: the discriminator's batch-norm scales start uniform in [0, 1], Torch7's default
  (ours: 1, PyTorch's);
- grey_padding: the discriminator pads 28 -> 32 with mid-grey, their 0 in [-1, 1] (ours: 0, the
  background).
The run folder does not record the difference: name it in --out, and resume with the same one.
"""
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import networks  # noqa: E402
import objective  # noqa: E402
import train  # noqa: E402
from objective import ClassIteration, draw_class_iteration, gather_images  # noqa: E402

DIFFERENCES = ("none", "uniform_x3", "bn_uniform", "grey_padding")


def draw_with_uniform_x3(data, stream, index, sampler, args):
    """draw_class_iteration's batches with x3 replaced: a class uniformly, then an image of it uniformly."""
    drawn = draw_class_iteration(data, stream, index, sampler, args)
    size = args.batch_size
    classes = torch.randint(len(index["count"]), (size,), generator=sampler, device=sampler.device)
    within = (torch.rand(size, generator=sampler, device=sampler.device) * index["count"][classes]).long()
    others = index["order"][index["start"][classes] + within]
    batch = drawn.batch._replace(others=gather_images(data, others, sampler, args), other_labels=data.labels[others])
    return ClassIteration(torch.cat([drawn.indices[:2], others[None]]), batch)


def build_with_theirs(difference):
    """networks.build_models with the discriminator's batch-norm scales or padding as theirs."""
    def build(*args, **kwargs):
        nets = networks.build_models(*args, **kwargs)
        for module in nets[2].modules():
            if difference == "bn_uniform" and isinstance(module, nn.modules.batchnorm._BatchNorm):
                nn.init.uniform_(module.weight, 0, 1)
            if difference == "grey_padding" and isinstance(module, networks.ClassDiscriminator):
                module.padding_value = 0.5
        return nets
    return build


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in DIFFERENCES:
        asked = sys.argv[1:2] == ["--help"]
        print(f"usage: python experiments/class_differences.py {{{','.join(DIFFERENCES)}}} TRAIN FLAGS...\n\n"
              + __doc__, file=sys.stdout if asked else sys.stderr)
        sys.exit(0 if asked else 2)
    difference, argv = sys.argv[1], sys.argv[2:]
    if difference == "uniform_x3":
        objective.OBJECTIVES["class"] = objective.OBJECTIVES["class"]._replace(draw=draw_with_uniform_x3)
    else:
        train.build_models = build_with_theirs(difference)
    train.run_cli(lambda: train.main(argv), train.build_parser())


if __name__ == "__main__":
    main()
