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


def test_grading_without_a_secret_makes_one_per_installation(tmp_path, monkeypatch, capsys):
    """The public seed (the exercise's name alone) is never used by accident: the first grading run makes a secret,
    readable by its owner only, and later runs use it."""
    from mlcourse.grading.grader import grade
    from tests.grading.corpus import SANDBOXED

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv(checks.SECRET_ENV, raising=False)
    said = []
    first, _, _ = grade(tmp_path, "01_tasks_and_episodes", echo=said.append, sandboxed=SANDBOXED)
    path = checks.secret_file()
    assert path.is_file() and (path.stat().st_mode & 0o777) == 0o600 and str(path) in " ".join(said)
    secret = checks.grader_secret()
    assert len(secret) >= 32
    again, _, _ = grade(tmp_path, "01_tasks_and_episodes", echo=said.append, sandboxed=SANDBOXED)
    public = checks.build("01_tasks_and_episodes")
    inputs = lambda ex: ex.calls["c0"].args[0]  # noqa: E731
    assert inputs(first).equal(inputs(again)) and not inputs(first).equal(inputs(public))
    assert checks.grader_secret() == secret
