"""Kernel side: adapters that turn the grader's plain tensors into the objects a graded function takes, and back.

Only plain tensors and numbers cross from the grader to the student's kernel, so a graded function
that takes a model, a dict of parameters or a loss function cannot be called on them directly. A call
then names an adapter of this module (`Exercise.call(..., adapter="mlp_adapt")`), and the kernel's
harness calls `adapter(function, *args)` instead of `function(*args)`: the adapter builds the
arguments, calls the student's function, and returns plain tensors (for MAML, the gradients with
respect to the parameters too, computed here through whatever graph the student's code built).

An adapter decides nothing: what it returns is judged in the grader's process like any other
output. It runs in the kernel's copy of mlcourse, where the graded functions' references are
stubs, so it must not use them.

The models are mlcourse's `mlp(sizes)`, rebuilt from the shapes of the parameters the grader sends
(weight, bias of each layer, in `named_parameters` order); the module's own weights are whatever its
initialisation drew, never the parameters the grader sends, so a function that runs `model(x)`
instead of `functional_call(model, params, (x,))` gives other values.
"""

import torch
import torch.nn.functional as F

from mlcourse.models import mlp

__all__ = ["mlp_adapt", "mlp_meta_loss", "mlp_reptile_update", "outputs_gradients_inputs"]

LOSSES = {"mse": F.mse_loss, "cross_entropy": F.cross_entropy}


def mlp_for(tensors) -> tuple[torch.nn.Module, list[str]]:
    """The `mlp` whose parameters have the shapes of `tensors` (weight, bias, weight, bias, ...), and their names."""
    weights = tensors[0::2]
    sizes = (weights[0].shape[1], *(w.shape[0] for w in weights))  # (in, hidden..., out)
    model = mlp(sizes)
    names = [name for name, _ in model.named_parameters()]
    if [tuple(p.shape) for p in model.parameters()] != [tuple(t.shape) for t in tensors]:
        raise ValueError("the grader's parameters are not those of an mlp")  # a grader bug, not the student's
    return model, names


def _loss(name: str):
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}")  # a grader bug
    return LOSSES[name]


def values_by_name(result, names: list[str], function: str) -> list[torch.Tensor]:
    """The tensors of a returned dict of parameters, in the order of `names`."""
    if not isinstance(result, dict):
        raise TypeError(f"{function} should return a dict of tensors keyed by parameter name, "
                        f"not a {type(result).__name__}")
    missing = [name for name in names if name not in result]
    if missing:
        raise KeyError(f"{function}'s dict has no entry {missing[0]!r}: keep the names of the parameters it was given")
    for name in names:
        if not isinstance(result[name], torch.Tensor):
            raise TypeError(f"{function}'s dict holds a {type(result[name]).__name__} at {name!r}, not a tensor")
    return [result[name] for name in names]


def gradients(value, theta: list[torch.Tensor]) -> list[torch.Tensor]:
    """d value / d theta, zeros where no gradient reaches a parameter (a graph cut by .detach(), .data or no_grad)."""
    if not (isinstance(value, torch.Tensor) and value.requires_grad and value.numel() == 1):
        return [torch.zeros_like(t) for t in theta]
    grads = torch.autograd.grad(value.reshape(()), theta, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for g, t in zip(grads, theta)]


def _leaves(tensors) -> list[torch.Tensor]:
    return [t.detach().clone().requires_grad_() for t in tensors]


def mlp_adapt(adapt, loss: str, support_x, support_y, query_x, query_y, inner_lr: float, inner_steps: int,
              first_order: bool, *theta):
    """phi from the student's adapt on the support set; params as adapt left them; d(query loss at phi) / d theta.

    Returns 3 P tensors for P parameters: phi, then the values in the params dict after the call (they
    should still be theta), then the meta-gradient of the query loss at phi with respect to theta.
    """
    model, names = mlp_for(theta)
    theta = _leaves(theta)
    params = dict(zip(names, theta))
    phi = values_by_name(adapt(model, params, support_x, support_y, _loss(loss), inner_lr, inner_steps, first_order),
                         names, "adapt")
    after = [params[name] if isinstance(params.get(name), torch.Tensor) else torch.full_like(t, float("nan"))
             for name, t in zip(names, theta)]
    query_loss = _loss(loss)(torch.func.functional_call(model, dict(zip(names, phi)), (query_x,)), query_y)
    return (*phi, *after, *gradients(query_loss, theta))


def mlp_meta_loss(meta_loss, loss: str, support_x, support_y, query_x, query_y, inner_lr: float, inner_steps: int,
                  first_order: bool, *theta):
    """The student's meta_loss of a meta-batch, then its gradient with respect to each parameter (zeros if none)."""
    model, names = mlp_for(theta)
    theta = _leaves(theta)
    value = meta_loss(model, dict(zip(names, theta)), support_x, support_y, query_x, query_y, _loss(loss), inner_lr,
                      inner_steps, first_order)
    return (value, *gradients(value, theta))


def mlp_reptile_update(reptile_update, n_tasks: int, epsilon: float, *tensors):
    """The student's Reptile update of theta towards the phis of `n_tasks` tasks; then theta as it was left.

    `tensors` holds theta's P tensors, then each task's phi (P tensors each). Returns the P tensors of the
    new theta, then the P values in the theta dict after the call (they should not have changed).
    """
    n_params = len(tensors) // (n_tasks + 1)
    _, names = mlp_for(tensors[:n_params])
    theta = dict(zip(names, tensors[:n_params]))
    phis = [dict(zip(names, tensors[n_params * (i + 1):n_params * (i + 2)])) for i in range(n_tasks)]
    new = values_by_name(reptile_update(theta, phis, epsilon), names, "reptile_update")
    after = [theta[name] if isinstance(theta.get(name), torch.Tensor) else torch.full_like(t, float("nan"))
             for name, t in zip(names, tensors[:n_params])]
    return (*new, *after)


def outputs_gradients_inputs(function, n_args: int, *args_and_weights):
    """The function's outputs; the gradient of a grader-chosen scalar of them with respect to each float tensor
    input; and the tensor inputs as they are after the call.

    `args_and_weights` holds the function's `n_args` arguments, then one weight tensor per item it should return:
    the scalar is the sum over the items of (weight * item).sum(), taken where an item is a float tensor with as
    many elements as its weight (else it adds nothing, and the judge fails its shape). The float tensor inputs
    are passed as copies of leaves that require gradients, so an in-place change of an input works and shows in
    what is returned; a graph cut by .item(), .detach() or no_grad gives zero gradients. Without weights no
    gradient is taken and the inputs are passed as they are. Returns the items, then the gradients (one per float
    tensor input, only with weights), then the tensor inputs after the call.
    """
    args, weights = list(args_and_weights[:n_args]), args_and_weights[n_args:]
    float_inputs = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor) and a.is_floating_point()]
    leaves = {}
    if weights:
        for i in float_inputs:
            leaves[i] = args[i].detach().clone().requires_grad_()
            args[i] = leaves[i].clone()
    value = function(*args)
    items = list(value) if isinstance(value, (tuple, list)) else [value]
    grads = []
    if weights:
        total = None
        for item, w in zip(items, weights):
            if isinstance(item, torch.Tensor) and item.is_floating_point() and item.requires_grad \
                    and item.numel() == w.numel():
                term = (w.to(item.dtype).reshape(item.shape) * item).sum()
                total = term if total is None else total + term
        if total is None:
            grads = [torch.zeros_like(leaves[i]) for i in float_inputs]
        else:
            found = torch.autograd.grad(total, [leaves[i] for i in float_inputs], allow_unused=True)
            grads = [torch.zeros_like(leaves[i]) if g is None else g for g, i in zip(found, float_inputs)]
    after = [a.detach() for a in args if isinstance(a, torch.Tensor)]
    return (*items, *grads, *after)
