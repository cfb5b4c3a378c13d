"""The scripts in experiments/, which EXPERIMENTS.md's entries are rerun with, start as documented:
each Python script answers --help with how to run it, each shell script called without its
arguments prints its usage and stops before doing anything."""
import glob
import os
import subprocess

import pytest

from conftest import ROOT, run_script


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
