"""Write exercises/NN_slug.ipynb from solutions/NN_slug.ipynb, the single source of an exercise set.

Every region between `### BEGIN SOLUTION` and `### END SOLUTION` (nbgrader's markers) becomes
`raise NotImplementedError("<hint>")` at the same indentation, the hint taken from a `### HINT: ...`
line inside the region. Outputs and execution counts are cleared and cells tagged `solution-only`
are dropped; everything else stays as it is, but for one addition: the heading of the markdown cell
before each graded function's cell gets the function's points, e.g. "(5 points)", taken from the
set's checks module, so that the points the student reads are the points the grader gives. Cells
that now raise, and the later cells that use what they define, get the tag `raises-exception`, so
that nbval runs the exercise notebook too.
"""

import ast
import copy
import json
import re
from pathlib import Path

import nbformat

BEGIN, END, HINT = "### BEGIN SOLUTION", "### END SOLUTION", "### HINT:"
DEFAULT_HINT = "replace this line with your code"
MARKDOWN_STUB = "_Write your answer here._"
SOLUTION_ONLY, RAISES = "solution-only", "raises-exception"


class MarkerError(ValueError):
    """Solution markers that do not pair up; the message names the notebook, the cell and the line."""


def strip_solutions(source: str, where: str, markdown: bool = False) -> tuple[str, bool]:
    """`source` with each solution region replaced by a stub, and whether there was any region."""
    out, region, found = [], None, False
    for n, line in enumerate(source.split("\n"), start=1):
        text = line.strip()
        if text.startswith(BEGIN):
            if region is not None:
                raise MarkerError(f"{where}, line {n}: {BEGIN} inside the region opened on line {region[0]} "
                                  f"(nested, or its {END} is missing)")
            region, found = (n, line[: len(line) - len(line.lstrip())], []), True
        elif text.startswith(END):
            if region is None:
                raise MarkerError(f"{where}, line {n}: {END} without a {BEGIN} before it")
            _, indent, hints = region
            hint = " ".join(hints) or DEFAULT_HINT
            stub = MARKDOWN_STUB if markdown else f"raise NotImplementedError({json.dumps(hint, ensure_ascii=False)})"
            out.append(indent + stub)
            region = None
        elif text.startswith(HINT):
            if region is None:
                raise MarkerError(f"{where}, line {n}: {HINT} outside a solution region")
            region[2].append(text[len(HINT):].strip())
        elif region is None:
            out.append(line)
    if region is not None:
        raise MarkerError(f"{where}, line {region[0]}: {BEGIN} without a matching {END}")
    return "\n".join(out), found


def _parse(source: str) -> ast.Module | None:
    from mlcourse.grading.static import python_source

    try:
        return ast.parse(python_source(source))
    except (SyntaxError, ValueError):
        return None


def _stored(node: ast.AST) -> set[str]:
    """Names bound at the top level by one statement (not inside functions, classes or comprehensions)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    names = set()
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
        names.add(node.id)
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, (ast.Lambda, ast.comprehension, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names |= _stored(child)
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(child.name)
    return names


def defined_and_used(source: str) -> tuple[set[str], set[str]]:
    """Top-level names a code cell binds, and every name it reads."""
    tree = _parse(source)
    if tree is None:
        return set(), set()
    defined = set().union(*(_stored(stmt) for stmt in tree.body)) if tree.body else set()
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return defined, used


POINTS = re.compile(r"\(\d+(?:\.\d+)? points?\)")  # what state_points adds, e.g. "(5 points)"


def points_text(points: float) -> str:
    """'(1 point)', '(5 points)', '(2.5 points)'."""
    return f"({points:g} point{'' if points == 1 else 's'})"


def graded_points(exercise: str) -> dict[str, float]:
    """The points of each graded function of `exercise` (a notebook's stem), from its checks module; none when the
    set has no checks yet."""
    from mlcourse.grading import checks

    if exercise not in checks.available():
        return {}
    return {fn.name: fn.max_points for fn in checks.build(exercise).functions}


def _defines(source: str, function: str) -> bool:
    tree = _parse(source)
    return tree is not None and any(isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name == function
                                    for s in tree.body)


def state_points(cells: list, points: dict[str, float], name: str) -> None:
    """Append to the heading of the markdown cell before each graded function's cell the points it is worth (several
    graded functions under one heading get one entry each). Changes `cells` in place."""
    under: dict[int, list[str]] = {}  # markdown cell index -> graded functions that it introduces
    for function in points:
        where = next((i for i, c in enumerate(cells) if c.cell_type == "code" and _defines(c.source, function)), None)
        if where is None:
            raise MarkerError(f"{name}: the graded function {function} is not defined at the top of any code cell")
        heading = next((i for i in range(where - 1, -1, -1) if cells[i].cell_type == "markdown"), None)
        if heading is None:
            raise MarkerError(f"{name}: cell {where + 1} defines {function}, but no markdown cell comes before it "
                              f"to state its points")
        under.setdefault(heading, []).append(function)
    for i, functions in under.items():
        lines = cells[i].source.split("\n")
        n = next((k for k, line in enumerate(lines) if line.startswith("#")), None)
        if n is None:
            raise MarkerError(f"{name}: cell {i + 1} introduces {', '.join(functions)} but has no heading (a line "
                              f"starting with #) to state the points")
        if POINTS.search(lines[n]):
            raise MarkerError(f"{name}: cell {i + 1}: the heading already states points; the generator adds them "
                              f"from the checks module, so remove them from the solutions notebook")
        if len(functions) == 1:
            lines[n] += " " + points_text(points[functions[0]])
        else:
            lines[n] += " (" + ", ".join(f"`{f}` {points_text(points[f])[1:-1]}" for f in functions) + ")"
        cells[i].source = "\n".join(lines)


def make_exercise(solution: nbformat.NotebookNode, name: str,
                  points: dict[str, float] | None = None) -> nbformat.NotebookNode:
    """The exercise notebook of a solutions notebook, with the `points` of each graded function stated in the heading
    before it (`name` only serves error messages)."""
    nb = copy.deepcopy(solution)
    if points:
        state_points(nb.cells, points, name)
    cells, broken = [], set()  # broken: names that are undefined or raise once the solutions are gone
    for i, cell in enumerate(nb.cells, start=1):
        tags = list(cell.get("metadata", {}).get("tags", []))
        if SOLUTION_ONLY in tags:
            continue
        where = f"{name}: cell {i}" + (f" (id {cell['id']})" if cell.get("id") else "")
        cell.source, stubbed = strip_solutions(cell.source, where, markdown=cell.cell_type == "markdown")
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
            defined, used = defined_and_used(cell.source)
            if stubbed or used & broken:
                broken |= defined
                if RAISES not in tags:
                    cell.metadata["tags"] = tags + [RAISES]
        cells.append(cell)
    nb.cells = cells
    return nb


def pairs(root: Path) -> list[tuple[Path, Path]]:
    """(solutions/X.ipynb, exercises/X.ipynb) for every solutions notebook."""
    return [(s, root / "exercises" / s.name) for s in sorted((root / "solutions").glob("*.ipynb"))]


def generate(solution_path: Path) -> str:
    """The exercise notebook of one solutions notebook, as the text to write."""
    nb = nbformat.read(solution_path, as_version=4)
    return nbformat.writes(make_exercise(nb, str(solution_path), graded_points(solution_path.stem))) + "\n"


def write_all(root: Path) -> list[Path]:
    """Regenerate exercises/ from solutions/; the paths written."""
    written = []
    for solution, exercise in pairs(root):
        exercise.parent.mkdir(exist_ok=True)
        exercise.write_text(generate(solution), encoding="utf-8")
        written.append(exercise)
    return written


def check_fresh(root: Path) -> list[str]:
    """What is stale in exercises/ (empty when every exercise notebook matches its solutions notebook)."""
    problems = []
    for solution, exercise in pairs(root):
        if not exercise.is_file():
            problems.append(f"{exercise} is missing")
            continue
        try:
            committed = nbformat.writes(nbformat.read(exercise, as_version=4)) + "\n"
        except Exception as err:
            problems.append(f"{exercise} cannot be read ({type(err).__name__}: {err})")
            continue
        if committed != generate(solution):
            problems.append(f"{exercise} differs from what {solution} generates")
    solved = {s.name for s, _ in pairs(root)}
    problems += [f"{e} has no {root / 'solutions' / e.name}" for e in sorted((root / "exercises").glob("*.ipynb"))
                 if e.name not in solved]
    return problems
