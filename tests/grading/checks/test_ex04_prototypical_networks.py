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
    ({"prototypes": by_position}, {"1-shot, many ways and a single way", "embeddings of any scale (a plain mean, no normalisation), differentiable, inputs left as they were", "support set in any order (classes come from support_y)"}),
    ({"prototypes": normalised}, {"returns one float prototype per class, shape (n_way, d)", "each prototype is the mean of its class's support embeddings",
                                  "1-shot, many ways and a single way",
                                  "support set in any order (classes come from support_y)",
                                  "embeddings of any scale (a plain mean, no normalisation), differentiable, inputs left as they were"}),
    ({"distance_logits": positive}, {"each query scored on its own (order and number of queries do not matter)", "returns (n_queries, n_way) logits that are never positive",
                                     "the logits are minus the squared Euclidean distances",
                                     "a single query, many ways and a single way",
                                     "embeddings of unequal scales (Euclidean, not cosine), differentiable, inputs left as they were"}),
    ({"episode_loss": summed}, {"returns (loss, accuracy): two numbers", "the loss is the mean cross-entropy of the distance logits",
                                "loss and accuracy on 1-shot, many-way and 5-shot episodes; the loss keeps its gradient, inputs left as "
                                "they were",
                                "support set and queries in any order"}),
    ({"episode_loss": percent}, {"support set and queries in any order", "returns (loss, accuracy): two numbers",
                                 "loss and accuracy on 1-shot, many-way and 5-shot episodes; the loss keeps its gradient, inputs left as "
                                "they were"}),
    ({"episode_loss": positional_loss}, {"loss and accuracy on 1-shot, many-way and 5-shot episodes; the loss keeps its gradient, inputs left as they were", "support set and queries in any order"}),
])
def test_a_mistake_fails_exactly_its_checks(replaced, expected):
    assert failing(**replaced) == expected


@pytest.mark.parametrize("wrong", [distance, mean_over_d, cosine])
def test_other_distances_are_caught(wrong):
    failed = failing(distance_logits=wrong)
    assert {"the logits are minus the squared Euclidean distances",
            "embeddings of unequal scales (Euclidean, not cosine), differentiable, inputs left as they were"} <= failed
    assert "returns (n_queries, n_way) logits that are never positive" in failed  # no points without values


def test_logits_that_depend_on_the_other_queries_are_caught():
    assert "each query scored on its own (order and number of queries do not matter)" in failing(
        distance_logits=centred)


def test_hidden_messages_reveal_no_numbers_of_the_inputs():
    for message in SET.hidden_messages({"prototypes": normalised}, {"distance_logits": centred},
                                       {"episode_loss": summed}):
        assert not any(ch.isdigit() for ch in message), message


# ---- what the exercise text forbids, checked by value (gradients and inputs after the call) ----------------------

def numpy_prototypes(support, support_y, n_way):  # right values, no gradient
    import numpy as np
    s, y = support.detach().numpy(), support_y.numpy()
    return torch.tensor(np.stack([s[y == c].mean(0) for c in range(n_way)]))


def detached_prototypes(support, support_y, n_way):
    return REFERENCES["prototypes"](support.detach(), support_y, n_way)


def item_loss(support, support_y, query, query_y, n_way):
    loss, acc = REFERENCES["episode_loss"](support, support_y, query, query_y, n_way)
    return loss.item(), acc


def rewrapped_loss(support, support_y, query, query_y, n_way):  # a fresh leaf: requires grad, reaches nothing
    loss, acc = REFERENCES["episode_loss"](support, support_y, query, query_y, n_way)
    return torch.tensor(loss.item(), requires_grad=True), acc


def half_detached_loss(support, support_y, query, query_y, n_way):  # the gradient reaches the queries only
    logits = REFERENCES["distance_logits"](query, REFERENCES["prototypes"](support, support_y, n_way).detach())
    return F.cross_entropy(logits, query_y), (logits.argmax(1) == query_y).float().mean()


def unsqueezing(query, protos):
    query.unsqueeze_(1)  # (n_queries, 1, d): the caller's tensor changes shape
    return -(query - protos[None]).pow(2).sum(-1)


def normalising_support_in_place(support, support_y, n_way):
    support.mul_(1.0)  # harmless in value...
    support /= 1.0 + 0 * support.norm(dim=1, keepdim=True)  # ...but writes into the caller's tensor
    support[0, 0] += 0.0
    out = REFERENCES["prototypes"](support, support_y, n_way)
    support[0] = 0.0  # and then changes it
    return out


PROTO_GRADIENT = "embeddings of any scale (a plain mean, no normalisation), differentiable, inputs left as they were"
DISTANCE_GRADIENT = "embeddings of unequal scales (Euclidean, not cosine), differentiable, inputs left as they were"
LOSS_GRADIENT = ("loss and accuracy on 1-shot, many-way and 5-shot episodes; the loss keeps its gradient, inputs left "
                 "as they were")


@pytest.mark.parametrize("replaced,expected", [
    ({"prototypes": numpy_prototypes}, {PROTO_GRADIENT}),
    ({"prototypes": detached_prototypes}, {PROTO_GRADIENT}),
    ({"prototypes": normalising_support_in_place}, {PROTO_GRADIENT}),
    ({"episode_loss": item_loss}, {LOSS_GRADIENT}),
    ({"episode_loss": rewrapped_loss}, {LOSS_GRADIENT}),
    ({"episode_loss": half_detached_loss}, {LOSS_GRADIENT}),
    ({"distance_logits": unsqueezing}, {DISTANCE_GRADIENT}),
])
def test_no_gradient_or_a_changed_input_loses_points(replaced, expected):
    assert failing(**replaced) == expected


def test_mistakes_that_assume_a_sorted_support_set_weigh_like_conceptual_errors():
    for replaced, function in (({"prototypes": by_position}, "prototypes"),
                               ({"episode_loss": positional_loss}, "episode_loss")):
        results = [r for r in SET.results({**REFERENCES, **replaced}) if r.function == function]
        lost = sum(r.max_points - r.points for r in results)
        assert lost >= 2, [(r.name, r.points) for r in results]
        assert all(not r.passed for r in results if r.hidden)  # every hidden value check uses a shuffled support
