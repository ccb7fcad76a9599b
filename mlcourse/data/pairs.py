"""Pairs of images, same class or not: the training data of a Siamese verification network."""

from dataclasses import dataclass, replace

import torch

from mlcourse.data.episodes import SeededSampler


@dataclass
class Pairs:
    """A batch of image pairs and whether each pair shows the same class."""

    x1: torch.Tensor  # (B, 1, 28, 28)
    x2: torch.Tensor  # (B, 1, 28, 28)
    same: torch.Tensor  # (B,) float, 1.0 for the same class

    def to(self, device) -> "Pairs":
        return replace(self, x1=self.x1.to(device), x2=self.x2.to(device), same=self.same.to(device))


class PairSampler(SeededSampler):
    """Half the pairs are two different drawings of one class, half are drawings of two classes."""

    def __init__(self, images: torch.Tensor, seed: int = 0):
        if images.shape[0] < 2 or images.shape[1] < 2:
            raise ValueError("pairs need at least 2 classes with at least 2 images each")
        super().__init__(seed)
        self.images = images  # (n_classes, n_per_class, 1, 28, 28)

    def sample(self, batch_size: int = 32) -> Pairs:
        n_classes, n_per_class = self.images.shape[:2]
        g = self.generator
        same = torch.arange(batch_size) < batch_size // 2  # (B,) first half positive
        c1 = torch.randint(n_classes, (batch_size,), generator=g)
        shift = torch.randint(1, n_classes, (batch_size,), generator=g)  # another class, uniformly
        c2 = torch.where(same, c1, (c1 + shift) % n_classes)
        i1 = torch.randint(n_per_class, (batch_size,), generator=g)
        step = torch.randint(1, n_per_class, (batch_size,), generator=g)  # never the same drawing
        i2 = torch.where(same, (i1 + step) % n_per_class, torch.randint(n_per_class, (batch_size,), generator=g))
        return Pairs(self.images[c1, i1], self.images[c2, i2], same.float())
