"""Test evaluations of finished runs: computed once by `engine.settings_scores`, stored beside the runs.

Evaluating a learner on 600 test episodes takes from seconds (a prototypical network) to minutes
(Reptile's 50 test-time steps in every episode), and several chapters evaluate the same runs. So a
chapter asks for an evaluation with `evaluate_run(run, settings)`: the first time it is computed and
stored in `notebooks/runs/evaluations.json` with the score of every episode, keyed by the run file's
SHA-256 and the evaluation's settings; afterwards it is read from there. A retrained run has another
checksum, so its old evaluations are dropped, never reused. `tests/test_evaluations.py` evaluates the
first episodes of every stored evaluation again and compares them episode by episode: a stored number
is the code's.
"""

import hashlib
import json
import os
from pathlib import Path

from mlcourse.data import load_omniglot
from mlcourse.data.shifts import shifted
from mlcourse.engine import settings_scores
from mlcourse.utils import mean_ci

STORE = "evaluations.json"


def settings_key(split: str, part: str, n_way: int, k_shot: int, n_episodes: int, seed: int,
                 shift: tuple[str, float] | None = None, test_inner_steps: int | None = None) -> str:
    """The name of one evaluation: which classes, which setting, how many seeded episodes, which options."""
    key = f"{split}/{part} {n_way}-way {k_shot}-shot, {n_episodes} episodes, seed {seed}"
    if shift is not None:
        key += f", {shift[0]} {shift[1]:g}"
    if test_inner_steps is not None:
        key += f", {test_inner_steps} test steps"
    return key


def parse_key(key: str) -> dict:
    """settings_key's arguments back from its string."""
    where, rest = key.split(" ", 1)
    split, part = where.split("/")
    setting, episodes, seed, *options = rest.split(", ")
    n_way, k_shot = setting.replace("-way", "").replace("-shot", "").split()
    parsed = {"split": split, "part": part, "n_way": int(n_way), "k_shot": int(k_shot),
              "n_episodes": int(episodes.split()[0]), "seed": int(seed.split()[1]), "shift": None,
              "test_inner_steps": None}
    for option in options:
        if option.endswith(" test steps"):
            parsed["test_inner_steps"] = int(option.split()[0])
        else:
            name, strength = option.split()
            parsed["shift"] = (name, float(strength))
    return parsed


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def store_path(run) -> Path:
    return Path(run.path).parent / STORE


def read_store(path: Path) -> dict:
    """{run file name: {"sha256": ..., "scores": {settings_key: [score of each episode]}}}."""
    return json.loads(path.read_text()) if path.is_file() else {}


def write_store(path: Path, store: dict) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # each process its own, renamed atomically
    tmp.write_text(json.dumps(store, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


def evaluation_scores(run, settings, n_episodes: int = 600, seed: int = 0, part: str = "test",
                      shift: tuple[str, float] | None = None, test_inner_steps: int | None = None) -> dict:
    """Each episode's accuracy for each (n_way, k_shot) of `settings`, from the store or computed now and stored.

    `run` is a finished run (`runs.replay`, `runs.load_run`): its file identifies the weights. `shift` = (name,
    strength) evaluates on shifted images (`mlcourse.data.shifts`); `test_inner_steps` overrides a gradient
    learner's number of test-time steps.
    """
    path, split = store_path(run), run.config.split
    store = read_store(path)
    sha = file_sha256(run.path)
    entry = store.get(run.path.name)
    if entry is None or entry["sha256"] != sha:  # a retrained run: its old evaluations no longer apply
        entry = {"sha256": sha, "scores": {}}
    key = lambda n, k: settings_key(split, part, n, k, n_episodes, seed, shift, test_inner_steps)  # noqa: E731
    missing = [(n, k) for n, k in settings if key(n, k) not in entry["scores"]]
    if missing:
        scores = compute_scores(run.method, split, part, missing, n_episodes, seed, shift, test_inner_steps)
        entry["scores"].update({key(n, k): [round(s, 6) for s in scores[n, k]] for n, k in missing})
        store = read_store(path)  # again: another process may have stored evaluations meanwhile
        if store.get(run.path.name, {}).get("sha256") == sha:
            entry["scores"] = {**store[run.path.name]["scores"], **entry["scores"]}
        store[run.path.name] = entry
        write_store(path, store)
    return {(n, k): entry["scores"][key(n, k)] for n, k in settings}


def compute_scores(method, split: str, part: str, settings, n_episodes: int, seed: int,
                   shift: tuple[str, float] | None = None, test_inner_steps: int | None = None) -> dict:
    """engine.settings_scores on the classes of `split`/`part`, shifted or with other test-time steps if asked."""
    images = load_omniglot(split, part).images
    if shift is not None:
        images = shifted(images, *shift)
    steps = getattr(method, "test_inner_steps", None)
    if test_inner_steps is not None:
        if steps is None:
            raise ValueError(f"{type(method).__name__} takes no test-time gradient steps")
        method.test_inner_steps = test_inner_steps
    try:
        return settings_scores(method, images, settings, n_episodes, seed)
    finally:
        if steps is not None:
            method.test_inner_steps = steps


def evaluate_run(run, settings, n_episodes: int = 600, seed: int = 0, part: str = "test",
                 shift: tuple[str, float] | None = None, test_inner_steps: int | None = None) -> dict:
    """Mean accuracy and its 95% confidence interval for each (n_way, k_shot) of `settings` (see evaluation_scores)."""
    scores = evaluation_scores(run, settings, n_episodes, seed, part, shift, test_inner_steps)
    return {setting: mean_ci(s) for setting, s in scores.items()}
