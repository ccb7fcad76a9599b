"""A black box that learns to explore: RL^2 (Duan et al. 2016) and Wang et al. (2016) on Bernoulli bandits.

The learner is an LSTM that reads, at each pull, the arm it pulled last and whether it paid, and outputs a
distribution over the next arm (and an estimate of the discounted reward to come). Its weights are
meta-trained by advantage actor-critic over many bandits; within a bandit it learns only through its hidden
state, as the supervised black boxes of chapter 5 do within an episode. Beside it, the classic players that
know they face Bernoulli arms: Thompson sampling and UCB1.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from mlcourse.data.bandits import BanditBatch
from mlcourse.methods.base import Method


class RL2(Method):
    """An LSTM player of bandits, trained by advantage actor-critic (A2C) on whole games of `pulls` pulls.

    `entropy` rewards spreading the choices early in training; it falls linearly to 0 over `entropy_steps`
    training steps (counted in the state, so a resumed run continues the schedule).
    """

    metric = "reward"  # `score`: the mean reward per pull of each game

    def __init__(self, arms: int = 2, pulls: int = 100, hidden: int = 48, gamma: float = 0.9, entropy: float = 0.05,
                 entropy_steps: int = 1200, value_weight: float = 0.25):
        super().__init__()
        self.arms, self.pulls = arms, pulls  # the games it is trained on; its clock input is t / pulls
        self.gamma, self.entropy, self.entropy_steps = gamma, entropy, entropy_steps
        self.value_weight = value_weight
        self.cell = nn.LSTMCell(2 * arms + 1, hidden)  # (arm pulled and paid, arm pulled and not, time)
        self.policy, self.value = nn.Linear(hidden, arms), nn.Linear(hidden, 1)
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))

    def play(self, batch: BanditBatch, greedy: bool = False):
        """One game per task: log-probability, value estimate, reward and entropy of each pull, each (B, pulls)."""
        if batch.arms != self.arms:
            raise ValueError(f"this player has {self.arms} arms, the bandits have {batch.arms}: "
                             f"train an RL2 with arms={batch.arms} for them")
        b, device = len(batch), batch.probs.device
        state = (torch.zeros(b, self.cell.hidden_size, device=device),) * 2
        seen = torch.zeros(b, 2 * self.arms, device=device)  # nothing pulled before the first pull
        out = []
        for t in range(batch.pulls):
            clock = torch.full((b, 1), t / self.pulls, device=device)
            state = self.cell(torch.cat([seen, clock], 1), state)
            dist = torch.distributions.Categorical(logits=self.policy(state[0]))
            arm = dist.probs.argmax(-1) if greedy else dist.sample()
            reward = batch.reward(t, arm)
            out.append((dist.log_prob(arm), self.value(state[0])[:, 0], reward, dist.entropy()))
            pulled = F.one_hot(arm, self.arms).float()
            seen = torch.cat([pulled * reward[:, None], pulled * (1 - reward[:, None])], 1)
        return [torch.stack(column, 1) for column in zip(*out)]

    def loss(self, batch: BanditBatch) -> tuple[torch.Tensor, float]:
        """A2C on sampled games: policy gradient with normalised advantages, value regression, entropy bonus."""
        log_prob, value, reward, entropy = self.play(batch)
        advantage = discounted(reward, self.gamma) - value  # (B, pulls)
        a = advantage.detach()
        a = (a - a.mean()) / (a.std() + 1e-6)
        bonus = self.entropy * max(0.0, 1 - self.steps_done.item() / self.entropy_steps)
        self.steps_done += 1
        loss = -(log_prob * a).mean() + self.value_weight * advantage.pow(2).mean() - bonus * entropy.mean()
        return loss, reward.mean().item()

    def score(self, batch: BanditBatch) -> torch.Tensor:
        """Mean reward per pull of each game, the player taking its most likely arm each time: (B,)."""
        with torch.no_grad():
            return self.play(batch, greedy=True)[2].mean(1)


def discounted(reward: torch.Tensor, gamma: float) -> torch.Tensor:
    """The discounted reward to come from each pull: (B, pulls) -> (B, pulls)."""
    out, to_come = torch.empty_like(reward), torch.zeros_like(reward[:, 0])
    for t in reversed(range(reward.shape[1])):
        to_come = reward[:, t] + gamma * to_come
        out[:, t] = to_come
    return out


def thompson_sampling(batch: BanditBatch, seed: int = 0) -> torch.Tensor:
    """Thompson sampling with a uniform Beta(1, 1) prior on each arm: mean reward per pull of each game, (B,)."""
    generator = torch.Generator(device=batch.probs.device).manual_seed(seed)
    wins, losses = torch.ones_like(batch.probs), torch.ones_like(batch.probs)
    rewards = []
    for t in range(batch.pulls):
        guess = beta_sample(wins, losses, generator)  # (B, arms): a plausible value of each arm
        arm = guess.argmax(-1)
        reward = batch.reward(t, arm)
        wins.scatter_add_(1, arm[:, None], reward[:, None])
        losses.scatter_add_(1, arm[:, None], 1 - reward[:, None])
        rewards.append(reward)
    return torch.stack(rewards, 1).mean(1)


def beta_sample(a: torch.Tensor, b: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Beta(a, b) draws for whole-number a, b >= 1: the a-th smallest of a + b - 1 uniforms."""
    n = int((a + b - 1).max().item())
    uniforms = torch.rand(*a.shape, n, generator=generator, device=a.device)
    uniforms = uniforms.masked_fill(torch.arange(n, device=a.device) >= (a + b - 1)[..., None], 2.0)
    return uniforms.sort(-1).values.gather(-1, (a.long() - 1)[..., None])[..., 0]


def ucb1(batch: BanditBatch) -> torch.Tensor:
    """UCB1 (Auer et al. 2002): each arm once, then the best mean plus sqrt(2 ln t / n). Mean reward per pull, (B,)."""
    total, count = torch.zeros_like(batch.probs), torch.zeros_like(batch.probs)
    rewards = []
    for t in range(batch.pulls):
        if t < batch.arms:
            arm = torch.full((len(batch),), t, dtype=torch.long, device=batch.probs.device)
        else:
            arm = (total / count + torch.sqrt(2 * math.log(t) / count)).argmax(-1)
        reward = batch.reward(t, arm)
        total.scatter_add_(1, arm[:, None], reward[:, None])
        count.scatter_add_(1, arm[:, None], torch.ones_like(reward)[:, None])
        rewards.append(reward)
    return torch.stack(rewards, 1).mean(1)


def oracle(batch: BanditBatch) -> torch.Tensor:
    """The player who knows the best arm and pulls it every time: mean reward per pull of each game, (B,)."""
    best = batch.probs.argmax(-1)
    return torch.stack([batch.reward(t, best) for t in range(batch.pulls)], 1).mean(1)


def random_player(batch: BanditBatch, seed: int = 0) -> torch.Tensor:
    """Arms pulled uniformly at random: mean reward per pull of each game, (B,)."""
    generator = torch.Generator(device=batch.probs.device).manual_seed(seed)
    arms = torch.randint(batch.arms, (batch.pulls, len(batch)), generator=generator, device=batch.probs.device)
    return torch.stack([batch.reward(t, arms[t]) for t in range(batch.pulls)], 1).mean(1)
