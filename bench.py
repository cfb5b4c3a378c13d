"""Time full training iterations (train.py's own code: batch drawing, autoencoder,
generator and discriminator steps) and print one JSON line.

    python bench.py --device cpu                          # MNIST-shaped synthetic data
    python bench.py --device cuda --amp --compile         # any of train.py's flags pass through
    python bench.py --data-root ./data --dataset mnist    # real data instead of synthetic
    torchrun --nproc_per_node 2 bench.py --device cpu     # the distributed step: images/s of all processes

Synthetic data has the dataset's shape and class count, so it runs anywhere.
"""
import argparse
import json
import platform
import resource
import statistics
import time

import torch

import train
from data_loader import Dataset, load_dataset
from utils import HelpFormatter, rank_and_world, run_cli, seed_everything

# Shape and size of each dataset's training set, for synthetic data.
SYNTHETIC = {"mnist": ((1, 28, 28), 10, 60000), "sprites": ((3, 64, 64), 500, 60000),
             "linemod": ((3, 64, 64), 15, 20000), "folder": ((3, 64, 64), 10, 10000)}


def synthetic_dataset(name, seed):
    shape, num_classes, size = SYNTHETIC[name]
    rng = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (size, *shape), dtype=torch.uint8, generator=rng)
    return Dataset(images, torch.randint(0, num_classes, (size,), generator=rng),
                   [str(c) for c in range(num_classes)])


def synchronize(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--iterations", type=int, default=200, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=20, help="untimed iterations first (allocator, cudnn, compile)")
    parser.add_argument("--data-root", default=None, help="time on this real data instead of synthetic")
    bench_args, train_argv = parser.parse_known_args()
    if bench_args.data_root:
        train_argv += ["--data-root", bench_args.data_root]
    args, _ = train.parse_args(train_argv)
    device = train.setup_device(args)
    seed_everything(args.seed)

    data = load_dataset(args, "train") if bench_args.data_root else synthetic_dataset(args.dataset, args.seed)
    data = data.to(device)
    training = train.setup_training(data, args)
    rank, world = rank_and_world()

    batch_seconds, total_seconds = [], []
    for i in range(bench_args.warmup + bench_args.iterations):
        synchronize(device)
        start = time.perf_counter()
        batches = train.draw_iteration(data, training.stream, training.index, training.sampler, args)
        synchronize(device)  # only so that batch production can be timed apart
        drawn = time.perf_counter()
        train.train_iteration(training.step_nets, training.optimizers, train.local_part(batches, rank, world), args)
        synchronize(device)
        if i >= bench_args.warmup:
            batch_seconds.append(drawn - start)
            total_seconds.append(time.perf_counter() - start)

    if rank != 0:
        return
    median = statistics.median(total_seconds)
    peak_mb = (torch.cuda.max_memory_allocated() if device.startswith("cuda")
               else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2 ** 20
    print(json.dumps({
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else
        f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads per process)",
        "processes": world,
        "torch": torch.__version__, "dataset": args.dataset,
        "data": "real" if bench_args.data_root else "synthetic",
        "flags": {k: getattr(args, k) for k in ("batch_size", "style_dim", "class_dim", "generator_times",
                                                "discriminator_times", "amp", "compile")},
        "iterations": bench_args.iterations, "warmup": bench_args.warmup,
        "median_s_per_iter": round(median, 5),
        "p90_s_per_iter": round(statistics.quantiles(total_seconds, n=10)[-1], 5),
        "images_per_s": round(args.batch_size / median, 2),  # the global batch, over every process
        "batch_share": round(sum(batch_seconds) / sum(total_seconds), 4),
        "peak_mem_mb": round(peak_mb, 1),
    }))


if __name__ == "__main__":
    try:
        run_cli(main, train.build_parser())
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
