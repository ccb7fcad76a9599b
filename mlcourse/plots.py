"""Figures used by the chapters: image grids, episodes, training curves, adaptation curves."""

import matplotlib.pyplot as plt
import torch

from mlcourse.data.episodes import Episode
from mlcourse.utils import mean_ci


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


def plot_adaptation_curves(curves: dict, ylabel: str = "MSE", ax=None):
    """Mean score (with its 95% interval) against the number of inner steps, one line a model.

    `curves` maps a label to a (tasks, steps + 1) tensor of per-task scores.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    for label, scores in curves.items():
        steps = torch.arange(scores.shape[1])
        mean, half = torch.tensor([mean_ci(scores[:, s]) for s in steps]).T  # (2, steps + 1)
        ax.plot(steps, mean, marker="o", markersize=3, label=label)
        ax.fill_between(steps, mean - half, mean + half, alpha=0.2)
    ax.set(xlabel="gradient steps at test time", ylabel=ylabel)
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return ax.figure


def plot_sinusoid_fits(models: dict, episode: Episode, true_fn, steps=(0, 1, 10)):
    """Finn et al.'s Figure 2: each model's prediction after 0, 1 and 10 steps on one task's K points.

    `models` maps a title to a `GradientLearner` (regression); `true_fn(x)` is the task's sinusoid.
    """
    x = torch.linspace(-5, 5, 200).unsqueeze(1)  # (200, 1)
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.2), squeeze=False)
    for ax, (title, model) in zip(axes[0], models.items()):
        ax.plot(x, true_fn(x), color="black", lw=2, label="true function")
        for s in steps:
            phi = model.adapt(episode.support_x, episode.support_y, steps=s, first_order=True)
            with torch.no_grad():
                ax.plot(x, model.forward_with(phi, x), lw=1.5, ls="--" if s == 0 else "-",
                        label=f"after {s} step{'s' if s != 1 else ''}")
        ax.scatter(episode.support_x, episode.support_y, color="black", marker="^", zorder=3,
                   label=f"the K = {episode.k_shot} support points")
        ax.set(title=title, xlabel="x", ylim=(-6, 6))
    axes[0, 0].set_ylabel("y")
    axes[0, -1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def plot_meta_step_cost(results: list[dict]):
    """Time and memory of a meta-step against the number of inner steps (rows of benchmarks/maml_cost.py)."""
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    lines = (("maml", 0, "MAML (second order)"), ("fomaml", 0, "first-order MAML"),
             ("reptile", 0, "Reptile, 30 images a step"), ("reptile", 5, "Reptile, 5 images a step"))
    for method, inner_batch, label in lines:
        rows = sorted((r for r in results if r["method"] == method and r["impl"] == "mlcourse"
                       and r.get("inner_batch", 0) == inner_batch), key=lambda r: r["inner_steps"])
        if not rows:
            continue
        steps = [r["inner_steps"] for r in rows]
        for ax, key in zip(axes, ("ms", "saved_mb", "peak_mb")):
            ax.plot(steps, [r[key] for r in rows], marker="o", label=label)
    for ax, title in zip(axes, ("time per meta-step (ms)", "saved for backward (MB)", "peak memory (MB)")):
        ax.set(xlabel="inner steps", xticks=[1, 2, 5, 10])
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_curves(curves: dict, xlabel: str, ylabel: str, ax=None, hline: tuple[float, str] | None = None):
    """One line per name, from {name: (x, y)} or {name: (x, y, yerr)}; `hline` = (value, label) marks a level."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.4))
    for name, (x, y, *err) in curves.items():
        if err:
            ax.errorbar(x, y, yerr=err[0], marker="o", markersize=3, label=name)
        else:
            ax.plot(x, y, label=name)
    if hline:
        ax.axhline(hline[0], color="grey", linestyle=":", label=hline[1])
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.legend(fontsize=8)
    return ax
