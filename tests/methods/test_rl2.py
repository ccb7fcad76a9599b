"""Chapter 8's bandits and their players: the tasks, the classic players, and the meta-learned LSTM (RL^2)."""

import pytest
import torch

from mlcourse.data.bandits import BanditBatch, BanditTasks
from mlcourse.engine import TrainConfig, train
from mlcourse.methods.rl2 import RL2, beta_sample, discounted, oracle, random_player, thompson_sampling, ucb1


def games(n=2000, seed=123) -> BanditBatch:
    return BanditTasks(arms=2, pulls=100, seed=seed).sample(n)


def test_bandit_tasks_are_seeded_and_pay_by_their_luck():
    batch = games(5)
    assert batch.probs.shape == (5, 2) and batch.luck.shape == (5, 100, 2) and (batch.arms, batch.pulls) == (2, 100)
    assert torch.equal(batch.probs, games(5).probs) and not torch.equal(batch.probs, games(5, seed=1).probs)
    arm = torch.tensor([0, 1, 1, 0, 1])
    paid = batch.reward(7, arm)
    assert torch.equal(paid, (batch.luck[torch.arange(5), 7, arm] < batch.probs[torch.arange(5), arm]).float())
    with pytest.raises(ValueError, match="at least 2 arms"):
        BanditTasks(arms=1)


def test_every_player_meets_the_same_luck():
    """Common random numbers: the oracle's rewards are the best arm's luck, and a player's score is a fixed
    function of the batch (players are compared game by game, not only on average)."""
    batch = games(50)
    best = batch.probs.argmax(-1)
    expected = (batch.luck[torch.arange(50), :, best] < batch.probs.max(-1).values[:, None]).float().mean(1)
    assert torch.equal(oracle(batch), expected)
    assert torch.equal(thompson_sampling(batch, seed=3), thompson_sampling(batch, seed=3))
    assert torch.equal(ucb1(batch), ucb1(batch))


def test_beta_draws_have_the_beta_mean_and_stay_in_the_unit_interval():
    a, b = torch.tensor([[1.0, 3.0, 10.0]]).expand(20000, 3), torch.tensor([[1.0, 7.0, 2.0]]).expand(20000, 3)
    draws = beta_sample(a.contiguous(), b.contiguous(), torch.Generator().manual_seed(0))  # (20000, 3)
    assert ((draws >= 0) & (draws <= 1)).all()
    assert torch.allclose(draws.mean(0), torch.tensor([0.5, 0.3, 10 / 12]), atol=0.01)


def test_the_classic_players_rank_as_expected():
    """On 2,000 two-armed games: random < UCB1 < Thompson sampling < the oracle, each well apart."""
    batch = games()
    scores = {f.__name__: f(batch).mean().item() for f in (random_player, ucb1, thompson_sampling, oracle)}
    assert abs(scores["random_player"] - batch.probs.mean().item()) < 0.01, scores
    assert scores["random_player"] + 0.1 < scores["ucb1"] < scores["thompson_sampling"] < scores["oracle"], scores


def test_ucb1_tries_every_arm_once_first():
    batch = BanditTasks(arms=3, pulls=3, seed=0).sample(4)
    batch.luck.zero_()  # every pull pays (probabilities are above 0): the first three pulls are arms 0, 1, 2
    assert torch.equal(ucb1(batch), torch.ones(4))


def test_discounted_rewards_to_come():
    reward = torch.tensor([[1.0, 0.0, 1.0]])
    assert torch.allclose(discounted(reward, 0.5), torch.tensor([[1.25, 0.5, 1.0]]))


def test_the_player_plays_whole_games_and_says_when_the_bandit_does_not_fit():
    torch.manual_seed(0)
    player = RL2(arms=2, pulls=100, hidden=8)
    log_prob, value, reward, entropy = player.play(games(6))
    assert log_prob.shape == value.shape == reward.shape == entropy.shape == (6, 100)
    loss, mean_reward = player.loss(games(6))
    loss.backward()
    assert all(p.grad is not None for p in player.parameters()) and player.steps_done.item() == 1
    assert player.score(games(6)).shape == (6,)
    with pytest.raises(ValueError, match="arms=3"):
        player.play(BanditTasks(arms=3).sample(2))


def test_the_lstm_player_learns_to_exploit_within_a_game():
    """A few hundred A2C steps on easy bandits (one arm pays 0.9, the other 0.1, which one is random): the
    player finds the good arm within each game, far above the random player's 0.5."""
    class EasyBandits(BanditTasks):
        def sample(self, n=None):
            batch = super().sample(n)
            good = torch.rand(len(batch), generator=self.generator) < 0.5
            probs = torch.stack([good.float(), (~good).float()], 1) * 0.8 + 0.1
            return BanditBatch(probs, batch.luck)

    torch.manual_seed(0)
    player = RL2(arms=2, pulls=20, hidden=16, entropy_steps=150)
    history = train(player, EasyBandits(2, 20, seed=0), TrainConfig(steps=200, meta_batch_size=32, outer_lr=1e-2,
                                                                      val_every=0), device="cpu", verbose=False)
    score = player.score(EasyBandits(2, 20, seed=1).sample(500)).mean().item()
    assert sum(history.metric[:10]) / 10 < 0.6 and score > 0.8, (history.metric[:10], score)
