"""Figures used by the chapters: image grids, episodes, training curves."""

import matplotlib.pyplot as plt
import torch

from mlcourse.data.episodes import Episode


def show_images(images: torch.Tensor, titles=None, ncols: int = 10, size: float = 1.0):
    """A grid of (N, 1, 28, 28) images (ink = 1 is drawn black on white)."""
    n = images.shape[0]
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * (1.25 if titles else 1)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i, 0].cpu(), cmap="gray_r", vmin=0, vmax=1)
            if titles:
                ax.set_title(titles[i], fontsize=6)
    fig.tight_layout()
    return fig


def show_episode(episode: Episode, max_query: int = 5):
    """Support set (one row a class) beside a few queries of each class."""
    n, k, q = episode.n_way, episode.k_shot, min(episode.n_query, max_query)
    support = episode.support_x.view(n, k, 1, 28, 28)  # (n_way, k_shot, 1, 28, 28)
    query = episode.query_x.view(n, episode.n_query, 1, 28, 28)[:, :q]  # (n_way, q, 1, 28, 28)
    fig, axes = plt.subplots(n, k + q + 1, figsize=((k + q + 1) * 0.8, n * 0.8), squeeze=False)
    for c in range(n):
        row = [support[c, i] for i in range(k)] + [None] + [query[c, i] for i in range(q)]
        for ax, img in zip(axes[c], row):
            ax.axis("off")
            if img is not None:
                ax.imshow(img[0].cpu(), cmap="gray_r", vmin=0, vmax=1)
        axes[c, 0].text(-8, 14, f"y={c}", ha="right", va="center", fontsize=8)
    axes[0, 0].set_title("support", fontsize=8, loc="left")
    axes[0, k + 1].set_title("query", fontsize=8, loc="left")
    fig.tight_layout()
    return fig


def smooth(values, window: int = 50) -> list[float]:
    """Running mean over the last `window` values."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_history(history, metric: str = "accuracy", window: int = 50):
    """Training loss (smoothed) and training/validation metric against the step."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.2))
    ax1.plot(history.step, history.loss, alpha=0.25, color="C0")
    ax1.plot(history.step, smooth(history.loss, window), color="C0")
    ax1.set(xlabel="step", ylabel="training loss", yscale="log")
    ax2.plot(history.step, smooth(history.metric, window), label=f"training {metric} (smoothed)")
    if history.val_step:
        ax2.errorbar(history.val_step, history.val_metric, yerr=history.val_ci, marker="o",
                     label=f"validation {metric}")
    ax2.set(xlabel="step", ylabel=metric)
    ax2.legend()
    fig.tight_layout()
    return fig
