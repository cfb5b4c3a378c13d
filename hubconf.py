"""torch.hub entry points: the two shipped full-MNIST models (z = s = 16), each as (encoder,
decoder) in eval mode on the CPU.

    encoder, decoder = torch.hub.load("OWNER/REPO", "mnist_pair")                  # from GitHub
    encoder, decoder = torch.hub.load("path/to/checkout", "mnist_class", source="local")   # offline

encoder(images) -> (z mean, z log-variance, s) for (N, 1, 28, 28) images in [0, 1];
decoder(z, s) -> images. Cell (i, j) of a swap grid is decoder(z of image i, s of image j).
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


def mnist_class():
    """The authors' version: a discriminator judges one image with its class id real or fake.
    checkpoints/mnist_class_z16_s16.pt, README row "shipped class"; returns (encoder, decoder)."""
    return _shipped("mnist_class_z16_s16.pt")
