"""Scoring in the grader's process: errors, missing results, voided functions and broken judges."""

import torch

from mlcourse.grading.scoring import points_by_function, score
from mlcourse.grading.spec import Exercise, Fail


def tiny_exercise():
    ex = Exercise("00_tiny")
    fn = ex.function("double", "double(x)", references=("mlcourse.utils.mean_ci",))
    key = ex.call("double", torch.arange(3))

    def right(out):
        if not torch.equal(out[0], torch.arange(3) * 2):
            raise Fail("not twice x")

    fn.check("doubles", 2, [key], right, hidden=False)
    fn.check("a judge that crashes", 1, [key], lambda out: out[5])
    return ex, key


def test_points_errors_and_missing_results():
    ex, key = tiny_exercise()
    good = score(ex, {key: [torch.tensor([0, 2, 4])]}, {})
    assert [r.points for r in good] == [2, 0]
    assert good[1].message == "the returned tensors could not be checked (IndexError)"
    assert points_by_function(ex, good) == {"double": 2}
    wrong = score(ex, {key: [torch.tensor([0, 1, 2])]}, {})
    assert wrong[0].message == "not twice x" and wrong[0].points == 0
    raised = score(ex, {}, {key: "ZeroDivisionError: division by zero"})
    assert raised[0].message == "double raised ZeroDivisionError: division by zero"
    stub = score(ex, {}, {key: "NotImplementedError: write me"})
    assert stub[0].message == "double is not written yet (it raises NotImplementedError)"
    missing = score(ex, {}, {})
    assert missing[0].message.startswith("no result: the notebook stopped")


def test_voided_functions_get_zero_with_the_reason():
    ex, key = tiny_exercise()
    results = score(ex, {key: [torch.tensor([0, 2, 4])]}, {}, {"double": "flagged: cell 3 uses mean_ci"})
    assert all(r.points == 0 and r.message == "flagged: cell 3 uses mean_ci" for r in results)
