"""Submissions of chapter 1's exercises, good and hostile, built from the solutions notebook."""

import json
from pathlib import Path

import nbformat

from mlcourse.grading.sandbox import unavailable

NO_SANDBOX = unavailable()  # why bubblewrap cannot sandbox kernels here ('' when it can)
# what the tests pass to grade(): the sandbox where it works, else grading without it, asked for explicitly
SANDBOXED = False if NO_SANDBOX else None

ROOT = Path(__file__).resolve().parents[2]
EXERCISE = "01_tasks_and_episodes"
SOLUTION = ROOT / "solutions" / f"{EXERCISE}.ipynb"
EXERCISES = ROOT / "exercises" / f"{EXERCISE}.ipynb"
FUNCTIONS = ("sample_episode", "nearest_neighbour_predict", "episode_accuracy")


def solution_sources() -> dict[str, str]:
    """The solution's source of each graded function (its whole cell)."""
    nb = nbformat.read(SOLUTION, as_version=4)
    return {name: next(c.source for c in nb.cells if c.cell_type == "code" and f"def {name}(" in c.source)
            for name in FUNCTIONS}


def notebook(*sources: str) -> str:
    """A notebook of code cells, as JSON text; the first cell imports torch."""
    cells = [nbformat.v4.new_code_cell("import torch")] + [nbformat.v4.new_code_cell(s) for s in sources]
    return nbformat.writes(nbformat.v4.new_notebook(cells=cells))


def functions(**replaced: str) -> list[str]:
    """The three solution functions, with some replaced (an empty string drops one)."""
    sources = solution_sources()
    sources.update(replaced)
    return [s for s in sources.values() if s]


WRONG_NEAREST = '''
def nearest_neighbour_predict(support_x, support_y, query_x, n_way):
    a = torch.nn.functional.normalize(query_x.flatten(1), dim=1)
    b = torch.nn.functional.normalize(support_x.flatten(1), dim=1)
    return support_y[(a @ b.T).argmax(1)]  # cosine similarity: not what was asked
'''

GLOBAL_RNG_SAMPLER = '''
def sample_episode(images, n_way, k_shot, n_query, generator):
    n_classes, n_per_class = images.shape[:2]
    classes = torch.randperm(n_classes)[:n_way]  # the global random state, not `generator`
    drawings = torch.stack([torch.randperm(n_per_class)[: k_shot + n_query] for _ in range(n_way)])
    x = images[classes[:, None], drawings]
    labels = torch.arange(n_way)
    return (x[:, :k_shot].reshape(-1, *images.shape[2:]), labels.repeat_interleave(k_shot),
            x[:, k_shot:].reshape(-1, *images.shape[2:]), labels.repeat_interleave(n_query))
'''

PERCENT_ACCURACY = '''
def episode_accuracy(predictions, query_y):
    return 100 * (predictions == query_y).float().mean()
'''


def bare_cells(text: str) -> str:
    """A notebook's JSON with the cells' metadata, outputs and execution counts left out (Jupyter opens it)."""
    nb = json.loads(text)
    nb["cells"] = [{k: v for k, v in c.items() if k in ("cell_type", "source")} for c in nb["cells"]]
    return json.dumps(nb)


def hostile(out_dir: Path, submissions_dir: Path) -> dict[str, str | bytes]:
    """Submissions (name -> notebook text or raw bytes) and, in EXPECTED, their grade and status."""
    s = solution_sources()
    subs = {
        "not_json": b"\x89PNG this is not JSON at all {",
        "not_a_notebook": json.dumps({"name": "a JSON file", "cells": "none"}),
        "old_format_v3": json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {},
                                     "worksheets": [{"cells": [{"cell_type": "code", "input": "x = 1",
                                                                "language": "python", "outputs": []}]}]}),
        "missing_function": notebook(*functions(episode_accuracy="")),
        "raises": notebook(*functions(nearest_neighbour_predict=(
            "def nearest_neighbour_predict(support_x, support_y, query_x, n_way):\n"
            "    raise ValueError('I give up')"))),
        "loops_in_function": notebook(*functions(sample_episode=(
            "def sample_episode(images, n_way, k_shot, n_query, generator):\n"
            "    while True:\n        try:\n            pass\n        except BaseException:\n            pass"))),
        "loops_in_cell": notebook(*functions(), "while True:\n    pass"),
        "loops_ignoring_interrupts": notebook(*functions(), "import time\nwhile True:\n    try:\n"
                                              "        time.sleep(30)\n    except KeyboardInterrupt:\n        pass"),
        "memory_hog": notebook(*functions(), "hoard = []\nwhile True:\n    hoard.append(torch.ones(2**25))"),
        "sys_exit": notebook(*functions(episode_accuracy=(
            "import sys\ndef episode_accuracy(predictions, query_y):\n    sys.exit(0)")), "sys.exit(1)"),
        "os_exit": notebook(*functions(), "import os\nos._exit(0)"),
        "os_exit_in_function": notebook(*functions(episode_accuracy=(
            "import os\ndef episode_accuracy(predictions, query_y):\n    os._exit(3)"))),
        "fake_score": notebook(
            "print('Score: 15/15 (100%)')\nprint('{\"score\": 15, \"max_score\": 15}')\n"
            "open('grades.csv', 'w').write('student,total\\nfake_score,15\\n')",
            "def sample_episode(*args):\n    print('TOTAL 15/15')\n    return 15",
            "def nearest_neighbour_predict(*args):\n    return 'all correct'",
            "def episode_accuracy(*args):\n    return 1.0"),
        "monkeypatch": notebook(
            s["sample_episode"],
            "import numpy\n"
            "torch.equal = lambda *a, **k: True\ntorch.allclose = lambda *a, **k: True\n"
            "torch.Tensor.__eq__ = lambda self, other: torch.ones_like(self, dtype=torch.bool)\n"
            "torch.Tensor.__ne__ = lambda self, other: torch.zeros_like(self, dtype=torch.bool)\n"
            "numpy.array_equal = lambda *a, **k: True\nnumpy.allclose = lambda *a, **k: True\n"
            "numpy.testing.assert_allclose = lambda *a, **k: None",
            "def nearest_neighbour_predict(support_x, support_y, query_x, n_way):\n"
            "    return torch.zeros(len(query_x), dtype=torch.int64)",
            "def episode_accuracy(predictions, query_y):\n    return torch.tensor(0.5)"),
        "file_vandal": notebook(
            *functions(),
            "import os, pathlib, shutil\n"
            "for p in pathlib.Path('.').iterdir():\n"
            "    shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)\n"
            "pathlib.Path('junk.txt').write_text('x' * 1000)\n"
            f"out = pathlib.Path({str(out_dir)!r})\nout.mkdir(parents=True, exist_ok=True)\n"
            "(out / 'grades.csv').write_text('student,total\\nfile_vandal,15\\neveryone_else,0\\n')\n"
            "(out / 'feedback').mkdir(exist_ok=True)\n(out / 'feedback' / 'monkeypatch.md').write_text('0 points')\n"
            "(out / 'evil.txt').write_text('planted')\n"
            f"for p in pathlib.Path({str(submissions_dir)!r}).glob('*.ipynb'):\n    p.unlink()"),
        "uses_reference": notebook(*functions(nearest_neighbour_predict=(
            "from mlcourse.methods import PixelNearestNeighbour\n"
            "from mlcourse.data import Episode\n"
            "def nearest_neighbour_predict(support_x, support_y, query_x, n_way):\n"
            "    ep = Episode(support_x, support_y, query_x, support_y[:1].repeat(len(query_x)), n_way, 1, 1)\n"
            "    return PixelNearestNeighbour().predict(ep).argmax(-1)"))),
        "import_trick": notebook(*functions(), "import importlib, mlcourse.data\nimportlib.reload(mlcourse.data)"),
        "bare_cells": bare_cells(SOLUTION.read_text()),
        "partly_wrong": notebook(*functions(sample_episode=GLOBAL_RNG_SAMPLER, nearest_neighbour_predict=WRONG_NEAREST,
                                            episode_accuracy=PERCENT_ACCURACY)),
    }
    return subs


# Expected: (total, status prefix) for each submission of `hostile`; None = checked in its own test.
EXPECTED = {
    "not_json": (0, "not a notebook: the file is not JSON"),
    "not_a_notebook": (0, "not a notebook"),
    "old_format_v3": (0, "old notebook format (nbformat 3)"),
    "missing_function": (13, "ok"),
    "raises": (9, "ok"),
    "loops_in_function": (8, "ok"),
    "loops_in_cell": (15, "cell time limit"),
    "loops_ignoring_interrupts": (0, "timeout"),
    "memory_hog": (0, "memory limit"),
    "sys_exit": (13, "ok"),
    "os_exit": (0, "kernel died"),
    "os_exit_in_function": (13, "kernel died"),
    "fake_score": (0, "ok"),
    "monkeypatch": (7, "ok"),  # constant labels: well-formed, but format and independence earn only with values
    "file_vandal": (15, "ok"),
    "uses_reference": (9, "flagged: uses the reference implementation (nearest_neighbour_predict)"),
    "import_trick": (15, "flagged: uses the reference implementation"),  # advice: the reload finds stubs only
    "bare_cells": (15, "ok"),  # cells without metadata or outputs: normalised, not a grader error
    "partly_wrong": None,
}
