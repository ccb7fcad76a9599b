"""The checks of each exercise set live in `checks/ex<NN_slug>.py`, found from the exercise's stem."""

import hashlib
import importlib
import re
from pathlib import Path

from mlcourse.grading.spec import Exercise

STEM = re.compile(r"^\d{2}_[a-z0-9_]+$")  # e.g. 01_tasks_and_episodes


def module_name(exercise: str) -> str:
    """The checks module of an exercise: 01_tasks_and_episodes -> mlcourse.grading.checks.ex01_tasks_and_episodes."""
    if not STEM.match(exercise):
        raise ValueError(f"{exercise!r} is not an exercise name: use the notebook's stem, like 01_tasks_and_episodes")
    return f"{__name__}.ex{exercise}"


def available() -> list[str]:
    """The exercises that have checks."""
    return sorted(p.stem[2:] for p in Path(__file__).parent.glob("ex*.py") if STEM.match(p.stem[2:]))


def default_seed(exercise: str) -> int:
    """The seed of the grader's inputs when none is given: fixed by the exercise's name, never by the clock."""
    return int.from_bytes(hashlib.sha256(exercise.encode()).digest()[:4], "big")


def build(exercise: str, seed: int | None = None) -> Exercise:
    """The graded functions, calls and checks of `exercise`, with inputs drawn from `seed`."""
    name = module_name(exercise)
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name != name:
            raise
        known = ", ".join(available()) or "none"
        raise ValueError(f"no checks for exercise {exercise!r} (looked for {name}); "
                         f"exercises with checks: {known}") from None
    return module.build(default_seed(exercise) if seed is None else seed)
