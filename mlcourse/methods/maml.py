"""Optimization-based meta-learning: MAML (Finn et al. 2017), first-order MAML and Reptile (Nichol et al. 2018).

The meta-parameters theta are an initialization. Each task adapts them with a few gradient steps
on its support set, phi = theta - inner_lr * grad L(theta, support); MAML then trains theta on the
query loss at phi. Everything is functional: a model is called with a parameter dict through
`torch.func.functional_call`, so theta itself is never changed by adaptation, and any `nn.Module`
(conv4, the sinusoid MLP) works unchanged.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from mlcourse.data.episodes import Episode, stack_episodes
from mlcourse.methods.base import Method, accuracy, task_mse
from mlcourse.models import mlp

Params = dict[str, torch.Tensor]


def adapt(model: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor, loss_fn, inner_lr: float,
          inner_steps: int, first_order: bool = False) -> Params:
    """phi: `inner_steps` gradient steps on loss_fn(model(x), y), starting from `params` (left unchanged).

    `torch.func.grad` returns inner gradients that stay differentiable (like `torch.autograd.grad`
    with `create_graph=True`), so a loss at phi differentiates back to theta through the inner
    steps, Hessian terms included: second-order MAML. `first_order=True` detaches each inner
    gradient, a constant step: then d phi / d theta = I (first-order MAML, Reptile). Written with
    `torch.func`, the same function runs on one task or, under `vmap`, on a whole meta-batch.
    """
    def support_loss(p: Params) -> torch.Tensor:
        return loss_fn(functional_call(model, p, (x,)), y)

    for _ in range(inner_steps):
        grads = grad(support_loss)(params)
        params = {name: p - inner_lr * (grads[name].detach() if first_order else grads[name])
                  for name, p in params.items()}
    return params


def reptile_direction(theta: Params, phis: list[Params]) -> Params:
    """Reptile's update direction, the mean of (phi - theta) over the tasks of a meta-batch."""
    return {name: torch.stack([phi[name] - p for phi in phis]).mean(dim=0) for name, p in theta.items()}


def reptile_update(theta: Params, phis: list[Params], epsilon: float) -> Params:
    """theta + epsilon * mean(phi - theta): Reptile's outer step with plain SGD (new tensors)."""
    direction = reptile_direction(theta, phis)
    return {name: p + epsilon * direction[name] for name, p in theta.items()}


def conv4_maml(n_way: int, hidden: int = 64) -> nn.Sequential:
    """Finn et al.'s Omniglot network: four (3x3 conv, stride 2) -> batch norm -> ReLU blocks, mean, linear.

    28 -> 14 -> 7 -> 4 -> 2 pixels, averaged to (B, hidden), then n_way logits. Batch norm always uses
    the statistics of the current batch (no running averages), as in Finn et al.'s code: at test time
    the queries of an episode are normalised together, which is transductive.
    """
    def block(c_in):
        return [nn.Conv2d(c_in, hidden, 3, stride=2, padding=1),
                nn.BatchNorm2d(hidden, track_running_stats=False), nn.ReLU()]
    return nn.Sequential(*block(1), *block(hidden), *block(hidden), *block(hidden),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(hidden, n_way))


def mse(prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(prediction, y)


class GradientLearner(Method):
    """A model whose per-task parameters come from `adapt` (the shared part of MAML, FOMAML, Reptile).

    `task="classification"`: conv4_maml(n_way), cross-entropy, accuracy. `task="regression"`: the
    1-40-40-1 MLP, mean squared error (the sinusoids).
    """

    def __init__(self, n_way: int = 5, inner_lr: float = 0.4, inner_steps: int = 1, test_inner_steps: int = 3,
                 first_order: bool = False, task: str = "classification", hidden: int = 64):
        super().__init__()
        if task not in {"classification", "regression"}:
            raise ValueError(f"task must be 'classification' or 'regression', not {task!r}")
        self.model = conv4_maml(n_way, hidden) if task == "classification" else mlp((1, hidden, hidden, 1))
        self.loss_fn = F.cross_entropy if task == "classification" else mse
        self.metric = "accuracy" if task == "classification" else "mse"
        self.n_way, self.inner_lr, self.first_order = n_way, inner_lr, first_order
        self.inner_steps, self.test_inner_steps = inner_steps, test_inner_steps

    def theta(self) -> Params:
        return dict(self.model.named_parameters())

    def adapt(self, support_x, support_y, steps: int | None = None, first_order: bool | None = None) -> Params:
        """phi of one task from theta (`steps` defaults to the training or test number of inner steps)."""
        if steps is None:
            steps = self.inner_steps if self.training else self.test_inner_steps
        if first_order is None:  # evaluation never backpropagates to theta: no second-order graph
            first_order = self.first_order or not self.training
        return adapt(self.model, self.theta(), support_x, support_y, self.loss_fn, self.inner_lr, steps, first_order)

    def forward_with(self, phi: Params, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.model, phi, (x,))

    def _check(self, episode: Episode) -> None:
        if self.metric == "accuracy" and episode.n_way != self.n_way:
            raise ValueError(f"this learner's head has {self.n_way} outputs, the episode is {episode.n_way}-way: "
                             f"train a learner with n_way={episode.n_way} for it")

    def predict(self, episode: Episode) -> torch.Tensor:
        """Query predictions after adapting to each task's support set: ([B,] Q, n_way) (or (.., Q, 1))."""
        self._check(episode)
        if not episode.batched:
            return self.forward_with(self.adapt(episode.support_x, episode.support_y), episode.query_x)
        # vmap runs the tasks of a meta-batch as one batched computation: 82 ms a meta-step on the 2-core CPU,
        # against 139 ms for a Python loop over the tasks (benchmarks/maml_cost.py, 5-way 1-shot, 8 tasks)
        one_task = lambda sx, sy, qx: self.forward_with(self.adapt(sx, sy), qx)
        return vmap(one_task, randomness="error")(episode.support_x, episode.support_y, episode.query_x)

    def task_score(self, prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Accuracy (classification) or MSE (regression) of each task's predictions: ([B,] Q, ...) -> ([B])."""
        if self.metric == "accuracy":
            return accuracy(prediction, y)
        return task_mse(prediction, y)

    def score(self, episode: Episode) -> torch.Tensor:
        """Accuracy (classification) or MSE (regression) of each task of a batch after adaptation, (B,)."""
        with torch.no_grad():
            return self.task_score(self.predict(episode), episode.query_y).reshape(-1)

    def adaptation_curve(self, episode: Episode, max_steps: int = 10, at=None) -> torch.Tensor:
        """Score of each task's queries after 0, 1, ..., max_steps inner steps from theta: (B, max_steps + 1).

        `at` (step counts, each from 0 to max_steps) scores after those steps only: (B, len(at)). Scoring
        the queries costs more than a step on the support set, so a long curve is cheaper at a few points.
        """
        self._check(episode)
        at = list(range(max_steps + 1)) if at is None else [int(step) for step in at]
        if not at or min(at) < 0 or max(at) > max_steps:
            raise ValueError(f"adaptation_curve: `at` must list step counts from 0 to max_steps={max_steps}, got {at}")

        last = max(at)

        def one_task(sx, sy, qx, qy):
            phi, scores = self.theta(), {}
            for step in range(last + 1):
                if step in at:
                    scores[step] = self.task_score(self.forward_with(phi, qx), qy)
                if step < last:
                    phi = adapt(self.model, phi, sx, sy, self.loss_fn, self.inner_lr, 1, first_order=True)
            return torch.stack([scores[step] for step in at])  # (len(at),)

        batch = episode if episode.batched else stack_episodes([episode])
        with torch.no_grad():
            return vmap(one_task, randomness="error")(batch.support_x, batch.support_y, batch.query_x, batch.query_y)


class MAML(GradientLearner):
    """MAML: theta is trained on the query loss at phi, differentiated through the inner steps.

    `first_order=True` is first-order MAML: the same query loss, with d phi / d theta taken as I.
    `inner_steps=0` trains theta on the tasks' data directly: the pretrained baseline of Finn et al.
    """

    def loss(self, episode: Episode) -> tuple[torch.Tensor, float]:
        """Mean query loss over the tasks of a meta-batch, and the mean query accuracy (or MSE)."""
        if self.metric == "accuracy":
            return super().loss(episode)  # cross-entropy of `predict`'s logits at phi
        loss = mse(self.predict(episode), episode.query_y)  # predictions: ([B,] Q, 1)
        return loss, loss.item()


class Reptile(GradientLearner):
    """Reptile: adapt on all of a task's examples with first-order steps, then move theta towards phi.

    `inner_batch` examples per inner step, drawn without replacement and cycling through the task's
    examples (Nichol et al.: 10); 0 uses all of them at every step. The tasks of a meta-batch adapt
    together under `vmap`, as MAML's do. `loss` returns a surrogate whose gradient is theta - mean(phi),
    so that the engine's optimizer step is Reptile's update (plain SGD with outer_lr = epsilon:
    theta + epsilon * mean(phi - theta)). Its value is the tasks' mean loss on all of their examples
    after adaptation, which is what the history records as the training loss.
    """

    def __init__(self, *args, inner_batch: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.inner_batch = inner_batch

    def batch_order(self, n_tasks: int, n_examples: int) -> torch.Tensor:
        """Which examples each inner step of each task reads: (n_tasks, inner_steps, inner_batch).

        Fresh permutations of a task's examples, one after the other, cut into batches (the global generator).
        """
        size = self.inner_batch or n_examples
        passes = -(-self.inner_steps * size // n_examples)  # ceil: enough permutations for every step
        order = torch.rand(n_tasks, passes, n_examples).argsort(dim=-1).reshape(n_tasks, -1)
        return order[:, :self.inner_steps * size].reshape(n_tasks, self.inner_steps, size)

    def adapt_all(self, x: torch.Tensor, y: torch.Tensor) -> Params:
        """phi of every task from its examples: x (B, n, 1, 28, 28), y (B, n) -> each parameter (B, ...)."""
        theta = {k: v.detach() for k, v in self.theta().items()}
        if not self.inner_batch:
            one_task = lambda tx, ty: adapt(self.model, theta, tx, ty, self.loss_fn, self.inner_lr,
                                            self.inner_steps, first_order=True)
            return vmap(one_task, randomness="error")(x, y)

        def one_task(tx, ty, order):  # order: (inner_steps, inner_batch)
            phi = theta
            for i in range(self.inner_steps):
                phi = adapt(self.model, phi, tx[order[i]], ty[order[i]], self.loss_fn, self.inner_lr, 1,
                            first_order=True)
            return phi
        return vmap(one_task, randomness="error")(x, y, self.batch_order(len(x), x.shape[1]).to(x.device))

    def loss(self, episode: Episode) -> tuple[torch.Tensor, float]:
        self._check(episode)
        batch = episode if episode.batched else stack_episodes([episode])
        x = torch.cat([batch.support_x, batch.query_x], dim=1)  # (B, n, ...): all of each task's examples
        y = torch.cat([batch.support_y, batch.query_y], dim=1)  # (B, n)
        phi = self.adapt_all(x, y)  # each parameter (B, ...), no graph to theta
        with torch.no_grad():
            prediction = vmap(self.forward_with, randomness="error")(phi, x)  # (B, n, n_way) or (B, n, 1)
            value = self.loss_fn(prediction.flatten(0, 1), y.flatten(0, 1))
            score = self.task_score(prediction, y).mean().item()
        theta = self.theta()
        direction = {k: (phi[k] - theta[k].detach()).mean(dim=0) for k in theta}  # mean(phi - theta)
        # The surrogate's value is 0 and its gradient wrt theta is -direction = theta - mean(phi); adding it as
        # `surrogate - surrogate.detach()` keeps the reported value the tasks' loss and the gradient Reptile's.
        surrogate = sum((p * -direction[k]).sum() for k, p in theta.items())
        return value + surrogate - surrogate.detach(), score
