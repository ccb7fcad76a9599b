"""Chapter 2's checks: each common mistake fails the check meant for it (what every set must do is in
test_sets.py)."""

import pytest
import torch
import torch.nn.functional as F

from mlcourse.grading.static import screen
from tests.grading.checks.notebooks import GradedSet

SET = GradedSet("02_siamese")
REFERENCES, failing = SET.references, SET.failing


def test_the_screen_flags_the_references_and_pytorchs_loss():
    for source, function in [("F.binary_cross_entropy_with_logits(x, y)", "verification_loss"),
                             ("from mlcourse.methods.nearest import min_per_class", "n_way_predict")]:
        assert {f.function for f in screen([{"cell_type": "code", "source": source}], SET.exercise)} == {function}


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
    ({"verification_loss": naive}, {"random batches, a single pair, and logits near zero; the loss keeps its gradient, inputs left as they were", "confident logits: finite and right (numerically stable)"}),
    ({"verification_loss": summed}, {"returns one number, at least 0", "a worked case: the mean binary cross-entropy of four pairs",
                                     "random batches, a single pair, and logits near zero; the loss keeps its gradient, inputs left as they were",
                                     "confident logits: finite and right (numerically stable)"}),
    ({"verification_loss": swapped}, {"returns one number, at least 0", "a worked case: the mean binary cross-entropy of four pairs",
                                      "random batches, a single pair, and logits near zero; the loss keeps its gradient, inputs left as they were",
                                      "confident logits: finite and right (numerically stable)"}),
    ({"n_way_predict": mean_per_class}, {"each query scored on its own (order and number of queries do not matter)", "returns (n_queries, n_way) float class scores", "a worked case: each class scores its best-matching support image",
                                         "1-shot, k-shot with negative logits, many ways, a single way; inputs left as they were",
                                         "support set in any order (classes come from support_y)"}),
    ({"n_way_predict": by_position}, {"1-shot, k-shot with negative logits, many ways, a single way; inputs left as they were", "each query scored on its own (order and number of queries do not matter)", "support set in any order (classes come from support_y)"}),
    ({"n_way_predict": normalised}, {"returns (n_queries, n_way) float class scores", "a worked case: each class scores its best-matching support image",
                                     "1-shot, k-shot with negative logits, many ways, a single way; inputs left as they were",
                                     "support set in any order (classes come from support_y)",
                                     "each query scored on its own (order and number of queries do not matter)"}),
])
def test_a_mistake_fails_exactly_its_checks(replaced, expected):
    assert failing(**replaced) == expected


def test_labels_instead_of_scores_lose_the_value_checks():
    failed = failing(n_way_predict=labels_only)
    assert "a worked case: each class scores its best-matching support image" in failed
    assert "returns (n_queries, n_way) float class scores" in failed  # well-formed, but no points without values


def test_hidden_messages_reveal_no_numbers_of_the_inputs():
    for message in SET.hidden_messages({"verification_loss": naive}, {"n_way_predict": normalised}):
        assert not any(ch.isdigit() for ch in message), message


# ---- the loss keeps its gradient, inputs left as they were: checked by value ---------------------------------------

def item_loss(logits, same):
    return REFERENCES["verification_loss"](logits, same).item()


def clamping_in_place(logits, same):
    same.mul_(1.0).clamp_(0, 1)
    logits.clamp_(-5, 5)  # the caller's logits change where they are large
    return REFERENCES["verification_loss"](logits, same)


def masking_in_place(pair_logits, support_y, n_way):
    scores = REFERENCES["n_way_predict"](pair_logits, support_y, n_way)
    pair_logits.zero_()
    return scores


LOSS_GRADIENT = "random batches, a single pair, and logits near zero; the loss keeps its gradient, inputs left as they were"
PREDICT_KEPT = "1-shot, k-shot with negative logits, many ways, a single way; inputs left as they were"


@pytest.mark.parametrize("replaced,expected", [
    ({"verification_loss": item_loss}, {LOSS_GRADIENT}),
    ({"n_way_predict": masking_in_place}, {PREDICT_KEPT}),
])
def test_no_gradient_or_a_changed_input_loses_points(replaced, expected):
    assert failing(**replaced) == expected


def test_an_in_place_clamp_is_caught():
    assert LOSS_GRADIENT in failing(verification_loss=clamping_in_place)
