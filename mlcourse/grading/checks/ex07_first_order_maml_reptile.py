"""Checks of chapter 7's exercises: the first-order meta-gradient, Reptile's update of a meta-batch, Reptile's surrogate.

The graded functions take plain tensors, so every call goes through the generic kernel-side adapter
`outputs_gradients_inputs`: it returns what the function returned, the tensor inputs as they are after
the call (an in-place change shows there) and, for `reptile_surrogate`, the gradient of the returned
number with respect to theta and to the phis, through the student's own graph.

The model of `first_order_meta_gradient` is the linear regression of chapter 6's toy, prediction
`x @ theta`, with the mean squared error; the inputs are float64 and the inner learning rates large
enough that the first-order meta-gradient, the second-order one, the gradient at theta and the
gradient of the support loss differ by far more than the tolerance (tests/grading/checks checks it),
so each usual mistake is named by the check meant for it.
"""

import torch

from mlcourse.grading.judges import ADAPTER, adapted, close, untouched
from mlcourse.grading.spec import Exercise, Fail, assemble

EXERCISE = "07_first_order_maml_reptile"


def _mse(theta, x, y):
    """Mean squared error of the linear model x @ theta on one task: x (k, d), y (k,)."""
    return ((x @ theta - y) ** 2).mean()


def reference_first_order_meta_gradient(theta, support_x, support_y, query_x, query_y, inner_lr, inner_steps):
    """Mean over the tasks of the query loss's gradient at phi (phi: inner steps on the support loss from theta)."""
    grads = []
    for sx, sy, qx, qy in zip(support_x, support_y, query_x, query_y):
        phi = theta.detach()
        for _ in range(inner_steps):
            phi = phi - inner_lr * torch.func.grad(_mse)(phi, sx, sy)
        grads.append(torch.func.grad(_mse)(phi, qx, qy))
    return torch.stack(grads).mean(0)  # (n_tasks, d) -> (d,)


def reference_reptile_update(theta, phis, epsilon):
    """theta + epsilon * the mean over the tasks (first dimension of phis) of phi - theta."""
    return theta + epsilon * (phis - theta).mean(0)


def reference_reptile_surrogate(theta, phis):
    """A number whose gradient with respect to theta is theta - mean(phis), and none with respect to phis."""
    return 0.5 * ((theta - phis.detach().mean(0)) ** 2).sum()


REFERENCES = {"first_order_meta_gradient": reference_first_order_meta_gradient,
              "reptile_update": reference_reptile_update, "reptile_surrogate": reference_reptile_surrogate}


def second_order_meta_gradient(theta, support_x, support_y, query_x, query_y, inner_lr, inner_steps):
    """MAML's meta-gradient, through the inner steps: what first_order_meta_gradient must not return."""
    def meta_loss(t):
        losses = []
        for sx, sy, qx, qy in zip(support_x, support_y, query_x, query_y):
            phi = t
            for _ in range(inner_steps):
                phi = phi - inner_lr * torch.func.grad(_mse)(phi, sx, sy)
            losses.append(_mse(phi, qx, qy))
        return torch.stack(losses).mean()
    return torch.func.grad(meta_loss)(theta)


def gradient_at_theta(theta, support_x, support_y, query_x, query_y, inner_lr, inner_steps):
    """The query loss's gradient at theta itself (no inner steps)."""
    return reference_first_order_meta_gradient(theta, support_x, support_y, query_x, query_y, inner_lr, 0)


def support_gradient_at_phi(theta, support_x, support_y, query_x, query_y, inner_lr, inner_steps):
    """The support loss's gradient at phi, in place of the query loss's."""
    return reference_first_order_meta_gradient(theta, support_x, support_y, support_x, support_y, inner_lr,
                                               inner_steps)


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to the tolerance of `judges.close`."""
    a, b = a.double(), b.double()
    return a.shape == b.shape and bool(torch.isfinite(a).all()) and bool(
        torch.allclose(a, b, rtol=1e-4, atol=1e-5 * max(float(b.abs().max()), 1.0)))


def _one(out, args, name, weighted=False):
    """The single tensor returned, checked to be float with the shape of theta; the gradients; the inputs after."""
    (value,), grads, after = adapted(out, args, (name,), weighted)
    if not value.is_floating_point():
        raise Fail(f"{name} should return a float tensor")
    return value, grads, after


# ---- first_order_meta_gradient -------------------------------------------------------------------

def _tasks(g, n_tasks, k_shot, n_query, d):
    """theta (d,), and support_x (n_tasks, k_shot, d), support_y (n_tasks, k_shot), query_x, query_y."""
    w = torch.randn(n_tasks, d, generator=g, dtype=torch.float64)  # each task's true weights
    x = torch.randn(n_tasks, k_shot + n_query, d, generator=g, dtype=torch.float64)
    y = (x @ w[..., None])[..., 0] + 0.1 * torch.randn(n_tasks, k_shot + n_query, generator=g, dtype=torch.float64)
    theta = 0.5 * torch.randn(d, generator=g, dtype=torch.float64)
    return theta, x[:, :k_shot], y[:, :k_shot], x[:, k_shot:], y[:, k_shot:]


def _first_order_checks(ex: Exercise, g: torch.Generator) -> None:
    fn = ex.function("first_order_meta_gradient", "first_order_meta_gradient(theta, support_x, support_y, query_x, "
                                                  "query_y, inner_lr, inner_steps)",
                     references=("mlcourse.methods.maml.adapt",))

    def case(n_tasks, inner_lr, inner_steps, k_shot=5, n_query=8, d=4):
        return (*_tasks(g, n_tasks, k_shot, n_query, d), float(inner_lr), int(inner_steps))

    def calls(cases):
        return [ex.call(fn.name, 7, *c, adapter=ADAPTER) for c in cases]

    def gradient(out, args):
        value = _one(out, args, "the meta-gradient")[0]
        if tuple(value.shape) != tuple(args[0].shape):
            raise Fail("the meta-gradient should have the shape of theta")
        return value

    def matches(cases, why):
        def judge(*outs):
            for out, args in zip(outs, cases):
                value = gradient(out, args)
                if same(value, second_order_meta_gradient(*args)):
                    raise Fail("this is second-order MAML's meta-gradient: take the inner steps' gradients as "
                               "constants (no create_graph, or detach them), and return the query loss's gradient "
                               "at phi")
                if same(value, gradient_at_theta(*args)):
                    raise Fail("this is the query loss's gradient at theta: take the inner steps first and the "
                               "gradient at phi")
                if same(value, support_gradient_at_phi(*args)):
                    raise Fail("this is the support loss's gradient at phi: the meta-gradient is the query loss's")
                close(value, reference_first_order_meta_gradient(*args), why)
        return judge

    why = "the meta-gradient differs from the gradient of the query loss at phi, phi adapted on the support set"
    first_cases = [case(1, 0.1, 1), case(1, 0.05, 1, d=6)]
    first = calls(first_cases)

    def format_(*outs):
        for out, args in zip(outs, first_cases):
            gradient(out, args)

    fn.check("returns a tensor with the shape of theta", 1, first, format_, hidden=False,
             needs=matches(first_cases, why))
    fn.check("one task, one inner step: the query loss's gradient at phi", 1, first, matches(first_cases, why),
             hidden=False)

    at_phi = [case(1, 0.2, 1), case(2, 0.15, 1, k_shot=3)]
    fn.check("the gradient at phi, not second order, not at theta, not of the support loss", 2, calls(at_phi),
             matches(at_phi, why))

    steps = [case(1, 0.1, 3), case(1, 0.05, 6, k_shot=10)]

    def several(*outs):
        for out, args in zip(outs, steps):
            value = gradient(out, args)
            theta, sx, sy, qx, qy, lr, n = args
            from_theta = [reference_first_order_meta_gradient(theta, sx, sy, qx, qy, lr * n, 1)]
            if same(value, from_theta[0]):
                raise Fail("every inner step takes its gradient at theta: take each at the parameters of the step "
                           "before")
            close(value, reference_first_order_meta_gradient(*args), "after several inner steps the meta-gradient "
                                                                     "differs: each step starts where the last ended")

    fn.check("several inner steps, each from the parameters of the step before", 1, calls(steps), several)

    theta, sx, sy, qx, qy = _tasks(g, 5, 5, 8, 4)
    order = torch.roll(torch.arange(5), 2)  # every task in another place
    batch = [(theta, sx, sy, qx, qy, 0.1, 1), (theta, sx[order], sy[order], qx[order], qy[order], 0.1, 1),
             case(8, 0.05, 1)]

    def meta_batch(*outs):
        values = [gradient(out, args) for out, args in zip(outs, batch)]
        for value, args in zip(values, batch):
            if same(value, reference_first_order_meta_gradient(*args) * len(args[1])):
                raise Fail("the meta-gradient of a meta-batch sums its tasks' gradients: take their mean")
        if not same(values[0], values[1]):
            raise Fail("the meta-gradient depends on the order of the tasks: adapt every task from theta")
        for value, args in zip(values, batch):
            close(value, reference_first_order_meta_gradient(*args), "the meta-gradient of a meta-batch differs from "
                                                                     "the mean of its tasks' gradients")

    fn.check("a meta-batch: the mean over the tasks, each adapted from theta", 1, calls(batch), meta_batch)

    kept = [case(1, 0.1, 1)]

    def inputs_kept(*outs):
        for out, args in zip(outs, kept):
            untouched(_one(out, args, "the meta-gradient")[2], args, fn.name)

    fn.check("theta and the tasks' tensors are left as they were", 1, calls(kept), inputs_kept,
             needs=matches(kept, why))


# ---- reptile_update ------------------------------------------------------------------------------

def _reptile_case(g, n_tasks, shape, epsilon):
    theta = torch.randn(tuple(shape), generator=g, dtype=torch.float64)
    phis = theta + 0.5 * torch.randn((n_tasks, *shape), generator=g, dtype=torch.float64)  # (n_tasks, *shape)
    return theta, phis, float(epsilon)


def _reptile_update_checks(ex: Exercise, g: torch.Generator) -> None:
    fn = ex.function("reptile_update", "reptile_update(theta, phis, epsilon)",
                     references=("mlcourse.methods.maml.reptile_update",))

    def calls(cases):
        return [ex.call(fn.name, 3, *c, adapter=ADAPTER) for c in cases]

    def new_theta(out, args):
        value = _one(out, args, "the new theta")[0]
        if tuple(value.shape) != tuple(args[0].shape):
            raise Fail("the new theta should have the shape of theta (the mean is over the first dimension of phis)")
        return value

    def matches(cases, why):
        def judge(*outs):
            for out, args in zip(outs, cases):
                close(new_theta(out, args), reference_reptile_update(*args), why)
        return judge

    why = "the new theta differs from theta + epsilon * (the mean over the tasks of phi - theta)"
    first_cases = [_reptile_case(g, 4, (6,), 0.5), _reptile_case(g, 2, (3,), 0.1)]
    first = calls(first_cases)

    def format_(*outs):
        for out, args in zip(outs, first_cases):
            new_theta(out, args)

    fn.check("returns a tensor with the shape of theta", 1, first, format_, hidden=False,
             needs=matches(first_cases, why))
    fn.check("theta + epsilon * the mean over the tasks of (phi - theta)", 1, first, matches(first_cases, why),
             hidden=False)

    many = [_reptile_case(g, 1, (5,), 0.3), _reptile_case(g, 7, (5,), 0.2), _reptile_case(g, 16, (4,), 1.0)]

    def mean_not_sum(*outs):
        for out, args in zip(outs, many):
            theta, phis, epsilon = args
            value = new_theta(out, args)
            if len(phis) > 1 and same(value, theta + epsilon * (phis - theta).sum(0)):
                raise Fail("the step sums (phi - theta) over the tasks: take their mean, so that epsilon means the "
                           "same whatever the size of the meta-batch")
            close(value, reference_reptile_update(*args), why)

    fn.check("the mean over the tasks, not the sum (one task or many)", 1, calls(many), mean_not_sum)

    towards = [_reptile_case(g, 3, (8,), 0.25)]

    def towards_phis(*outs):
        for out, args in zip(outs, towards):
            theta, phis, _ = args
            if not float((new_theta(out, args) - theta) @ (phis.mean(0) - theta)) > 0:
                raise Fail("the step moves theta away from the tasks' parameters: theta + epsilon * (phi - theta)")

    fn.check("a step towards the tasks' parameters, not away", 1, calls(towards), towards_phis,
             needs=matches(towards, why))

    shapes = [_reptile_case(g, 3, (4, 5), 0.5), _reptile_case(g, 2, (2, 3, 3), 0.4), _reptile_case(g, 5, (), 0.5)]
    fn.check("theta of any shape (a matrix, a 3-d tensor, a number): the mean over the first dimension of phis", 1,
             calls(shapes), matches(shapes, "for a theta that is not a vector the new theta differs: average over "
                                            "the tasks only (the first dimension of phis), not over every dimension"))

    kept = [_reptile_case(g, 3, (6,), 0.5)]

    def inputs_kept(*outs):
        for out, args in zip(outs, kept):
            untouched(_one(out, args, "the new theta")[2], args, fn.name)

    fn.check("theta and phis are left as they were", 1, calls(kept), inputs_kept, needs=matches(kept, why))


# ---- reptile_surrogate ---------------------------------------------------------------------------

def _surrogate_checks(ex: Exercise, g: torch.Generator) -> None:
    fn = ex.function("reptile_surrogate", "reptile_surrogate(theta, phis)",
                     references=("mlcourse.methods.maml.Reptile",), flag_names=("Reptile",))

    def case(n_tasks, shape):
        theta, phis, _ = _reptile_case(g, n_tasks, shape, 0.0)
        return theta, phis, torch.ones(())  # the weight of the returned number: its gradient is taken as it is

    def calls(cases):
        return [ex.call(fn.name, 2, *c, adapter=ADAPTER) for c in cases]

    def parts(out, args):
        """The returned number, its gradient with respect to theta and to phis."""
        value, grads, _ = _one(out, args[:2], "the surrogate", weighted=True)
        if value.numel() != 1:
            raise Fail("reptile_surrogate should return one number (a 0-dim tensor)")
        return value, grads[0], grads[1]

    def theta_gradient(cases, why):
        def judge(*outs):
            for out, args in zip(outs, cases):
                theta, phis, _ = args
                _, grad, _ = parts(out, args)
                expected = theta - phis.mean(0)
                if not bool(grad.abs().max() > 0):
                    raise Fail("no gradient reaches theta: return a number computed from theta that keeps its graph "
                               "(no .item(), .detach() of theta or torch.no_grad())")
                if same(grad, -expected):
                    raise Fail("the gradient is mean(phi) - theta: with the optimizer's minus sign that steps away "
                               "from the tasks; its gradient should be theta - mean(phi)")
                if len(phis) > 1 and same(grad, len(phis) * expected):
                    raise Fail("the gradient sums over the tasks: use the mean of the phis")
                if same(grad, expected / expected.numel()) or same(grad, 2 * expected / expected.numel()):
                    raise Fail("the gradient is scaled by the number of parameters (a mean over the entries, as in "
                               "F.mse_loss): sum over the entries")
                close(grad, expected, why)
        return judge

    why = "the surrogate's gradient with respect to theta differs from theta - mean over the tasks of phi"
    first_cases = [case(4, (6,)), case(2, (3, 2))]
    first = calls(first_cases)

    def format_(*outs):
        for out, args in zip(outs, first_cases):
            parts(out, args)

    fn.check("returns one number that keeps its graph to theta", 1, first, format_, hidden=False,
             needs=theta_gradient(first_cases, why))
    fn.check("its gradient with respect to theta is theta - mean(phis)", 1, first, theta_gradient(first_cases, why),
             hidden=False)

    many = [case(1, (5,)), case(9, (4,)), case(3, (2, 3, 2))]
    fn.check("the mean over the tasks, summed over the entries, with the right sign, for any shape", 1,
             calls(many), theta_gradient(many, why))

    detached = [case(3, (6,)), case(5, (2, 2))]

    def no_gradient_to_phis(*outs):
        for out, args in zip(outs, detached):
            if bool(parts(out, args)[2].abs().max() > 0):
                raise Fail("a gradient flows into the phis: detach them, since in training they depend on theta "
                           "through the inner steps and Reptile's direction must not follow that path")

    fn.check("no gradient flows into the phis (they are constants)", 1, calls(detached), no_gradient_to_phis,
             needs=theta_gradient(detached, why))


def build(seed: int) -> Exercise:
    """Chapter 7's graded functions, the grader's calls (inputs drawn from `seed`) and the checks."""
    return assemble(EXERCISE, seed, [_first_order_checks, _reptile_update_checks, _surrogate_checks],
                    limits={"timeout": 300, "cell_timeout": 120, "call_timeout": 10})
