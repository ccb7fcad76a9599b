"""Judge a submission's outputs in the grader's process: each check passes or fails, with its reason."""

from dataclasses import dataclass

import torch

from mlcourse.grading.spec import Exercise, Fail

VALUES_FIRST = "this check's points come only with right values"


@dataclass
class CheckResult:
    """The outcome of one check for one submission."""

    function: str
    name: str
    points: float  # earned
    max_points: float
    hidden: bool
    message: str = ""  # why it failed; empty when it passed

    @property
    def passed(self) -> bool:
        return not self.message


def _outputs_of(keys, function, outputs, errors):
    """The tensors of each call of a check, or Fail with what went wrong in the student's kernel."""
    outs = []
    for key in keys:
        if key in outputs:
            outs.append(outputs[key])
        elif key in errors and errors[key].startswith("NotImplementedError"):
            raise Fail(f"{function} is not written yet (it raises NotImplementedError)")
        elif key in errors:
            raise Fail(f"{function} raised {errors[key]}")
        else:
            raise Fail("no result: the notebook stopped (time limit, memory limit or a dead kernel) before this call")
    return outs


def judge_check(check, function: str, outputs: dict, errors: dict) -> str:
    """'' when the check passes, else the reason it failed."""
    try:
        outs = _outputs_of(check.calls, function, outputs, errors)
        check.judge(*outs)
        if check.needs is not None:
            try:
                check.needs(*outs)
            except Fail as wrong:
                raise Fail(f"{VALUES_FIRST}: {wrong}") from None
    except Fail as failed:
        return str(failed) or "failed"
    except Exception as err:  # outputs malformed in a way no judge foresaw: the check fails, grading goes on
        return f"the returned tensors could not be checked ({type(err).__name__})"
    return ""


def score(exercise: Exercise, outputs: dict[str, list[torch.Tensor]], errors: dict[str, str],
          voided: dict[str, str] | None = None) -> list[CheckResult]:
    """Every check of every graded function; functions in `voided` (name -> reason) get zero."""
    voided = voided or {}
    results = []
    for fn in exercise.functions:
        for check in fn.checks:
            message = voided.get(fn.name) or judge_check(check, fn.name, outputs, errors)
            points = 0.0 if message else float(check.points)
            results.append(CheckResult(fn.name, check.name, points, float(check.points), check.hidden, message))
    return results


def points_by_function(exercise: Exercise, results: list[CheckResult]) -> dict[str, float]:
    """Earned points per graded function, in the exercise's order."""
    totals = {fn.name: 0.0 for fn in exercise.functions}
    for r in results:
        totals[r.function] += r.points
    return totals
