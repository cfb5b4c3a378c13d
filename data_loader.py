"""Datasets as uint8 tensors on the training device, and vectorized same-class pairing.

A dataset is loaded once into an (N, C, H, W) uint8 tensor plus labels; a batch is an
index gather converted to float in [0, 1]. Pairs come from a class-sorted index, so
drawing a partner for every image of a batch is a handful of tensor ops, not a loop.
"""
import os
from dataclasses import dataclass, field

import torch

from utils import CLIError

DATASETS = ("mnist",)


@dataclass
class Dataset:
    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64 class ids: what the specified code s should capture
    class_names: list
    style_labels: dict = field(default_factory=dict)  # name -> (N,) int64, for evaluation

    @property
    def image_shape(self):
        return tuple(self.images.shape[1:])

    @property
    def num_classes(self):
        return len(self.class_names)

    def to(self, device):
        return Dataset(self.images.to(device), self.labels.to(device), self.class_names,
                       {name: values.to(device) for name, values in self.style_labels.items()})


def load_dataset(args, split):
    """Load split 'train' or 'test' of args.dataset into CPU tensors.

    `args` is train.py's namespace (or any object with its data flags: dataset, data_root, ...).
    """
    if args.dataset == "mnist":
        return load_mnist(args.data_root, split)
    raise CLIError(f"unknown dataset '{args.dataset}'; choose one of {', '.join(DATASETS)}")


def load_mnist(data_root, split):
    from torchvision.datasets import MNIST
    raw = os.path.join(data_root, "MNIST", "raw")
    try:
        mnist = MNIST(root=data_root, train=split == "train", download=True)
    except Exception as error:  # offline download failures surface as several exception types
        raise CLIError(f"MNIST is not in {raw} and could not be downloaded ({type(error).__name__}): "
                       f"connect to the internet or pass --data-root DIR with DIR/MNIST/raw holding "
                       f"the four uncompressed IDX files") from error
    return Dataset(mnist.data.unsqueeze(1).contiguous(), mnist.targets.long(), [str(d) for d in range(10)])


def to_float(images):
    """uint8 images -> float in [0, 1]; done per batch so the dataset stays uint8 on the device."""
    return images.float().div_(255)


# ---------------------------------------------------------------------------------------------
# Sampling: an endless stream of reshuffled passes, and same-class partners.

def new_stream(size, generator):
    """State of an endless sequence of random permutations of range(size)."""
    return {"size": size, "order": torch.randperm(size, generator=generator, device=generator.device),
            "position": 0}


def draw_indices(stream, count, generator):
    """The next `count` indices; a new pass is reshuffled when the current one runs out.

    The tail of a pass is kept and continued by the next permutation, so every image
    appears exactly once per pass (nothing is dropped, unlike drop_last).
    """
    order, position = stream["order"], stream["position"]
    while len(order) - position < count:
        fresh = torch.randperm(stream["size"], generator=generator, device=generator.device)
        order, position = torch.cat([order[position:], fresh]), 0
    stream["order"], stream["position"] = order, position + count
    return order[position:position + count]


def class_index(labels, num_classes):
    """Class-sorted index of a label vector: computed once, used for every partner draw."""
    order = torch.argsort(labels, stable=True)
    count = torch.bincount(labels, minlength=num_classes)
    start = torch.cumsum(count, 0) - count
    rank = torch.empty_like(labels)  # position of each image inside its class block
    rank[order] = torch.arange(len(labels), device=labels.device) - start[labels[order]]
    return {"order": order, "start": start, "count": count, "rank": rank}


def draw_partners(anchors, labels, index, generator):
    """For each anchor, a uniformly drawn *other* image of the same class (itself if alone)."""
    label = labels[anchors]
    count = index["count"][label]
    uniform = torch.rand(len(anchors), generator=generator, device=generator.device)
    offset = 1 + (uniform * (count - 1)).long()  # in 1 .. count-1: never the anchor itself
    return index["order"][index["start"][label] + (index["rank"][anchors] + offset) % count]


def grid_indices(labels, count):
    """One image per class for the first `count` classes present: the swap grid's sources."""
    classes = torch.unique(labels)[:count]
    return torch.stack([torch.nonzero(labels == c)[0, 0] for c in classes])
