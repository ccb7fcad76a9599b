"""Screen a submission's code, in the grader's process, for the reference implementation and import tricks.

This reads the code's syntax tree (names, attributes, imports), never its strings or comments, and
never runs it. Its findings are advice for the instructor, who reads whatever gets flagged: they
never take points away by themselves. What keeps the references out of reach is the kernel's copy
of mlcourse, in which they are stubs that raise (`stubs.py`), and the sandbox around it.
"""

import ast
import importlib
import sys
from dataclasses import dataclass

from mlcourse.grading.spec import Exercise

# Ways around the disabled references: re-importing, reloading, dynamic code, digging in the runtime.
TRICK_NAMES = {"__import__", "reload", "exec", "eval", "compile", "__builtins__", "importlib", "runpy"}
TRICK_ATTRIBUTES = {"__import__", "reload", "__globals__", "__code__", "__closure__", "__subclasses__",
                    "__builtins__", "get_objects", "get_referrers", "import_module"}
TRICK_MODULES = {"importlib", "runpy", "imp"}
# The grader's own code in the kernel, and ways to reach it or what it relies on: a notebook never needs them.
GRADER_MODULE = "mlcourse.grading"  # of which a notebook may use `visible` only
GRADER_ALLOWED = {"mlcourse.grading.visible"}
GRADER_NAMES = {"_grading_harness", "_grading_adapters", "run_call", "load_calls", "call_one", "call_all", "run_calls",
                "outputs_gradients_inputs", "mlp_adapt", "mlp_meta_loss", "mlp_reptile_update"}
FRAME_ATTRIBUTES = {"_getframe", "currentframe", "f_back", "f_globals", "f_locals", "tb_frame", "settrace",
                    "setprofile", "user_ns", "user_global_ns"}
GRADER_MODULES = {"builtins", "ctypes", "__main__"}  # change what the harness relies on, or reach its namespace


@dataclass
class Finding:
    """Something flagged in one code cell; `function` None means it voids every graded function."""

    cell: int  # 1-based position among all cells of the notebook
    what: str
    function: str | None
    grader: bool = False  # reaches for the grader's code rather than a reference implementation


def python_source(source: str) -> str:
    """A cell's source as plain Python (IPython magics and shell escapes become calls)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:
        return source
    try:
        return TransformerManager().transform_cell(source)
    except Exception:  # a cell IPython cannot read either will just fail when it runs
        return source


def _module_of(path: str) -> str:
    return path.rsplit(".", 1)[0]


def _resolve(module: str, name: str):
    """The object `from module import name` gives, for mlcourse modules only (nothing else is imported)."""
    if module.split(".")[0] != "mlcourse":
        return None
    try:
        return getattr(importlib.import_module(module), name, None)
    except Exception:
        return None


class _References:
    """What counts as the reference implementation of each graded function of an exercise."""

    def __init__(self, exercise: Exercise):
        self.names = {n: fn.name for fn in exercise.functions for n in fn.flag_names}
        self.paths = {p: fn.name for fn in exercise.functions for p in fn.references}
        self.modules = {_module_of(p): fn_name for p, fn_name in self.paths.items()}
        self.objects = {}
        for path, fn_name in self.paths.items():
            obj = _resolve(*path.rsplit(".", 1))
            if obj is not None:
                self.objects[id(obj)] = fn_name


class _Screen(ast.NodeVisitor):
    def __init__(self, refs: _References):
        self.cell, self.findings = 0, []
        self.names, self.paths, self.modules, self.objects = refs.names, refs.paths, refs.modules, refs.objects
        self.aliases = {}  # local name -> the module path it was imported as (across cells)

    def flag(self, what: str, function: str | None, grader: bool = False) -> None:
        self.findings.append(Finding(self.cell, what, function, grader))

    def _grader_flag(self, module: str, how: str) -> None:
        if module.split(".")[0] in GRADER_MODULES:
            self.flag(f"{how} {module}, through which the grader's code can be changed or reached", None, True)
        elif (module == GRADER_MODULE or module.startswith(GRADER_MODULE + ".")) and module not in GRADER_ALLOWED:
            self.flag(f"{how} {module}, the grader's code", None, True)

    def _module_flag(self, module: str, how: str) -> None:
        self._grader_flag(module, how)
        for ref_module, fn_name in self.modules.items():
            if module == ref_module or module.startswith(ref_module + "."):
                self.flag(f"{how} {module}, which holds the reference of {fn_name}", fn_name)
        if module.split(".")[0] in TRICK_MODULES:
            self.flag(f"{how} {module}", None)

    def visit_Import(self, node):
        for alias in node.names:
            self._module_flag(alias.name, "imports")
            if alias.asname:
                self.aliases[alias.asname] = alias.name
        self.generic_visit(node)

    def visit_ImportFrom(self, node):
        module = node.module or ""
        if node.level == 0:
            self._grader_flag(module, "imports from")
            if module.split(".")[0] in TRICK_MODULES or any(a.name == "*" for a in node.names):
                self._module_flag(module, "imports from")  # a star import brings the reference in too
            for alias in node.names:
                full = f"{module}.{alias.name}"
                if module == GRADER_MODULE:
                    self._grader_flag(full, "imports")
                obj = _resolve(module, alias.name)
                if full in self.paths or (obj is not None and id(obj) in self.objects):
                    fn_name = self.paths.get(full) or self.objects[id(obj)]
                    self.flag(f"imports {alias.name} from {module}: the reference of {fn_name}", fn_name)
                elif isinstance(obj, type(sys)):
                    self._module_flag(obj.__name__, "imports")
                    self.aliases[alias.asname or alias.name] = obj.__name__
                if module == "sys" and alias.name == "modules":
                    self.flag("imports sys.modules", None)
        self.generic_visit(node)

    def _name(self, name: str, kind: str) -> None:
        if name in GRADER_NAMES or (kind == "attribute" and name in FRAME_ATTRIBUTES):
            self.flag(f"uses {name}, which reaches the grader's code in the kernel", None, True)
        if name in self.names:
            self.flag(f"uses {name}, the reference of {self.names[name]}", self.names[name])
        if (kind == "name" and name in TRICK_NAMES) or (kind == "attribute" and name in TRICK_ATTRIBUTES):
            self.flag(f"uses {name}", None)

    def visit_Name(self, node):
        self._name(node.id, "name")

    def visit_Attribute(self, node):
        self._name(node.attr, "attribute")
        dotted = _dotted(node, self.aliases)
        if dotted and dotted.startswith(GRADER_MODULE + "."):
            self._grader_flag(".".join(dotted.split(".")[:3]), "uses")
        if dotted in self.paths:
            self.flag(f"uses {dotted}, the reference of {self.paths[dotted]}", self.paths[dotted])
        if node.attr == "modules" and isinstance(node.value, ast.Name) and node.value.id == "sys":
            self.flag("uses sys.modules", None)
        self.generic_visit(node)

    def visit_alias(self, node):
        for name in (node.name.split(".")[-1], node.asname):
            if name and name in self.names:
                self._name(name, "import")

    def visit_Call(self, node):
        """getattr(x, 'EpisodeSampler'): a reference reached by its name as an attribute."""
        if (isinstance(node.func, ast.Name) and node.func.id == "getattr" and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
            self._name(node.args[1].value, "attribute")
            if node.args[1].value == "grading":
                self.flag("uses getattr(..., 'grading'), the grader's code", None, True)
        self.generic_visit(node)


def _dotted(node: ast.Attribute, aliases: dict[str, str]) -> str | None:
    """'mlcourse.methods.base.accuracy' for that chain of attributes (import aliases resolved), else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([aliases.get(node.id, node.id), *reversed(parts)])


def screen(cells: list[dict], exercise: Exercise) -> list[Finding]:
    """Findings in the code cells of a notebook (a list of nbformat cells), in cell order."""
    visitor = _Screen(_References(exercise))
    for i, cell in enumerate(cells, start=1):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        try:
            tree = ast.parse(python_source(source))
        except (SyntaxError, ValueError):
            continue  # it cannot run either
        visitor.cell = i
        visitor.visit(tree)
    return _unique(visitor.findings)


def _unique(findings: list[Finding]) -> list[Finding]:
    seen, kept = set(), []
    for f in findings:
        if (f.cell, f.what) not in seen:
            seen.add((f.cell, f.what))
            kept.append(f)
    return kept


def voided(findings: list[Finding], exercise: Exercise) -> dict[str, str]:
    """Graded function -> the first finding that concerns it (for the instructor's look; points are not taken)."""
    reasons = {}
    for f in findings:
        targets = [fn.name for fn in exercise.functions] if f.function is None else [f.function]
        for name in targets:
            reasons.setdefault(name, f"flagged: cell {f.cell} {f.what}")
    return reasons
