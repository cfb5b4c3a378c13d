"""torchrun on the CPU (gloo, 2 processes): the same updates as one process, shared decisions,
resume and restart, and a clear error for a batch that does not split."""
import csv
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

import objective
import train
from conftest import ROOT
from networks import build_models
from test_objective import CLASS, STYLE, GradientRecorder, images, normal, step_args
from utils import load_checkpoint, seed_everything

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
        return [[float(row[name]) for name in objective.PAIR_COLUMNS] for row in csv.DictReader(handle)]


def weights(run):
    state = load_checkpoint(str(run))
    return {f"{net}.{k}": v for net in ("encoder", "decoder", "discriminator") for k, v in state[net].items()}


@pytest.fixture(scope="module")
def two_process_run(mnist_root, tmp_path_factory):
    """An uninterrupted 2-process run of 2 epochs (24 iterations): the reference for resume and restart."""
    run = tmp_path_factory.mktemp("distributed") / "straight"
    result = torchrun("train.py", "--data-root", mnist_root, "--out", run, "--epochs", 2, *FLAGS)
    assert result.returncode == 0, result.stdout + result.stderr
    return run


@pytest.fixture(scope="module")
def three_iterations(mnist_root, tmp_path_factory):
    """The same run's first 3 iterations on 2 processes (stopped there, to be resumed) and on 1."""
    folder = tmp_path_factory.mktemp("three")
    common = ["--data-root", mnist_root, "--epochs", 2, *FLAGS, "--max-iterations", 3]
    result = torchrun("train.py", "--out", folder / "two", *common)
    assert result.returncode == 0, result.stdout + result.stderr
    train.main([str(flag) for flag in ["--out", folder / "one", *common]])
    return folder


# ---------------------------------------------------------------------------------------------
# The same math as one process.

def test_two_processes_train_as_one(three_iterations):
    # Three iterations, so that float rounding (per-process means, then their mean) has not yet been
    # amplified by Adam, whose first steps are lr * sign(gradient) for every weight.
    one, two = torch.tensor(log_rows(three_iterations / "one")), torch.tensor(log_rows(three_iterations / "two"))
    accuracy = objective.PAIR_COLUMNS.index("disc_accuracy")
    losses = [column for column in range(len(objective.PAIR_COLUMNS)) if column != accuracy]
    torch.testing.assert_close(two[:, losses], one[:, losses], rtol=2e-3, atol=1e-6)
    # The accuracy counts 32 decisions (16 real pairs, 16 fakes): another order of float sums may tip
    # one that lies at the threshold; two would be a real difference.
    torch.testing.assert_close(two[:, accuracy], one[:, accuracy], rtol=0, atol=1 / 32)
    assert '"processes": 2' in (three_iterations / "two" / "config.json").read_text()
    # Weights: Adam's first steps are about lr * sign(gradient) for every weight, so a weight whose
    # gradient is at rounding level (the conv biases under instance norm) moves by lr either way.
    # Compared is therefore the update of each network from its (seeded) initial weights: the two
    # runs' updates differ by 2-3% of the update's norm here, by 64-80% without the gradient average.
    seed_everything(0)
    initial = dict(zip(["encoder", "decoder", "discriminator"], build_models((1, 28, 28), 16, 16)))
    one, two = weights(three_iterations / "one"), weights(three_iterations / "two")
    for net, model in initial.items():
        start = {f"{net}.{k}": v for k, v in model.state_dict().items()}
        update_one = torch.cat([(one[k] - v).flatten() for k, v in start.items()])
        update_two = torch.cat([(two[k] - v).flatten() for k, v in start.items()])
        assert (update_two - update_one).norm() <= 0.1 * update_one.norm(), net


WORKER = """
import sys, torch
sys.path[:0] = [{root!r}, {tests!r}]
import objective
from networks import build_models
from test_distributed import one_iteration, run_steps, gate_decisions
from utils import join_process_group, rank_and_world
join_process_group("cpu")
rank, world = rank_and_world()
results = {{"steps": run_steps(objective.local_part(one_iteration(), rank, world)),
           "gates": gate_decisions(objective.local_part(one_iteration({gate_seed}), rank, world))}}
torch.save(results, {out!r} + f"/rank{{rank}}.pt")
"""


def one_iteration(seed=1):
    """A fixed global iteration of batch 4 (test_objective's tiny tensors)."""
    x = [images(seed + k) for k in range(7)]
    return objective.PairIteration(torch.zeros(1), objective.AutoencoderBatch(x[0], x[1], normal(seed)),
                           [objective.GeneratorBatch(x[2], x[3], normal(seed + 1), normal(seed + 2))],
                           [objective.DiscriminatorBatch(x[4], x[5], x[6])])


def seed_where_halves_disagree():
    """A seed whose discriminator batch the fresh discriminator judges with different accuracies in
    its two halves: the two processes' own accuracies (instance norm is per image)."""
    for seed in range(1, 500):
        batch = one_iteration(seed).discriminator[0]
        halves = [objective.discriminator_loss(*fresh_nets(), objective.DiscriminatorBatch(*(x[rows] for x in batch)),
                                           step_args())[1] for rows in (slice(0, 2), slice(2, 4))]
        if halves[0] != halves[1]:
            return seed


def fresh_nets():
    torch.manual_seed(0)
    return build_models((1, 28, 28), STYLE, CLASS)


def run_steps(iteration):
    """Each step's gradients (as its optimizer sees them) and logged values, on fresh nets."""
    results = {}
    for name, step, batch in [("autoencoder", objective.autoencoder_step, iteration.autoencoder),
                              ("generator", objective.generator_step, iteration.generator[0]),
                              ("discriminator", objective.discriminator_step, iteration.discriminator[0])]:
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
    _, own_accuracy = objective.discriminator_loss(*fresh_nets(), batch, step_args())
    decisions = {}
    for side, offset in [("above", 1 / 16), ("below", -1 / 16)]:
        nets = fresh_nets()
        mean = float(objective.global_mean(own_accuracy)[0])
        logged = objective.discriminator_step(nets, torch.optim.Adam(nets[2].parameters(), fused=True), batch,
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


def test_the_class_discriminator_trains_under_two_processes_and_resumes_exactly(mnist_root, tmp_path):
    # On the CPU its batch norm sees each process's share, so two processes do not compute one's
    # updates; they must still train the same run whether stopped and resumed or not.
    common = ["--data-root", mnist_root, "--discriminator", "class", *FLAGS]
    straight = torchrun("train.py", *common, "--out", tmp_path / "straight", "--max-iterations", 6)
    assert straight.returncode == 0 and "batch norm uses each process's share" in straight.stdout, straight.stderr
    first = torchrun("train.py", *common, "--out", tmp_path / "split", "--max-iterations", 3)
    assert first.returncode == 0, first.stderr
    resumed = torchrun("train.py", "--resume", tmp_path / "split", "--out", tmp_path / "split", "--max-iterations", 6)
    assert resumed.returncode == 0, resumed.stderr
    once, twice = weights(tmp_path / "straight"), weights(tmp_path / "split")
    assert all(torch.equal(once[k], twice[k]) for k in once)


# ---------------------------------------------------------------------------------------------
# Resume and restart.

def test_resume_under_two_processes_is_exact(two_process_run, three_iterations, tmp_path):
    shutil.copytree(three_iterations / "two", tmp_path, dirs_exist_ok=True)  # stopped mid-epoch, at step 3
    result = torchrun("train.py", "--resume", tmp_path, "--out", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    straight, resumed = weights(two_process_run), weights(tmp_path)
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert log_rows(two_process_run) == log_rows(tmp_path)


def test_a_killed_worker_is_restarted_and_continues_from_the_checkpoint(two_process_run, mnist_root, tmp_path):
    job = torchrun("train.py", "--data-root", mnist_root, "--out", tmp_path, "--epochs", 2, *FLAGS,
                   restarts=1, wait=False)
    checkpoint = tmp_path / "checkpoint.pt"
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline and job.poll() is None:
        time.sleep(0.02)
    assert checkpoint.exists(), "no checkpoint was written"
    workers = subprocess.run(["pgrep", "-P", str(job.pid)], capture_output=True, text=True).stdout.split()
    assert len(workers) == 2 and load_checkpoint(str(tmp_path))["step"] < 24
    os.kill(int(workers[-1]), signal.SIGKILL)
    output, _ = job.communicate(timeout=300)
    assert job.returncode == 0, output
    assert "resuming from step" in output
    straight, restarted = weights(two_process_run), weights(tmp_path)
    assert all(torch.equal(straight[k], restarted[k]) for k in straight)
    assert log_rows(two_process_run) == log_rows(tmp_path)


def test_a_signal_to_one_worker_stops_every_worker_at_one_saved_step(mnist_root, tmp_path):
    job = torchrun("train.py", "--data-root", mnist_root, "--out", tmp_path, "--epochs", 1000, *FLAGS, wait=False)
    log = tmp_path / "log.csv"
    deadline = time.time() + 120
    while (not log.exists() or len(log.read_text().splitlines()) < 4) and time.time() < deadline:
        time.sleep(0.2)
    workers = subprocess.run(["pgrep", "-P", str(job.pid)], capture_output=True, text=True).stdout.split()
    assert len(workers) == 2
    os.kill(int(workers[-1]), signal.SIGTERM)
    output, _ = job.communicate(timeout=300)
    assert job.returncode != 0, output  # interrupted, so a script running stages stops
    saved = load_checkpoint(str(tmp_path))["step"]
    assert f"SIGTERM: saved step {saved} " in output
    assert saved == len(log_rows(tmp_path)) >= 3


@pytest.mark.parametrize("processes, batch", [(2, 15), (4, 66)])
def test_a_batch_that_does_not_split_is_refused_before_any_work(monkeypatch, capsys, processes, batch):
    # what torchrun sets in each process it starts; the flags are checked before anything else runs
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job")
    monkeypatch.setenv("WORLD_SIZE", str(processes))
    with pytest.raises(SystemExit) as exit_:
        train.parse_args(["--batch-size", str(batch), "--out", "unused"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        f"error: --batch-size {batch} does not split into the {processes} processes torchrun started: "
        f"pass a multiple of {processes} (--batch-size is the global batch)")
