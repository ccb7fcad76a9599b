"""Sinusoid tasks follow MAML section 5.1."""

import math

import torch

from mlcourse.data import SinusoidTasks
from mlcourse.data.sinusoid import sinusoid


def test_ranges_and_function():
    batch = SinusoidTasks(k_shot=10, n_query=7, seed=0).sample(500)
    assert batch.support_x.shape == (500, 10, 1) and batch.query_y.shape == (500, 7, 1)
    amp, phase = batch.params[:, 0], batch.params[:, 1]
    assert amp.min() >= 0.1 and amp.max() <= 5.0 and phase.min() >= 0 and phase.max() <= math.pi
    assert batch.support_x.abs().max() <= 5.0
    for i in range(5):
        assert torch.allclose(batch[i].support_y, sinusoid(batch[i].support_x, batch.params[i]))


def test_reproducible():
    a, b = SinusoidTasks(seed=4).sample(3), SinusoidTasks(seed=4).sample(3)
    assert torch.equal(a.query_y, b.query_y) and torch.equal(a.params, b.params)
