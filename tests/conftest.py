"""Shared fixtures: the real Omniglot (from $MLCOURSE_DATA), loaded once per test session."""

import os

import pytest
import torch

os.environ.setdefault("MLCOURSE_QUIET", "1")  # progress bars stay quiet, in kernels started by nbval too


@pytest.fixture(scope="session")
def characters():
    """All 1623 characters, uint8 (1623, 20, 28, 28), and their names."""
    from mlcourse.data.omniglot import load_characters

    return load_characters(download=False)


@pytest.fixture(scope="session")
def vinyals_train():
    from mlcourse.data import load_omniglot

    return load_omniglot("vinyals", "train", download=False)


@pytest.fixture
def numbered_images():
    """Fake data whose every pixel holds its image's id: class c, drawing i -> c * 100 + i."""
    ids = torch.arange(30)[:, None] * 100 + torch.arange(20)[None, :]  # (30, 20)
    return ids[:, :, None, None, None].float().expand(30, 20, 1, 2, 2).contiguous()  # (30, 20, 1, 2, 2)
