"""Interactive explorers for the chapters: a few controls and one figure, redrawn in place.

Each explorer draws into one matplotlib `Figure` (never registered with pyplot, so nothing
leaks) and shows it as PNG bytes in an `ipywidgets.Image`, whose value is replaced on every
change: no new figure and no flicker per change, and no extra backend to install. `figure()`
gives the current state as a static image, for the rendered book, which cannot run a kernel.
"""

import io

import ipywidgets as widgets
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from mlcourse.data import EpisodeSampler, load_omniglot
from mlcourse.data.omniglot import N_DRAWERS
from mlcourse.data.sinusoid import SinusoidTasks, sinusoid
from mlcourse.methods.maml import adapt
from mlcourse.methods.nearest import PixelNearestNeighbour
from mlcourse.methods.protonet import embed_episode, prototypes

TILE, GAP = 30, 12  # pixels per drawing in the mosaic (28 + a 1-pixel frame), gap between support and query
RIGHT, WRONG = torch.tensor([0.1, 0.6, 0.2]), torch.tensor([0.85, 0.1, 0.1])


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def mosaic(episode, correct: torch.Tensor | None = None) -> torch.Tensor:
    """One RGB image of an episode: a row per class, support drawings, a gap, then queries.

    Ink is black on white; with `correct` (one bool per query) each query gets a green or red frame.
    -> (n_way * TILE, (k_shot + n_query) * TILE + GAP, 3)
    """
    n, k, q = episode.n_way, episode.k_shot, episode.n_query
    out = torch.ones(n * TILE, (k + q) * TILE + GAP, 3)
    for c in range(n):  # each class's drawings found through the labels, not by position
        row = torch.cat([episode.support_x[episode.support_y == c], episode.query_x[episode.query_y == c]])
        right = correct[episode.query_y == c] if correct is not None else None  # (n_query,)
        for j, x in enumerate(row[:, 0].cpu()):  # (28, 28) each
            top, left = c * TILE, j * TILE + (GAP if j >= k else 0)
            if right is not None and j >= k:
                out[top:top + TILE, left:left + TILE] = RIGHT if right[j - k] else WRONG
            out[top + 1:top + 29, left + 1:left + 29] = (1 - x)[..., None]
    return out


class EpisodeExplorer:
    """Chapter 1: draw episodes of any shape and see how the pixel nearest neighbour does on them."""

    def __init__(self, seed: int = 0):
        self.parts = {}  # split -> ClassImages of its test classes, loaded on first use
        self.seed = seed
        # a class has N_DRAWERS (20) drawings: each slider's range keeps k_shot + n_query within them
        self.split = widgets.Dropdown(options=["vinyals", "lake"], value="vinyals", description="split")
        self.n_way = widgets.IntSlider(5, min=2, max=20, description="n_way")
        self.k_shot = widgets.IntSlider(1, min=1, max=N_DRAWERS - 3, description="k_shot")
        self.n_query = widgets.IntSlider(3, min=1, max=N_DRAWERS - 1, description="n_query")
        self.resample = widgets.Button(description="resample")
        self.image = widgets.Image(format="png")
        self.info = widgets.HTML()
        self.fig = Figure(figsize=(7, 4.5))
        self.k_shot.observe(lambda change: setattr(self.n_query, "max", N_DRAWERS - change["new"]), names="value")
        self.n_query.observe(lambda change: setattr(self.k_shot, "max", N_DRAWERS - change["new"]), names="value")
        for control in (self.split, self.n_way, self.k_shot, self.n_query):
            control.observe(lambda change: self.update(), names="value")
        self.resample.on_click(lambda button: self.update(new_episode=True))
        self.update()

    def update(self, new_episode: bool = False) -> None:
        """Draw a new episode of the chosen shape (the same draw again unless resampled) and redraw."""
        self.seed += int(new_episode)
        if self.split.value not in self.parts:
            self.parts[self.split.value] = load_omniglot(self.split.value, "test")
        part = self.parts[self.split.value]
        sampler = EpisodeSampler(part.images, self.n_way.value, self.k_shot.value, self.n_query.value, seed=self.seed)
        self.episode = sampler.sample()
        predicted = PixelNearestNeighbour("cosine").predict(self.episode).argmax(-1)  # (n_way * n_query,)
        self.correct = predicted == self.episode.query_y
        self.mosaic = mosaic(self.episode, self.correct)
        self._draw()
        names = [part.classes[c] for c in self.episode.classes.tolist()]
        self.info.value = "<br>".join(f"<b>y={y}</b>: {name.replace('_', ' ')}" for y, name in enumerate(names))

    def _draw(self) -> None:
        self.fig.clear()
        ax = self.fig.add_subplot()
        ax.imshow(self.mosaic.numpy(), interpolation="nearest")
        k = self.episode.k_shot
        ax.set_xticks([k * TILE / 2, k * TILE + GAP + self.episode.n_query * TILE / 2], ["support", "query"])
        ax.set_yticks([c * TILE + TILE / 2 for c in range(self.episode.n_way)],
                      [f"y={c}" for c in range(self.episode.n_way)])
        ax.tick_params(length=0, labelsize=8)
        ax.set_title(f"pixel nearest neighbour (cosine): {self.correct.sum()}/{self.correct.numel()} queries right "
                     "(green frame) ", fontsize=9)
        self.fig.tight_layout()
        self.image.value = _png(self.fig)

    def widget(self) -> widgets.Widget:
        controls = widgets.VBox([self.split, self.n_way, self.k_shot, self.n_query, self.resample, self.info])
        return widgets.HBox([controls, self.image])

    def figure(self) -> Figure:
        return self.fig


class PrototypeExplorer:
    """Chapter 4: one episode's embeddings, prototypes and decision regions, in a 2-D projection."""

    def __init__(self, method, images: torch.Tensor, n_way: int = 5, n_query: int = 10, seed: int = 0):
        self.method, self.images, self.seed = method.eval(), images, seed
        self.n_way, self.n_query = n_way, n_query
        self.k_shot = widgets.IntSlider(1, min=1, max=N_DRAWERS - n_query, description="k_shot")
        self.distance = widgets.ToggleButtons(options=["squared Euclidean", "cosine"], description="distance")
        self.resample = widgets.Button(description="resample")
        self.image = widgets.Image(format="png")
        self.fig = Figure(figsize=(5.5, 4.5))
        self.k_shot.observe(lambda change: self.update(), names="value")
        self.distance.observe(lambda change: self.update(), names="value")
        self.resample.on_click(lambda button: self.update(new_episode=True))
        self.update()

    def update(self, new_episode: bool = False) -> None:
        """Embed the episode (same classes and drawings until resampled), classify, project, redraw."""
        self.seed += int(new_episode)
        device = next(self.method.parameters()).device
        sampler = EpisodeSampler(self.images, self.n_way, self.k_shot.value, self.n_query, seed=self.seed)
        self.episode = sampler.sample().to(device)
        with torch.no_grad():
            support, query = embed_episode(self.method.embed, self.episode)  # (S, d), (Q, d)
        protos = prototypes(support, self.episode.support_y, self.n_way)  # (n_way, d)
        if self.distance.value == "cosine":  # on unit vectors, the nearest prototype is the most cosine-similar
            support, query, protos = (F.normalize(z, dim=-1) for z in (support, query, protos))
        self.predicted = torch.cdist(query, protos).argmin(-1)  # nearest prototype, in the full space  # (Q,)
        self._draw(support.cpu(), query.cpu(), protos.cpu())

    def _draw(self, support, query, protos) -> None:
        points = torch.cat([support, query, protos])  # (S + Q + n_way, d)
        centred = points - points.mean(0)
        _, _, v = torch.linalg.svd(centred, full_matrices=False)
        plane = centred @ v[:2].T  # (S + Q + n_way, 2)
        s2, q2, p2 = plane.split([len(support), len(query), len(protos)])
        self.fig.clear()
        ax = self.fig.add_subplot()
        lo, hi = plane.min(0).values - 1e-3, plane.max(0).values + 1e-3
        pad = 0.1 * (hi - lo)
        gx, gy = torch.meshgrid(torch.linspace(lo[0] - pad[0], hi[0] + pad[0], 150),
                                torch.linspace(lo[1] - pad[1], hi[1] + pad[1], 150), indexing="xy")
        region = torch.cdist(torch.stack([gx, gy], -1).reshape(-1, 2), p2).argmin(-1).reshape(gx.shape)
        ax.contourf(gx, gy, region, levels=torch.arange(self.n_way + 1) - 0.5, colors=[f"C{c}" for c in range(self.n_way)],
                    alpha=0.12)
        truth = self.episode.query_y.cpu()
        right = self.predicted.cpu() == truth
        for c in range(self.n_way):
            ax.scatter(*s2[self.episode.support_y.cpu() == c].T, marker="s", s=30, color=f"C{c}", edgecolor="black")
            mine = truth == c
            ax.scatter(*q2[mine & right].T, s=12, color=f"C{c}", alpha=0.7)
            ax.scatter(*q2[mine & ~right].T, s=40, color=f"C{c}", marker="x")
            ax.scatter(*p2[c], marker="*", s=300, color=f"C{c}", edgecolor="black")
        ax.set_title(f"{self.n_way}-way {self.k_shot.value}-shot, {self.distance.value}: "
                     f"{right.sum()}/{right.numel()} queries right (x: wrong)", fontsize=9)
        ax.set(xlabel="PC 1", ylabel="PC 2", xticks=[], yticks=[])
        self.fig.tight_layout()
        self.image.value = _png(self.fig)

    def widget(self) -> widgets.Widget:
        return widgets.HBox([widgets.VBox([self.k_shot, self.distance, self.resample]), self.image])

    def figure(self) -> Figure:
        return self.fig


class SinusoidExplorer:
    """Chapter 6: one sinusoid task, each learner's fit after the chosen inner steps and step size.

    `learners` maps a title to a regression `GradientLearner` (MAML, the pretrained network); each
    adapts from its own theta with the sliders' step size, which may differ from the one it was trained with.
    """

    GRID = torch.linspace(-5, 5, 200).unsqueeze(1)  # (200, 1): where the fits and the error are read

    def __init__(self, learners: dict, seed: int = 0):
        self.learners, self.seed = learners, seed
        self.k_shot = widgets.IntSlider(5, min=1, max=20, description="K points")
        self.steps = widgets.IntSlider(1, min=0, max=20, description="inner steps")
        self.inner_lr = widgets.FloatLogSlider(0.01, base=10, min=-3, max=-0.5, step=0.25, readout_format=".3f",
                                               description="step size")
        self.resample = widgets.Button(description="new task")
        self.image = widgets.Image(format="png")
        self.fig = Figure(figsize=(4.2 * len(learners), 3.3))
        for control in (self.k_shot, self.steps, self.inner_lr):
            control.observe(lambda change: self.update(), names="value")
        self.resample.on_click(lambda button: self.update(new_task=True))
        self.update()

    def fit(self, learner, task) -> torch.Tensor:
        """The learner's prediction on GRID after the chosen steps on the task's support points: (200, 1)."""
        phi = adapt(learner.model, learner.theta(), task.support_x, task.support_y, learner.loss_fn,
                    self.inner_lr.value, self.steps.value, first_order=True)
        with torch.no_grad():
            return learner.forward_with(phi, self.GRID)

    def update(self, new_task: bool = False) -> None:
        """Draw the task (the same one until resampled), adapt each learner, redraw."""
        self.seed += int(new_task)
        self.task = SinusoidTasks(k_shot=self.k_shot.value, n_query=1, seed=self.seed).sample()
        truth = sinusoid(self.GRID, self.task.params)  # (200, 1)
        self.fits = {title: self.fit(learner, self.task) for title, learner in self.learners.items()}
        self.errors = {title: (fit - truth).pow(2).mean().item() for title, fit in self.fits.items()}
        self.fig.clear()
        axes = self.fig.subplots(1, len(self.learners), sharey=True, squeeze=False)[0]
        for ax, (title, fit) in zip(axes, self.fits.items()):
            ax.plot(self.GRID, truth, color="black", lw=2, label="true function")
            ax.plot(self.GRID, fit, color="C0", lw=1.5, label="adapted fit")
            ax.scatter(self.task.support_x, self.task.support_y, color="black", marker="^", zorder=3, label="support")
            ax.set(xlabel="x", ylim=(-6, 6))
            ax.set_title(f"{title}: MSE {self.errors[title]:.3f}", fontsize=9)
        axes[0].legend(fontsize=7, loc="lower right")
        steps = self.steps.value
        self.fig.suptitle(f"K = {self.k_shot.value}, {steps} step{'' if steps == 1 else 's'} of {self.inner_lr.value:.3g}",
                          fontsize=9)
        self.fig.tight_layout()
        self.image.value = _png(self.fig)

    def widget(self) -> widgets.Widget:
        controls = widgets.VBox([self.k_shot, self.steps, self.inner_lr, self.resample])
        return widgets.VBox([controls, self.image])

    def figure(self) -> Figure:
        return self.fig


class CurveExplorer:
    """Chapter 8: the accuracy curves of the learners one chooses, for one experiment at a time.

    `experiments` maps an experiment's name to (x label, x values, {learner: [(mean, ci) for each x]}).
    A learner keeps its colour across experiments; one drawn in an experiment but not another is left out there.
    """

    def __init__(self, experiments: dict[str, tuple[str, list, dict[str, list[tuple[float, float]]]]]):
        self.experiments = experiments
        names = list(dict.fromkeys(name for _, _, curves in experiments.values() for name in curves))
        self.colours = {name: f"C{i % 10}" for i, name in enumerate(names)}
        self.experiment = widgets.Dropdown(options=list(experiments), description="experiment")
        self.learners = widgets.SelectMultiple(options=names, value=tuple(names), rows=min(len(names), 10),
                                               description="learners")
        self.image = widgets.Image(format="png")
        self.fig = Figure(figsize=(6.5, 3.8))
        self.experiment.observe(lambda change: self.update(), names="value")
        self.learners.observe(lambda change: self.update(), names="value")
        self.update()

    def update(self) -> None:
        x_label, xs, curves = self.experiments[self.experiment.value]
        self.drawn = [name for name in self.learners.value if name in curves]
        self.fig.clear()
        ax = self.fig.add_subplot()
        for name in self.drawn:
            means, cis = zip(*curves[name])
            ax.errorbar(xs, means, yerr=cis, marker="o", markersize=3, color=self.colours[name], label=name)
        if self.drawn:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "choose a learner (ctrl-click for several)", ha="center", transform=ax.transAxes)
        ax.set(xlabel=x_label, ylabel="5-way test accuracy", title=self.experiment.value)
        self.fig.tight_layout()
        self.image.value = _png(self.fig)

    def widget(self) -> widgets.Widget:
        return widgets.HBox([widgets.VBox([self.experiment, self.learners]), self.image])

    def figure(self) -> Figure:
        return self.fig
