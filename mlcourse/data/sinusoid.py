"""Sinusoid regression tasks, as in MAML section 5.1 (Finn et al. 2017)."""

import math

import torch

from mlcourse.data.episodes import Episode, stack_episodes


class SinusoidTasks:
    """Tasks y = A sin(x - b) with A in [0.1, 5], b in [0, pi], x uniform in [-5, 5]."""

    def __init__(self, k_shot: int = 10, n_query: int = 10, seed: int = 0,
                 amplitude=(0.1, 5.0), phase=(0.0, math.pi), x_range=(-5.0, 5.0)):
        self.k_shot, self.n_query = k_shot, n_query
        self.amplitude, self.phase, self.x_range = amplitude, phase, x_range
        self.generator = torch.Generator().manual_seed(seed)

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

    def sample(self, meta_batch_size: int | None = None) -> Episode:
        """One task's support (k_shot points) and query (n_query points), or a batch of them."""
        if meta_batch_size is None:
            return self._one()
        return stack_episodes([self._one() for _ in range(meta_batch_size)])

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def sinusoid(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """The true function of a task with params (amplitude, phase)."""
    return params[0] * torch.sin(x - params[1])
