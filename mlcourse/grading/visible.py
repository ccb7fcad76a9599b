"""The visible checks of the exercise notebooks: a ✓ line when a check holds, else an error saying what to fix."""

import torch


class CheckFailed(AssertionError):
    """A visible check did not hold; the message says which, and what to look at."""


def check(condition, message: str, hint: str = "") -> None:
    """Print '✓ message' when `condition` holds; else raise CheckFailed with the message and the hint."""
    if not condition:
        raise CheckFailed(f"✗ {message}" + (f"\n  Hint: {hint}" if hint else ""))
    print(f"✓ {message}")


def check_shape(tensor, shape: tuple, name: str) -> None:
    """Check that `tensor` is a tensor of the given shape."""
    if not isinstance(tensor, torch.Tensor):
        raise CheckFailed(f"✗ {name} should be a tensor, not a {type(tensor).__name__}")
    check(tuple(tensor.shape) == tuple(shape), f"{name} has shape {tuple(shape)}",
          f"it has shape {tuple(tensor.shape)}")


def check_equal(actual, expected, message: str, hint: str = "") -> None:
    """Check that two tensors (or numbers) are equal: same shape and values."""
    actual_t, expected_t = torch.as_tensor(actual), torch.as_tensor(expected)
    same = actual_t.shape == expected_t.shape and bool((actual_t == expected_t).all())
    detail = hint or f"expected {_short(expected_t)}, got {_short(actual_t)}"
    check(same, message, detail)


def check_close(actual, expected, message: str, hint: str = "", *, atol: float = 1e-6) -> None:
    """Check that two tensors (or numbers) are equal up to `atol`; a one-element tensor counts as a number."""
    actual_t, expected_t = torch.as_tensor(actual).double(), torch.as_tensor(expected).double()
    if expected_t.dim() == 0 and actual_t.numel() == 1:
        actual_t = actual_t.reshape(())
    same = actual_t.shape == expected_t.shape and bool(torch.allclose(actual_t, expected_t, atol=atol, rtol=0))
    check(same, message, hint or f"expected {_short(expected_t)}, got {_short(actual_t)}")


def _short(t: torch.Tensor) -> str:
    text = str(t.tolist()) if t.numel() <= 12 else f"a tensor of shape {tuple(t.shape)}"
    return text
