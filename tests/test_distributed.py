"""torchrun on the CPU (gloo, 2 processes): the same updates as one process, shared decisions,
resume and restart, and a clear error for a batch that does not split."""
import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import train
from conftest import ROOT, run_script
from networks import build_models
from test_objective import CLASS, STYLE, GradientRecorder, images, normal, step_args
from utils import load_checkpoint

pytestmark = pytest.mark.slow

FLAGS = ["--batch-size", 16, "--log-every", 1, "--device", "cpu", "--save-every", 1]


def torchrun(*args, processes=2, restarts=0, wait=True):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               f"--max-restarts={restarts}", *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if not wait:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return result


def log_rows(run):
    with open(os.path.join(run, "log.csv"), newline="") as handle:
        return [[float(row[name]) for name in train.LOG_COLUMNS] for row in csv.DictReader(handle)]


def weights(run):
    state = load_checkpoint(str(run))
    return {f"{net}.{k}": v for net in ("encoder", "decoder", "discriminator") for k, v in state[net].items()}


@pytest.fixture(scope="module")
def two_process_run(mnist_root, tmp_path_factory):
    """An uninterrupted 2-process run of 4 epochs (48 iterations): the reference for resume and restart."""
    run = tmp_path_factory.mktemp("distributed") / "straight"
    result = torchrun("train.py", "--data-root", mnist_root, "--out", run, "--epochs", 4, *FLAGS)
    assert result.returncode == 0, result.stdout + result.stderr
    return run


# ---------------------------------------------------------------------------------------------
# The same math as one process.

def test_two_processes_train_as_one(mnist_root, tmp_path):
    # Three iterations, so that float rounding (per-process means, then their mean) has not yet been
    # amplified by Adam, whose first steps are lr * sign(gradient) for every weight.
    run_script("train.py", "--data-root", mnist_root, "--out", tmp_path / "one", "--max-iterations", 3, *FLAGS)
    result = torchrun("train.py", "--data-root", mnist_root, "--out", tmp_path / "two", "--max-iterations", 3, *FLAGS)
    assert result.returncode == 0, result.stdout + result.stderr
    one, two = log_rows(tmp_path / "one"), log_rows(tmp_path / "two")
    torch.testing.assert_close(torch.tensor(two), torch.tensor(one), rtol=2e-3, atol=1e-6)
    config = (tmp_path / "two" / "config.json").read_text()
    assert '"processes": 2' in config
    # 9 Adam updates moved each weight by at most about 9 * lr = 9e-4; the two runs agree far closer,
    # except where a gradient is at rounding level (conv biases under instance norm), which Adam's
    # sign-like first steps move by lr either way.
    for name, value in weights(tmp_path / "one").items():
        torch.testing.assert_close(weights(tmp_path / "two")[name], value, rtol=0, atol=2e-3)


WORKER = """
import sys, torch
sys.path[:0] = [{root!r}, {tests!r}]
import train
from networks import build_models
from test_distributed import one_iteration, run_steps, gate_decisions
from utils import join_process_group, rank_and_world
join_process_group("cpu")
rank, world = rank_and_world()
results = {{"steps": run_steps(train.local_part(one_iteration(), rank, world)),
           "gates": gate_decisions(train.local_part(one_iteration({gate_seed}), rank, world))}}
torch.save(results, {out!r} + f"/rank{{rank}}.pt")
"""


def one_iteration(seed=1):
    """A fixed global iteration of batch 4 (test_objective's tiny tensors)."""
    x = [images(seed + k) for k in range(7)]
    return train.Iteration(torch.zeros(1), train.AutoencoderBatch(x[0], x[1], normal(seed)),
                           [train.GeneratorBatch(x[2], x[3], normal(seed + 1), normal(seed + 2))],
                           [train.DiscriminatorBatch(x[4], x[5], x[6])])


def seed_where_halves_disagree():
    """A seed whose discriminator batch the fresh discriminator judges with different accuracies in
    its two halves: the two processes' own accuracies (instance norm is per image)."""
    for seed in range(1, 500):
        batch = one_iteration(seed).discriminator[0]
        halves = [train.discriminator_loss(*fresh_nets(), train.DiscriminatorBatch(*(x[rows] for x in batch)),
                                           step_args())[1] for rows in (slice(0, 2), slice(2, 4))]
        if halves[0] != halves[1]:
            return seed


def fresh_nets():
    torch.manual_seed(0)
    return build_models((1, 28, 28), STYLE, CLASS)


def run_steps(iteration):
    """Each step's gradients (as its optimizer sees them) and logged values, on fresh nets."""
    results = {}
    for name, step, batch in [("autoencoder", train.autoencoder_step, iteration.autoencoder),
                              ("generator", train.generator_step, iteration.generator[0]),
                              ("discriminator", train.discriminator_step, iteration.discriminator[0])]:
        nets = fresh_nets()
        params = nets[2].parameters() if name == "discriminator" else [*nets[0].parameters(), *nets[1].parameters()]
        recorder = GradientRecorder(params)
        logged = step(nets, recorder, batch, step_args(disc_gate=1.0))
        results[name] = {"grads": recorder.grads, "logged": {k: float(v) for k, v in logged.items()}}
    return results


def gate_decisions(iteration):
    """This process's own accuracy, and for gates just above and below the mean accuracy of all
    processes: whether the step was taken and the discriminator's weights after it."""
    batch = iteration.discriminator[0]
    _, own_accuracy = train.discriminator_loss(*fresh_nets(), batch, step_args())
    decisions = {}
    for side, offset in [("above", 1 / 16), ("below", -1 / 16)]:
        nets = fresh_nets()
        mean = float(train.global_mean(own_accuracy)[0])
        logged = train.discriminator_step(nets, torch.optim.Adam(nets[2].parameters()), batch,
                                          step_args(disc_gate=mean + offset))
        decisions[side] = {"gate": mean + offset, "stepped": logged["disc_stepped"],
                           "weights": [p.detach().clone() for p in nets[2].parameters()]}
    return {"own_accuracy": float(own_accuracy), "decisions": decisions}


def test_gradients_and_gate_are_those_of_the_global_batch(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(root=ROOT, tests=os.path.join(ROOT, "tests"), out=str(tmp_path),
                                    gate_seed=seed_where_halves_disagree()))
    result = torchrun(script)
    assert result.returncode == 0, result.stdout + result.stderr
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    single = run_steps(one_iteration())
    for rank in ranks:  # the averaged gradient of per-process means is the global batch's gradient
        for name, expected in single.items():
            got, want = (torch.cat([grad.flatten() for grad in grads])
                         for grads in (rank["steps"][name]["grads"], expected["grads"]))
            assert (got - want).norm() <= 1e-5 * want.norm()  # float rounding of the half-batch means
            assert rank["steps"][name]["logged"] == pytest.approx(expected["logged"], rel=1e-5)

    accuracies = [rank["gates"]["own_accuracy"] for rank in ranks]
    assert accuracies[0] != accuracies[1]  # the fixture makes the two processes disagree
    for side in ["above", "below"]:
        first, second = (rank["gates"]["decisions"][side] for rank in ranks)
        gate = first["gate"]
        assert min(accuracies) < gate < max(accuracies)  # on its own, each process would decide otherwise
        assert first["stepped"] == second["stepped"] == float(side == "above")
        assert all(torch.equal(a, b) for a, b in zip(first["weights"], second["weights"]))


# ---------------------------------------------------------------------------------------------
# Resume and restart.

def test_resume_under_two_processes_is_exact(two_process_run, mnist_root, tmp_path):
    common = ["train.py", "--data-root", mnist_root, "--out", tmp_path, "--epochs", 4, *FLAGS]
    assert torchrun(*common, "--max-iterations", 18).returncode == 0  # stops mid-epoch
    result = torchrun("train.py", "--resume", tmp_path, "--out", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    straight, resumed = weights(two_process_run), weights(tmp_path)
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert log_rows(two_process_run) == log_rows(tmp_path)


def test_a_killed_worker_is_restarted_and_continues_from_the_checkpoint(two_process_run, mnist_root, tmp_path):
    job = torchrun("train.py", "--data-root", mnist_root, "--out", tmp_path, "--epochs", 4, *FLAGS,
                   restarts=1, wait=False)
    checkpoint = tmp_path / "checkpoint.pt"
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline and job.poll() is None:
        time.sleep(0.02)
    assert checkpoint.exists(), "no checkpoint was written"
    workers = subprocess.run(["pgrep", "-P", str(job.pid)], capture_output=True, text=True).stdout.split()
    assert len(workers) == 2 and load_checkpoint(str(tmp_path))["step"] < 48
    os.kill(int(workers[-1]), signal.SIGKILL)
    output, _ = job.communicate(timeout=300)
    assert job.returncode == 0, output
    assert "resuming from step" in output
    straight, restarted = weights(two_process_run), weights(tmp_path)
    assert all(torch.equal(straight[k], restarted[k]) for k in straight)
    assert log_rows(two_process_run) == log_rows(tmp_path)


def test_a_batch_that_does_not_split_is_refused_before_any_work(mnist_root, tmp_path):
    result = torchrun("train.py", "--data-root", mnist_root, "--out", tmp_path / "run", "--batch-size", 15)
    assert result.returncode != 0
    output = (result.stdout + result.stderr).splitlines()
    errors = {line for line in output if "error:" in line and "--batch-size" in line}
    assert errors == {"train.py: error: --batch-size 15 does not split into the 2 processes torchrun started: "
                      "pass a multiple of 2 (--batch-size is the global batch)"}
    assert not (tmp_path / "run").exists()
