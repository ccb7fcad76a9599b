"""The episode sampler: every invariant of an N-way K-shot episode, and reproducibility."""

import pytest
import torch

from mlcourse.data import EpisodeSampler
from mlcourse.data.episodes import VaryingShotSampler


def ids(x):
    """The image ids of numbered_images: (..., 1, 2, 2) -> (...)."""
    return x[..., 0, 0, 0].long()


@pytest.mark.parametrize("n_way,k_shot,n_query", [(5, 1, 15), (20, 5, 5), (30, 1, 19)])
def test_shapes_labels_and_disjointness(numbered_images, n_way, k_shot, n_query):
    ep = EpisodeSampler(numbered_images, n_way, k_shot, n_query, seed=3).sample()
    assert ep.support_x.shape == (n_way * k_shot, 1, 2, 2) and ep.query_x.shape == (n_way * n_query, 1, 2, 2)
    assert ep.support_y.dtype == torch.int64
    assert torch.equal(ep.support_y, torch.arange(n_way).repeat_interleave(k_shot))
    assert torch.equal(ep.query_y, torch.arange(n_way).repeat_interleave(n_query))
    s, q = ids(ep.support_x), ids(ep.query_x)
    assert len(set(s.tolist()) | set(q.tolist())) == len(s) + len(q)  # no image twice, none shared
    # labels follow classes: every image of label c comes from the same class, distinct per label
    s_class, q_class = s // 100, q // 100
    for c in range(n_way):
        assert s_class[ep.support_y == c].unique().numel() == 1
        assert torch.equal(q_class[ep.query_y == c].unique(), s_class[ep.support_y == c].unique())
    assert s_class.unique().numel() == n_way
    assert torch.equal(s_class.view(n_way, k_shot)[:, 0], ep.classes)


def test_same_seed_same_episodes_other_seed_others(numbered_images):
    a = EpisodeSampler(numbered_images, 5, 1, 3, seed=7).sample(4)
    b = EpisodeSampler(numbered_images, 5, 1, 3, seed=7).sample(4)
    c = EpisodeSampler(numbered_images, 5, 1, 3, seed=8).sample(4)
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_x, b.query_x)
    assert not torch.equal(a.support_x, c.support_x)


def test_state_dict_resumes_the_stream(numbered_images):
    s = EpisodeSampler(numbered_images, 5, 2, 3, seed=1)
    s.sample(2)
    state = s.state_dict()
    expected = s.sample(2)
    s.sample(5)
    s.load_state_dict(state)
    assert torch.equal(s.sample(2).query_x, expected.query_x)


def test_batches_and_indexing(numbered_images):
    batch = EpisodeSampler(numbered_images, 5, 1, 2, seed=0).sample(8)
    assert batch.batched and len(batch) == 8
    assert batch.support_x.shape == (8, 5, 1, 2, 2) and batch.query_y.shape == (8, 10)
    one = batch[3]
    assert not one.batched and torch.equal(one.query_x, batch.query_x[3])
    # episodes of a batch are drawn independently
    assert len({tuple(batch.classes[i].tolist()) for i in range(8)}) > 1


def test_every_class_gets_drawn(numbered_images):
    s = EpisodeSampler(numbered_images, 5, 1, 1, seed=0)
    seen = torch.cat([s.sample().classes for _ in range(100)])
    assert seen.unique().numel() == 30


def test_bad_sizes_are_clear_errors(numbered_images):
    with pytest.raises(ValueError, match="n_way=31"):
        EpisodeSampler(numbered_images, 31, 1, 1)
    with pytest.raises(ValueError, match="k_shot=5 \\+ n_query=16"):
        EpisodeSampler(numbered_images, 5, 5, 16)


def test_varying_shot_batches_draw_every_k_in_range_and_stay_disjoint(numbered_images):
    s = VaryingShotSampler(numbered_images, 5, 1, 4, n_query=3, seed=0)
    shots = []
    for _ in range(60):
        batch = s.sample(2)
        k = batch.k_shot
        shots.append(k)
        assert batch.support_x.shape == (2, 5 * k, 1, 2, 2) and batch.query_x.shape == (2, 15, 1, 2, 2)
        assert torch.equal(batch.support_y[0], torch.arange(5).repeat_interleave(k))
        for i in range(2):
            seen = ids(batch.support_x[i]).tolist() + ids(batch.query_x[i]).tolist()
            assert len(set(seen)) == len(seen)  # support and query never share an image
    assert set(shots) == {1, 2, 3, 4}
    state = s.state_dict()
    expected = s.sample(3)
    s.load_state_dict(state)
    again = s.sample(3)
    assert again.k_shot == expected.k_shot and torch.equal(again.support_x, expected.support_x)


def test_varying_shot_sizes_are_checked_for_the_largest_k(numbered_images):
    with pytest.raises(ValueError, match="max_k_shot=1 must be at least k_shot=2"):
        VaryingShotSampler(numbered_images, 5, 2, 1, n_query=3)
    with pytest.raises(ValueError, match="k_shot=18 \\+ n_query=3"):
        VaryingShotSampler(numbered_images, 5, 1, 18, n_query=3)


def test_real_omniglot_episode(vinyals_train):
    ep = EpisodeSampler(vinyals_train.images, 20, 5, 15, seed=0).sample()
    assert ep.support_x.shape == (100, 1, 28, 28) and ep.query_x.shape == (300, 1, 28, 28)
    assert ep.support_x.dtype == torch.float32
