"""Siamese networks: a symmetric similarity, trained on pairs, used N-way."""

import torch

from mlcourse.data import EpisodeSampler
from mlcourse.data.pairs import PairSampler
from mlcourse.methods.siamese import SiameseNet
from mlcourse.models import conv4
from tests.methods.conftest import check_invariances


def test_similarity_is_symmetric():
    torch.manual_seed(0)
    net = SiameseNet(conv4(hidden=16), dim=16).eval()
    x1, x2 = torch.rand(6, 1, 28, 28), torch.rand(6, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(net.similarity(x1, x2), net.similarity(x2, x1), atol=1e-5)


def test_invariances(episode):
    torch.manual_seed(0)
    check_invariances(SiameseNet(conv4(hidden=16), dim=16), episode)


def test_pair_sampler_balances_same_and_different(numbered_images):
    pairs = PairSampler(numbered_images, seed=0).sample(200)
    id1, id2 = pairs.x1[:, 0, 0, 0].long(), pairs.x2[:, 0, 0, 0].long()
    same_class = (id1 // 100) == (id2 // 100)
    assert torch.equal(same_class.float(), pairs.same) and pairs.same.mean() == 0.5
    assert (id1 != id2).all()  # a positive pair is two different drawings


def test_loss_falls(vinyals_train):
    torch.manual_seed(0)
    net = SiameseNet(conv4(hidden=16), dim=16)
    sampler, optimizer = PairSampler(vinyals_train.images, seed=0), torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        loss, _ = net.loss(sampler.sample(32))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-30:]) < 0.9 * sum(losses[:30]), losses  # from ln 2 = 0.69 towards 0.58


def test_distortions_are_small_random_affine_maps_that_keep_the_ink():
    from mlcourse.data.pairs import distort

    torch.manual_seed(0)
    images = torch.zeros(64, 1, 28, 28)
    images[:, :, 10:18, 12:16] = 1.0  # a bar of ink in the middle
    out = distort(images)
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out[0], out[1])  # one distortion per image
    ink = out.sum(dim=(1, 2, 3)) / images.sum(dim=(1, 2, 3))
    assert 0.5 < ink.min() and ink.max() < 1.6  # scaled by at most 1.2 per axis (plus interpolation), nothing lost
    torch.manual_seed(0)
    assert torch.equal(distort(images), out)  # seeded by torch's global generator, like training


def test_distortion_is_used_in_training_only():
    torch.manual_seed(0)
    net = SiameseNet(conv4(hidden=16), dim=16, distort=True)
    pairs = PairSampler(torch.rand(10, 4, 1, 28, 28), seed=0).sample(8)
    torch.manual_seed(1)
    a, _ = net.loss(pairs)
    torch.manual_seed(2)
    b, _ = net.loss(pairs)
    assert a.item() != b.item()  # each call draws new distortions
    plain = SiameseNet(conv4(hidden=16), dim=16)
    plain.load_state_dict(net.state_dict())
    episode = EpisodeSampler(torch.rand(10, 6, 1, 28, 28), 5, 1, 2, seed=0).sample()
    assert torch.equal(net.eval().predict(episode), plain.eval().predict(episode))  # testing sees the real images
