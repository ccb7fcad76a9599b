"""Pixel nearest neighbour: exact on copies, invariant to support order and relabelling."""

import torch

from mlcourse.data import Episode
from mlcourse.methods import PixelNearestNeighbour
from tests.methods.conftest import check_invariances


def test_invariances(episode):
    for distance in ("l2", "cosine"):
        check_invariances(PixelNearestNeighbour(distance), episode)


def test_a_copy_of_a_support_image_is_classified_as_its_class(episode):
    copies = Episode(episode.support_x, episode.support_y, episode.support_x + 0.01, episode.support_y,
                     episode.n_way, episode.k_shot, episode.k_shot)
    logits = PixelNearestNeighbour().predict(copies)
    assert torch.equal(logits.argmax(-1), episode.support_y)
