"""Chapter 4's checks: each common mistake fails the check meant for it (what every set must do is in
test_sets.py)."""

import pytest
import torch
import torch.nn.functional as F

from mlcourse.grading.static import screen
from tests.grading.checks.notebooks import GradedSet

SET = GradedSet("04_prototypical_networks")
REFERENCES, failing = SET.references, SET.failing


def test_the_screen_flags_the_references():
    source = "from mlcourse.methods.protonet import prototypes"
    flagged = screen([{"cell_type": "code", "source": source}], SET.exercise)
    assert [f.function for f in flagged] == ["prototypes"]


def by_position(support, support_y, n_way):
    return support.view(n_way, -1, support.shape[1]).mean(dim=1)


def normalised(support, support_y, n_way):
    return REFERENCES["prototypes"](F.normalize(support, dim=1), support_y, n_way)


def distance(query, protos):
    return -torch.cdist(query, protos)


def positive(query, protos):
    return -REFERENCES["distance_logits"](query, protos)


def mean_over_d(query, protos):
    return REFERENCES["distance_logits"](query, protos) / query.shape[1]


def cosine(query, protos):
    return F.normalize(query, dim=1) @ F.normalize(protos, dim=1).T - 1


def centred(query, protos):  # uses statistics of the whole query set
    return REFERENCES["distance_logits"](query - query.mean(0), protos - query.mean(0) + query.mean(0).mean())


def summed(support, support_y, query, query_y, n_way):
    loss, acc = REFERENCES["episode_loss"](support, support_y, query, query_y, n_way)
    return loss * len(query_y), acc


def percent(support, support_y, query, query_y, n_way):
    loss, acc = REFERENCES["episode_loss"](support, support_y, query, query_y, n_way)
    return loss, 100 * acc


def positional_loss(support, support_y, query, query_y, n_way):
    logits = REFERENCES["distance_logits"](query, by_position(support, support_y, n_way))
    return F.cross_entropy(logits, query_y), (logits.argmax(1) == query_y).float().mean()


@pytest.mark.parametrize("replaced,expected", [
    ({"prototypes": by_position}, {"support set in any order (classes come from support_y)"}),
    ({"prototypes": normalised}, {"each prototype is the mean of its class's support embeddings",
                                  "1-shot, many ways and a single way",
                                  "support set in any order (classes come from support_y)",
                                  "embeddings of any scale (a plain mean, no normalisation)"}),
    ({"distance_logits": positive}, {"returns (n_queries, n_way) logits that are never positive",
                                     "the logits are minus the squared Euclidean distances",
                                     "a single query, many ways and a single way",
                                     "embeddings of unequal scales (Euclidean, not cosine)"}),
    ({"episode_loss": summed}, {"the loss is the mean cross-entropy of the distance logits",
                                "loss and accuracy on 1-shot, many-way and 5-shot episodes",
                                "support set and queries in any order"}),
    ({"episode_loss": percent}, {"returns (loss, accuracy): two numbers",
                                 "loss and accuracy on 1-shot, many-way and 5-shot episodes"}),
    ({"episode_loss": positional_loss}, {"support set and queries in any order"}),
])
def test_a_mistake_fails_exactly_its_checks(replaced, expected):
    assert failing(**replaced) == expected


@pytest.mark.parametrize("wrong", [distance, mean_over_d, cosine])
def test_other_distances_are_caught(wrong):
    failed = failing(distance_logits=wrong)
    assert {"the logits are minus the squared Euclidean distances",
            "embeddings of unequal scales (Euclidean, not cosine)"} <= failed
    assert "returns (n_queries, n_way) logits that are never positive" not in failed


def test_logits_that_depend_on_the_other_queries_are_caught():
    assert "each query scored on its own (order and number of queries do not matter)" in failing(
        distance_logits=centred)


def test_hidden_messages_reveal_no_numbers_of_the_inputs():
    for message in SET.hidden_messages({"prototypes": normalised}, {"distance_logits": centred},
                                       {"episode_loss": summed}):
        assert not any(ch.isdigit() for ch in message), message
