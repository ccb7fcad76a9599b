"""Checks of chapter 6's exercises: MAML's inner loop, the meta-loss of a meta-batch, and Reptile's update.

How the model reaches the student's functions. Only plain tensors and numbers cross to the student's
kernel, but `adapt` and `meta_loss` take a model, a dict of parameters and a loss function, and what
MAML must get right is a gradient with respect to the parameters, which only the graph built by the
student's own code can give. So every call goes through a kernel-side adapter
(`mlcourse.grading.adapters`, named in `Exercise.call(..., adapter=...)`). The grader sends the
parameters theta of a small `mlcourse.models.mlp` as tensors (weight and bias of each layer, in
`named_parameters` order), the data, the hyperparameters and the loss by name ("mse" or
"cross_entropy"). In the kernel the adapter rebuilds the MLP from the shapes, makes theta into a dict
of leaf tensors that require gradients, calls the student's function, and returns:

- `mlp_adapt`: phi; the values left in the params dict after the call (an in-place update shows
  there); and the gradient of the query loss at phi with respect to theta, taken through the
  student's graph, so second order only when the inner gradients were made with create_graph=True
  and kept;
- `mlp_meta_loss`: the meta-loss and its gradient with respect to theta;
- `mlp_reptile_update`: the new theta, and the values left in the theta dict.

Inputs are float64, so that the kernel's numbers and the reference's agree to far below the
tolerance (no ReLU flips between float32 and float64). Here, in the grader's process, the returned
tensors are judged against mlcourse's reference (`adapt` of `mlcourse.methods.maml`, written with
torch.func, and `reptile_update`) run on the same inputs, and against properties that any correct
solution has. The second-order cases use inner learning rates large enough that the second-order
and first-order meta-gradients differ by far more than the tolerance (tests/grading/checks checks it).
"""

import math

import torch
from torch.func import functional_call

from mlcourse.grading.adapters import LOSSES, mlp_for
from mlcourse.grading.judges import close
from mlcourse.grading.spec import Exercise, Fail, assemble
from mlcourse.methods.maml import adapt, reptile_update

EXERCISE = "06_maml"
REGRESSOR = (1, 8, 8, 1)  # the grader's sinusoid MLP (the notebook's is 1-40-40-1)
CLASSIFIER = (2, 8, 3)  # a 3-way classifier of 2-d points, to check that any model and loss_fn work


def reference_meta_loss(model, params, support_x, support_y, query_x, query_y, loss_fn, inner_lr, inner_steps,
                        first_order=False):
    """Mean over the tasks of the query loss at phi, each phi adapted from params on its task's support set."""
    losses = []
    for sx, sy, qx, qy in zip(support_x, support_y, query_x, query_y):
        phi = adapt(model, params, sx, sy, loss_fn, inner_lr, inner_steps, first_order)
        losses.append(loss_fn(functional_call(model, phi, (qx,)), qy))
    return torch.stack(losses).mean()


REFERENCES = {"adapt": adapt, "meta_loss": reference_meta_loss, "reptile_update": reptile_update}


# ---- inputs --------------------------------------------------------------------------------------

def _theta(g, sizes) -> list[torch.Tensor]:
    """Parameters of mlp(sizes) in its order (weight, bias of each layer), float64."""
    tensors = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        tensors += [torch.randn(b, a, generator=g, dtype=torch.float64) / math.sqrt(a),
                    0.3 * torch.randn(b, generator=g, dtype=torch.float64)]
    return tensors


def _sinusoids(g, n_tasks, n) -> tuple[torch.Tensor, torch.Tensor]:
    """x, y of `n_tasks` sinusoid tasks (MAML section 5.1), `n` points each: (n_tasks, n, 1) both."""
    amplitude = 0.5 + 4.5 * torch.rand(n_tasks, 1, 1, generator=g, dtype=torch.float64)
    phase = math.pi * torch.rand(n_tasks, 1, 1, generator=g, dtype=torch.float64)
    x = 10 * torch.rand(n_tasks, n, 1, generator=g, dtype=torch.float64) - 5
    return x, amplitude * torch.sin(x - phase)


def _points(g, n_tasks, n) -> tuple[torch.Tensor, torch.Tensor]:
    """x, y of `n_tasks` 3-way classification tasks on 2-d points: (n_tasks, n, 2) and int64 (n_tasks, n)."""
    y = torch.randint(0, CLASSIFIER[-1], (n_tasks, n), generator=g)
    centres = 2 * torch.randn(n_tasks, CLASSIFIER[-1], 2, generator=g, dtype=torch.float64)
    x = torch.gather(centres, 1, y[..., None].expand(-1, -1, 2)) + torch.randn(n_tasks, n, 2, generator=g,
                                                                               dtype=torch.float64)
    return x, y


def _tasks(g, n_tasks, k_shot, n_query, classifier=False):
    """A meta-batch: the loss's name, support_x, support_y, query_x, query_y (leading dim n_tasks), and theta."""
    x, y = (_points if classifier else _sinusoids)(g, n_tasks, k_shot + n_query)
    theta = _theta(g, CLASSIFIER if classifier else REGRESSOR)
    return ("cross_entropy" if classifier else "mse", x[:, :k_shot], y[:, :k_shot], x[:, k_shot:], y[:, k_shot:],
            theta)


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1).double() for t in tensors])


def same(a, b) -> bool:
    """Equal up to the tolerance of `judges.close`."""
    a, b = _flat(a), _flat(b)
    return bool(torch.isfinite(a).all()) and bool(torch.allclose(a, b, rtol=1e-4, atol=1e-5 * max(
        float(b.abs().max()), 1.0)))


def _leaves(theta) -> list[torch.Tensor]:
    return [t.detach().double().requires_grad_() for t in theta]


def _double(t: torch.Tensor) -> torch.Tensor:
    return t.double() if t.is_floating_point() else t


def _parts(out, n_params, n_parts) -> list[list[torch.Tensor]]:
    if len(out) != n_params * n_parts:  # the adapter fixes the number; only a grader bug can get here
        raise Fail("the grader could not read the returned parameters")
    return [out[i * n_params:(i + 1) * n_params] for i in range(n_parts)]


def _like(tensors, theta, what) -> None:
    for t, p in zip(tensors, theta):
        if tuple(t.shape) != tuple(p.shape):
            raise Fail(f"each tensor of {what} should have the shape of its parameter")
        if not t.is_floating_point():
            raise Fail(f"the tensors of {what} should be float, like the parameters")


def _gradient_verdict(grads, second, first, first_order, why) -> None:
    """Judge a meta-gradient against the second- and first-order references, naming the usual mistakes."""
    if not any(bool(g.abs().max() > 0) for g in grads):
        raise Fail("no gradient reaches params through phi: keep phi in the graph (no .detach(), .data or "
                   "torch.no_grad() on the parameters)")
    if not first_order and same(grads, first):
        raise Fail("the meta-gradient is the first-order one: with first_order=False, make the inner gradients with "
                   "create_graph=True and do not detach them, so that the outer gradient goes through them")
    if first_order and same(grads, second):
        raise Fail("with first_order=True the meta-gradient still goes through the inner gradients: make them "
                   "without create_graph (they are then constants)")
    close(_flat(grads), _flat(first if first_order else second), why)


# ---- adapt ---------------------------------------------------------------------------------------

def reference_adapt_outputs(loss, support_x, support_y, query_x, query_y, inner_lr, inner_steps, first_order,
                            *theta):
    """phi from mlcourse's adapt, and the gradient of the query loss at phi with respect to theta (float64)."""
    model, names = mlp_for(theta)
    leaves = _leaves(theta)
    phi = adapt(model, dict(zip(names, leaves)), _double(support_x), _double(support_y), LOSSES[loss], inner_lr,
                inner_steps, first_order)
    query_loss = LOSSES[loss](functional_call(model, phi, (_double(query_x),)), _double(query_y))
    return [phi[n].detach() for n in names], list(torch.autograd.grad(query_loss, leaves))


def support_loss(loss, support_x, support_y, params) -> float:
    """The support loss of the mlp at the given parameters (a list in mlp order)."""
    model, names = mlp_for(params)
    with torch.no_grad():
        prediction = functional_call(model, dict(zip(names, [p.double() for p in params])), (_double(support_x),))
        return float(LOSSES[loss](prediction, _double(support_y)))


def _adapt_checks(ex: Exercise, g: torch.Generator) -> None:
    fn = ex.function("adapt", "adapt(model, params, x, y, loss_fn, inner_lr, inner_steps, first_order)",
                     references=("mlcourse.methods.maml.adapt",))

    def case(inner_lr, inner_steps, first_order, k_shot=10, n_query=10, classifier=False):
        loss, sx, sy, qx, qy, theta = _tasks(g, 1, k_shot, n_query, classifier)
        return (loss, sx[0], sy[0], qx[0], qy[0], float(inner_lr), int(inner_steps), bool(first_order), *theta)

    def calls(cases):
        return [ex.call(fn.name, *c, adapter="mlp_adapt") for c in cases]

    def outputs(out, args):
        """phi, the params left after the call, the meta-gradient; phi checked for names, shapes and dtype."""
        theta = args[8:]
        phi, after, grads = _parts(out, len(theta), 3)
        _like(phi, theta, "phi")
        return phi, after, grads

    def phi_matches(cases, why):
        def judge(*outs):
            for out, args in zip(outs, cases):
                close(_flat(outputs(out, args)[0]), _flat(reference_adapt_outputs(*args)[0]), why)
        return judge

    first_cases = [case(0.01, 1, False), case(0.05, 1, True, k_shot=5)]
    first = calls(first_cases)

    def format_(*outs):
        for out, args in zip(outs, first_cases):
            outputs(out, args)

    one_step = phi_matches(first_cases, "phi differs from params - inner_lr * (the gradient of loss_fn(model(x), y) "
                                        "with respect to params)")
    fn.check("returns a dict phi with the names and shapes of params", 1, first, format_, hidden=False,
             needs=one_step)
    fn.check("one inner step: phi = params - inner_lr * gradient of the support loss", 1, first, one_step,
             hidden=False)

    cases = [case(0.05, 3, False), case(0.02, 5, True, k_shot=5)]
    fn.check("several inner steps, each from the parameters of the step before", 1, calls(cases),
             phi_matches(cases, "after several inner steps phi differs: take inner_steps steps, each with the "
                                "gradient at the parameters of the step before (not at params)"))

    small = [case(0.001, 1, False), case(0.001, 3, True)]

    def downhill(*outs):
        for out, args in zip(outs, small):
            loss, sx, sy, theta = args[0], args[1], args[2], args[8:]
            if not support_loss(loss, sx, sy, outputs(out, args)[0]) < support_loss(loss, sx, sy, theta):
                raise Fail("with a small inner_lr the support loss at phi is not lower than at params: step against "
                           "the gradient, params minus inner_lr times the gradient")

    fn.check("every inner step goes downhill: the support loss falls", 1, calls(small), downhill)

    kept = [case(0.05, 2, False), case(0.05, 2, True)]

    def untouched(*outs):
        for out, args in zip(outs, kept):
            if not torch.equal(_flat(outputs(out, args)[1]), _flat(args[8:])):
                raise Fail("adapt changed the params it was given (in place, or by storing phi's tensors in that "
                           "dict): build a new dict of new tensors")

    fn.check("params is left as it was: phi is a new dict of new tensors", 1, calls(kept), untouched,
             needs=phi_matches(kept, "phi differs from MAML's inner loop on the support set"))

    def gradient_matches(cases, why):
        def judge(*outs):
            for out, args in zip(outs, cases):
                grads = outputs(out, args)[2]
                second = reference_adapt_outputs(*args[:7], False, *args[8:])[1]
                first_ = reference_adapt_outputs(*args[:7], True, *args[8:])[1]
                _gradient_verdict(grads, second, first_, args[7], why)
        return judge

    cases = [case(0.3, 1, False), case(0.1, 3, False, k_shot=5)]
    fn.check("second order: the meta-gradient goes through the inner gradients (create_graph=True)", 2,
             calls(cases), gradient_matches(cases, "the meta-gradient through phi differs from second-order MAML's"))
    cases = [case(0.3, 1, True), case(0.1, 3, True, k_shot=5)]
    fn.check("first_order=True: the inner gradients are constants (first-order MAML)", 1, calls(cases),
             gradient_matches(cases, "with first_order=True the meta-gradient differs from first-order MAML's, "
                                     "the gradient of the query loss at phi"))

    classifier = case(0.2, 2, False, k_shot=6, n_query=9, classifier=True)

    def any_model(out):
        args = classifier
        phi, _, grads = outputs(out, args)
        ref_phi, second = reference_adapt_outputs(*args)
        close(_flat(phi), _flat(ref_phi), "for a classifier with cross-entropy, phi differs: use the model and the "
                                          "loss_fn you are given")
        first_ = reference_adapt_outputs(*args[:7], True, *args[8:])[1]
        _gradient_verdict(grads, second, first_, False, "for a classifier with cross-entropy, the meta-gradient "
                                                        "differs from second-order MAML's")

    fn.check("any model and loss_fn: a classifier with cross-entropy", 1, calls([classifier]), any_model)


# ---- the meta-loss of a meta-batch -----------------------------------------------------------------

def reference_meta_loss_outputs(loss, support_x, support_y, query_x, query_y, inner_lr, inner_steps, first_order,
                                *theta):
    """The reference meta-loss and its gradient with respect to theta (float64)."""
    model, names = mlp_for(theta)
    leaves = _leaves(theta)
    value = reference_meta_loss(model, dict(zip(names, leaves)), _double(support_x), _double(support_y),
                                _double(query_x), _double(query_y), LOSSES[loss], inner_lr, inner_steps, first_order)
    return value.detach(), list(torch.autograd.grad(value, leaves))


def _meta_loss_checks(ex: Exercise, g: torch.Generator) -> None:
    fn = ex.function("meta_loss", "meta_loss(model, params, support_x, support_y, query_x, query_y, loss_fn, "
                                  "inner_lr, inner_steps, first_order)",
                     references=("mlcourse.methods.maml.MAML",), flag_names=("MAML",))

    def case(n_tasks, inner_lr, inner_steps, first_order, k_shot=10, n_query=10, classifier=False, tasks=None):
        loss, sx, sy, qx, qy, theta = tasks or _tasks(g, n_tasks, k_shot, n_query, classifier)
        return (loss, sx, sy, qx, qy, float(inner_lr), int(inner_steps), bool(first_order), *theta)

    def calls(cases):
        return [ex.call(fn.name, *c, adapter="mlp_meta_loss") for c in cases]

    def outputs(out, args):
        """The loss (a 0-dim tensor) and its gradient with respect to each parameter."""
        theta = args[8:]
        if len(out) != 1 + len(theta):
            raise Fail("the grader could not read the returned loss")
        value = out[0]
        if value.numel() != 1 or not value.is_floating_point():
            raise Fail("meta_loss should return one number (a 0-dim float tensor): the mean over the tasks")
        return value.reshape(()), out[1:]

    def value_matches(cases, why):
        def judge(*outs):
            for out, args in zip(outs, cases):
                close(outputs(out, args)[0], reference_meta_loss_outputs(*args)[0], why)
        return judge

    first_cases = [case(1, 0.05, 1, False, k_shot=5), case(3, 0.02, 1, False)]
    first = calls(first_cases)

    def format_(*outs):
        for out, args in zip(outs, first_cases):
            _, grads = outputs(out, args)
            if not any(bool(gr.abs().max() > 0) for gr in grads):
                raise Fail("no gradient reaches params from the loss: return a tensor that keeps its graph (no "
                           ".item(), .detach() or torch.no_grad())")

    mean_loss = value_matches(first_cases, "the loss differs from the mean over the tasks of the query loss at phi, "
                                           "phi adapted from params on the task's support set")
    fn.check("returns one number whose gradient reaches params", 1, first, format_, hidden=False, needs=mean_loss)
    fn.check("the mean over the tasks of the query loss at each task's phi", 1, first, mean_loss, hidden=False)

    base = _tasks(g, 1, 5, 10)  # one task: the sum and the mean over the tasks agree, nothing can be carried over
    other = _tasks(g, 1, 5, 10)
    loss, sx, sy, qx, qy, theta = base
    swapped = [case(0, 0.1, 2, False, tasks=base),
               case(0, 0.1, 2, False, tasks=(loss, other[1], other[2], qx, qy, theta)),  # other support sets
               case(0, 0.1, 2, False, tasks=(loss, sx, sy, other[3], other[4], theta))]  # other query sets

    def support_then_query(*outs):
        values = [outputs(out, args)[0] for out, args in zip(outs, swapped)]
        if same([values[0]], [values[1]]):
            raise Fail("the loss does not change with the support set: adapt on support_x, support_y")
        if same([values[0]], [values[2]]):
            raise Fail("the loss does not change with the query set: evaluate query_x, query_y at phi")
        for value, args in zip(values, swapped):
            close(value, reference_meta_loss_outputs(*args)[0], "the loss differs from the query loss at phi, phi "
                                                                 "adapted on the support set")

    fn.check("adapts on the support set, then scores the query set", 1, calls(swapped), support_then_query)

    many = [case(5, 0.05, 1, False), case(8, 0.02, 2, True, k_shot=5)]

    def mean_of_tasks(*outs):
        for out, args in zip(outs, many):
            value, (reference, _) = outputs(out, args)[0], reference_meta_loss_outputs(*args)
            if same([value], [reference * len(args[1])]):
                raise Fail("the loss of a meta-batch is the sum of its tasks' losses: take their mean")
            close(value, reference, "the loss of a meta-batch differs from the mean of its tasks' query losses")

    fn.check("a meta-batch of many tasks: the mean of their losses", 1, calls(many), mean_of_tasks)

    loss, sx, sy, qx, qy, theta = _tasks(g, 4, 10, 10)
    order = torch.randperm(4, generator=g)
    while bool((order == torch.arange(4)).any()):  # every task in another place
        order = torch.randperm(4, generator=g)
    orders = [case(0, 0.05, 1, False, tasks=(loss, sx, sy, qx, qy, theta)),
              case(0, 0.05, 1, False, tasks=(loss, sx[order], sy[order], qx[order], qy[order], theta))]

    def from_params(whole, shuffled):
        (value, grads), (value2, grads2) = outputs(whole, orders[0]), outputs(shuffled, orders[1])
        if not (same([value2], [value]) and same(grads2, grads)):
            raise Fail("the loss of a meta-batch depends on the order of its tasks: adapt every task from params, "
                       "not from the phi of the task before")

    fn.check("every task adapts from params (nothing carried over from task to task)", 1, calls(orders), from_params,
             needs=value_matches(orders, "the loss of a meta-batch differs from the mean of its tasks' query losses"))

    meta_gradients = [case(3, 0.3, 1, False), case(2, 0.1, 2, True, k_shot=5),
                      case(2, 0.2, 1, False, k_shot=6, n_query=9, classifier=True)]

    def gradients_match(*outs):
        for out, args in zip(outs, meta_gradients):
            grads = outputs(out, args)[1]
            second = reference_meta_loss_outputs(*args[:7], False, *args[8:])[1]
            first_ = reference_meta_loss_outputs(*args[:7], True, *args[8:])[1]
            _gradient_verdict(grads, second, first_, args[7], "the meta-gradient of the loss differs from MAML's "
                                                              "(second order, or first order with first_order=True)")

    fn.check("the meta-gradient, second and first order, with any loss_fn", 1, calls(meta_gradients),
             gradients_match)


# ---- Reptile's update ----------------------------------------------------------------------------

def _reptile_checks(ex: Exercise, g: torch.Generator) -> None:
    fn = ex.function("reptile_update", "reptile_update(theta, phis, epsilon)",
                     references=("mlcourse.methods.maml.reptile_update", "mlcourse.methods.maml.reptile_direction",
                                 "mlcourse.methods.maml.Reptile"),
                     flag_names=("reptile_direction", "Reptile"))

    def case(n_tasks, epsilon):
        theta = _theta(g, REGRESSOR)
        phis = [[t + 0.5 * torch.randn(t.shape, generator=g, dtype=torch.float64) for t in theta]
                for _ in range(n_tasks)]
        return (int(n_tasks), float(epsilon), *theta, *(t for phi in phis for t in phi))

    def calls(cases):
        return [ex.call(fn.name, *c, adapter="mlp_reptile_update") for c in cases]

    def unpacked(args):
        """theta and the phis of a call (lists of tensors in mlp order), and epsilon."""
        n_tasks, epsilon, tensors = args[0], args[1], args[2:]
        n = len(tensors) // (n_tasks + 1)
        return list(tensors[:n]), [list(tensors[n * (i + 1):n * (i + 2)]) for i in range(n_tasks)], epsilon

    def reference(args):
        """mlcourse's reptile_update (float64), as a list in mlp order."""
        theta, phis, epsilon = unpacked(args)
        names = [str(i) for i in range(len(theta))]
        new = reptile_update(dict(zip(names, theta)), [dict(zip(names, phi)) for phi in phis], epsilon)
        return [new[name] for name in names]

    def summed(args):
        """The usual mistake: theta + epsilon * the sum over the tasks of (phi - theta)."""
        theta, phis, epsilon = unpacked(args)
        return [p + epsilon * torch.stack([phi[i] - p for phi in phis]).sum(0)  # (n_tasks, ...) -> (...)
                for i, p in enumerate(theta)]

    def outputs(out, args):
        theta = unpacked(args)[0]
        new, after = _parts(out, len(theta), 2)
        _like(new, theta, "the new theta")
        return new, after

    first_cases = [case(2, 0.5), case(3, 0.1)]
    first = calls(first_cases)

    def format_(*outs):
        for out, args in zip(outs, first_cases):
            outputs(out, args)

    def matches(cases, why):
        def judge(*outs):
            for out, args in zip(outs, cases):
                close(_flat(outputs(out, args)[0]), _flat(reference(args)), why)
        return judge

    why = "the new theta differs from theta + epsilon * mean over the tasks of (phi - theta)"
    fn.check("returns a new dict with the names and shapes of theta", 1, first, format_, hidden=False,
             needs=matches(first_cases, why))
    fn.check("theta + epsilon * the mean over the tasks of (phi - theta)", 1, first, matches(first_cases, why),
             hidden=False)

    many = [case(1, 0.3), case(5, 0.2), case(8, 1.0)]

    def mean_not_sum(*outs):
        for out, args in zip(outs, many):
            new = outputs(out, args)[0]
            if args[0] > 1 and same(new, summed(args)):
                raise Fail("the step sums (phi - theta) over the tasks: take their mean, so that the step does not "
                           "grow with the number of tasks")
            close(_flat(new), _flat(reference(args)), "with one task or many, the new theta differs from "
                                                      "theta + epsilon * mean over the tasks of (phi - theta)")

    fn.check("the mean over the tasks, not the sum (one task or many)", 1, calls(many), mean_not_sum)

    steps = [case(4, 0.25), case(2, 0.1)]

    def towards(*outs):
        for out, args in zip(outs, steps):
            new = outputs(out, args)[0]
            theta, phis, _ = unpacked(args)
            towards_phis = _flat([torch.stack(ts).mean(0) for ts in zip(*phis)]) - _flat(theta)
            if not float((_flat(new) - _flat(theta)) @ towards_phis) > 0:
                raise Fail("the step does not move theta towards the tasks' parameters: theta + epsilon * "
                           "(phi - theta), a step towards phi")

    fn.check("a step towards the tasks' parameters, not away", 1, calls(steps), towards, needs=matches(steps, why))

    kept = [case(3, 0.5), case(1, 1.0)]

    def untouched(*outs):
        for out, args in zip(outs, kept):
            if not torch.equal(_flat(outputs(out, args)[1]), _flat(unpacked(args)[0])):
                raise Fail("reptile_update changed the theta it was given (in place, or by storing new tensors in "
                           "that dict): build a new dict of new tensors")

    fn.check("theta is left as it was: a new dict of new tensors", 1, calls(kept), untouched,
             needs=matches(kept, why))


def build(seed: int) -> Exercise:
    """Chapter 6's graded functions, the grader's calls (inputs drawn from `seed`) and the checks."""
    # the solution trains a 1-40-40-1 MAML for about a minute with the kernel's one thread on a 2-core CPU; the
    # limits leave room for a slow or busy machine
    return assemble(EXERCISE, seed, [_adapt_checks, _meta_loss_checks, _reptile_checks],
                    limits={"timeout": 480, "cell_timeout": 300, "call_timeout": 10})
