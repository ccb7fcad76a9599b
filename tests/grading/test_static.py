"""Static screening of submissions for the reference implementation and import tricks."""

import pytest

from mlcourse.grading.checks import build
from mlcourse.grading.static import screen, voided

EXERCISE = build("01_tasks_and_episodes")


def findings(*sources):
    return screen([{"cell_type": "code", "source": s} for s in sources], EXERCISE)


def flagged(*sources):
    return voided(findings(*sources), EXERCISE)


@pytest.mark.parametrize("source,function", [
    ("from mlcourse.methods.nearest import min_per_class", "nearest_neighbour_predict"),
    ("from mlcourse.methods import PixelNearestNeighbour as P", "nearest_neighbour_predict"),
    ("import mlcourse.methods.nearest as n", "nearest_neighbour_predict"),
    ("from mlcourse.methods import nearest", "nearest_neighbour_predict"),
    ("import mlcourse\nmlcourse.data.EpisodeSampler(x, 5, 1, 1)", "sample_episode"),
    ("s = getattr(mlcourse.data, 'EpisodeSampler')", "sample_episode"),
    ("from mlcourse.methods.base import accuracy", "episode_accuracy"),
    ("import mlcourse.methods as mm\nmm.base.accuracy(a, b)", "episode_accuracy"),
])
def test_uses_of_a_reference_void_that_function(source, function):
    assert set(flagged(source)) == {function}
    assert flagged(source)[function].startswith("flagged: cell 1 ")


@pytest.mark.parametrize("source", [
    "import importlib\nimportlib.reload(mlcourse)", "__import__('mlcourse')", "from importlib import reload",
    "import sys\nsys.modules.pop('mlcourse.data.episodes')", "exec(open('x.py').read())",
    "f = g.__globals__", "import gc\ngc.get_objects()", "eval('1 + 1')",
])
def test_import_tricks_void_every_function(source):
    assert set(flagged(source)) == {fn.name for fn in EXERCISE.functions}


@pytest.mark.parametrize("source", [
    "import torch\nfrom mlcourse import mean_ci, seed_everything\nfrom mlcourse.data import load_omniglot",
    "from mlcourse.grading.visible import check\nfrom mlcourse.data import Episode",
    "import mlcourse.grading.visible\nmlcourse.grading.visible.check(True, 'fine')",
    "accuracy = (pred == y).float().mean()\ndef episode_accuracy(p, y): return (p == y).float().mean()",
    "model = torch.compile(model)\n%timeit f()\n!ls",
    "def broken(:\n",  # a syntax error is not a finding (the cell fails when it runs)
    "# from mlcourse.methods.nearest import min_per_class  (a comment)",
    "print('my EpisodeSampler, better than PixelNearestNeighbour')",  # strings are never read
    "import subprocess\nsubprocess.run(['python', '-c', 'import mlcourse.methods.nearest'])",  # the kernel's copy
])
def test_honest_code_is_not_flagged(source):
    assert findings(source) == []


def test_findings_name_their_cell_and_markdown_is_ignored():
    cells = [{"cell_type": "markdown", "source": "Do not use `EpisodeSampler`."},
             {"cell_type": "code", "source": "x = 1"},
             {"cell_type": "code", "source": ["from mlcourse.data ", "import EpisodeSampler"]}]
    found = screen(cells, EXERCISE)
    assert {f.cell for f in found} == {3} and all(f.function == "sample_episode" for f in found)


@pytest.mark.parametrize("source", [
    "import mlcourse.grading.harness as h\nh.call_one = lambda *a: None",
    "from mlcourse.grading import adapters",
    "from mlcourse.grading.adapters import outputs_gradients_inputs",
    "import mlcourse\nmlcourse.grading.harness.run_call = print",
    "import mlcourse as m\nh = getattr(m, 'grading')",
    "_grading_harness['run_call'] = print",
    "import sys\nns = sys._getframe(1).f_globals",
    "import inspect\nns = inspect.currentframe().f_back.f_locals",
    "import builtins\nbuiltins.open = print",
    "import ctypes",
    "ns = get_ipython().user_ns",
])
def test_reaching_for_the_graders_code_flags_every_function_with_the_reason(source):
    """A submission never needs the grader's modules nor another frame's variables: whatever reaches for them is
    shown to the instructor, with the reason."""
    reasons = flagged(source)
    assert set(reasons) == {fn.name for fn in EXERCISE.functions}, reasons
    assert all("grader" in r for r in reasons.values()), reasons
