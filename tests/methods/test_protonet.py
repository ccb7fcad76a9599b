"""Prototypical networks: prototypes are class means; logits are minus squared distances."""

import pytest
import torch

from mlcourse.methods.protonet import ProtoNet, prototypes, squared_euclidean
from mlcourse.models import conv4
from tests.methods.conftest import check_invariances, random_episode


def test_prototypes_are_class_means():
    z, y = torch.randn(12, 8), torch.tensor([2, 0, 1, 2, 1, 0, 0, 2, 1, 1, 0, 2])
    protos = prototypes(z, y, 3)
    for c in range(3):
        assert torch.allclose(protos[c], z[y == c].mean(0), atol=1e-6)
    batched = prototypes(torch.stack([z, 2 * z]), torch.stack([y, y]), 3)
    assert torch.allclose(batched[1], 2 * protos, atol=1e-6)


def test_squared_euclidean_matches_cdist():
    a, b = torch.randn(7, 5), torch.randn(3, 5)
    assert torch.allclose(squared_euclidean(a, b), torch.cdist(a, b) ** 2, atol=1e-5)


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_invariances(distance, episode):
    torch.manual_seed(0)
    check_invariances(ProtoNet(conv4(hidden=16), distance=distance), episode)


def test_one_shot_logits_are_distances_to_the_embedded_support():
    torch.manual_seed(0)
    method = ProtoNet(conv4(hidden=16)).eval()
    ep = random_episode(k_shot=1)
    with torch.no_grad():
        s, q = method.embed(ep.support_x), method.embed(ep.query_x)
        assert torch.allclose(method.predict(ep), -torch.cdist(q, s) ** 2, atol=1e-4)


def test_batched_equals_one_by_one():
    torch.manual_seed(0)
    method = ProtoNet(conv4(hidden=16)).eval()
    batch = random_episode(batch=3)
    with torch.no_grad():
        together = method.predict(batch)
        assert torch.allclose(together[1], method.predict(batch[1]), atol=1e-5)


def test_loss_falls(vinyals_train):
    from tests.methods.test_training import loss_falls

    loss_falls(ProtoNet(conv4(hidden=16)), vinyals_train)
