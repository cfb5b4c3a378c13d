"""On a CUDA device: the iteration replayed as a CUDA graph computes what the eager one does (also
under bfloat16 autocast), makes no host sync, resumes exactly, and --compile runs. Skipped without
CUDA; .ci/gpu runs them."""
import signal

import pytest
import torch

import objective
import train
from utils import load_checkpoint, seed_everything

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
MODES = {"pair": ["--disc-gate", "0.6"], "class": []}  # a gate the pair discriminator's accuracy crosses


@pytest.fixture(autouse=True)
def deterministic_kernels():
    # the same kernels in both runs, so that graph and eager differ only in how they are launched
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    yield
    torch.backends.cudnn.deterministic = False


def iterations(mnist_root, mode, extra, count=50, poisoned=30):
    """`count` iterations on CUDA, one of them with a non-finite input: the log rows, skips, weights."""
    args, _ = train.parse_args(["--data-root", mnist_root, "--device", "cuda", "--discriminator", mode,
                                "--batch-size", "16", *MODES[mode], *extra])
    seed_everything(args.seed)
    data = train.load_dataset(args, "train").to("cuda")
    training = train.setup_training(data, args)
    run_iteration = train.iteration_runner(training, args)
    rows, skips = [], []
    for step in range(count):
        batches = objective.OBJECTIVES[mode].draw(data, training.stream, training.index, training.sampler, args)
        if step == poisoned:
            objective.tensors_of(batches)[1].fill_(float("nan"))
        row, skip = run_iteration(batches)
        rows.append(row)
        skips.append(skip)
    weights = torch.cat([p.detach().flatten() for net in training.nets for p in net.parameters()])
    return torch.stack(rows).cpu(), torch.stack(skips).cpu(), weights.cpu()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("mode", MODES)
def test_the_graph_replays_the_eager_iteration(mnist_root, mode, precision):
    eager_rows, eager_skips, eager_weights = iterations(mnist_root, mode, ["--precision", precision])
    graph_rows, graph_skips, graph_weights = iterations(mnist_root, mode, ["--precision", precision, "--cuda-graphs"])
    torch.testing.assert_close(graph_rows, eager_rows, rtol=1e-4, atol=1e-6, equal_nan=True)
    assert torch.equal(graph_skips, eager_skips) and graph_skips[30].sum() >= 1 and graph_skips.sum() == graph_skips[30].sum()
    torch.testing.assert_close(graph_weights, eager_weights, rtol=1e-4, atol=1e-6)
    assert torch.isfinite(graph_weights).all()
    if mode == "pair":  # the gate opened and closed inside the graph
        assert set(graph_rows[:, objective.PAIR_COLUMNS.index("disc_stepped")].tolist()) == {0.0, 1.0}


@pytest.mark.parametrize("mode", MODES)
def test_an_iteration_makes_no_host_sync(mnist_root, mode):
    args, _ = train.parse_args(["--data-root", mnist_root, "--device", "cuda", "--discriminator", mode,
                                "--batch-size", "16", *MODES[mode]])
    data = train.load_dataset(args, "train").to("cuda")
    training = train.setup_training(data, args)
    run_iteration = train.iteration_runner(training, args)
    draw = objective.OBJECTIVES[mode].draw
    run_iteration(draw(data, training.stream, training.index, training.sampler, args))  # lazy initialization
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(5):
            run_iteration(draw(data, training.stream, training.index, training.sampler, args))
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_resume_under_cuda_graphs_continues_the_run(mnist_root, tmp_path, monkeypatch):
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # keep pytest's own handlers
    common = ["--data-root", mnist_root, "--device", "cuda", "--cuda-graphs", "--batch-size", "16", "--log-every", "5"]
    train.main([*common, "--out", str(tmp_path / "straight"), "--max-iterations", "40"])
    train.main([*common, "--out", str(tmp_path / "split"), "--max-iterations", "20"])
    train.main(["--resume", str(tmp_path / "split"), "--max-iterations", "40"])
    straight, split = (load_checkpoint(str(tmp_path / name)) for name in ("straight", "split"))
    assert straight["step"] == split["step"] == 40
    for net in ("encoder", "decoder", "discriminator"):
        for name, value in straight[net].items():
            torch.testing.assert_close(split[net][name], value, rtol=1e-4, atol=1e-6)


def test_compile_runs_on_cuda_and_matches_eager(mnist_root):
    eager_rows, _, _ = iterations(mnist_root, "pair", [], count=3, poisoned=None)
    compiled_rows, _, _ = iterations(mnist_root, "pair", ["--compile"], count=3, poisoned=None)
    torch.testing.assert_close(compiled_rows[0], eager_rows[0], rtol=1e-3, atol=1e-5)
