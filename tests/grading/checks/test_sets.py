"""What every exercise set's checks must do: the references and the solution pass them all, the exercise's stubs
none, the notebooks pass the static screen, and the points are the ones book/instructors.md documents and the
exercise notebook states.

A set's own test module (`test_exNN_slug.py`) holds only what is particular to it: its common mistakes and the
checks they must fail."""

from functools import cache

import pytest
import torch

from mlcourse.grading.checks import available
from mlcourse.grading.exercises import DEFAULT_HINT, points_text
from mlcourse.grading.static import screen
from tests.grading.checks.notebooks import ROOT, GradedSet, cells, documented_points

EXERCISES = available()


@cache
def graded(exercise: str) -> GradedSet:
    return GradedSet(exercise)


def test_every_solutions_notebook_has_checks_and_a_row_in_the_instructors_page():
    assert [p.stem for p in sorted((ROOT / "solutions").glob("*.ipynb"))] == EXERCISES
    assert sorted(documented_points()) == EXERCISES


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_references_pass_everything(exercise):
    s = graded(exercise)
    assert s.failing() == set()
    assert all(c.calls and set(c.calls) <= set(s.exercise.calls) for fn in s.exercise.functions for c in fn.checks)


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_points_are_those_of_the_instructors_page(exercise):
    functions = graded(exercise).exercise.functions
    assert {fn.name: fn.max_points for fn in functions} == documented_points()[exercise]
    assert [fn.name for fn in functions] == list(documented_points()[exercise])  # in the notebook's order


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_solution_gets_full_marks_and_the_exercise_zero(exercise):
    s = graded(exercise)
    assert [r.name for r in s.notebook("solutions") if not r.passed] == []
    assert [r.name for r in s.notebook("exercises") if r.passed] == []


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_notebooks_do_not_trip_the_static_screen(exercise):
    assert screen(cells("solutions", exercise), graded(exercise).exercise) == []
    assert screen(cells("exercises", exercise), graded(exercise).exercise) == []


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_exercise_states_each_functions_points_and_gives_a_hint(exercise):
    notebook = cells("exercises", exercise)
    for fn in graded(exercise).exercise.functions:
        where = next(i for i, c in enumerate(notebook) if c.cell_type == "code" and f"def {fn.name}(" in c.source)
        heading = next(c for c in reversed(notebook[:where]) if c.cell_type == "markdown").source.split("\n")[0]
        assert heading.startswith("#") and heading.endswith(points_text(fn.max_points)), (fn.name, heading)
        assert f'NotImplementedError("{DEFAULT_HINT}")' not in notebook[where].source, f"{fn.name} has no hint"


def _constant_like(value, fill):
    """`value` (a tensor, a number, or a tuple, list or dict of them) with every entry replaced by `fill`."""
    if isinstance(value, dict):
        return {k: _constant_like(v, fill) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_constant_like(v, fill) for v in value)
    t = torch.as_tensor(value).detach()
    if fill == "uniform":  # rows that sum to one, as probabilities or attention weights do
        return torch.full_like(t, 1.0 / t.shape[-1]) if t.is_floating_point() and t.dim() else torch.zeros_like(t)
    return torch.full_like(t, fill if t.is_floating_point() else int(fill))


@pytest.mark.parametrize("exercise", EXERCISES)
@pytest.mark.parametrize("fill", [0.0, 1.0, -1.0, 0.5, "uniform"])
def test_constant_but_well_formed_outputs_earn_next_to_nothing(exercise, fill):
    """Outputs of the right shape and dtype whose values ignore the inputs: format and invariance checks earn their
    points only together with right values, so such a submission gets at most 5% of the set (set 05's mask has two
    half-value checks, no position reads a later one / every earlier one, that an all-False or all-True mask meets)."""
    s = graded(exercise)
    constant = {name: (lambda ref: lambda *a, **k: _constant_like(ref(*a, **k), fill))(ref)
                for name, ref in s.references.items()}
    results = s.results(constant)
    earned = sum(r.points for r in results)
    assert earned <= 0.05 * s.exercise.max_points, [r.name for r in results if r.passed]
