"""Chapter 1's checks: each common mistake fails the check meant for it (what every set must do is in
test_sets.py)."""

import pytest
import torch
import torch.nn.functional as F

from mlcourse.grading.checks.ex01_tasks_and_episodes import reference_sample_episode
from tests.grading.checks.notebooks import GradedSet

SET = GradedSet("01_tasks_and_episodes")
REFERENCES, failing = SET.references, SET.failing


def _episode_from(images, n_way, k_shot, n_query, classes, drawings):
    x = images[classes[:, None], drawings]  # (n_way, k_shot + n_query, 1, 28, 28)
    labels = torch.arange(n_way)
    return (x[:, :k_shot].reshape(-1, 1, 28, 28), labels.repeat_interleave(k_shot),
            x[:, k_shot:].reshape(-1, 1, 28, 28), labels.repeat_interleave(n_query))


def global_rng(images, n_way, k_shot, n_query, generator):
    return reference_sample_episode(images, n_way, k_shot, n_query, torch.Generator().manual_seed(
        int(torch.randint(1000, (1,)))))


def first_ones(images, n_way, k_shot, n_query, generator):
    return _episode_from(images, n_way, k_shot, n_query, torch.arange(n_way),
                         torch.arange(k_shot + n_query).expand(n_way, -1))


def with_replacement(images, n_way, k_shot, n_query, generator):
    n_classes, n_per_class = images.shape[:2]
    classes = torch.randperm(n_classes, generator=generator)[:n_way]
    drawings = torch.randint(n_per_class, (n_way, k_shot + n_query), generator=generator)
    return _episode_from(images, n_way, k_shot, n_query, classes, drawings)


def interleaved(images, n_way, k_shot, n_query, generator):
    sx, sy, qx, qy = reference_sample_episode(images, n_way, k_shot, n_query, generator)
    return sx, sy.view(n_way, k_shot).T.reshape(-1), qx, qy


def float_labels(images, n_way, k_shot, n_query, generator):
    sx, sy, qx, qy = reference_sample_episode(images, n_way, k_shot, n_query, generator)
    return sx, sy.float(), qx, qy.float()


def cosine(support_x, support_y, query_x, n_way):
    sim = F.normalize(query_x.flatten(1), dim=1) @ F.normalize(support_x.flatten(1), dim=1).T
    return support_y[sim.argmax(1)]


def position(support_x, support_y, query_x, n_way):
    return torch.cdist(query_x.flatten(1), support_x.flatten(1)).argmin(1) // (len(support_x) // n_way)


def prototype(support_x, support_y, query_x, n_way):
    protos = torch.stack([support_x[support_y == c].mean(0) for c in range(n_way)]).flatten(1)
    return torch.cdist(query_x.flatten(1), protos).argmin(1)


def transductive(support_x, support_y, query_x, n_way):
    q, s = query_x / query_x.abs().max(), support_x / support_x.abs().max()  # the scale of the whole query set
    return support_y[torch.cdist(q.flatten(1), s.flatten(1)).argmin(1)]


@pytest.mark.parametrize("replaced,expected", [
    ({"sample_episode": global_rng}, {"reproducible from the generator alone",
                                      "draws classes and drawings at random over all of them"}),
    ({"sample_episode": first_ones}, {"reproducible from the generator alone",
                                      "draws classes and drawings at random over all of them"}),
    ({"sample_episode": with_replacement}, {"support and query images are distinct drawings",
                                            "edge cases: many ways, every class and drawing used, 1-shot"}),
    ({"sample_episode": interleaved}, {"reproducible from the generator alone", "returns (support_x, support_y, query_x, query_y) with the right shapes", "support and query images are distinct drawings", "labels are 0..n_way-1 (int64), class by class",
                                       "each label is one class of `images`, n_way distinct classes, queries match",
                                       "edge cases: many ways, every class and drawing used, 1-shot"}),
    ({"sample_episode": float_labels}, {"reproducible from the generator alone", "labels are 0..n_way-1 (int64), class by class",
                                        "edge cases: many ways, every class and drawing used, 1-shot"}),
    ({"nearest_neighbour_predict": position}, {"each query labelled on its own (order and number of queries do not matter)", "images of unequal scales (L2 distance on raw pixels, not cosine)", "k-shot, many ways and a single way", "support set in any order (labels come from support_y)"}),
    ({"episode_accuracy": lambda p, y: 100 * (p == y).float().mean()},
     {"a worked case: 3 of 4 correct is 0.75", "random cases, all correct, none correct, a single query"}),
])
def test_a_mistake_fails_exactly_its_checks(replaced, expected):
    assert failing(**replaced) == expected


@pytest.mark.parametrize("wrong", [cosine, prototype, transductive])
def test_other_distances_and_rules_are_caught(wrong):
    failed = failing(nearest_neighbour_predict=wrong)
    assert len(failed) >= 2
    # the format check's point comes only with the right labels on its own calls
    format_ok = "matches pixel-space 1-nearest-neighbour on 5-way 1-shot episodes" not in failed
    assert ("returns one int64 label in 0..n_way-1 per query" not in failed) == format_ok
    if wrong is transductive:
        assert "each query labelled on its own (order and number of queries do not matter)" in failed


def test_hidden_messages_reveal_no_numbers_of_the_inputs():
    for message in SET.hidden_messages({"sample_episode": first_ones, "nearest_neighbour_predict": position}):
        if "quer" not in message:  # 'k queries of n' counts are allowed
            assert not any(ch.isdigit() for ch in message.replace("n_way-1", "")), message
