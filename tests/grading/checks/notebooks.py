"""The graded functions of an exercise set's notebooks, defined in this process, for fast in-process grading."""

from pathlib import Path

import nbformat

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
