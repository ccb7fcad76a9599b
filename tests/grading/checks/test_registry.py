"""Finding an exercise set's checks from its stem."""

import pytest

from mlcourse.grading import checks


def test_module_names_and_available_exercises():
    assert checks.module_name("01_tasks_and_episodes") == "mlcourse.grading.checks.ex01_tasks_and_episodes"
    assert "01_tasks_and_episodes" in checks.available()
    with pytest.raises(ValueError, match="not an exercise name"):
        checks.module_name("../etc/passwd")


def test_unknown_exercise_says_which_exist():
    with pytest.raises(ValueError, match="no checks for exercise '99_nothing'.*01_tasks_and_episodes"):
        checks.build("99_nothing")


def test_the_seed_comes_from_the_name_not_the_clock():
    assert checks.default_seed("01_tasks_and_episodes") == checks.default_seed("01_tasks_and_episodes")
    assert checks.default_seed("01_tasks_and_episodes") != checks.default_seed("02_siamese")
    a, b = checks.build("01_tasks_and_episodes"), checks.build("01_tasks_and_episodes")
    c = checks.build("01_tasks_and_episodes", seed=123)
    first = lambda ex: ex.calls["c0"].args[0]  # noqa: E731
    assert a.calls.keys() == c.calls.keys() and first(a).equal(first(b)) and not first(a).equal(first(c))
