"""experiments/breakage_sweep.py: every edit still applies to the code, and the sweep runs one."""
import importlib.util
import os

import pytest

from conftest import ROOT, run_script

spec = importlib.util.spec_from_file_location("breakage_sweep", os.path.join(ROOT, "experiments", "breakage_sweep.py"))
sweep = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sweep)


@pytest.mark.parametrize("edit", sweep.EDITS, ids=[edit.name for edit in sweep.EDITS])
def test_each_edit_applies_once_and_leaves_valid_python(edit):
    with open(os.path.join(ROOT, edit.path)) as handle:
        text = handle.read()
    assert text.count(edit.old) == 1
    compile(text.replace(edit.old, edit.new), edit.path, "exec")


def test_the_sweep_applies_an_edit_and_reports_the_test_that_catches_it():
    result = run_script("experiments/breakage_sweep.py", "--only", "gate inverted",
                        "--pytest-args", "tests/test_objective.py -k gate")
    assert result.stdout.startswith("caught (fast)") and "gate inverted" in result.stdout
