"""A per-run copy of the mlcourse package in which the graded functions' reference implementations are stubs.

The student's kernel imports this copy (and, in the sandbox, sees no other): its source holds no
reference implementation, so an alias, a reload, a copy of a module file under another name or a
child `python -c "import mlcourse..."` finds only the stub, which raises. Of `mlcourse.grading`, the copy
holds only what a notebook may use (`visible`): the grader's checks, harness and adapters are not there
to be read or patched (the grader sends the harness's source after the student's cells).
"""

import ast
import importlib
import inspect
import shutil
from pathlib import Path

import mlcourse

KERNEL_GRADING = {"__init__.py", "visible.py"}  # all of mlcourse.grading that the kernel's copy holds
MESSAGE = "{name} from mlcourse is not available during grading: the graded function must be your own code"


def _message(name: str) -> ast.expr:
    return ast.Constant(MESSAGE.format(name=name))


def _raise(name: str) -> ast.stmt:
    return ast.Raise(exc=ast.Call(func=ast.Name("RuntimeError", ast.Load()), args=[_message(name)], keywords=[]),
                     cause=None)


def _stub(node: ast.stmt, name: str) -> ast.stmt:
    """A definition of `name` that raises when called (or, for a class, when instantiated)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = ast.arguments(posonlyargs=[], args=[], vararg=ast.arg("args"), kwonlyargs=[], kw_defaults=[],
                             kwarg=ast.arg("kwargs"), defaults=[])
        return ast.FunctionDef(name=name, args=args, body=[_raise(name)], decorator_list=[], returns=None,
                               type_comment=None)
    init = ast.FunctionDef(name="__init__", args=ast.arguments(
        posonlyargs=[], args=[ast.arg("self")], vararg=ast.arg("args"), kwonlyargs=[], kw_defaults=[],
        kwarg=ast.arg("kwargs"), defaults=[]), body=[_raise(name)], decorator_list=[], returns=None, type_comment=None)
    return ast.ClassDef(name=name, bases=[], keywords=[], body=[init], decorator_list=[])


def stub_source(source: str, names: set[str]) -> str:
    """`source` with the top-level definitions of `names` replaced by stubs that raise."""
    tree = ast.parse(source)
    body = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name in names:
            node = _stub(node, node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            hit = [t.id for t in targets if isinstance(t, ast.Name) and t.id in names]
            if hit:
                node = _stub(ast.FunctionDef(name=hit[0]), hit[0])
        body.append(node)
    tree.body = body
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def defining_file(path: str) -> tuple[Path, str]:
    """The source file (relative to the package) that defines the object at dotted `path`, and its name there."""
    module_name, name = path.rsplit(".", 1)
    obj = getattr(importlib.import_module(module_name), name)
    home = inspect.getmodule(obj) or importlib.import_module(module_name)
    package = Path(mlcourse.__file__).resolve().parent
    return Path(home.__file__).resolve().relative_to(package), getattr(obj, "__name__", name)


def stubbed_package(dest: Path, paths) -> Path:
    """Write `dest`/mlcourse, a copy of the package with the objects at the dotted `paths` stubbed; returns `dest`."""
    package = Path(mlcourse.__file__).resolve().parent

    def ignore(folder, names):
        skip = {n for n in names if n == "__pycache__" or n.endswith(".pyc")}
        return skip | (set(names) - KERNEL_GRADING if Path(folder) == package / "grading" else set())

    shutil.copytree(package, dest / "mlcourse", ignore=ignore)
    by_file: dict[Path, set[str]] = {}
    for path in paths:
        rel, name = defining_file(path)
        by_file.setdefault(rel, set()).add(name)
    for rel, names in by_file.items():
        file = dest / "mlcourse" / rel
        file.write_text(stub_source(file.read_text(encoding="utf-8"), names), encoding="utf-8")
    for p in [dest, *dest.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dest
