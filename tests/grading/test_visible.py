"""The notebooks' visible checks: a ✓ line when a check holds, a helpful error when not."""

import pytest
import torch

from mlcourse.grading.visible import CheckFailed, check, check_close, check_equal, check_shape


def test_check_prints_a_tick_or_raises_with_the_hint(capsys):
    check(True, "it holds")
    assert capsys.readouterr().out == "✓ it holds\n"
    with pytest.raises(AssertionError, match="✗ it fails\n  Hint: look here"):
        check(False, "it fails", "look here")


def test_check_shape():
    check_shape(torch.zeros(2, 3), (2, 3), "x")
    with pytest.raises(CheckFailed, match=r"x has shape \(3, 2\)\n  Hint: it has shape \(2, 3\)"):
        check_shape(torch.zeros(2, 3), (3, 2), "x")
    with pytest.raises(CheckFailed, match="should be a tensor, not a list"):
        check_shape([1, 2], (2,), "x")


def test_check_equal_and_close():
    check_equal(torch.tensor([1, 2]), [1, 2], "equal")
    with pytest.raises(CheckFailed, match=r"expected \[1, 2\], got \[1, 3\]"):
        check_equal(torch.tensor([1, 3]), [1, 2], "equal")
    with pytest.raises(CheckFailed):
        check_equal(torch.tensor([1, 2, 3]), [1, 2], "a shorter tensor is not equal")
    check_close(torch.tensor([0.75]), 0.75, "a one-element tensor counts as a number")
    check_close(0.3333333, 1 / 3, "close enough", atol=1e-6)
    with pytest.raises(CheckFailed, match="a share"):
        check_close(75.0, 0.75, "3 of 4", "a share")
