"""Matching networks: attention is a distribution over the support set."""

import torch

from mlcourse.methods.matching import MatchingNet, attend_labels, attention
from mlcourse.models import conv4
from tests.methods.conftest import check_invariances, random_episode


def test_attention_sums_to_one_over_the_support():
    a = attention(torch.randn(2, 6, 8), torch.randn(2, 10, 8), scale=7.0)
    assert a.shape == (2, 6, 10) and (a >= 0).all()
    assert torch.allclose(a.sum(-1), torch.ones(2, 6), atol=1e-6)


def test_attend_labels_adds_weights_per_class():
    weights = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    probs = attend_labels(weights, torch.tensor([1, 0, 1, 2]), 3)
    assert torch.allclose(probs, torch.tensor([[0.2, 0.4, 0.4]]))


def test_invariances(episode):
    torch.manual_seed(0)
    check_invariances(MatchingNet(conv4(hidden=16), dim=16), episode)


def test_full_context_embeddings_batched_and_unbatched_agree():
    torch.manual_seed(0)
    method = MatchingNet(conv4(hidden=16), full_context=True, dim=16).eval()
    batch = random_episode(batch=2)
    with torch.no_grad():
        probs = method.predict(batch).exp()
        assert torch.allclose(probs.sum(-1), torch.ones(2, 20), atol=1e-5)
        assert torch.allclose(method.predict(batch)[0], method.predict(batch[0]), atol=1e-5)


def test_loss_falls(vinyals_train):
    from tests.methods.test_training import loss_falls

    loss_falls(MatchingNet(conv4(hidden=16), dim=16), vinyals_train)
