"""The checks of each exercise set live in `checks/ex<NN_slug>.py`, found from the exercise's stem."""

import hashlib
import importlib
import os
import re
import secrets
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


SECRET_ENV = "MLCOURSE_GRADER_SECRET"  # the instructor's secret, from which the hidden inputs are drawn


def secret_file() -> Path:
    """Where the instructor keeps the grader's secret, outside the repository: ~/.config/mlcourse/grader-secret."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "mlcourse" / "grader-secret"


def new_secret() -> str:
    """Make this installation's secret in secret_file() (the folder and the file readable by their owner only) and
    return it; where the file exists already (made by another grading run), the secret it holds."""
    path = secret_file()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        secret = grader_secret()
        if secret is None:
            raise ValueError(f"no grader secret could be read from {path}: write one into it, or delete it") from None
        return secret
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secrets.token_hex(32) + "\n")
    return grader_secret()


def grader_secret() -> str | None:
    """The instructor's secret: $MLCOURSE_GRADER_SECRET, else the first line of secret_file(), else None."""
    if os.environ.get(SECRET_ENV):
        return os.environ[SECRET_ENV]
    try:
        return secret_file().read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def default_seed(exercise: str, secret: str | None = None) -> int:
    """The seed of the grader's inputs when none is given: fixed by the exercise's name and the instructor's secret
    (without one, by the name alone, which anyone with the repository knows), never by the clock."""
    text = exercise if not secret else f"{secret}\0{exercise}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


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
