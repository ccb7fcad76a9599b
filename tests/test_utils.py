"""Seeding, device choice, modes and the confidence interval."""

import math

import numpy as np
import pytest
import torch

from mlcourse.utils import compare, full_mode, get_device, mean_ci, seed_everything


def test_seed_everything_repeats_all_generators():
    seed_everything(5)
    a = (np.random.rand(), torch.rand(3))
    seed_everything(5)
    b = (np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and torch.equal(a[1], b[1])


def test_mean_ci_matches_the_formula():
    x = [0.8, 0.9, 1.0, 0.7, 0.6]
    mean, ci = mean_ci(x)
    std = math.sqrt(sum((v - 0.8) ** 2 for v in x) / 4)  # sample standard deviation
    assert mean == pytest.approx(0.8) and ci == pytest.approx(1.96 * std / math.sqrt(5))
    with pytest.raises(ValueError):
        mean_ci([])


def test_device_and_mode_from_environment(monkeypatch):
    monkeypatch.setenv("MLCOURSE_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")
    monkeypatch.setenv("MLCOURSE_FULL", "1")
    assert full_mode()
    monkeypatch.setenv("MLCOURSE_FULL", "0")
    assert not full_mode()


def test_compare_calls_a_difference_only_when_the_intervals_are_apart():
    apart = compare((0.95, 0.01), (0.90, 0.02), ("Euclidean", "cosine"))
    assert apart.endswith("the intervals do not overlap, Euclidean is higher")
    assert compare((0.90, 0.02), (0.95, 0.01), ("a", "b")).endswith("b is higher")
    touching = compare((0.95, 0.02), (0.92, 0.01))  # |0.03| <= 0.02 + 0.01: they touch, no claim
    assert "overlap" in touching and "higher" not in touching
    assert "95.0 ± 2.0 %" in touching
