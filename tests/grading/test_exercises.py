"""The exercise generator: solution regions become stubs, and exercises/ must match solutions/."""

import shutil

import nbformat
import pytest

from mlcourse.grading.exercises import (RAISES, MarkerError, check_fresh, defined_and_used, make_exercise,
                                        strip_solutions, write_all)
from tests.grading.corpus import ROOT


def tiny(*cells):
    """A notebook from (cell_type, source, tags) triples."""
    nb = nbformat.v4.new_notebook()
    for kind, source, tags in cells:
        cell = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    return nb


SOLVED = '''def f(x):
    """Twice x."""
    ### BEGIN SOLUTION
    ### HINT: multiply by 2
    return 2 * x
    ### END SOLUTION'''


def test_a_region_becomes_a_stub_at_its_indentation_with_its_hint():
    source, found = strip_solutions(SOLVED, "nb: cell 1")
    assert found
    assert source == 'def f(x):\n    """Twice x."""\n    raise NotImplementedError("multiply by 2")'


def test_the_default_hint_and_top_level_regions():
    source, _ = strip_solutions("a = 1\n### BEGIN SOLUTION\nb = 2\n### END SOLUTION\nc = 3", "nb")
    assert source == 'a = 1\nraise NotImplementedError("replace this line with your code")\nc = 3'
    assert strip_solutions("x = 1", "nb") == ("x = 1", False)


def test_hints_with_quotes_stay_valid_python():
    source, _ = strip_solutions('### BEGIN SOLUTION\n### HINT: use "torch.cdist", it\'s fast\n### END SOLUTION', "nb")
    compile(source, "<stub>", "exec")
    assert "use \\\"torch.cdist\\\", it's fast" in source


@pytest.mark.parametrize("source,message", [
    ("### BEGIN SOLUTION\nx = 1", "line 1: ### BEGIN SOLUTION without a matching ### END SOLUTION"),
    ("x = 1\n### END SOLUTION", "line 2: ### END SOLUTION without a ### BEGIN SOLUTION"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "line 2: ### BEGIN SOLUTION inside the region"),
    ("### HINT: lost\nx = 1", "line 1: ### HINT: outside a solution region"),
])
def test_malformed_markers_name_the_notebook_cell_and_line(source, message):
    nb = tiny(("markdown", "intro", None), ("code", source, None))
    with pytest.raises(MarkerError) as err:
        make_exercise(nb, "solutions/99_broken.ipynb")
    assert str(err.value).startswith("solutions/99_broken.ipynb: cell 2 (id ")
    assert message in str(err.value)


def test_outputs_cleared_solution_only_dropped_dependents_tagged():
    nb = tiny(("markdown", "# Title", None), ("code", "import math", None), ("code", SOLVED, None),
              ("code", "y = f(3)\nprint(y)", None), ("code", "z = y + 1", None), ("code", "w = math.pi", None),
              ("markdown", "instructor notes", ["solution-only"]),
              ("markdown", "Answer:\n### BEGIN SOLUTION\n42\n### END SOLUTION", None))
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", text="out")]
            cell.execution_count = 1
    ex = make_exercise(nb, "nb")
    assert [c.source for c in ex.cells][0:2] == ["# Title", "import math"]
    assert len(ex.cells) == 7 and ex.cells[-1].source == "Answer:\n_Write your answer here._"
    assert all(c.outputs == [] and c.execution_count is None for c in ex.cells if c.cell_type == "code")
    tags = [c.metadata.get("tags", []) for c in ex.cells if c.cell_type == "code"]
    assert tags == [[], [RAISES], [RAISES], [RAISES], []]  # the stub, what uses f, what uses y; not math
    assert [c.id for c in ex.cells] == [c.id for c in nb.cells if c.id != nb.cells[6].id]
    assert nb.cells[2].source == SOLVED  # the solutions notebook itself is untouched


def test_defined_and_used_sees_top_level_names_only():
    source = "import numpy as np\ndef g(a):\n    b = a\n    return b\nc, d = g(1), [e for e in x]"
    defined, used = defined_and_used(source)
    assert defined == {"np", "g", "c", "d"} and {"g", "x", "a", "b"} <= used


def test_exercises_in_the_repository_are_fresh():
    assert check_fresh(ROOT) == []


def test_a_stale_or_missing_exercise_is_reported(tmp_path):
    shutil.copytree(ROOT / "solutions", tmp_path / "solutions")
    shutil.copytree(ROOT / "exercises", tmp_path / "exercises")
    name = "01_tasks_and_episodes.ipynb"
    nb = nbformat.read(tmp_path / "exercises" / name, as_version=4)
    nb.cells[0].source += "\nedited by hand"
    nbformat.write(nb, tmp_path / "exercises" / name)
    (tmp_path / "exercises" / "99_orphan.ipynb").write_text(nbformat.writes(tiny()))
    problems = check_fresh(tmp_path)
    assert any("differs from what" in p for p in problems) and any("99_orphan" in p for p in problems)
    write_all(tmp_path)
    assert check_fresh(tmp_path) == [f"{tmp_path / 'exercises' / '99_orphan.ipynb'} has no "
                                     f"{tmp_path / 'solutions' / '99_orphan.ipynb'}"]
    (tmp_path / "exercises" / name).unlink()
    assert f"{tmp_path / 'exercises' / name} is missing" in check_fresh(tmp_path)


def test_the_exercise_notebook_keeps_the_functions_but_not_their_bodies():
    ex = nbformat.read(ROOT / "exercises" / "01_tasks_and_episodes.ipynb", as_version=4)
    text = "\n".join(c.source for c in ex.cells)
    for name in ("sample_episode", "nearest_neighbour_predict", "episode_accuracy"):
        assert f"def {name}(" in text
    assert "BEGIN SOLUTION" not in text and "cdist(query_x" not in text and "Instructor" not in text
    code = "\n".join(c.source for c in ex.cells if c.cell_type == "code")
    assert code.count("raise NotImplementedError(") == 3


def test_the_points_of_each_graded_function_go_into_the_heading_before_it():
    f_cell = SOLVED
    g_cell = 'def g(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION'
    nb = tiny(("markdown", "# Set", None), ("markdown", "## 1. Twice\n\nWrite `f`.", None), ("code", f_cell, None),
              ("code", "f(1)", None), ("markdown", "## 2. Same\nWrite `g`.", None), ("code", g_cell, None))
    ex = make_exercise(nb, "nb", {"f": 5, "g": 1})
    assert [c.source.split("\n")[0] for c in ex.cells if c.cell_type == "markdown"] == [
        "# Set", "## 1. Twice (5 points)", "## 2. Same (1 point)"]
    assert make_exercise(nb, "nb").cells[1].source == "## 1. Twice\n\nWrite `f`."  # no checks yet: no points
    both = tiny(("markdown", "## Two at once", None), ("code", f_cell, None), ("code", g_cell, None))
    assert make_exercise(both, "nb", {"f": 2.5, "g": 3}).cells[0].source == "## Two at once (`f` 2.5 points, `g` 3 points)"


@pytest.mark.parametrize("cells,message", [
    ((("code", SOLVED, None),), "cell 1 defines f, but no markdown cell comes before it"),
    ((("markdown", "Write f.", None), ("code", SOLVED, None)), "cell 1 introduces f but has no heading"),
    ((("markdown", "## f (5 points)", None), ("code", SOLVED, None)), "cell 1: the heading already states points"),
    ((("markdown", "## g", None), ("code", "g = 1", None)), "the graded function f is not defined"),
])
def test_points_that_cannot_be_stated_stop_the_generator(cells, message):
    with pytest.raises(MarkerError, match=message):
        make_exercise(tiny(*cells), "nb", {"f": 5})
