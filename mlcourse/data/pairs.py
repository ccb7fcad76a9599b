"""Pairs of images, same class or not: the training data of a Siamese verification network."""

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

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


def distort(images: torch.Tensor, degrees: float = 10.0, shear: float = 0.3, scale=(0.8, 1.2),
            shift: float = 0.1) -> torch.Tensor:
    """Koch et al.'s random affine distortions, one per image: (B, 1, H, W) -> (B, 1, H, W).

    Rotation up to `degrees`, shear factors up to `shear`, scaling within `scale`, translation up
    to `shift` of the image's half-width; drawn from torch's global generator (seeded by training).
    """
    b = images.shape[0]
    uniform = lambda lo, hi: lo + (hi - lo) * torch.rand(b, device=images.device)  # noqa: E731
    angle = uniform(-degrees, degrees) * math.pi / 180
    cos, sin = angle.cos(), angle.sin()
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (B, 2, 2)
    one = torch.ones(b, device=images.device)
    shearing = torch.stack([torch.stack([one, uniform(-shear, shear)], -1),
                            torch.stack([uniform(-shear, shear), one], -1)], -2)  # (B, 2, 2)
    linear = uniform(*scale)[:, None, None] * rotation @ shearing  # (B, 2, 2)
    theta = torch.cat([linear, torch.stack([uniform(-shift, shift), uniform(-shift, shift)], -1)[..., None]], -1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")  # paper (0) outside
