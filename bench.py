"""Time full training iterations (train.py's own code: batch drawing and the iteration, eager or
as a CUDA graph) and print one JSON line.

    python bench.py --device cpu                          # MNIST-shaped synthetic data
    python bench.py --device cuda --cuda-graphs           # any of train.py's flags pass through
    python bench.py --discriminator class                 # the authors' version
    python bench.py --data-root ./data --dataset mnist    # real data instead of synthetic
    torchrun --nproc_per_node 2 bench.py --device cpu     # the distributed step: images/s of all processes

Synthetic data has the dataset's shape and class count, so it runs anywhere. On CUDA it also
profiles --profile-iterations iterations (torch.profiler) and reports, per iteration, the kernels
the GPU ran, the launch calls the host made (a CUDA graph is one) and the host syncs.
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
from objective import OBJECTIVES
from utils import HelpFormatter, positive_int, rank_and_world, run_cli, seed_everything

# Shape and size of each dataset's training set, for synthetic data.
SYNTHETIC = {"mnist": ((1, 28, 28), 10, 60000), "sprites": ((3, 64, 64), 500, 60000),
             "linemod": ((3, 64, 64), 15, 20000), "folder": ((3, 64, 64), 10, 10000)}
# CUDA runtime and driver calls, by what they are for the host.
LAUNCH_CALLS = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx", "cudaGraphLaunch")
SYNC_CALLS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy")


def synthetic_dataset(name, seed):
    shape, num_classes, size = SYNTHETIC[name]
    rng = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (size, *shape), dtype=torch.uint8, generator=rng)
    return Dataset(images, torch.randint(0, num_classes, (size,), generator=rng),
                   [str(c) for c in range(num_classes)])


def synchronize(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def count_calls(run, iterations):
    """Per iteration: GPU kernels, host launch calls and host syncs of `run`, from torch.profiler."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
        for _ in range(iterations):
            run()
        torch.cuda.synchronize()
    events = profiler.events()
    kernels = sum(1 for event in events if event.device_type == torch.autograd.DeviceType.CUDA)
    launches = sum(1 for event in events if event.name in LAUNCH_CALLS)
    syncs = sum(1 for event in events if event.name in SYNC_CALLS)  # cudaMemcpy without Async waits too
    return {"gpu_kernels_per_iter": round(kernels / iterations, 1),
            "launch_calls_per_iter": round(launches / iterations, 1),
            "host_syncs_per_iter": round(syncs / iterations, 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--iterations", type=positive_int, default=200, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=20,
                        help="untimed iterations first (allocator, cuDNN, compile, graph capture)")
    parser.add_argument("--profile-iterations", type=int, default=20,
                        help="CUDA: iterations profiled after the timed ones, for the launch and sync counts")
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
    draw = OBJECTIVES[args.discriminator].draw
    run_iteration = train.iteration_runner(training, args)
    rank, world = rank_and_world()

    def iteration():
        return run_iteration(draw(data, training.stream, training.index, training.sampler, args))

    batch_seconds, total_seconds = [], []
    for i in range(bench_args.warmup + bench_args.iterations):
        synchronize(device)
        start = time.perf_counter()
        batches = draw(data, training.stream, training.index, training.sampler, args)
        synchronize(device)  # only so that batch production can be timed apart
        drawn = time.perf_counter()
        run_iteration(batches)
        synchronize(device)
        if i >= bench_args.warmup:
            batch_seconds.append(drawn - start)
            total_seconds.append(time.perf_counter() - start)
    counts = (count_calls(iteration, bench_args.profile_iterations)
              if device.startswith("cuda") and bench_args.profile_iterations > 0 else {})

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
        "flags": {k: getattr(args, k) for k in ("discriminator", "batch_size", "style_dim", "class_dim",
                                                "generator_times", "discriminator_times", "precision", "compile",
                                                "cuda_graphs")},
        "iterations": bench_args.iterations, "warmup": bench_args.warmup,
        "median_s_per_iter": round(median, 5),
        "p90_s_per_iter": round(statistics.quantiles(total_seconds, n=10)[-1], 5),
        "images_per_s": round(args.batch_size / median, 2),  # the global batch, over every process
        "batch_share": round(sum(batch_seconds) / sum(total_seconds), 4),
        "peak_mem_mb": round(peak_mb, 1),
        **counts,
    }))


if __name__ == "__main__":
    try:
        run_cli(main, train.build_parser())
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
