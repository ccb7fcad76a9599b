"""Siamese networks (Koch et al. 2015): learn whether two images show the same class, then
classify a query N-way by its most similar support image."""

import torch
import torch.nn.functional as F
from torch import nn

from mlcourse.data.episodes import Episode
from mlcourse.data.pairs import Pairs, distort
from mlcourse.methods.base import Method
from mlcourse.methods.nearest import min_per_class
from mlcourse.methods.protonet import embed_episode
from mlcourse.models import conv4, embed_images


class SiameseNet(Method):
    """Twin embeddings, a weighted L1 distance, and a logistic output: p(same) = sigmoid(w . |f(x1) - f(x2)| + b)."""

    def __init__(self, embed: nn.Module | None = None, dim: int = 64, distort: bool = False):
        super().__init__()
        self.embed = embed if embed is not None else conv4(hidden=dim)  # dim: conv4's width and embedding size
        self.head = nn.Linear(dim, 1)
        self.distort = distort  # Koch et al.'s affine distortions of the training pairs

    def pair_logits(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """Log-odds that two embeddings show the same class: (..., d), (..., d) -> (...); symmetric."""
        return self.head((z1 - z2).abs()).squeeze(-1)

    def similarity(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """Same-class log-odds of image pairs, (B, 1, 28, 28) x 2 -> (B,), from one forward pass."""
        z = embed_images(self.embed, torch.cat([x1, x2]))  # (2B, d)
        return self.pair_logits(*z.chunk(2))

    def loss(self, pairs: Pairs) -> tuple[torch.Tensor, float]:
        """Binary cross-entropy of the verification task, and its accuracy (meta-training is binary)."""
        x1, x2 = (distort(pairs.x1), distort(pairs.x2)) if self.distort else (pairs.x1, pairs.x2)
        logits = self.similarity(x1, x2)
        acc = ((logits > 0).float() == pairs.same).float().mean().item()
        return F.binary_cross_entropy_with_logits(logits, pairs.same), acc

    def predict(self, episode: Episode) -> torch.Tensor:
        """N-way logits: for each class, the highest same-class log-odds over its support images."""
        support, query = embed_episode(self.embed, episode)  # ([B,] S, d), ([B,] Q, d)
        logits = self.pair_logits(query.unsqueeze(-2), support.unsqueeze(-3))  # ([B,] Q, S)
        return -min_per_class(-logits, episode.support_y, episode.n_way)  # ([B,] Q, n_way)

    def verification_accuracy(self, pairs: Pairs) -> float:
        """Share of pairs judged correctly (same / different)."""
        with torch.no_grad():
            return ((self.similarity(pairs.x1, pairs.x2) > 0).float() == pairs.same).float().mean().item()
