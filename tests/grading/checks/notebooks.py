"""What the tests of every exercise set share: the set's checks run in this process on functions taken from its
notebooks or its reference implementation, and the points that book/instructors.md documents."""

import importlib
import re
from pathlib import Path

import nbformat

from mlcourse.grading.checks import build, module_name
from mlcourse.grading.harness import call_all, encode_call
from mlcourse.grading.scoring import CheckResult, score

ROOT = Path(__file__).resolve().parents[3]


def cells(folder: str, exercise: str) -> list:
    """The cells of solutions/ or exercises/ `exercise`.ipynb."""
    return nbformat.read(ROOT / folder / f"{exercise}.ipynb", as_version=4).cells


def functions(folder: str, exercise: str, names: tuple[str, ...]) -> dict:
    """`names` as the notebook defines them: its first code cell (the imports), then each function's cell."""
    code = [c.source for c in cells(folder, exercise) if c.cell_type == "code"]
    namespace: dict = {}
    exec(compile(code[0], "imports", "exec"), namespace)  # noqa: S102 (our own notebooks)
    for name in names:
        source = next(s for s in code if f"def {name}(" in s)
        exec(compile(source, name, "exec"), namespace)  # noqa: S102
    return {name: namespace[name] for name in names}


class GradedSet:
    """An exercise set's checks, with its grader's calls made in this process (fast, no kernel)."""

    def __init__(self, exercise: str, seed: int | None = None):
        self.name = exercise
        self.exercise = build(exercise, seed)
        self.references = importlib.import_module(module_name(exercise)).REFERENCES
        self.names = tuple(fn.name for fn in self.exercise.functions)
        self.calls = [encode_call(k, c) for k, c in self.exercise.calls.items()]

    def results(self, namespace: dict, time_limit: float = 10) -> list[CheckResult]:
        """Every check's result for the graded functions in `namespace`."""
        return score(self.exercise, *call_all(self.calls, namespace, time_limit=time_limit))

    def failing(self, **replaced) -> set[str]:
        """Names of the checks that fail when some reference functions are replaced."""
        return {r.name for r in self.results({**self.references, **replaced}) if not r.passed}

    def notebook(self, folder: str) -> list[CheckResult]:
        """The results of the graded functions of solutions/ or exercises/."""
        return self.results(functions(folder, self.name, self.names))

    def hidden_messages(self, *replacements: dict) -> list[str]:
        """What the failing hidden checks tell the student, for each dict of reference functions replaced."""
        return [r.message for replaced in replacements for r in self.results({**self.references, **replaced})
                if r.hidden and r.message]


def documented_points() -> dict[str, dict[str, float]]:
    """The points of each graded function per exercise set, from the table in book/instructors.md."""
    table = {}
    for line in (ROOT / "book" / "instructors.md").read_text(encoding="utf-8").splitlines():
        row = re.match(r"\| `(\d{2}_\w+)` \|[^|]*\| (.*) \| (\d+(?:\.\d+)?) \|$", line)
        if row:
            points = {name: float(p) for name, p in re.findall(r"`(\w+)` \((\d+(?:\.\d+)?)\)", row[2])}
            assert sum(points.values()) == float(row[3]), f"the total of {row[1]} in book/instructors.md"
            table[row[1]] = points
    return table
