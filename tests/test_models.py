"""Backbones: shapes and parameter counts of the published architectures."""

import torch

from mlcourse.models import conv4, mlp


def test_conv4_embeds_to_64():
    net = conv4()
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 64)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4 and all(c.out_channels == 64 and c.kernel_size == (3, 3) for c in convs)


def test_sinusoid_mlp_is_1_40_40_1():
    net = mlp()
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(1, 40), (40, 40), (40, 1)]
    assert net(torch.rand(5, 1)).shape == (5, 1)
