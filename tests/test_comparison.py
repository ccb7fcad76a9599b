"""Chapter 8's helpers: every compared learner has a committed run; images a step; the untrained learner."""

import dataclasses

import pytest
import torch

from mlcourse import comparison, configs, runs
from mlcourse.data import EpisodeSampler


def test_every_compared_learner_stands_for_a_registered_run_of_its_family():
    registry = runs.registry(full=False)
    assert {learner.family for learner in comparison.LEARNERS} == set(comparison.FAMILIES)
    for learner in comparison.LEARNERS:
        assert learner.run in registry, learner
        assert (runs.RUNS_DIR / f"{learner.run}.pt").is_file(), learner


def test_images_a_step_count_pairs_episodes_and_a_range_of_k_at_its_mean():
    reference = configs.reference_runs()
    siamese = reference["siamese-reference"]
    assert comparison.images_per_step(siamese) == 2 * siamese.train.meta_batch_size
    protonet = configs.preset("protonet")
    n, k, q, b = protonet.n_way, protonet.k_shot, protonet.n_query, protonet.train.meta_batch_size
    assert comparison.images_per_step(protonet) == b * n * (k + q)
    varying = dataclasses.replace(protonet, k_shot=1, max_k_shot=5)
    assert comparison.images_per_step(varying) == b * n * (3 + q)


@pytest.mark.parametrize("method", ["lstm", "protonet"])
def test_an_untrained_learner_scores_every_episode_the_same_way_twice(method):
    images = torch.rand(12, 20, 1, 28, 28)
    episodes = EpisodeSampler(images, n_way=5, k_shot=1, n_query=3, seed=0).sample(4)
    config = configs.preset(method)
    first = comparison.initial_scores(config, episodes, seed=1)
    assert first.shape == (4,) and ((0 <= first) & (first <= 1)).all()
    assert torch.equal(first, comparison.initial_scores(config, episodes, seed=1))
