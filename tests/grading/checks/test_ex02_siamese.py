"""Chapter 2's checks: the references and the solution pass them all, the stubs none, and each common
mistake fails the check meant for it."""

import pytest
import torch
import torch.nn.functional as F

from mlcourse.grading.checks import build
from mlcourse.grading.checks.ex02_siamese import EXERCISE, REFERENCES
from mlcourse.grading.harness import call_all, encode_args
from mlcourse.grading.scoring import score
from mlcourse.grading.static import screen
from tests.grading.checks.notebooks import cells, functions

EX = build(EXERCISE)
CALLS = [{"key": k, "function": c.function, "args": encode_args(c.args), "global_seed": c.global_seed}
         for k, c in EX.calls.items()]
NAMES = ("verification_loss", "n_way_predict")


def results(namespace):
    return score(EX, *call_all(CALLS, namespace, time_limit=10))


def failing(**replaced):
    """Names of the checks that fail when some reference functions are replaced."""
    return {r.name for r in results({**REFERENCES, **replaced}) if not r.passed}


def test_the_references_pass_everything_and_points_add_up():
    assert failing() == set()
    assert EX.max_points == 9 and [fn.max_points for fn in EX.functions] == [4, 5]
    assert [fn.name for fn in EX.functions] == list(NAMES)
    assert all(c.calls and set(c.calls) <= set(EX.calls) for fn in EX.functions for c in fn.checks)


def test_the_solution_gets_full_marks_and_the_exercise_zero():
    assert all(r.passed for r in results(functions("solutions", EXERCISE, NAMES)))
    assert not any(r.passed for r in results(functions("exercises", EXERCISE, NAMES)))


def test_the_notebooks_do_not_trip_the_static_screen():
    assert screen(cells("solutions", EXERCISE), EX) == []
    assert screen(cells("exercises", EXERCISE), EX) == []
    for source, function in [("F.binary_cross_entropy_with_logits(x, y)", "verification_loss"),
                             ("from mlcourse.methods.nearest import min_per_class", "n_way_predict")]:
        assert {f.function for f in screen([{"cell_type": "code", "source": source}], EX)} == {function}


def naive(logits, same):
    p = torch.sigmoid(logits)
    return -(same * p.log() + (1 - same) * (1 - p).log()).mean()


def summed(logits, same):
    return REFERENCES["verification_loss"](logits, same) * len(same)


def swapped(logits, same):
    return REFERENCES["verification_loss"](logits, 1 - same)


def mean_per_class(pair_logits, support_y, n_way):
    return torch.stack([pair_logits[:, support_y == c].mean(1) for c in range(n_way)], dim=1)


def by_position(pair_logits, support_y, n_way):
    return pair_logits.view(len(pair_logits), n_way, -1).max(dim=2).values


def labels_only(pair_logits, support_y, n_way):
    return F.one_hot(support_y[pair_logits.argmax(1)], n_way).float()


def normalised(pair_logits, support_y, n_way):  # uses statistics of the whole query set
    return REFERENCES["n_way_predict"](pair_logits - pair_logits.mean(0), support_y, n_way)


@pytest.mark.parametrize("replaced,expected", [
    ({"verification_loss": naive}, {"confident logits: finite and right (numerically stable)"}),
    ({"verification_loss": summed}, {"a worked case: the mean binary cross-entropy of four pairs",
                                     "random batches, a single pair, and logits near zero",
                                     "confident logits: finite and right (numerically stable)"}),
    ({"verification_loss": swapped}, {"a worked case: the mean binary cross-entropy of four pairs",
                                      "random batches, a single pair, and logits near zero",
                                      "confident logits: finite and right (numerically stable)"}),
    ({"n_way_predict": mean_per_class}, {"a worked case: each class scores its best-matching support image",
                                         "1-shot, k-shot with negative logits, many ways, a single way",
                                         "support set in any order (classes come from support_y)"}),
    ({"n_way_predict": by_position}, {"support set in any order (classes come from support_y)"}),
    ({"n_way_predict": normalised}, {"a worked case: each class scores its best-matching support image",
                                     "1-shot, k-shot with negative logits, many ways, a single way",
                                     "support set in any order (classes come from support_y)",
                                     "each query scored on its own (order and number of queries do not matter)"}),
])
def test_a_mistake_fails_exactly_its_checks(replaced, expected):
    assert failing(**replaced) == expected


def test_labels_instead_of_scores_lose_the_value_checks():
    failed = failing(n_way_predict=labels_only)
    assert "a worked case: each class scores its best-matching support image" in failed
    assert "returns (n_queries, n_way) float class scores" not in failed


def test_hidden_messages_reveal_no_numbers_of_the_inputs():
    for wrong in ({"verification_loss": naive}, {"n_way_predict": normalised}):
        for r in results({**REFERENCES, **wrong}):
            if r.hidden and r.message:
                assert not any(ch.isdigit() for ch in r.message), r.message
