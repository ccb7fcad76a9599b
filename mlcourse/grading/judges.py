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


# ---- calls made through the adapter `outputs_gradients_inputs` ---------------------------------------

ADAPTER = "outputs_gradients_inputs"  # returns the outputs, the gradients of a weighted sum of them, the inputs after


def adapted(out: list[torch.Tensor], args: tuple, names: tuple[str, ...], weighted: bool = True):
    """The returned items (checked to be as many as `names`), the gradients (one per float tensor argument, when the
    call had weights) and the tensor arguments as they were after the call, of a call through ADAPTER."""
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    n_grads = sum(t.is_floating_point() for t in tensors) if weighted else 0
    n_extra = n_grads + len(tensors)
    items = unpack(out[:max(0, len(out) - n_extra)], names)
    rest = out[len(out) - n_extra:]
    return items, rest[:n_grads], rest[n_grads:]


def untouched(after: list[torch.Tensor], args: tuple, function: str) -> None:
    """Fail unless every tensor argument is as it was before the call (no in-place change, no resize)."""
    for a, x in zip(after, [a for a in args if isinstance(a, torch.Tensor)]):
        if a.shape != x.shape or a.dtype != x.dtype or not torch.equal(a, x):
            raise Fail(f"{function} changed a tensor it was given (in place, e.g. with unsqueeze_, div_ or /=): "
                       "compute new tensors and leave the inputs as they were")


def reference_gradients(reference, args: tuple, weights: tuple) -> list[torch.Tensor]:
    """d(sum of weight * item) / d(each float tensor argument) for the reference, in float64."""
    leaves = [a.detach().double().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
              for a in args]
    value = reference(*leaves)
    items = list(value) if isinstance(value, (tuple, list)) else [value]
    total = sum((w.double().reshape(i.shape) * i).sum() for i, w in zip(items, weights)
                if isinstance(i, torch.Tensor) and i.requires_grad)
    inputs = [x for x in leaves if isinstance(x, torch.Tensor) and x.requires_grad]
    grads = torch.autograd.grad(total, inputs, allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for g, x in zip(grads, inputs)]


GRADIENT_ATOL = 1e-5  # close()'s absolute tolerance: a reference gradient below it may come back as exact zeros


def gradients_match(grads: list[torch.Tensor], expected: list[torch.Tensor], why: str) -> None:
    """Fail unless the gradients that came back through the student's graph are the reference's."""
    if len(grads) != len(expected) or any(g.shape != e.shape for g, e in zip(grads, expected)):
        raise Fail("the grader could not read the gradients back")
    if not any(bool(g.abs().max() > 0) for g in grads if g.numel()) and \
            any(bool(e.abs().max() > GRADIENT_ATOL) for e in expected if e.numel()):  # float32 may round tiny ones to 0
        raise Fail("no gradient flows back to the inputs: keep the result in the graph (no .item(), .detach(), "
                   "NumPy, .data, torch.tensor(...) of values or torch.no_grad())")
    flat = torch.cat([g.reshape(-1).double() for g in grads]) if grads else torch.zeros(0)
    close(flat, torch.cat([e.reshape(-1) for e in expected]) if expected else torch.zeros(0), why)
