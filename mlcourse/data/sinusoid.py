"""Sinusoid regression tasks, as in MAML section 5.1 (Finn et al. 2017)."""

import math

import torch

from mlcourse.data.episodes import Episode, SeededSampler


class SinusoidTasks(SeededSampler):
    """Tasks y = A sin(x - b) with A in [0.1, 5], b in [0, pi], x uniform in [-5, 5]."""

    def __init__(self, k_shot: int = 10, n_query: int = 10, seed: int = 0,
                 amplitude=(0.1, 5.0), phase=(0.0, math.pi), x_range=(-5.0, 5.0)):
        super().__init__(seed)
        self.k_shot, self.n_query = k_shot, n_query
        self.amplitude, self.phase, self.x_range = amplitude, phase, x_range

    def _uniform(self, low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(*shape, generator=self.generator)

    def _one(self) -> Episode:
        amp = self._uniform(*self.amplitude, 1)
        phase = self._uniform(*self.phase, 1)
        x = self._uniform(*self.x_range, self.k_shot + self.n_query, 1)  # (k_shot + n_query, 1)
        y = amp * torch.sin(x - phase)
        k = self.k_shot
        return Episode(support_x=x[:k], support_y=y[:k], query_x=x[k:], query_y=y[k:],
                       n_way=1, k_shot=k, n_query=self.n_query, params=torch.cat([amp, phase]))


def sinusoid(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """The true function of a task with params (amplitude, phase)."""
    return params[0] * torch.sin(x - params[1])
