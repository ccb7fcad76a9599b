"""What an exercise set declares for grading: graded functions, the calls the grader makes, the checks."""

from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch


@dataclass(frozen=True)
class Seeded:
    """An argument that becomes `torch.Generator().manual_seed(seed)` in the student's kernel."""

    seed: int


@dataclass
class Call:
    """One call of a graded function on inputs chosen by the grader."""

    function: str
    args: tuple  # tensors, ints, floats, bools, strings or Seeded
    global_seed: int = 0  # torch, numpy and random are seeded with it just before the call
    adapter: str = ""  # a function of mlcourse.grading.adapters, called as adapter(function, *args) in the kernel


class Fail(Exception):
    """Raised by a judge: the check failed, for the reason given (shown to the student)."""


# A judge gets the tensors returned by each of its calls, in order, and raises Fail when the check fails.
Judge = Callable[..., None]


@dataclass
class Check:
    """One graded property of one function; hidden checks are named in feedback, their inputs never shown."""

    name: str
    points: float
    calls: list[str]  # keys of Exercise.calls
    judge: Judge
    hidden: bool = True
    needs: Judge | None = None  # a value judge of the same outputs that must pass too (format, invariance checks)


@dataclass
class GradedFunction:
    """A function the student writes, with a fixed signature, and the mlcourse objects that implement it."""

    name: str
    signature: str
    references: tuple[str, ...]  # dotted paths, e.g. "mlcourse.methods.nearest.min_per_class"
    flag_names: tuple[str, ...] = ()  # distinctive names whose mention in a submission flags it
    checks: list[Check] = field(default_factory=list)

    @property
    def max_points(self) -> float:
        return sum(c.points for c in self.checks)

    def check(self, name: str, points: float, calls: list[str], judge: Judge, hidden: bool = True,
              needs: Judge | None = None) -> None:
        """Add a check of this function.

        A check that looks only at the format of the outputs (shape, dtype) or at an invariance (order of the
        queries, relabelling) names in `needs` a judge of the same outputs that compares their values with the
        reference: it earns its points only when both pass, so that well-formed but wrong (say constant) outputs
        earn nothing.
        """
        self.checks.append(Check(name, points, list(calls), judge, hidden, needs))


@dataclass
class Exercise:
    """An exercise set as the grader sees it, built from a seed by its checks module."""

    name: str
    functions: list[GradedFunction] = field(default_factory=list)
    calls: dict[str, Call] = field(default_factory=dict)
    uses_omniglot: bool = False  # the notebook loads Omniglot: the grader makes it available offline
    limits: dict = field(default_factory=dict)  # this set's default grading limits (fields of kernel.Limits)

    @property
    def max_points(self) -> float:
        return sum(f.max_points for f in self.functions)

    def function(self, name: str, signature: str, references: tuple[str, ...],
                 flag_names: tuple[str, ...] = ()) -> GradedFunction:
        """Declare a graded function."""
        fn = GradedFunction(name, signature, tuple(references), tuple(flag_names))
        self.functions.append(fn)
        return fn

    def call(self, function: str, *args, global_seed: int = 0, adapter: str = "") -> str:
        """Register a call that the harness will make; returns its key.

        With an `adapter` (a name in `mlcourse.grading.adapters`), the kernel calls adapter(function, *args): the
        adapter builds what the function takes (a model, a dict of parameters) from the plain arguments.
        """
        for a in args:
            if not isinstance(a, (torch.Tensor, int, float, bool, str, Seeded)):
                raise TypeError(f"call arguments must be plain tensors, numbers, strings or Seeded, not {type(a)}")
        if adapter:
            from mlcourse.grading import adapters

            if adapter not in adapters.__all__:
                raise ValueError(f"no adapter {adapter!r} in mlcourse.grading.adapters")
        key = f"c{len(self.calls)}"
        self.calls[key] = Call(function, tuple(args), global_seed, adapter)
        return key


# One part of an exercise set: declares a graded function on the Exercise, registers its calls with inputs drawn
# from the generator, and adds its checks.
Part = Callable[[Exercise, torch.Generator], None]


def assemble(name: str, seed: int, parts: Iterable[Part], *, uses_omniglot: bool = False,
             limits: dict | None = None) -> Exercise:
    """An exercise set built from its parts, in order, all drawing their inputs from one generator seeded with `seed`.

    This is what every checks module's `build(seed)` does; the parts are the set's own checks.
    """
    ex = Exercise(name, uses_omniglot=uses_omniglot, limits=dict(limits or {}))
    g = torch.Generator().manual_seed(seed)
    for part in parts:
        part(ex, g)
    return ex
