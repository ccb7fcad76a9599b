"""Prototypical networks (Snell et al. 2017): classify a query by its distance to class means."""

import torch
import torch.nn.functional as F
from torch import nn

from mlcourse.data.episodes import Episode
from mlcourse.methods.base import Method
from mlcourse.models import conv4, embed_images


def embed_episode(embed: nn.Module, episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
    """Support and query embeddings from one forward pass (shared batch-norm statistics)."""
    n_support = episode.support_y.shape[-1]
    examples = 1 if episode.batched else 0  # the dimension after the meta-batch one
    z = embed_images(embed, torch.cat([episode.support_x, episode.query_x], dim=examples))  # ([B,] S + Q, d)
    return z[..., :n_support, :], z[..., n_support:, :]


def prototypes(support: torch.Tensor, support_y: torch.Tensor, n_way: int) -> torch.Tensor:
    """Class means of the support embeddings: ([B,] S, d), ([B,] S) -> ([B,] n_way, d)."""
    one_hot = F.one_hot(support_y, n_way).to(support.dtype)  # ([B,] S, n_way)
    sums = one_hot.transpose(-1, -2) @ support  # ([B,] n_way, d)
    return sums / one_hot.sum(dim=-2).unsqueeze(-1)


def squared_euclidean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise squared distances: ([B,] Q, d), ([B,] n, d) -> ([B,] Q, n)."""
    return (a.unsqueeze(-2) - b.unsqueeze(-3)).pow(2).sum(dim=-1)


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise cosine similarities: ([B,] Q, d), ([B,] n, d) -> ([B,] Q, n)."""
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).transpose(-1, -2)


class ProtoNet(Method):
    """Logits are minus squared Euclidean distances to the prototypes (or scaled cosine similarities)."""

    def __init__(self, embed: nn.Module | None = None, distance: str = "euclidean", scale: float = 10.0):
        super().__init__()
        if distance not in {"euclidean", "cosine"}:
            raise ValueError(f"distance must be 'euclidean' or 'cosine', not {distance!r}")
        self.embed = embed if embed is not None else conv4()
        self.distance, self.scale = distance, scale

    def predict(self, episode: Episode) -> torch.Tensor:
        support, query = embed_episode(self.embed, episode)
        protos = prototypes(support, episode.support_y, episode.n_way)  # ([B,] n_way, d)
        if self.distance == "cosine":  # cosine lies in [-1, 1]: a fixed scale makes the softmax sharp enough
            return self.scale * cosine_similarity(query, protos)
        return -squared_euclidean(query, protos)  # ([B,] Q, n_way)
