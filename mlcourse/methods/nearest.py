"""The simplest few-shot learner: nearest neighbour in pixel space (chapter 1's baseline)."""

import torch
import torch.nn.functional as F

from mlcourse.data.episodes import Episode
from mlcourse.methods.base import Method


class PixelNearestNeighbour(Method):
    """Label each query with the class of its nearest support image (L2 or cosine, on raw pixels)."""

    def __init__(self, distance: str = "l2"):
        super().__init__()
        if distance not in {"l2", "cosine"}:
            raise ValueError(f"distance must be 'l2' or 'cosine', not {distance!r}")
        self.distance = distance

    def predict(self, episode: Episode) -> torch.Tensor:
        """Logit of class c = minus the distance to the nearest support image of class c."""
        support = episode.support_x.flatten(start_dim=-3)  # ([B,] n_way * k_shot, 784)
        query = episode.query_x.flatten(start_dim=-3)  # ([B,] n_way * n_query, 784)
        if self.distance == "cosine":
            dist = 1 - F.normalize(query, dim=-1) @ F.normalize(support, dim=-1).transpose(-1, -2)
        else:
            dist = torch.cdist(query, support)  # ([B,] Q, n_way * k_shot)
        return -min_per_class(dist, episode.support_y, episode.n_way)


def min_per_class(dist: torch.Tensor, support_y: torch.Tensor, n_way: int) -> torch.Tensor:
    """For each query, the smallest distance to a support example of each class: ([B,] Q, n_way)."""
    classes = torch.arange(n_way, device=support_y.device)
    other = support_y.unsqueeze(-2) != classes[:, None]  # ([B,] n_way, S): True where not class c
    dist = dist.unsqueeze(-2).masked_fill(other.unsqueeze(-3), float("inf"))  # ([B,] Q, n_way, S)
    return dist.min(dim=-1).values
