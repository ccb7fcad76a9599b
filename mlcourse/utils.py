"""Small helpers shared by every chapter: seeding, device, modes, confidence intervals."""

import ctypes
import ctypes.util
import functools
import math
import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so that a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def get_device(prefer: str | None = None) -> torch.device:
    """The device to compute on: `prefer`, else $MLCOURSE_DEVICE, else CUDA when present, else CPU."""
    name = prefer or os.environ.get("MLCOURSE_DEVICE")
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def truthy_env(name: str) -> bool:
    """True when the environment variable `name` is set to 1, true, yes or on."""
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def full_mode() -> bool:
    """True when $MLCOURSE_FULL asks for the published (GPU-sized) settings instead of quick mode."""
    return truthy_env("MLCOURSE_FULL")


def quiet() -> bool:
    """True when progress bars should stay silent ($MLCOURSE_QUIET=1, set by the test suite)."""
    return truthy_env("MLCOURSE_QUIET")


def mean_ci(values) -> tuple[float, float]:
    """Mean and half-width of the 95% confidence interval (1.96 standard errors) of `values`."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("mean_ci needs at least one value")
    half = 1.96 * x.std(ddof=1) / math.sqrt(x.size) if x.size > 1 else float("nan")
    return float(x.mean()), float(half)


def compare(a: tuple[float, float], b: tuple[float, float], names: tuple[str, str] = ("A", "B")) -> str:
    """The book's rule for two (mean, 95% CI) results: they differ only when their intervals do not overlap."""
    (ma, ca), (mb, cb) = a, b
    shown = f"{names[0]} {100 * ma:.1f} ± {100 * ca:.1f} %, {names[1]} {100 * mb:.1f} ± {100 * cb:.1f} %"
    if abs(ma - mb) <= ca + cb:
        return f"{shown}: the intervals overlap, so these test episodes do not tell the two apart"
    higher = names[0] if ma > mb else names[1]
    return f"{shown}: the intervals do not overlap, {higher} is higher"


@functools.cache
def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory instead of returning it to the OS (Linux only).

    By default every large CPU tensor freed by a training step goes back to the OS, and the next
    step gets fresh pages that the kernel must zero: on the course's 2-core machine that made a
    conv4 step six times slower (benchmarks/allocator.py). Returns whether the setting took effect.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
        return bool(libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, Windows, musl): nothing to do
        return False
