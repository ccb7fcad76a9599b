"""Bernoulli bandits: chapter 8's meta-reinforcement-learning tasks (Wang et al. 2016, Duan et al. 2016).

A task is a row of arms, each paying 1 with its own probability, drawn uniformly from [0, 1], and a player has a
fixed number of pulls. A batch carries its tasks' *luck* too, one uniform draw per pull and arm, so that every
player (a meta-learned one, Thompson sampling, UCB) meets the same rewards for the same choices.
"""

from dataclasses import dataclass, replace

import torch

from mlcourse.data.episodes import SeededSampler


@dataclass
class BanditBatch:
    """A batch of bandit tasks: arm a pays at pull t when luck[:, t, a] < probs[:, a]."""

    probs: torch.Tensor  # (B, arms)
    luck: torch.Tensor  # (B, pulls, arms) uniform in [0, 1)

    @property
    def arms(self) -> int:
        return self.probs.shape[1]

    @property
    def pulls(self) -> int:
        return self.luck.shape[1]

    def reward(self, t: int, arm: torch.Tensor) -> torch.Tensor:
        """The reward of pulling `arm` (B,) at pull t: (B,) floats, 0 or 1."""
        picked = arm[:, None]
        return (self.luck[:, t].gather(1, picked) < self.probs.gather(1, picked)).float()[:, 0]

    def to(self, device) -> "BanditBatch":
        return replace(self, probs=self.probs.to(device), luck=self.luck.to(device))

    def __len__(self) -> int:
        return self.probs.shape[0]


class BanditTasks(SeededSampler):
    """Bandits of `arms` arms with probabilities uniform in [0, 1], played for `pulls` pulls."""

    def __init__(self, arms: int = 2, pulls: int = 100, seed: int = 0):
        super().__init__(seed)
        if arms < 2 or pulls < 1:
            raise ValueError(f"a bandit needs at least 2 arms and 1 pull, got arms={arms}, pulls={pulls}")
        self.arms, self.pulls = arms, pulls

    def sample(self, meta_batch_size: int | None = None) -> BanditBatch:
        """A batch of `meta_batch_size` tasks (one when None)."""
        b = meta_batch_size or 1
        probs = torch.rand(b, self.arms, generator=self.generator)
        return BanditBatch(probs, torch.rand(b, self.pulls, self.arms, generator=self.generator))
