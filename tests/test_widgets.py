"""The chapters' explorers, driven headless: controls change the figure as they should, nothing leaks."""

import matplotlib.pyplot as plt
import pytest
import torch

from mlcourse.data.sinusoid import sinusoid
from mlcourse.methods.maml import MAML
from mlcourse.methods.protonet import ProtoNet
from mlcourse.models import conv4
from mlcourse.widgets import GAP, TILE, CurveExplorer, EpisodeExplorer, PrototypeExplorer, SinusoidExplorer


def tiles(explorer) -> tuple[int, int]:
    """(rows, drawings per row) of the mosaic the episode explorer drew."""
    height, width, _ = explorer.mosaic.shape
    return height // TILE, (width - GAP) // TILE


def test_the_episode_explorer_draws_the_chosen_shape():
    explorer = EpisodeExplorer()
    assert tiles(explorer) == (5, 1 + 3) and bytes(explorer.image.value).startswith(b"\x89PNG")
    explorer.n_way.value, explorer.k_shot.value = 7, 2
    assert tiles(explorer) == (7, 2 + 3)
    assert explorer.episode.support_x.shape[0] == 7 * 2  # n_way * k_shot support images drawn
    assert explorer.info.value.count("y=") == 7  # one class name per row
    assert explorer.correct.numel() == 7 * 3


def test_the_episode_explorer_resamples_and_switches_split():
    explorer = EpisodeExplorer()
    before = explorer.episode.classes.clone()
    explorer.resample.click()
    assert not torch.equal(before, explorer.episode.classes)
    names = explorer.info.value
    explorer.split.value = "lake"
    lake_classes = explorer.parts["lake"].classes
    assert explorer.info.value != names
    assert all(lake_classes[c].replace("_", " ") in explorer.info.value for c in explorer.episode.classes.tolist())


def test_the_sliders_never_allow_more_than_20_drawings_per_class():
    explorer = EpisodeExplorer()
    explorer.k_shot.value = 15
    assert explorer.n_query.max == 5 and explorer.n_query.value <= 5
    explorer.n_query.value = 99  # a slider clamps to its range
    assert explorer.k_shot.value + explorer.n_query.value == 20
    assert explorer.k_shot.max == 15


@pytest.fixture(scope="module")
def tiny_protonet():
    torch.manual_seed(0)
    return ProtoNet(conv4(hidden=16))


def test_the_prototype_explorer_follows_k_shot_and_distance(vinyals_train, tiny_protonet):
    explorer = PrototypeExplorer(tiny_protonet, vinyals_train.images[:50])
    assert explorer.episode.support_x.shape[0] == 5 and explorer.predicted.shape == (5 * 10,)
    explorer.k_shot.value = 4
    assert explorer.episode.support_x.shape[0] == 5 * 4
    png = explorer.image.value
    explorer.distance.value = "cosine"
    assert explorer.image.value != png and "cosine" in explorer.fig.axes[0].get_title()
    explorer.resample.click()
    assert explorer.seed == 1


def test_explorers_redraw_one_figure_and_leak_none(vinyals_train, tiny_protonet):
    open_before = len(plt.get_fignums())
    explorer = EpisodeExplorer()
    prototypes = PrototypeExplorer(tiny_protonet, vinyals_train.images[:50])
    figures = {id(explorer.figure()), id(prototypes.figure())}
    for n in range(2, 8):
        explorer.n_way.value = n
        prototypes.k_shot.value = n
    assert {id(explorer.figure()), id(prototypes.figure())} == figures  # the same figures, redrawn
    assert len(plt.get_fignums()) == open_before  # pyplot never saw them


def curve_experiments():
    return {"varying K": ("K", [1, 5], {"a": [(0.9, 0.01), (0.95, 0.01)], "b": [(0.5, 0.02), (0.4, 0.02)]}),
            "noise": ("strength", [0.0, 0.2, 0.4], {"a": [(0.9, 0.01), (0.7, 0.02), (0.5, 0.02)],
                                                    "c": [(0.8, 0.01), (0.6, 0.02), (0.3, 0.02)]})}


def curves_drawn(explorer) -> dict:
    """The data line of each learner's curve, by its label."""
    return {container.get_label(): container.lines[0] for container in explorer.fig.axes[0].containers}


def test_the_curve_explorer_draws_the_chosen_learners_of_the_chosen_experiment():
    explorer = CurveExplorer(curve_experiments())
    ax = explorer.fig.axes[0]
    assert explorer.drawn == ["a", "b"] and ax.get_xlabel() == "K" and bytes(explorer.image.value).startswith(b"\x89PNG")
    assert curves_drawn(explorer)["b"].get_ydata().tolist() == [0.5, 0.4]
    explorer.experiment.value = "noise"  # every learner chosen; "b" is not in this experiment
    ax = explorer.fig.axes[0]
    curves = curves_drawn(explorer)
    assert explorer.drawn == ["a", "c"] and sorted(curves) == ["a", "c"]
    assert ax.get_xlabel() == "strength" and ax.get_title() == "noise"
    assert curves["c"].get_xdata().tolist() == [0.0, 0.2, 0.4] and curves["a"].get_color() != curves["c"].get_color()
    explorer.learners.value = ("c",)
    assert explorer.drawn == ["c"] and sorted(curves_drawn(explorer)) == ["c"]


def test_the_curve_explorer_says_what_to_do_when_nothing_is_chosen():
    explorer = CurveExplorer(curve_experiments())
    explorer.learners.value = ()
    assert explorer.drawn == [] and "choose a learner" in explorer.fig.axes[0].texts[0].get_text()
    assert not plt.get_fignums()  # nothing registered with pyplot


def regression_learners():
    torch.manual_seed(0)
    return {"MAML": MAML(inner_lr=0.05, task="regression", hidden=8), "pretrained": MAML(task="regression", hidden=8)}


def test_the_sinusoid_explorer_fits_as_the_learner_adapts():
    learners = regression_learners()
    explorer = SinusoidExplorer(learners)
    task, grid = explorer.task, SinusoidExplorer.GRID
    assert task.support_x.shape == (5, 1) and bytes(explorer.image.value).startswith(b"\x89PNG")
    explorer.inner_lr.value, explorer.steps.value = 0.05, 3  # the MAML learner's own step size
    own = learners["MAML"].adapt(task.support_x, task.support_y, steps=3, first_order=True)
    with torch.no_grad():
        expected = learners["MAML"].forward_with(own, grid)  # (200, 1)
    assert torch.allclose(explorer.fits["MAML"], expected, atol=1e-6)
    truth = sinusoid(grid, task.params)
    assert explorer.errors["MAML"] == pytest.approx((expected - truth).pow(2).mean().item(), rel=1e-5)
    assert "MSE" in explorer.fig.axes[0].get_title()


def test_the_sinusoid_explorer_follows_its_controls():
    explorer = SinusoidExplorer(regression_learners())
    explorer.steps.value = 0  # theta's own prediction: the step size changes nothing
    at_theta = explorer.fits["MAML"].clone()
    explorer.inner_lr.value = 0.1
    assert torch.equal(explorer.fits["MAML"], at_theta)
    explorer.steps.value = 5
    assert not torch.allclose(explorer.fits["MAML"], at_theta)
    explorer.k_shot.value = 12
    assert explorer.task.support_x.shape == (12, 1)
    params = explorer.task.params.clone()
    explorer.resample.click()
    assert explorer.seed == 1 and not torch.equal(explorer.task.params, params)
    assert len(explorer.fig.axes) == 2 and not plt.get_fignums()  # one panel per learner, nothing left in pyplot
