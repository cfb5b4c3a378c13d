"""Failures a long run meets: kills, signals, bad checkpoints, bad flags, NaNs, full disks."""
import csv
import errno
import importlib
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import objective
import train
import utils
from conftest import ROOT, run_script
from utils import CLIError, load_checkpoint, save_atomically


@pytest.fixture(scope="module")
def finished_run(mnist_root, tmp_path_factory):
    run = tmp_path_factory.mktemp("finished")
    run_script("train.py", "--data-root", mnist_root, "--out", run, "--batch-size", 16, "--max-iterations", 3)
    return run


def one_line_error(result, *fragments):
    """A user-facing failure: exit code 1 or 2, one 'error:' line naming what matters, no traceback."""
    assert result.returncode in (1, 2), result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in error_lines[0], error_lines[0]
    return error_lines[0]


# 1. atomic checkpoints -------------------------------------------------------------------------

WRITER = """
import sys, torch
sys.path.insert(0, {root!r})
from utils import save_atomically
for i in range(1, 10 ** 6):
    save_atomically({{"i": i, "payload": torch.full((1_000_000,), float(i))}}, {path!r})
    print(i, flush=True)
"""


@pytest.mark.slow
def test_sigkill_during_saves_never_leaves_a_truncated_checkpoint(tmp_path):
    path = str(tmp_path / "checkpoint.pt")
    for delay in [0.3, 0.45, 0.6, 0.8, 1.1]:
        writer = subprocess.Popen([sys.executable, "-c", WRITER.format(root=ROOT, path=path)],
                                  stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline()  # at least one save has completed
        time.sleep(delay)
        writer.kill()
        writer.wait()
        state = torch.load(path, weights_only=True)  # must always be a whole checkpoint
        assert torch.equal(state["payload"], torch.full((1_000_000,), float(state["i"])))


# 2. signals ------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_and_exits_as_interrupted(mnist_root, tmp_path, signum):
    process = subprocess.Popen([sys.executable, "train.py", "--data-root", mnist_root, "--out", str(tmp_path),
                                "--batch-size", "16", "--log-every", "1", "--epochs", "1000"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "log.csv"
    deadline = time.time() + 120
    while (not log.exists() or len(log.read_text().splitlines()) < 4) and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr  # a script chaining the stages must stop
    assert f"resume with: python train.py --resume {tmp_path}" in stdout
    with open(log, newline="") as handle:
        logged = len(list(csv.DictReader(handle)))
    assert load_checkpoint(str(tmp_path))["step"] == logged >= 3


# 4-5. checkpoints that must be refused --------------------------------------------------------

class RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = os.path.join(os.environ.get("TMPDIR", "/tmp"), "dfv_pickle_ran")


@pytest.mark.slow
def test_checkpoint_that_runs_code_is_refused(tmp_path):
    if os.path.exists(MARKER):
        os.remove(MARKER)
    path = tmp_path / "evil.pt"
    torch.save({"config": {}, "encoder": RunsCode(), "decoder": {}}, path)
    result = run_script("train.py", "--resume", path, check=False)
    one_line_error(result, str(path), "could run code")
    assert not os.path.exists(MARKER)


@pytest.mark.slow
@pytest.mark.parametrize("content", ["truncated", "empty", "text", "foreign_torch"])
def test_unreadable_checkpoint_is_one_line_error(finished_run, tmp_path, content):
    path = tmp_path / "bad.pt"
    whole = (finished_run / "checkpoint.pt").read_bytes()
    path.write_bytes({"truncated": whole[: len(whole) // 2], "empty": b"", "text": b"hello\n",
                      "foreign_torch": b""}[content])
    if content == "foreign_torch":
        torch.save([1, 2, 3], path)
    one_line_error(run_script("train.py", "--resume", path, check=False), str(path))
    assert "Traceback" in run_script("train.py", "--resume", path, "--debug", check=False).stderr


@pytest.mark.slow
def test_evaluate_refuses_a_truncated_checkpoint(finished_run, tmp_path):
    path = tmp_path / "truncated.pt"
    path.write_bytes((finished_run / "checkpoint.pt").read_bytes()[:5000])
    one_line_error(run_script("evaluate.py", "--checkpoint", path, "--images-dir", "", check=False),
                   str(path), "truncated")


# 6-7. resuming the wrong run, and runs that already exist -------------------------------------

@pytest.mark.slow
def test_resume_with_other_dimensions_is_refused(finished_run):
    line = one_line_error(run_script("train.py", "--resume", finished_run, "--style-dim", 8, check=False),
                          "--style-dim 8", "16")
    assert "resume" in line


@pytest.mark.slow
def test_existing_run_is_not_overwritten(finished_run, mnist_root):
    before = (finished_run / "checkpoint.pt").read_bytes()
    result = run_script("train.py", "--data-root", mnist_root, "--out", finished_run, "--max-iterations", 1,
                        check=False)
    one_line_error(result, "already holds a run", "--resume", "--overwrite")
    assert (finished_run / "checkpoint.pt").read_bytes() == before


@pytest.mark.slow
def test_overwrite_replaces_and_says_so(mnist_root, tmp_path):
    args = ["--data-root", mnist_root, "--out", tmp_path, "--batch-size", 16, "--max-iterations", 2]
    run_script("train.py", *args)
    result = run_script("train.py", *args, "--overwrite")
    assert "--overwrite: removing" in result.stdout and "log.csv" in result.stdout
    assert load_checkpoint(str(tmp_path))["step"] == 2


# 8. non-finite losses -------------------------------------------------------------------------

def poison_kl(monkeypatch, bad_call):
    """Make the KL term NaN on its `bad_call`-th use (3 uses per iteration: AE + 2 generator steps)."""
    calls = []
    real_kl = objective.kl_divergence

    def kl(*args):
        calls.append(1)
        value = real_kl(*args)
        return value * float("nan") if len(calls) == bad_call else value
    monkeypatch.setattr(objective, "kl_divergence", kl)
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # keep pytest's own handlers


@pytest.mark.slow
def test_nan_stops_with_step_and_keeps_last_checkpoint(mnist_root, tmp_path, monkeypatch):
    poison_kl(monkeypatch, bad_call=3 * 14 + 1)  # the autoencoder step of the 15th iteration (step 14)
    argv = ["--data-root", mnist_root, "--out", str(tmp_path), "--batch-size", "16", "--save-every", "1"]
    with pytest.raises(CLIError, match="non-finite autoencoder loss at step 14") as error:
        train.main(argv)
    assert "nonfinite_step14.json" in str(error.value)
    assert load_checkpoint(str(tmp_path))["step"] == 12  # the end of epoch 1, the last good one
    assert (tmp_path / "nonfinite_step14.json").exists()


@pytest.mark.slow
def test_nan_policy_skip_counts_and_continues(mnist_root, tmp_path, monkeypatch):
    poison_kl(monkeypatch, bad_call=5)  # the first generator step of iteration 2
    train.main(["--data-root", mnist_root, "--out", str(tmp_path), "--batch-size", "16",
                "--max-iterations", "4", "--nan-policy", "skip", "--log-every", "1"])
    with open(tmp_path / "log.csv", newline="") as handle:
        skipped = [float(row["skipped_updates"]) for row in csv.DictReader(handle)]
    assert skipped == [0, 1, 0, 0]


# 9-10. bad flags and missing data ------------------------------------------------------------

@pytest.mark.parametrize("argv, fragment", [
    (["--style-dim", "0"], "--style-dim"), (["--class-dim", "-3"], "--class-dim"),
    (["--batch-size", "0"], "--batch-size"), (["--epochs", "0"], "--epochs"),
    (["--disc-gate", "0"], "--disc-gate"), (["--disc-gate", "1.5"], "--disc-gate"),
    (["--dataset", "cifar"], "--dataset"), (["--device", "tpu"], "--device"),
    (["--batch-size", "many"], "--batch-size"), (["--shift", "-1"], "--shift"),
])
def test_bad_flags_fail_before_work(argv, fragment, capsys):
    with pytest.raises(SystemExit) as exit_:
        train.parse_args(argv)
    assert exit_.value.code == 2
    assert fragment in capsys.readouterr().err


@pytest.mark.parametrize("script", ["train", "evaluate", "convert_published", "export_checkpoint"])
def test_help_states_each_default_once_and_never_none(script):
    help_text = " ".join(importlib.import_module(script).build_parser().format_help().split())
    assert "None" not in help_text
    if script == "train":
        assert "--epochs EPOCHS epochs of floor(N / B) iterations each (default: 50)" in help_text
        assert help_text.count("default: runs/<dataset>__<seed>__<time>") == 1  # --out, computed at run time


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_refused(capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--device", "cuda"])
    assert "no CUDA" in capsys.readouterr().err


@pytest.mark.slow
def test_missing_mnist_names_folder_and_remedy(tmp_path):
    result = run_script("train.py", "--data-root", tmp_path, "--out", tmp_path / "run", check=False)
    one_line_error(result, str(tmp_path / "MNIST" / "raw"), "--data-root")
    assert not (tmp_path / "run").exists()  # a failed start leaves no run folder


# 11. a full disk ------------------------------------------------------------------------------

def test_full_disk_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = str(tmp_path / "checkpoint.pt")
    save_atomically({"step": 1}, path)

    def full_disk(obj, handle):
        handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(utils.torch, "save", full_disk)
    with pytest.raises(CLIError, match="No space left on device.*previous checkpoint.pt is intact"):
        save_atomically({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert os.listdir(tmp_path) == ["checkpoint.pt"]  # no partial file left behind
