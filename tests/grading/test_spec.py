"""Declaring graded functions, calls and checks."""

import pytest
import torch

from mlcourse.grading.judges import as_labels, count, expect_shape, single, unpack
from mlcourse.grading.spec import Exercise, Fail, Seeded


def test_calls_take_plain_values_only_and_points_add_up():
    ex = Exercise("00_tiny")
    fn = ex.function("f", "f(x, g)", references=())
    key = ex.call("f", torch.ones(1), 3, 0.5, "text", Seeded(1), global_seed=4)
    assert key == "c0" and ex.calls[key].global_seed == 4
    with pytest.raises(TypeError, match="plain tensors"):
        ex.call("f", [1, 2])
    fn.check("one", 1, [key], lambda out: None)
    fn.check("two", 2.5, [key], lambda out: None)
    assert fn.max_points == ex.max_points == 3.5


def test_judge_helpers_fail_with_formulas_not_numbers():
    with pytest.raises(Fail, match=r"should return 2 tensors \(a, b\), returned 1"):
        unpack([torch.ones(1)], ("a", "b"))
    assert single([torch.ones(2)], "x").shape == (2,)
    with pytest.raises(Fail, match=r"^x should have shape \(n_way,\)$"):
        expect_shape(torch.ones(3), (4,), "x", "(n_way,)")
    assert as_labels(torch.tensor([1.0, 2.0]), "y").dtype == torch.int64
    with pytest.raises(Fail, match="whole-number labels"):
        as_labels(torch.tensor([0.5]), "y")
    assert count(1, "query") == "1 query" and count(3, "query") == "3 queries" and count(2, "image") == "2 images"
