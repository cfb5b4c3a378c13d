"""The scripts in experiments/, which EXPERIMENTS.md's entries are rerun with, start as documented:
each Python script answers --help with how to run it, each shell script called without its
arguments prints its usage and stops before doing anything."""
import glob
import json
import os
import subprocess

import pytest
import torch

import train
from conftest import ROOT, run_script
from data_loader import load_dataset
from evaluate import probe_splits
from test_datasets import sprites_root  # noqa: F401 (a fixture)


def scripts(extension):
    paths = glob.glob(os.path.join(ROOT, "experiments", f"*.{extension}"))
    return sorted(os.path.relpath(path, ROOT) for path in paths)


@pytest.mark.parametrize("script", scripts("py"))
def test_python_script_answers_help_with_how_to_run_it(script):
    result = run_script(script, "--help", timeout=60)
    assert result.stdout.startswith("usage:")
    assert f"python {script}" in result.stdout


@pytest.mark.parametrize("script", scripts("sh"))
def test_shell_script_without_arguments_prints_its_usage_and_fails(script):
    result = subprocess.run(["bash", os.path.join(ROOT, script)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode != 0
    assert "usage" in (result.stdout + result.stderr).lower(), result.stderr


def results_json(path, z_sampled, s, pose_from_z, swap_j, ink):
    """A results.json as evaluate.py writes it, with the numbers the table reads."""
    probe = {"z_sampled": {"test_acc": z_sampled}, "z_mean": {"test_acc": 0.5}, "s": {"test_acc": s}}
    probe["style"] = {"pose": {"z_sampled": {"test_acc": pose_from_z}, "z_mean": {"test_acc": 0.5},
                               "s": {"test_acc": 0.25}}}
    swap = {"labelled_s_class": swap_j, "labelled_z_class": 0.01,
            "style_kept": {"swap": {"ink": ink, "slant": 0.5, "width": 0.5}}}
    path.write_text(json.dumps({"eval_split": "test", "probes": probe, "swap": swap}))
    return path


def test_seed_rows_prints_each_seed_and_the_sample_spread(tmp_path):
    first = results_json(tmp_path / "s0.json", 0.10, 0.90, 0.80, 0.60, 0.70)
    second = results_json(tmp_path / "s1.json", 0.20, 0.94, 0.70, 0.70, 0.90)
    lines = run_script("experiments/seed_rows.py", first, second, timeout=60).stdout.splitlines()
    assert lines[0] == "| run | z sampled | z mean | s | pose from z sampled / s | swap | style kept |"
    assert lines[2] == (f"| {first} | 10.0% | 50.0% | 90.0% | 80.0% / 25.0% | 60.0% / 1.0% "
                        "| 0.70 / 0.50 / 0.50 |")
    # the sample standard deviation (ddof 1) of two values a, b is |a - b| / sqrt(2)
    assert lines[4] == ("| mean ± std (2 seeds) | 15.0 ± 7.1% | 50.0 ± 0.0% | 92.0 ± 2.8% | 75.0 ± 7.1% / 25.0 ± 0.0% "
                        "| 65.0 ± 7.1% / 1.0 ± 0.0% | 0.80 ± 0.14 / 0.50 ± 0.00 / 0.50 ± 0.00 |")


def test_supervised_ceiling_on_sprites_never_trains_on_the_frames_val_scores(sprites_root, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    data = load_dataset(train.build_parser().parse_args(["--dataset", "sprites", "--data-root", str(sprites_root),
                                                         "--cache-dir", str(tmp_path / "dfv")]), "train")
    probe_train, probe_val = probe_splits(data, None, "sprites", "val")
    result = run_script("experiments/supervised_ceiling.py", "--dataset", "sprites", "--data-root", sprites_root,
                        "--epochs", 1, "--batch-size", 8, "--norm", "batch", tmp_path / "ceiling.pt", timeout=120)
    assert f"sprites: the encoder trains on {len(probe_train.labels)} images of 2 classes" in result.stdout
    assert f"the head on s, {len(probe_val.labels)} held-out images: accuracy" in result.stdout
    assert len(probe_train.labels) + len(probe_val.labels) < len(data.labels)  # the test frames stay out too
    saved = torch.load(tmp_path / "ceiling.pt", weights_only=True)
    assert saved["config"]["num_classes"] == 2 and "features.1.running_mean" in saved["encoder"]  # batch norm
