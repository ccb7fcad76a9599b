"""Small helpers for judges: unpack a call's tensors and fail with a message that reveals no hidden input."""

import torch

from mlcourse.grading.spec import Fail


def unpack(out: list[torch.Tensor], names: tuple[str, ...]) -> list[torch.Tensor]:
    """The tensors of one call, checked to be as many as `names`."""
    if len(out) != len(names):
        what = "one tensor" if len(names) == 1 else f"{len(names)} tensors ({', '.join(names)})"
        raise Fail(f"should return {what}, returned {len(out)}")
    return out


def single(out: list[torch.Tensor], name: str) -> torch.Tensor:
    """The one tensor of a call that should return a single tensor."""
    return unpack(out, (name,))[0]


def expect_shape(t: torch.Tensor, shape: tuple[int, ...], what: str, formula: str) -> None:
    """Fail unless `t` has `shape`; the message names the shape by its formula, not by its numbers."""
    if tuple(t.shape) != tuple(shape):
        raise Fail(f"{what} should have shape {formula}")


def as_labels(t: torch.Tensor, what: str) -> torch.Tensor:
    """`t` as int64, failing when its values are not whole numbers."""
    if t.is_floating_point() or t.is_complex():
        if not torch.isfinite(t).all() or not torch.equal(t, t.round()):
            raise Fail(f"{what} should hold whole-number labels")
    return t.to(torch.int64)


def count(n: int, noun: str) -> str:
    """'1 query', '3 queries'."""
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{n} {noun if n == 1 else plural}"


def close(actual: torch.Tensor, expected: torch.Tensor, why: str, *, relative: bool = True) -> None:
    """Fail with `why` unless the values are finite and agree (rtol 1e-4; atol 1e-5, times the largest expected
    magnitude when `relative` and that is above 1)."""
    actual, expected = actual.double(), expected.double()
    if not torch.isfinite(actual).all():
        raise Fail("returned values that are not finite (nan or inf)")
    scale = float(expected.abs().max()) if relative and expected.numel() else 1.0
    if not torch.allclose(actual, expected, rtol=1e-4, atol=1e-5 * max(scale, 1.0)):
        raise Fail(why)
