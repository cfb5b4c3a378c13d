"""torch.hub entry points: the shipped models, each as (encoder, decoder) in eval mode on the CPU.

    encoder, decoder = torch.hub.load("OWNER/REPO", "mnist_pair")                  # from GitHub
    encoder, decoder = torch.hub.load("path/to/checkout", "mnist_class", source="local")   # offline

encoder(images) -> (z mean, z log-variance, s) for (N, C, H, W) images in [0, 1] of the model's
dataset (MNIST 1x28x28, Sprites and LINE-MOD 3x64x64); decoder(z, s) -> images. Cell (i, j) of a
swap grid is decoder(z of image i, s of image j).
"""
import os

dependencies = ["torch"]

CHECKPOINTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "checkpoints")


def _shipped(name):
    from networks import load_networks  # imported here: hub lists every public name of this module
    from utils import load_checkpoint
    return load_networks(load_checkpoint(os.path.join(CHECKPOINTS, name)), "cpu")


def mnist_pair():
    """The published version: a discriminator judges whether two images share a class.
    checkpoints/mnist_z16_s16.pt, README row "shipped"; returns (encoder, decoder)."""
    return _shipped("mnist_z16_s16.pt")


def mnist_z64_s64_pair():
    """The published version at the published table's second MNIST size, z = s = 64, published flags.
    checkpoints/mnist_z64_s64.pt, README row "MNIST, z 64, s 64"; returns (encoder, decoder)."""
    return _shipped("mnist_z64_s64.pt")


def mnist_class():
    """The authors' version: a discriminator judges one image with its class id real or fake.
    checkpoints/mnist_class_z16_s16.pt, README row "shipped class"; returns (encoder, decoder)."""
    return _shipped("mnist_class_z16_s16.pt")


def sprites_pair():
    """The published version on 2D Sprites (500 training characters), z = 512, s = 64.
    checkpoints/sprites_z512_s64.pt, README Sprites row "shipped"; returns (encoder, decoder)."""
    return _shipped("sprites_z512_s64.pt")


def linemod_pair():
    """The published version on LINE-MOD crops of 5 objects, z = 64, s = 256.
    checkpoints/linemod_z64_s256.pt, README LINE-MOD row "shipped"; returns (encoder, decoder)."""
    return _shipped("linemod_z64_s256.pt")
