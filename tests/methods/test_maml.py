"""MAML, first-order MAML and Reptile: their gradients against references, not just their shapes."""

import pytest
import torch
from torch import nn
from torch.func import functional_call

from mlcourse.data import Episode, SinusoidTasks
from mlcourse.methods.maml import MAML, Reptile, adapt, mse, reptile_update
from tests.methods.conftest import random_episode


def tiny_regression(first_order=False, inner_steps=2, seed=0) -> MAML:
    """A float64 MAML on a 1-6-6-1 MLP: small enough for finite differences over every parameter."""
    torch.manual_seed(seed)
    return MAML(inner_lr=0.1, inner_steps=inner_steps, first_order=first_order, task="regression",
                hidden=6).double()


def sinusoid_batch(n_tasks=3, k_shot=5) -> Episode:
    batch = SinusoidTasks(k_shot=k_shot, n_query=7, seed=3).sample(n_tasks)
    return Episode(batch.support_x.double(), batch.support_y.double(), batch.query_x.double(),
                   batch.query_y.double(), 1, k_shot, 7, batched=True)


def meta_loss_at(method: MAML, flat: torch.Tensor, episode: Episode) -> torch.Tensor:
    """The meta-loss with theta replaced by the flat vector `flat`."""
    torch.nn.utils.vector_to_parameters(flat, method.parameters())
    return method.loss(episode)[0]


def test_second_order_gradient_matches_finite_differences():
    method, episode = tiny_regression(), sinusoid_batch()
    loss = method.loss(episode)[0]
    analytic = torch.autograd.grad(loss, list(method.parameters()))
    analytic = torch.cat([g.reshape(-1) for g in analytic])
    theta = torch.nn.utils.parameters_to_vector(method.parameters()).detach().clone()
    h, numeric = 1e-6, torch.zeros_like(theta)
    with torch.no_grad():
        for i in range(len(theta)):
            e = torch.zeros_like(theta)
            e[i] = h
            numeric[i] = (meta_loss_at(method, theta + e, episode) - meta_loss_at(method, theta - e, episode)) / (2 * h)
    assert torch.allclose(analytic, numeric, rtol=1e-5, atol=1e-7)
    # the check can fail: the first-order gradient of the same loss is measurably different
    torch.nn.utils.vector_to_parameters(theta, method.parameters())
    method.first_order = True
    first = torch.cat([g.reshape(-1) for g in torch.autograd.grad(method.loss(episode)[0], list(method.parameters()))])
    assert not torch.allclose(first, numeric, rtol=1e-3, atol=1e-5)


def test_linear_regression_meta_gradient_has_its_closed_form():
    """f(x) = x . w, squared loss, one inner step: grad = (I - alpha H_s) grad L_q(phi), H_s = 2 X_s^T X_s / n."""
    g = torch.Generator().manual_seed(0)
    d, n, m, alpha = 4, 6, 9, 0.05
    xs, ys = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, 1, generator=g, dtype=torch.float64)
    xq, yq = torch.randn(m, d, generator=g, dtype=torch.float64), torch.randn(m, 1, generator=g, dtype=torch.float64)
    model = nn.Linear(d, 1, bias=False).double()
    w = model.weight.detach().reshape(d, 1)
    phi = adapt(model, dict(model.named_parameters()), xs, ys, mse, alpha, 1)
    meta_gradient, = torch.autograd.grad(mse(functional_call(model, phi, (xq,)), yq), model.weight)

    hessian = 2 * xs.T @ xs / n  # (d, d)
    phi_expected = w - alpha * 2 * xs.T @ (xs @ w - ys) / n  # (d, 1)
    query_gradient = 2 * xq.T @ (xq @ phi_expected - yq) / m  # (d, 1)
    expected = (torch.eye(d, dtype=torch.float64) - alpha * hessian) @ query_gradient
    assert torch.allclose(phi["weight"].reshape(d, 1), phi_expected, rtol=0, atol=1e-13)
    assert torch.allclose(meta_gradient.reshape(d, 1), expected, rtol=0, atol=1e-13)
    assert not torch.allclose(expected, query_gradient, atol=1e-6)  # the Hessian term matters here


def test_first_order_gradient_is_the_query_gradient_at_phi():
    method, episode = tiny_regression(first_order=True), sinusoid_batch(n_tasks=1)
    task = episode[0]
    loss = method.loss(episode)[0]
    first_order = torch.autograd.grad(loss, list(method.parameters()))
    phi = {k: v.detach().requires_grad_() for k, v in method.adapt(task.support_x, task.support_y).items()}
    at_phi = torch.autograd.grad(mse(method.forward_with(phi, task.query_x), task.query_y), list(phi.values()))
    for a, b in zip(first_order, at_phi):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_reptile_with_one_inner_step_follows_the_training_gradient():
    """Nichol et al.: with one SGD step, Reptile's update is -epsilon * alpha * grad L(theta) on the task's data."""
    torch.manual_seed(0)
    method = Reptile(inner_lr=0.1, inner_steps=1, task="regression", hidden=6).double()
    task = sinusoid_batch(n_tasks=1)[0]
    x, y = torch.cat([task.support_x, task.query_x]), torch.cat([task.support_y, task.query_y])
    theta = {k: v.detach().clone() for k, v in method.theta().items()}
    gradient = torch.autograd.grad(mse(method.forward_with(method.theta(), x), y), list(method.parameters()))
    phi = method.adapt(x, y)
    updated = reptile_update(theta, [phi], epsilon=0.5)
    for (name, p), g in zip(theta.items(), gradient):
        assert torch.allclose(updated[name] - p, -0.5 * 0.1 * g, rtol=1e-10, atol=1e-13)
    # Reptile.loss hands the engine's optimizer the gradient theta - phi = alpha * grad L(theta)
    surrogate, _ = method.loss(Episode(task.support_x, task.support_y, task.query_x, task.query_y, 1, 5, 7))
    for g_surrogate, g in zip(torch.autograd.grad(surrogate, list(method.parameters())), gradient):
        assert torch.allclose(g_surrogate, 0.1 * g, rtol=1e-10, atol=1e-13)


def reptile_surrogate_gradient(method: Reptile, episode: Episode) -> list[torch.Tensor]:
    return list(torch.autograd.grad(method.loss(episode)[0], list(method.parameters())))


def test_vectorised_reptile_step_matches_adapting_task_by_task():
    """The meta-batch adapts under vmap; its update is the mean of theta - phi of each task adapted alone."""
    torch.manual_seed(0)
    method, batch = Reptile(inner_lr=0.1, inner_steps=3, task="regression", hidden=6).double(), sinusoid_batch(4)
    theta = {k: v.detach().clone() for k, v in method.theta().items()}
    phis = []
    for i in range(len(batch)):
        task = batch[i]
        phis.append(method.adapt(torch.cat([task.support_x, task.query_x]), torch.cat([task.support_y, task.query_y])))
    expected = {k: p - reptile_update(theta, phis, epsilon=1.0)[k] for k, p in theta.items()}  # theta - mean(phi)
    for g, name in zip(reptile_surrogate_gradient(method, batch), theta):
        assert torch.allclose(g, expected[name], rtol=1e-10, atol=1e-12)


def test_reptile_inner_batches_take_each_example_once_per_pass():
    torch.manual_seed(0)
    method = Reptile(inner_steps=5, inner_batch=10)
    order = method.batch_order(n_tasks=3, n_examples=25)  # 50 draws: two passes over 25 examples
    assert order.shape == (3, 5, 10)
    for task in order.reshape(3, -1):
        assert sorted(task[:25].tolist()) == list(range(25)) and sorted(task[25:].tolist()) == list(range(25))
    assert not torch.equal(order[0], order[1])  # every task draws its own order


def test_reptile_inner_batches_adapt_on_the_drawn_examples():
    """With inner_batch, step i of a task is a first-order step on the examples that batch_order drew for it."""
    method, batch = Reptile(inner_lr=0.1, inner_steps=3, inner_batch=4, task="regression", hidden=6).double(), \
        sinusoid_batch(2)
    x = torch.cat([batch.support_x, batch.query_x], dim=1)  # (2, 12, 1)
    y = torch.cat([batch.support_y, batch.query_y], dim=1)
    torch.manual_seed(5)
    order = method.batch_order(2, x.shape[1])
    theta = {k: v.detach() for k, v in method.theta().items()}
    expected = []
    for t in range(2):
        phi = theta
        for i in range(3):
            phi = adapt(method.model, phi, x[t, order[t, i]], y[t, order[t, i]], mse, 0.1, 1, first_order=True)
        expected.append(phi)
    torch.manual_seed(5)  # the same draw inside the loss
    gradient = reptile_surrogate_gradient(method, batch)
    for g, (name, p) in zip(gradient, theta.items()):
        assert torch.allclose(g, p - (expected[0][name] + expected[1][name]) / 2, rtol=1e-10, atol=1e-12)
    full = Reptile(inner_lr=0.1, inner_steps=3, task="regression", hidden=6).double()
    full.load_state_dict(method.state_dict())
    assert not torch.allclose(reptile_surrogate_gradient(full, batch)[0], gradient[0])  # batches change the step


def test_reptile_update_averages_the_tasks():
    theta = {"w": torch.zeros(3)}
    phis = [{"w": torch.tensor([1.0, 0.0, 2.0])}, {"w": torch.tensor([3.0, 2.0, 0.0])}]
    assert torch.equal(reptile_update(theta, phis, 0.5)["w"], torch.tensor([1.0, 0.5, 0.5]))
    assert torch.equal(theta["w"], torch.zeros(3))


@pytest.mark.parametrize("first_order", [False, True])
def test_adaptation_leaves_theta_alone_and_starts_every_task_from_it(first_order):
    torch.manual_seed(0)
    method = MAML(n_way=5, inner_lr=0.4, inner_steps=2, first_order=first_order, hidden=8)
    batch = random_episode(n_way=5, k_shot=1, n_query=2, batch=3)
    before = {k: v.detach().clone() for k, v in method.theta().items()}
    batched = method.predict(batch)  # (3, 10, 5)
    one_by_one = torch.stack([method.predict(batch[i]) for i in range(3)])
    reversed_order = torch.stack([method.predict(batch[i]) for i in (2, 1, 0)]).flip(0)
    assert batched.shape == (3, 10, 5)
    assert torch.allclose(batched, one_by_one, atol=1e-5) and torch.allclose(one_by_one, reversed_order)
    for k, v in method.theta().items():
        assert torch.equal(v, before[k]) and v.grad is None


def test_batched_meta_gradient_equals_the_mean_of_per_task_gradients():
    method, episode = tiny_regression(), sinusoid_batch(n_tasks=4)
    batched = torch.autograd.grad(method.loss(episode)[0], list(method.parameters()))
    per_task = sum(method.loss(episode[i])[0] for i in range(4)) / 4
    for a, b in zip(batched, torch.autograd.grad(per_task, list(method.parameters()))):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)


def test_inner_steps_reduce_the_support_loss_and_zero_steps_is_theta():
    method = tiny_regression(inner_steps=0)
    task = sinusoid_batch(n_tasks=1)[0]
    assert all(torch.equal(a, b) for a, b in zip(method.adapt(task.support_x, task.support_y).values(),
                                                 method.theta().values()))
    support_mse = [mse(method.forward_with(method.adapt(task.support_x, task.support_y, steps=s), task.support_x),
                       task.support_y).item() for s in (0, 1, 5)]
    assert support_mse[0] > support_mse[1] > support_mse[2]


def test_evaluation_adapts_with_the_test_steps_and_no_second_order_graph():
    torch.manual_seed(0)
    method = MAML(n_way=5, inner_steps=1, test_inner_steps=3, hidden=8)
    episode = random_episode(n_way=5, k_shot=1, n_query=3, batch=2)
    method.eval()
    scores = method.score(episode)
    assert scores.shape == (2,) and ((scores >= 0) & (scores <= 1)).all()
    with torch.no_grad():
        phi = method.adapt(episode[0].support_x, episode[0].support_y)
    expected = method.adapt(episode[0].support_x, episode[0].support_y, steps=3, first_order=True)
    assert all(torch.allclose(a, b) for a, b in zip(phi.values(), expected.values()))


def test_a_head_of_the_wrong_size_is_a_clear_error():
    with pytest.raises(ValueError, match="train a learner with n_way=20"):
        MAML(n_way=5, hidden=8).predict(random_episode(n_way=20, k_shot=1, n_query=1))


def test_maml_learns_sinusoids():
    """1500 meta-steps (a few seconds) lower the MSE after one inner step well below the untrained network's."""
    torch.manual_seed(0)
    method = MAML(inner_lr=0.01, inner_steps=1, test_inner_steps=1, task="regression", hidden=40)
    tasks, test = SinusoidTasks(k_shot=10, n_query=10, seed=0), SinusoidTasks(k_shot=10, n_query=10, seed=99)
    test_batch = test.sample(100)
    before = method.score(test_batch).mean().item()
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
    for _ in range(1500):
        loss, _ = method.loss(tasks.sample(10))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = method.score(test_batch).mean().item()
    assert after < 0.6 * before, (before, after)


def test_the_adaptation_curve_starts_at_theta_and_follows_adapt():
    method, episode = tiny_regression(inner_steps=1), sinusoid_batch(n_tasks=3)
    curve = method.adaptation_curve(episode, max_steps=4)  # (3, 5)
    assert curve.shape == (3, 5)
    method.eval()
    for steps in (0, 1, 4):
        method.test_inner_steps = steps
        assert torch.allclose(curve[:, steps], method.score(episode), rtol=1e-10)
    method.train()
    assert torch.equal(method.adaptation_curve(episode, max_steps=4, at=[4, 0, 1]), curve[:, [4, 0, 1]])
    with pytest.raises(ValueError, match="max_steps=4"):
        method.adaptation_curve(episode, max_steps=4, at=[5])

