"""Distribution shifts of the test characters: transformations that no training episode had.

Each shift maps images and a strength to changed images, (B, 1, H, W) -> (B, 1, H, W), the same change for
every image (shear and scale as Finn and Levine 2018 tested MAML out of distribution; thicker strokes; noise).
Strength 0 leaves the images unchanged. `SHIFT_STRENGTHS` lists the strengths chapter 8 measures.
"""

import torch
import torch.nn.functional as F


def affine(images: torch.Tensor, linear: torch.Tensor) -> torch.Tensor:
    """Every image warped by the 2x2 map `linear` about its centre (paper, 0, outside)."""
    theta = torch.cat([linear, torch.zeros(2, 1)], dim=1).to(images)  # (2, 3)
    grid = F.affine_grid(theta.expand(len(images), 2, 3), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")


def shear(images: torch.Tensor, factor: float) -> torch.Tensor:
    """Horizontal shear: x' = x + factor * y (factor 0.5 slants a vertical stroke by about 27 degrees)."""
    return affine(images, torch.tensor([[1.0, factor], [0.0, 1.0]]))


def scale(images: torch.Tensor, shrink: float) -> torch.Tensor:
    """The character drawn at 1 - shrink of its size (shrink 0.5: half as tall and wide), centred."""
    return affine(images, torch.eye(2) / (1.0 - shrink))


def stroke(images: torch.Tensor, ink: float) -> torch.Tensor:
    """Bolder strokes: every pixel next to a stroke (a 3x3 neighbourhood) gets at least `ink` of its ink.

    ink 1 widens every stroke by one pixel on each side; 28x28 strokes are 2 to 3 pixels wide.
    """
    return torch.maximum(images, ink * F.max_pool2d(images, 3, stride=1, padding=1))


def noise(images: torch.Tensor, std: float) -> torch.Tensor:
    """Gaussian pixel noise of standard deviation `std`, clipped to [0, 1]; the same noise at every call."""
    g = torch.Generator().manual_seed(0)
    return (images + std * torch.randn(images.shape, generator=g).to(images)).clamp(0, 1)


SHIFTS = {"shear": shear, "scale": scale, "stroke": stroke, "noise": noise}
SHIFT_STRENGTHS = {"shear": (0.0, 0.25, 0.5, 0.75, 1.0), "scale": (0.0, 0.2, 0.35, 0.5, 0.6),
                   "stroke": (0.0, 0.25, 0.5, 0.75, 1.0), "noise": (0.0, 0.1, 0.2, 0.3, 0.4)}


def shifted(images: torch.Tensor, name: str, strength: float) -> torch.Tensor:
    """`images` of any leading shape, (..., 1, H, W), under shift `name` at `strength`."""
    if name not in SHIFTS:
        raise ValueError(f"unknown shift {name!r}; choose one of {sorted(SHIFTS)}")
    flat = images.reshape(-1, *images.shape[-3:])  # (B, 1, H, W)
    return SHIFTS[name](flat, strength).reshape(images.shape)
