"""Chapter 6's checks: each common mistake fails the check meant for it (what every set must do is in
test_sets.py)."""

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from mlcourse.grading.checks.ex06_maml import reference_adapt_outputs, reference_meta_loss_outputs, same
from mlcourse.grading.static import screen
from tests.grading.checks.notebooks import GradedSet

# a hard-coded MSE on a classifier's logits broadcasts, with a warning: that mistake is meant to fail
pytestmark = pytest.mark.filterwarnings("ignore:Using a target size:UserWarning")

SET = GradedSet("06_maml")
REFERENCES, failing = SET.references, SET.failing

ONE_STEP = "one inner step: phi = params - inner_lr * gradient of the support loss"
SEVERAL = "several inner steps, each from the parameters of the step before"
DOWNHILL = "every inner step goes downhill: the support loss falls"
UNTOUCHED = "params is left as it was: phi is a new dict of new tensors"
SECOND = "second order: the meta-gradient goes through the inner gradients (create_graph=True)"
FIRST = "first_order=True: the inner gradients are constants (first-order MAML)"
ANY_MODEL = "any model and loss_fn: a classifier with cross-entropy"
NUMBER = "returns one number whose gradient reaches params"
MEAN_LOSS = "the mean over the tasks of the query loss at each task's phi"
SUPPORT_QUERY = "adapts on the support set, then scores the query set"
MANY = "a meta-batch of many tasks: the mean of their losses"
FROM_PARAMS = "every task adapts from params (nothing carried over from task to task)"
META_GRADIENT = "the meta-gradient, second and first order, with any loss_fn"
REPTILE = "theta + epsilon * the mean over the tasks of (phi - theta)"
REPTILE_MEAN = "the mean over the tasks, not the sum (one task or many)"
TOWARDS = "a step towards the tasks' parameters, not away"
THETA_KEPT = "theta is left as it was: a new dict of new tensors"
PHI_FORMAT = "returns a dict phi with the names and shapes of params"
THETA_FORMAT = "returns a new dict with the names and shapes of theta"


def test_the_screen_flags_the_references():
    source = "from mlcourse.methods.maml import adapt, reptile_update\nimport mlcourse.methods.maml as m\nm.MAML"
    flagged = screen([{"cell_type": "code", "source": source}], SET.exercise)
    assert {f.function for f in flagged} == {"adapt", "meta_loss", "reptile_update"}


# ---- adapt: the mistakes ---------------------------------------------------------------------------

def steps(model, params, x, y, loss_fn, inner_lr, inner_steps, create_graph, detach=False, sign=-1.0):
    """Inner steps with the knobs that students get wrong."""
    phi = dict(params)
    for _ in range(inner_steps):
        loss = loss_fn(functional_call(model, phi, (x,)), y)
        grads = torch.autograd.grad(loss, list(phi.values()), create_graph=create_graph)
        phi = {name: p + sign * inner_lr * (g.detach() if detach else g) for (name, p), g in zip(phi.items(), grads)}
    return phi


def no_create_graph(model, params, x, y, loss_fn, inner_lr, inner_steps, first_order=False):
    return steps(model, params, x, y, loss_fn, inner_lr, inner_steps, create_graph=False)


def detached_inner_gradient(model, params, x, y, loss_fn, inner_lr, inner_steps, first_order=False):
    return steps(model, params, x, y, loss_fn, inner_lr, inner_steps, create_graph=not first_order, detach=True)


def always_second_order(model, params, x, y, loss_fn, inner_lr, inner_steps, first_order=False):
    return steps(model, params, x, y, loss_fn, inner_lr, inner_steps, create_graph=True)


def uphill(model, params, x, y, loss_fn, inner_lr, inner_steps, first_order=False):
    return steps(model, params, x, y, loss_fn, inner_lr, inner_steps, create_graph=not first_order, sign=1.0)


def gradient_at_params(model, params, x, y, loss_fn, inner_lr, inner_steps, first_order=False):
    phi = dict(params)
    for _ in range(inner_steps):  # every step's gradient taken at params, not at the step before's phi
        loss = loss_fn(functional_call(model, params, (x,)), y)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=not first_order)
        phi = {name: p - inner_lr * g for (name, p), g in zip(phi.items(), grads)}
    return phi


def in_place(model, params, x, y, loss_fn, inner_lr, inner_steps, first_order=False):
    for _ in range(inner_steps):
        loss = loss_fn(functional_call(model, params, (x,)), y)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=not first_order)
        with torch.no_grad():
            for p, g in zip(params.values(), grads):
                p -= inner_lr * g
    return params


def into_params(model, params, x, y, loss_fn, inner_lr, inner_steps, first_order=False):
    for _ in range(inner_steps):  # new tensors, but stored in the caller's dict
        loss = loss_fn(functional_call(model, params, (x,)), y)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=not first_order)
        for (name, p), g in zip(list(params.items()), grads):
            params[name] = p - inner_lr * g
    return params


def cut_off(model, params, x, y, loss_fn, inner_lr, inner_steps, first_order=False):
    phi = REFERENCES["adapt"](model, params, x, y, loss_fn, inner_lr, inner_steps, first_order)
    return {name: p.detach().requires_grad_() for name, p in phi.items()}


def always_mse(model, params, x, y, loss_fn, inner_lr, inner_steps, first_order=False):
    return steps(model, params, x, y, F.mse_loss, inner_lr, inner_steps, create_graph=not first_order)


# ---- meta_loss: the mistakes -----------------------------------------------------------------------

def wrong_meta_loss(adapt_on="support", score_on="query", carry_over=False, reduce="mean", loss_fn_used=None,
                    first_order_used=None, item=False):
    """A meta_loss with one of the usual mistakes, built on the reference adapt."""
    def meta_loss(model, params, support_x, support_y, query_x, query_y, loss_fn, inner_lr, inner_steps,
                  first_order=False):
        loss_fn = loss_fn_used or loss_fn
        order = first_order if first_order_used is None else first_order_used
        losses = []
        for sx, sy, qx, qy in zip(support_x, support_y, query_x, query_y):
            ax, ay = (sx, sy) if adapt_on == "support" else (qx, qy)
            phi = REFERENCES["adapt"](model, params, ax, ay, loss_fn, inner_lr, inner_steps, order)
            if carry_over:
                params = phi
            ex, ey = (qx, qy) if score_on == "query" else (sx, sy)
            losses.append(loss_fn(functional_call(model, phi, (ex,)), ey))
        total = torch.stack(losses).mean() if reduce == "mean" else torch.stack(losses).sum()
        return total.item() if item else total
    return meta_loss


# ---- reptile_update: the mistakes ------------------------------------------------------------------

def wrong_reptile(sign=1.0, reduce="mean", in_place=False, into_theta=False):
    def reptile_update(theta, phis, epsilon):
        new = {}
        for name, p in theta.items():
            moves = torch.stack([phi[name] - p for phi in phis])  # (n_tasks, ...)
            step = sign * epsilon * (moves.mean(0) if reduce == "mean" else moves.sum(0))
            if in_place:
                p += step
                new[name] = p
            else:
                new[name] = p + step
        if into_theta:
            theta.update(new)
        return new
    return reptile_update


@pytest.mark.parametrize("replaced,expected", [
    # forgetting create_graph and detaching the inner gradient give the same numbers: both are first order
    ({"adapt": no_create_graph}, {SECOND, ANY_MODEL}),
    ({"adapt": detached_inner_gradient}, {SECOND, ANY_MODEL}),
    ({"adapt": always_second_order}, {FIRST}),
    ({"adapt": uphill}, {PHI_FORMAT, ONE_STEP, SEVERAL, DOWNHILL, UNTOUCHED, SECOND, FIRST, ANY_MODEL}),
    ({"adapt": gradient_at_params}, {SEVERAL, UNTOUCHED, SECOND, FIRST, ANY_MODEL}),
    # in place, phi is params itself: the meta-gradient is then that of the query loss at phi, first order
    ({"adapt": in_place}, {UNTOUCHED, SECOND, ANY_MODEL}),
    ({"adapt": into_params}, {UNTOUCHED}),
    ({"adapt": cut_off}, {SECOND, FIRST, ANY_MODEL}),
    ({"adapt": always_mse}, {ANY_MODEL}),
    ({"meta_loss": wrong_meta_loss(adapt_on="query")}, {NUMBER, MEAN_LOSS, SUPPORT_QUERY, MANY, FROM_PARAMS,
                                                        META_GRADIENT}),
    ({"meta_loss": wrong_meta_loss(score_on="support")}, {NUMBER, MEAN_LOSS, SUPPORT_QUERY, MANY, FROM_PARAMS,
                                                          META_GRADIENT}),
    ({"meta_loss": wrong_meta_loss(carry_over=True)}, {NUMBER, MEAN_LOSS, MANY, FROM_PARAMS, META_GRADIENT}),
    ({"meta_loss": wrong_meta_loss(reduce="sum")}, {NUMBER, MEAN_LOSS, MANY, FROM_PARAMS, META_GRADIENT}),
    ({"meta_loss": wrong_meta_loss(loss_fn_used=F.mse_loss)}, {META_GRADIENT}),
    ({"meta_loss": wrong_meta_loss(first_order_used=False)}, {META_GRADIENT}),
    ({"meta_loss": wrong_meta_loss(item=True)}, {NUMBER, META_GRADIENT}),
    ({"reptile_update": wrong_reptile(sign=-1.0)}, {THETA_FORMAT, REPTILE, REPTILE_MEAN, TOWARDS, THETA_KEPT}),
    ({"reptile_update": wrong_reptile(reduce="sum")}, {THETA_FORMAT, REPTILE, REPTILE_MEAN, TOWARDS, THETA_KEPT}),
    ({"reptile_update": wrong_reptile(in_place=True)}, {THETA_KEPT}),
    ({"reptile_update": wrong_reptile(into_theta=True)}, {THETA_KEPT}),
])
def test_a_mistake_fails_exactly_its_checks(replaced, expected):
    assert failing(**replaced) == expected


@pytest.mark.parametrize("replaced,check,says", [
    ({"adapt": no_create_graph}, SECOND, "create_graph=True"),
    ({"adapt": always_second_order}, FIRST, "without create_graph"),
    ({"adapt": uphill}, DOWNHILL, "against the gradient"),
    ({"adapt": in_place}, UNTOUCHED, "build a new dict of new tensors"),
    ({"adapt": cut_off}, SECOND, "no gradient reaches params"),
    ({"meta_loss": wrong_meta_loss(adapt_on="query")}, SUPPORT_QUERY, "does not change with the support set"),
    ({"meta_loss": wrong_meta_loss(score_on="support")}, SUPPORT_QUERY, "does not change with the query set"),
    ({"meta_loss": wrong_meta_loss(carry_over=True)}, FROM_PARAMS, "not from the phi of the task before"),
    ({"meta_loss": wrong_meta_loss(reduce="sum")}, MANY, "sum of its tasks' losses"),
    ({"meta_loss": wrong_meta_loss(first_order_used=False)}, META_GRADIENT, "still goes through"),
    ({"reptile_update": wrong_reptile(sign=-1.0)}, TOWARDS, "towards phi"),
    ({"reptile_update": wrong_reptile(reduce="sum")}, REPTILE_MEAN, "take their mean"),
])
def test_the_check_meant_for_a_mistake_names_it(replaced, check, says):
    message = next(r.message for r in SET.results({**REFERENCES, **replaced}) if r.name == check)
    assert says in message


def _gradient_calls(exercise, names):
    """The arguments of every call of the checks named `names`."""
    keys = {k for fn in exercise.functions for c in fn.checks if c.name in names for k in c.calls}
    return [exercise.calls[k] for k in sorted(keys)]


@pytest.mark.parametrize("seed", [None, 1, 2024])
def test_second_and_first_order_are_far_apart_in_every_gradient_check(seed):
    """Whatever the instructor's secret: first order never passes for second order, and the references pass."""
    graded = SET if seed is None else GradedSet("06_maml", seed)
    for call in _gradient_calls(graded.exercise, {SECOND, FIRST, ANY_MODEL, META_GRADIENT}):
        outputs = reference_adapt_outputs if call.adapter == "mlp_adapt" else reference_meta_loss_outputs
        second = outputs(*call.args[:7], False, *call.args[8:])[1]
        first = outputs(*call.args[:7], True, *call.args[8:])[1]
        distance = torch.cat([(s - f).reshape(-1) for s, f in zip(second, first)]).norm()
        assert distance > 1e-2 * torch.cat([s.reshape(-1) for s in second]).norm()
        assert not same(second, first) and not same(first, second)
    if seed is not None:
        assert graded.failing() == set()
        assert graded.failing(adapt=no_create_graph) == {SECOND, ANY_MODEL}
        assert FROM_PARAMS in graded.failing(meta_loss=wrong_meta_loss(carry_over=True))


def test_hidden_messages_reveal_no_numbers_of_the_inputs():
    for message in SET.hidden_messages({"adapt": uphill}, {"adapt": cut_off}, {"adapt": in_place},
                                       {"meta_loss": wrong_meta_loss(carry_over=True)},
                                       {"meta_loss": wrong_meta_loss(adapt_on="query")},
                                       {"reptile_update": wrong_reptile(sign=-1.0, reduce="sum")}):
        assert not any(ch.isdigit() for ch in message), message
