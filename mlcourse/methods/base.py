"""What every few-shot method provides to the engine."""

import torch
import torch.nn.functional as F
from torch import nn

from mlcourse.data.episodes import Episode


class Method(nn.Module):
    """A few-shot learner: `predict` gives query logits from an episode's support set.

    Classification methods implement `predict`; the engine calls `loss` to train and `score`
    to evaluate. A method with another training signal (Siamese pairs, regression) overrides them.
    """

    metric = "accuracy"  # what `score` returns; "mse" for regression

    def predict(self, episode: Episode) -> torch.Tensor:
        """Logits of the queries, ([B,] n_way * n_query, n_way)."""
        raise NotImplementedError

    def loss(self, episode: Episode) -> tuple[torch.Tensor, float]:
        """Mean cross-entropy of the query predictions, and their accuracy."""
        logits = self.predict(episode)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), episode.query_y.reshape(-1))
        return loss, accuracy(logits, episode.query_y).mean().item()

    def score(self, episode: Episode) -> torch.Tensor:
        """The accuracy of each episode of a batch, (B,) (or (1,) for one episode)."""
        with torch.no_grad():
            return accuracy(self.predict(episode), episode.query_y).reshape(-1)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Share of correct argmax predictions per episode: ([B,] Q, n_way), ([B,] Q) -> ([B])."""
    return (logits.argmax(dim=-1) == labels).float().mean(dim=-1)


def task_mse(prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each task's predictions (regression): ([B,] Q, 1), ([B,] Q, 1) -> ([B])."""
    return (prediction - y).pow(2).flatten(start_dim=-2).mean(dim=-1)
