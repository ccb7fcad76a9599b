"""Matching networks (Vinyals et al. 2016): attention over the support set, labels summed by weight."""

import torch
from torch import nn

from mlcourse.data.episodes import Episode
from mlcourse.methods.base import Method
from mlcourse.methods.protonet import cosine_similarity, embed_episode
from mlcourse.models import conv4


def attention(query: torch.Tensor, support: torch.Tensor, scale: float | torch.Tensor = 1.0) -> torch.Tensor:
    """a(x, x_i): softmax over the support of scaled cosine similarities, ([B,] Q, d), ([B,] S, d) -> ([B,] Q, S)."""
    return torch.softmax(scale * cosine_similarity(query, support), dim=-1)


def attend_labels(weights: torch.Tensor, support_y: torch.Tensor, n_way: int) -> torch.Tensor:
    """y_hat = sum_i a(x, x_i) y_i with one-hot y_i: ([B,] Q, S) -> ([B,] Q, n_way) class probabilities."""
    one_hot = nn.functional.one_hot(support_y, n_way).to(weights.dtype)  # ([B,] S, n_way)
    return weights @ one_hot


class FullContextEmbedding(nn.Module):
    """Vinyals et al.'s full context embeddings: g reads the whole support set with a bidirectional
    LSTM, f attends over g(support) for `steps` LSTM steps. Both condition on the support set."""

    def __init__(self, dim: int = 64, steps: int = 5):
        super().__init__()
        self.g_lstm = nn.LSTM(dim, dim, batch_first=True, bidirectional=True)
        self.f_cell = nn.LSTMCell(dim, dim)
        self.steps = steps

    def forward(self, support: torch.Tensor, query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S, d), (B, Q, d) -> context-aware (B, S, d), (B, Q, d)."""
        both, _ = self.g_lstm(support)  # (B, S, 2d)
        fwd, bwd = both.chunk(2, dim=-1)
        g = support + fwd + bwd  # (B, S, d)
        b, q, d = query.shape
        f0 = query.reshape(b * q, d)  # every query runs its own attention LSTM
        h, c = torch.zeros_like(f0), torch.zeros_like(f0)
        readout = torch.zeros_like(f0)
        g_rep = g.repeat_interleave(q, dim=0)  # (B * Q, S, d)
        for _ in range(self.steps):
            h, c = self.f_cell(f0, (h + readout, c))
            h = h + f0
            a = torch.softmax((g_rep @ h.unsqueeze(-1)).squeeze(-1), dim=-1)  # (B * Q, S)
            readout = (a.unsqueeze(-1) * g_rep).sum(dim=1)  # (B * Q, d)
        return g, h.reshape(b, q, d)


class MatchingNet(Method):
    """Predicts P(y | x, S) = sum_i a(x, x_i) y_i; `predict` returns its log, so cross-entropy is the NLL."""

    def __init__(self, embed: nn.Module | None = None, scale: float = 10.0, full_context: bool = False,
                 dim: int = 64):
        super().__init__()
        self.embed = embed if embed is not None else conv4()
        # cosine similarities lie in [-1, 1]; a learned inverse temperature lets the softmax get sharp
        self.log_scale = nn.Parameter(torch.tensor(float(scale)).log())
        self.fce = FullContextEmbedding(dim) if full_context else None

    def predict(self, episode: Episode) -> torch.Tensor:
        support, query = embed_episode(self.embed, episode)  # ([B,] S, d), ([B,] Q, d)
        if self.fce is not None:
            unbatched = support.dim() == 2
            support, query = self.fce(*(t.unsqueeze(0) if unbatched else t for t in (support, query)))
            if unbatched:
                support, query = support[0], query[0]
        weights = attention(query, support, self.log_scale.exp())  # ([B,] Q, S)
        probs = attend_labels(weights, episode.support_y, episode.n_way)  # ([B,] Q, n_way)
        return probs.clamp_min(1e-8).log()
