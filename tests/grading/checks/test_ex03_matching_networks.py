"""Chapter 3's checks: the references and the solution pass them all, the stubs none, and each common
mistake fails the check meant for it."""

import pytest
import torch
import torch.nn.functional as F

from mlcourse.grading.checks import build
from mlcourse.grading.checks.ex03_matching_networks import EXERCISE, REFERENCES
from mlcourse.grading.harness import call_all, encode_args
from mlcourse.grading.scoring import score
from mlcourse.grading.static import screen
from tests.grading.checks.notebooks import cells, functions

EX = build(EXERCISE)
CALLS = [{"key": k, "function": c.function, "args": encode_args(c.args), "global_seed": c.global_seed}
         for k, c in EX.calls.items()]
NAMES = ("attention", "matching_predict")


def results(namespace):
    return score(EX, *call_all(CALLS, namespace, time_limit=10))


def failing(**replaced):
    """Names of the checks that fail when some reference functions are replaced."""
    return {r.name for r in results({**REFERENCES, **replaced}) if not r.passed}


def test_the_references_pass_everything_and_points_add_up():
    assert failing() == set()
    assert EX.max_points == 9 and [fn.max_points for fn in EX.functions] == [5, 4]
    assert [fn.name for fn in EX.functions] == list(NAMES)
    assert all(c.calls and set(c.calls) <= set(EX.calls) for fn in EX.functions for c in fn.checks)


def test_the_solution_gets_full_marks_and_the_exercise_zero():
    assert all(r.passed for r in results(functions("solutions", EXERCISE, NAMES)))
    assert not any(r.passed for r in results(functions("exercises", EXERCISE, NAMES)))


def test_the_notebooks_do_not_trip_the_static_screen():
    assert screen(cells("solutions", EXERCISE), EX) == []
    assert screen(cells("exercises", EXERCISE), EX) == []
    for source, function in [("from mlcourse.methods.protonet import cosine_similarity", "attention"),
                             ("from mlcourse.methods.matching import attend_labels", "matching_predict")]:
        assert {f.function for f in screen([{"cell_type": "code", "source": source}], EX)} == {function}
    assert screen([{"cell_type": "code", "source": "F.cosine_similarity(a, b)"}], EX) == []  # PyTorch's is fine


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
    ({"attention": dot_product}, {"a softmax over the cosine similarities",
                                  "other scales (the similarities are multiplied by scale before the softmax)",
                                  "embeddings of unequal lengths (cosine, not dot product), one or many support images"}),
    ({"attention": no_scale}, {"other scales (the similarities are multiplied by scale before the softmax)",
                               "embeddings of unequal lengths (cosine, not dot product), one or many support images"}),
    ({"matching_predict": second_softmax}, {"each class gets the summed weight of its support images",
                                            "k-shot, many ways, a single way, the support set in any order"}),
    ({"matching_predict": by_position}, {"k-shot, many ways, a single way, the support set in any order"}),
])
def test_a_mistake_fails_exactly_its_checks(replaced, expected):
    assert failing(**replaced) == expected


def test_a_softmax_over_the_queries_is_caught():
    failed = failing(attention=over_queries)
    assert {"returns (n_queries, n_support) weights, each row summing to 1",
            "each query attends on its own (order and number of queries do not matter)"} <= failed


def test_hidden_messages_reveal_no_numbers_of_the_inputs():
    for wrong in ({"attention": dot_product}, {"attention": over_queries}, {"matching_predict": by_position}):
        for r in results({**REFERENCES, **wrong}):
            if r.hidden and r.message:
                assert not any(ch.isdigit() for ch in r.message), r.message
