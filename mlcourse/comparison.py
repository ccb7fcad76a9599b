"""Chapter 8: the course's learners side by side, each at its best (its reference run where it has one)."""

from dataclasses import dataclass

import torch

from mlcourse import configs, runs
from mlcourse.configs import RunConfig
from mlcourse.utils import seed_everything


@dataclass(frozen=True)
class Learner:
    name: str  # as the chapter shows it
    family: str  # "non-parametric", "black box" or "optimization-based"
    run: str  # the committed run that stands for it


LEARNERS = (
    Learner("Siamese", "non-parametric", "siamese-reference"),
    Learner("matching", "non-parametric", "matching"),
    Learner("prototypical", "non-parametric", "protonet"),
    Learner("LSTM", "black box", "lstm-reference"),
    Learner("SNAIL-style", "black box", "snail-reference"),
    Learner("MAML", "optimization-based", "maml"),
    Learner("first-order MAML", "optimization-based", "fomaml"),
    Learner("Reptile", "optimization-based", "reptile-reference"),
)
FAMILIES = ("non-parametric", "black box", "optimization-based")


def replay_all(learners=LEARNERS, device=None) -> dict[str, runs.Run]:
    """Each learner's committed run, by the learner's name (the runs the book shows, in either mode)."""
    registry = runs.registry(full=False)
    return {learner.name: runs.replay(learner.run, registry[learner.run], device=device, full=False)
            for learner in learners}


def images_per_step(config: RunConfig) -> float:
    """Training images one meta-training step reads (a K drawn from a range counts at its mean)."""
    if config.method == "siamese":
        return 2 * config.train.meta_batch_size  # pairs
    k_shot = (config.k_shot + max(config.k_shot, config.max_k_shot)) / 2
    return config.train.meta_batch_size * config.n_way * (k_shot + config.n_query)


def initial_scores(config: RunConfig, episodes, seed: int = 0) -> torch.Tensor:
    """Each episode's accuracy from a learner of `config` before meta-training (its initialization, seeded), (B,).

    A gradient learner still takes its test-time steps from the random initialization; a black box reads the
    support set with random weights.
    """
    seed_everything(seed)
    method = configs.make_method(config).to(episodes.support_x.device).eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return method.score(episodes)
