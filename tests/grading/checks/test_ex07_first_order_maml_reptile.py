"""Chapter 7's checks: each common mistake fails exactly the checks meant for it, and right solutions written
otherwise keep full marks, whatever the seed (what every set must do is in test_sets.py)."""

import pytest
import torch
import torch.nn.functional as F

from mlcourse.grading.checks.ex07_first_order_maml_reptile import (
    gradient_at_theta, reference_first_order_meta_gradient, reference_reptile_update, same,
    second_order_meta_gradient, support_gradient_at_phi)
from mlcourse.grading.static import screen
from tests.grading.checks.notebooks import GradedSet

EXERCISE = "07_first_order_maml_reptile"
SET = GradedSet(EXERCISE)
failing = SET.failing
SEEDS = [None, 1, 2024, 77777]

FO_FORMAT = "returns a tensor with the shape of theta"
FO_ONE = "one task, one inner step: the query loss's gradient at phi"
FO_AT_PHI = "the gradient at phi, not second order, not at theta, not of the support loss"
FO_SEVERAL = "several inner steps, each from the parameters of the step before"
FO_BATCH = "a meta-batch: the mean over the tasks, each adapted from theta"
FO_KEPT = "theta and the tasks' tensors are left as they were"
R_FORMAT = "returns a tensor with the shape of theta"  # the same words, another function: told apart below
R_VALUE = "theta + epsilon * the mean over the tasks of (phi - theta)"
R_MEAN = "the mean over the tasks, not the sum (one task or many)"
R_TOWARDS = "a step towards the tasks' parameters, not away"
R_SHAPES = "theta of any shape (a matrix, a 3-d tensor, a number): the mean over the first dimension of phis"
R_KEPT = "theta and phis are left as they were"
S_FORMAT = "returns one number that keeps its graph to theta"
S_VALUE = "its gradient with respect to theta is theta - mean(phis)"
S_MANY = "the mean over the tasks, summed over the entries, with the right sign, for any shape"
S_DETACHED = "no gradient flows into the phis (they are constants)"
ALL_FO = {FO_FORMAT, FO_ONE, FO_AT_PHI, FO_SEVERAL, FO_BATCH, FO_KEPT}


def failing_of(function: str, graded: GradedSet = SET, **replaced) -> set[str]:
    """Names of the failing checks of one graded function."""
    return {r.name for r in graded.results({**graded.references, **replaced})
            if not r.passed and r.name in _names(graded, function)}


def _names(graded: GradedSet, function: str) -> set[str]:
    return {c.name for fn in graded.exercise.functions if fn.name == function for c in fn.checks}


def test_the_screen_flags_the_references():
    source = "from mlcourse.methods.maml import adapt, reptile_update\nimport mlcourse.methods.maml as m\nm.Reptile"
    flagged = screen([{"cell_type": "code", "source": source}], SET.exercise)
    assert {f.function for f in flagged} == {"first_order_meta_gradient", "reptile_update", "reptile_surrogate"}


# ---- first_order_meta_gradient: the mistakes --------------------------------------------------------

def _mse(theta, x, y):
    return ((x @ theta - y) ** 2).mean()


def steps_from(theta, sx, sy, inner_lr, inner_steps, sign=-1.0, at_theta=False):
    """The inner steps with the knobs that students get wrong (gradients as constants)."""
    phi = theta.detach()
    for _ in range(inner_steps):
        phi = phi + sign * inner_lr * torch.func.grad(_mse)(theta if at_theta else phi, sx, sy)
    return phi


def first_order(reduce="mean", carry_over=False, sign=-1.0, at_theta=False, in_place=False):
    def fn(theta, support_x, support_y, query_x, query_y, inner_lr, inner_steps):
        grads, start = [], theta
        for sx, sy, qx, qy in zip(support_x, support_y, query_x, query_y):
            phi = steps_from(start, sx, sy, inner_lr, inner_steps, sign, at_theta)
            grads.append(torch.func.grad(_mse)(phi, qx, qy))
            if carry_over:
                start = phi
        if in_place:
            theta.sub_(inner_lr * grads[0])
        stacked = torch.stack(grads)  # (n_tasks, d)
        return stacked.sum(0) if reduce == "sum" else stacked.mean(0)
    return fn


def returns_a_list(*args):
    return reference_first_order_meta_gradient(*args).tolist()


def as_float32(*args):
    return reference_first_order_meta_gradient(*args).float()


FO_MISTAKES = [
    ({"first_order_meta_gradient": second_order_meta_gradient}, {FO_FORMAT, FO_ONE, FO_AT_PHI, FO_SEVERAL, FO_BATCH,
                                                                 FO_KEPT}),
    ({"first_order_meta_gradient": gradient_at_theta}, ALL_FO),
    ({"first_order_meta_gradient": support_gradient_at_phi}, ALL_FO),
    ({"first_order_meta_gradient": first_order(at_theta=True)}, {FO_SEVERAL}),
    ({"first_order_meta_gradient": first_order(reduce="sum")}, {FO_AT_PHI, FO_BATCH}),
    ({"first_order_meta_gradient": first_order(carry_over=True)}, {FO_AT_PHI, FO_BATCH}),
    ({"first_order_meta_gradient": first_order(sign=1.0)}, ALL_FO),
    ({"first_order_meta_gradient": first_order(in_place=True)}, {FO_KEPT}),
]


# ---- reptile_update: the mistakes -------------------------------------------------------------------

def reptile(reduce="mean", sign=1.0, all_dims=False, in_place=False, epsilon_one=False):
    def fn(theta, phis, epsilon):
        moves = phis - theta  # (n_tasks, *theta.shape)
        step = moves.mean() if all_dims else moves.sum(0) if reduce == "sum" else moves.mean(0)
        new = theta + sign * (1.0 if epsilon_one else epsilon) * step
        if in_place:
            theta.copy_(new)
        return new
    return fn


R_ALL = {R_FORMAT, R_VALUE, R_MEAN, R_TOWARDS, R_SHAPES, R_KEPT}
R_MISTAKES = [
    ({"reptile_update": reptile(reduce="sum")}, {R_FORMAT, R_VALUE, R_MEAN, R_TOWARDS, R_SHAPES, R_KEPT}),
    ({"reptile_update": reptile(sign=-1.0)}, R_ALL),
    ({"reptile_update": reptile(all_dims=True)}, R_ALL),
    ({"reptile_update": reptile(epsilon_one=True)}, {R_FORMAT, R_VALUE, R_MEAN, R_TOWARDS, R_SHAPES, R_KEPT}),
    ({"reptile_update": reptile(in_place=True)}, {R_KEPT}),
]


# ---- reptile_surrogate: the mistakes ----------------------------------------------------------------

def surrogate(detach=True, reduce="mean", sign=1.0, mse=False, item=False):
    def fn(theta, phis):
        target = phis.detach() if detach else phis
        centre = target.sum(0) if reduce == "sum" else target.mean(0)
        if sign < 0:  # the gradient mean(phi) - theta
            value = (theta * (centre - theta).detach()).sum()
        elif reduce == "sum":  # the gradient n_tasks * (theta - mean(phi))
            value = 0.5 * target.shape[0] * ((theta - target.mean(0)) ** 2).sum()
        elif mse:
            value = F.mse_loss(theta, centre.expand_as(theta))
        else:
            value = 0.5 * ((theta - centre) ** 2).sum()
        return value.item() if item else value
    return fn


S_ALL = {S_FORMAT, S_VALUE, S_MANY, S_DETACHED}
S_MISTAKES = [
    ({"reptile_surrogate": surrogate(detach=False)}, {S_DETACHED}),
    ({"reptile_surrogate": surrogate(reduce="sum")}, S_ALL),
    ({"reptile_surrogate": surrogate(sign=-1.0)}, S_ALL),
    ({"reptile_surrogate": surrogate(mse=True)}, S_ALL),
    ({"reptile_surrogate": surrogate(item=True)}, S_ALL),
]

MISTAKES = FO_MISTAKES + R_MISTAKES + S_MISTAKES


@pytest.mark.parametrize("replaced,expected", MISTAKES)
def test_a_mistake_fails_exactly_its_checks(replaced, expected):
    (function,) = replaced
    assert failing_of(function, **replaced) == expected
    assert failing(**replaced) <= expected  # no other function's checks move


@pytest.mark.parametrize("seed", SEEDS[1:])
def test_every_mistake_fails_the_same_checks_whatever_the_seed(seed):
    graded = GradedSet(EXERCISE, seed)
    for replaced, expected in MISTAKES:
        (function,) = replaced
        assert failing_of(function, graded, **replaced) == expected, (seed, replaced)


# ---- right solutions written otherwise --------------------------------------------------------------

def vmapped_first_order(theta, support_x, support_y, query_x, query_y, inner_lr, inner_steps):
    """torch.func over the whole meta-batch at once."""
    def one_task(sx, sy, qx, qy):
        phi = theta
        for _ in range(inner_steps):
            phi = phi - inner_lr * torch.func.grad(_mse)(phi, sx, sy)
        return torch.func.grad(_mse)(phi, qx, qy)
    return torch.vmap(one_task)(support_x, support_y, query_x, query_y).mean(0)


def closed_form_first_order(theta, support_x, support_y, query_x, query_y, inner_lr, inner_steps):
    """The gradients written by hand, batched: 2/k x^T (x w - y)."""
    phi = theta.expand(support_x.shape[0], -1).clone()  # (n_tasks, d)
    for _ in range(inner_steps):
        residual = (support_x @ phi[..., None])[..., 0] - support_y  # (n_tasks, k_shot)
        phi = phi - inner_lr * 2 * (support_x.transpose(1, 2) @ residual[..., None])[..., 0] / support_x.shape[1]
    residual = (query_x @ phi[..., None])[..., 0] - query_y  # (n_tasks, n_query)
    return (2 * (query_x.transpose(1, 2) @ residual[..., None])[..., 0] / query_x.shape[1]).mean(0)


def fake_second_order_then_detached(theta, support_x, support_y, query_x, query_y, inner_lr, inner_steps):
    """create_graph=True, but each inner gradient detached before the step: first order after all."""
    total = torch.zeros_like(theta)
    for sx, sy, qx, qy in zip(support_x, support_y, query_x, query_y):
        theta_ = theta.detach().clone().requires_grad_()
        phi = theta_
        for _ in range(inner_steps):
            g = torch.autograd.grad(_mse(phi, sx, sy), phi, create_graph=True)[0]
            phi = phi - inner_lr * g.detach()
        total = total + torch.autograd.grad(_mse(phi, qx, qy), theta_)[0]
    return total / len(support_x)


def lerp_update(theta, phis, epsilon):
    return torch.lerp(theta, phis.mean(0), epsilon)


def looped_update(theta, phis, epsilon):
    return theta + epsilon * sum(phi - theta for phi in phis) / len(phis)


def linear_surrogate(theta, phis):
    """Another number with the same gradient: theta . (theta - mean(phi)), the second factor a constant."""
    return (theta * (theta - phis.mean(0)).detach()).sum()


def no_grad_mean_surrogate(theta, phis):
    with torch.no_grad():
        centre = phis.mean(0)
    return ((theta - centre) ** 2).sum() / 2


RIGHT = [{"first_order_meta_gradient": vmapped_first_order},
         {"first_order_meta_gradient": closed_form_first_order},
         {"first_order_meta_gradient": fake_second_order_then_detached},
         {"first_order_meta_gradient": as_float32},
         {"reptile_update": lerp_update}, {"reptile_update": looped_update},
         {"reptile_surrogate": linear_surrogate}, {"reptile_surrogate": no_grad_mean_surrogate}]


@pytest.mark.parametrize("seed", SEEDS)
def test_right_solutions_written_otherwise_get_full_marks(seed):
    graded = SET if seed is None else GradedSet(EXERCISE, seed)
    for replaced in RIGHT:
        assert graded.failing(**replaced) == set(), (seed, replaced)


@pytest.mark.parametrize("replaced,check,says", [
    ({"first_order_meta_gradient": second_order_meta_gradient}, FO_AT_PHI, "second-order"),
    ({"first_order_meta_gradient": gradient_at_theta}, FO_AT_PHI, "gradient at theta"),
    ({"first_order_meta_gradient": support_gradient_at_phi}, FO_AT_PHI, "support loss"),
    ({"first_order_meta_gradient": first_order(at_theta=True)}, FO_SEVERAL, "at theta"),
    ({"first_order_meta_gradient": first_order(reduce="sum")}, FO_BATCH, "sums"),
    ({"first_order_meta_gradient": first_order(carry_over=True)}, FO_BATCH, "order of the tasks"),
    ({"first_order_meta_gradient": first_order(in_place=True)}, FO_KEPT, "changed a tensor"),
    ({"reptile_update": reptile(reduce="sum")}, R_MEAN, "sums"),
    ({"reptile_update": reptile(sign=-1.0)}, R_TOWARDS, "away"),
    ({"reptile_surrogate": surrogate(detach=False)}, S_DETACHED, "detach"),
    ({"reptile_surrogate": surrogate(reduce="sum")}, S_MANY, "sums over the tasks"),
    ({"reptile_surrogate": surrogate(sign=-1.0)}, S_VALUE, "mean(phi) - theta"),
    ({"reptile_surrogate": surrogate(mse=True)}, S_VALUE, "number of parameters"),
])
def test_the_check_meant_for_a_mistake_names_it(replaced, check, says):
    (function,) = replaced
    message = next(r.message for r in SET.results({**SET.references, **replaced})
                   if r.name == check and r.name in _names(SET, function))
    assert says in message, message


@pytest.mark.parametrize("seed", SEEDS)
def test_the_usual_mistakes_are_far_apart_in_every_first_order_call(seed):
    """Whatever the seed, second order, the gradient at theta and the support loss's never pass for first order."""
    graded = SET if seed is None else GradedSet(EXERCISE, seed)
    calls = [c for c in graded.exercise.calls.values() if c.function == "first_order_meta_gradient"]
    for call in calls:
        args = call.args[1:]  # the adapter's n_args first
        right = reference_first_order_meta_gradient(*args)
        for wrong in (second_order_meta_gradient, gradient_at_theta, support_gradient_at_phi):
            assert (wrong(*args) - right).norm() > 1e-2 * right.norm(), wrong.__name__
            assert not same(wrong(*args), right)


def test_hidden_messages_reveal_no_numbers_of_the_inputs():
    for message in SET.hidden_messages(*(replaced for replaced, _ in MISTAKES)):
        assert not any(ch.isdigit() for ch in message), message


def test_the_reference_update_is_one_sgd_step_on_the_reference_surrogate():
    g = torch.Generator().manual_seed(0)
    theta, phis = torch.randn(3, 2, generator=g), torch.randn(4, 3, 2, generator=g)
    leaf = theta.clone().requires_grad_()
    SET.references["reptile_surrogate"](leaf, phis).backward()
    assert torch.allclose(theta - 0.3 * leaf.grad, reference_reptile_update(theta, phis, 0.3))
