"""Chapter 3's checks: each common mistake fails the check meant for it (what every set must do is in
test_sets.py)."""

import pytest
import torch
import torch.nn.functional as F

from mlcourse.grading.static import screen
from tests.grading.checks.notebooks import GradedSet

SET = GradedSet("03_matching_networks")
REFERENCES, failing = SET.references, SET.failing


def flagged(source):
    """The graded functions that the static screen flags in a cell of `source`."""
    return {f.function for f in screen([{"cell_type": "code", "source": source}], SET.exercise)}


def test_the_screen_flags_the_references_but_not_pytorchs_cosine():
    assert flagged("from mlcourse.methods.protonet import cosine_similarity") == {"attention"}
    assert flagged("from mlcourse.methods.matching import attend_labels") == {"matching_predict"}
    assert flagged("F.cosine_similarity(a, b)") == set()  # PyTorch's is fine


def dot_product(query, support, scale):
    return torch.softmax(scale * query @ support.T, dim=1)


def over_queries(query, support, scale):
    return torch.softmax(scale * F.normalize(query, dim=1) @ F.normalize(support, dim=1).T, dim=0)


def no_scale(query, support, scale):
    return REFERENCES["attention"](query, support, 1.0)


def second_softmax(weights, support_y, n_way):
    return torch.softmax(REFERENCES["matching_predict"](weights, support_y, n_way), dim=1)


def by_position(weights, support_y, n_way):
    return weights.view(len(weights), n_way, -1).sum(dim=2)


@pytest.mark.parametrize("replaced,expected", [
    ({"attention": dot_product}, {"each query attends on its own (order and number of queries do not matter)", "returns (n_queries, n_support) weights, each row summing to 1", "a softmax over the cosine similarities",
                                  "other scales (the similarities are multiplied by scale before the softmax)",
                                  "embeddings of unequal lengths (cosine, not dot product), one or many support images; differentiable, inputs left as they were"}),
    ({"attention": no_scale}, {"each query attends on its own (order and number of queries do not matter)", "other scales (the similarities are multiplied by scale before the softmax)",
                               "embeddings of unequal lengths (cosine, not dot product), one or many support images; differentiable, inputs left as they were"}),
    ({"matching_predict": second_softmax}, {"each query predicted on its own", "returns (n_queries, n_way) probabilities, each row summing to 1", "each class gets the summed weight of its support images",
                                            "k-shot, many ways, a single way, the support set in any order; differentiable, inputs left as they were"}),
    ({"matching_predict": by_position}, {"each query predicted on its own", "k-shot, many ways, a single way, the support set in any order; differentiable, inputs left as they were"}),
])
def test_a_mistake_fails_exactly_its_checks(replaced, expected):
    assert failing(**replaced) == expected


def test_a_softmax_over_the_queries_is_caught():
    failed = failing(attention=over_queries)
    assert {"returns (n_queries, n_support) weights, each row summing to 1",
            "each query attends on its own (order and number of queries do not matter)"} <= failed


def test_hidden_messages_reveal_no_numbers_of_the_inputs():
    for message in SET.hidden_messages({"attention": dot_product}, {"attention": over_queries},
                                       {"matching_predict": by_position}):
        assert not any(ch.isdigit() for ch in message), message


# ---- differentiable, inputs left as they were: checked by value --------------------------------------------------

def normalising_in_place(query, support, scale):
    query /= query.norm(dim=1, keepdim=True)  # the caller's embeddings change
    support /= support.norm(dim=1, keepdim=True)
    return torch.softmax(scale * query @ support.T, dim=1)


def numpy_cosine(query, support, scale):
    import numpy as np
    q, s = query.detach().numpy(), support.detach().numpy()
    cos = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (s / np.linalg.norm(s, axis=1, keepdims=True)).T
    return torch.softmax(scale * torch.from_numpy(cos), dim=1)


def detached_predict(weights, support_y, n_way):
    return REFERENCES["matching_predict"](weights.detach(), support_y, n_way)


ATTENTION_GRADIENT = ("embeddings of unequal lengths (cosine, not dot product), one or many support images; "
                      "differentiable, inputs left as they were")
PREDICT_GRADIENT = ("k-shot, many ways, a single way, the support set in any order; differentiable, inputs left as "
                    "they were")


@pytest.mark.parametrize("replaced,expected", [
    ({"attention": normalising_in_place}, {ATTENTION_GRADIENT}),
    ({"attention": numpy_cosine}, {ATTENTION_GRADIENT}),
    ({"matching_predict": detached_predict}, {PREDICT_GRADIENT}),
])
def test_no_gradient_or_a_changed_input_loses_points(replaced, expected):
    assert failing(**replaced) == expected
