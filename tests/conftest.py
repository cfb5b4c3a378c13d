"""Shared fixtures: a tiny MNIST in the real IDX format, written fresh for each session."""
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL_DATA = os.environ.get("DFV_DATA")  # ../shared/data in CI; tests on real data skip without it
# The tests' tensors are tiny: one thread is as fast, and several thrash when the cores are busy (4x
# slower beside a training run on 2 cores), as they are with one pytest-xdist worker per core. The
# scripts run as subprocesses inherit OMP_NUM_THREADS.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


def write_idx(path, array):
    """IDX file as published: big-endian magic (0x08 = uint8, then the rank), sizes, then bytes."""
    with open(path, "wb") as handle:
        handle.write(struct.pack(">HBB", 0, 0x08, array.ndim))
        handle.write(struct.pack(f">{array.ndim}I", *array.shape))
        handle.write(array.astype(np.uint8).tobytes())


def make_mnist(root, train_per_class=20, test_per_class=5, seed=0):
    """10 classes of 28x28 digits-like images: class c is a bright bar at row 2c plus noise."""
    rng = np.random.default_rng(seed)
    raw = os.path.join(root, "MNIST", "raw")
    os.makedirs(raw, exist_ok=True)
    for prefix, per_class in [("train", train_per_class), ("t10k", test_per_class)]:
        labels = np.repeat(np.arange(10), per_class)
        rng.shuffle(labels)
        images = rng.integers(0, 60, size=(len(labels), 28, 28))
        for i, label in enumerate(labels):
            images[i, 2 * label + 3: 2 * label + 6, 4 + i % 5: 20 + i % 5] = 255
        write_idx(os.path.join(raw, f"{prefix}-images-idx3-ubyte"), images)
        write_idx(os.path.join(raw, f"{prefix}-labels-idx1-ubyte"), labels)
    return root


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory):
    return make_mnist(str(tmp_path_factory.mktemp("data")))


def run_script(script, *args, timeout=300, check=True):
    """Run one of the repository's scripts in a subprocess, as a user would."""
    result = subprocess.run([sys.executable, os.path.join(ROOT, script), *map(str, args)],
                            capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if check and result.returncode != 0:
        raise AssertionError(f"{script} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result
