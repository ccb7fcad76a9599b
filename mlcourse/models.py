"""Backbones: the conv4 embedding of Vinyals et al. / Snell et al., and the sinusoid MLP of MAML."""

import torch
from torch import nn


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """conv 3x3 -> batch norm -> ReLU -> max-pool 2: halves the height and width."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


def conv4(in_channels: int = 1, hidden: int = 64) -> nn.Sequential:
    """Four conv blocks then flatten: (B, 1, 28, 28) -> (B, hidden), since 28 -> 14 -> 7 -> 3 -> 1."""
    return nn.Sequential(
        conv_block(in_channels, hidden),
        conv_block(hidden, hidden),
        conv_block(hidden, hidden),
        conv_block(hidden, hidden),
        nn.Flatten(),
    )


def mlp(sizes=(1, 40, 40, 1)) -> nn.Sequential:
    """Fully connected ReLU network; the default 1-40-40-1 is MAML's sinusoid regressor."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def embed_images(embed: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Embed images with any leading batch dimensions: (..., 1, 28, 28) -> (..., d).

    Embeddings, ([B,] n, d), pass through unchanged: evaluation can embed each test image once.
    """
    if x.dim() <= 3:
        return x
    flat = x.reshape(-1, *x.shape[-3:]).contiguous(memory_format=torch.channels_last)  # faster convs on CPU
    return embed(flat).reshape(*x.shape[:-3], -1)
