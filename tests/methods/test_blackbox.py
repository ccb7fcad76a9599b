"""Black-box learners: the input sequence, causality, no label leak, and that they learn."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from mlcourse.data import SinusoidTasks
from mlcourse.engine import TrainConfig, evaluate, train
from mlcourse.methods.blackbox import (BlackBox, DenseBlock, LSTMLearner, SNAILLearner, build_sequences,
                                       causal_attention, causal_mask, query_loss)
from tests.methods.conftest import random_episode


def small_episode(n_way=3, k_shot=2, n_query=2, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    support_y = torch.arange(n_way).repeat_interleave(k_shot)  # (S,)
    support_z = torch.randn(n_way * k_shot, d, generator=g) + 10 * support_y[:, None]  # label readable from z
    query_z = torch.randn(n_way * n_query, d, generator=g)
    return support_z, support_y, query_z


def test_sequence_shape_labels_and_pairing():
    support_z, support_y, query_z = small_episode()
    seq = build_sequences(support_z, support_y, query_z, 3, torch.Generator().manual_seed(1))
    assert seq.shape == (6, 7, 4 + 3)  # (Q, S + 1, d + n_way)
    assert torch.equal(seq[:, -1, :4], query_z) and not seq[:, -1, 4:].any()  # queries last, zero label
    prefix = seq[:, :-1]
    assert (prefix == prefix[:1]).all()  # every query reads the same support sequence
    labels = prefix[0, :, 4:].argmax(-1)
    assert torch.equal((prefix[0, :, 0] / 10).round().long(), labels)  # each image kept its own label
    assert sorted(labels.tolist()) == sorted(support_y.tolist())


def test_shuffle_follows_the_generator():
    support_z, support_y, query_z = small_episode(n_way=5, k_shot=4)
    seqs = [build_sequences(support_z, support_y, query_z, 5, torch.Generator().manual_seed(s)) for s in (0, 0, 1)]
    assert torch.equal(seqs[0], seqs[1]) and not torch.equal(seqs[0], seqs[2])
    kept = build_sequences(support_z, support_y, query_z, 5, shuffle=False)
    assert torch.equal(kept[0, :-1, :4], support_z)


def test_batched_sequences_shuffle_each_episode_on_its_own():
    support_z, support_y, query_z = small_episode(n_way=5, k_shot=4)
    batch = [t.expand(2, *t.shape) for t in (support_z, support_y, query_z)]
    seq = build_sequences(*batch, 5, torch.Generator().manual_seed(0))
    assert seq.shape == (2, 10, 21, 4 + 5)
    assert not torch.equal(seq[0], seq[1])


def test_causal_mask_and_attention_match_pytorch():
    assert torch.equal(causal_mask(3), torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool))
    q, k, v = torch.randn(2, 5, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 3)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(causal_attention(q, k, v), expected)


def test_dense_block_is_a_dilated_causal_convolution():
    block = DenseBlock(3, dilation=2, filters=4)
    conv = torch.nn.Conv1d(3, 8, kernel_size=2, dilation=2)
    with torch.no_grad():  # conv weight (out, in, 2): tap 0 reads t - dilation, tap 1 reads t
        conv.weight.copy_(torch.stack([block.past.weight, block.now.weight], dim=-1))
        conv.bias.copy_(block.now.bias)
    x = torch.randn(2, 6, 3)
    a, b = conv(F.pad(x.transpose(1, 2), (2, 0))).chunk(2, dim=1)
    torch.testing.assert_close(block(x)[..., 3:], (torch.tanh(a) * torch.sigmoid(b)).transpose(1, 2))


@pytest.mark.parametrize("learner", [SNAILLearner(7, 3, seq_len=7, width=0.25), LSTMLearner(7, 3, hidden=8)])
def test_learners_are_causal(learner):
    x = torch.randn(2, 7, 7)
    later = x.clone()
    later[:, 4:] = torch.randn(2, 3, 7)  # change positions 4, 5, 6
    torch.testing.assert_close(learner(later)[:, :4], learner(x)[:, :4])
    assert not torch.allclose(learner(later)[:, 4:], learner(x)[:, 4:])


def test_query_loss_reads_the_query_position_only():
    outputs = torch.randn(4, 6, 3, requires_grad=True)
    query_y = torch.tensor([0, 1, 2, 0])
    loss, acc = query_loss(outputs, query_y)
    torch.testing.assert_close(loss, F.cross_entropy(outputs[:, -1], query_y))
    assert acc.item() == (outputs[:, -1].argmax(-1) == query_y).float().mean().item()
    loss.backward()
    assert not outputs.grad[:, :-1].any()


@pytest.fixture
def omniglot_episode():
    return random_episode(5, 1, 3, batch=2)


@pytest.mark.parametrize("kind", ["lstm", "snail"])
def test_no_label_leaks_and_queries_are_independent(kind, omniglot_episode):
    torch.manual_seed(0)
    method = BlackBox(kind, width=0.25, hidden=16, normalize=True).eval()  # eval: batch norm uses running stats
    method.shuffle = False  # the same support order in every call
    logits = method.predict(omniglot_episode)  # (B, Q, n_way)
    relabelled = dataclasses.replace(omniglot_episode, query_y=omniglot_episode.query_y.roll(1, dims=-1))
    torch.testing.assert_close(method.predict(relabelled), logits)  # query labels are never read
    query_x = omniglot_episode.query_x.clone()
    query_x[:, 0] = 1 - query_x[:, 0]  # change the first query of each episode
    changed = method.predict(dataclasses.replace(omniglot_episode, query_x=query_x))
    torch.testing.assert_close(changed[:, 1:], logits[:, 1:])  # no other query's prediction moves
    assert not torch.allclose(changed[:, 0], logits[:, 0])


@pytest.mark.parametrize("kind", ["lstm", "snail"])
def test_support_order_changes_a_sequence_learner(kind, omniglot_episode):
    torch.manual_seed(0)
    method = BlackBox(kind, width=0.25, hidden=16).eval()
    method.shuffle = False
    episode = omniglot_episode[0]
    order = torch.tensor([4, 2, 0, 3, 1])
    permuted = dataclasses.replace(episode, support_x=episode.support_x[order], support_y=episode.support_y[order])
    assert not torch.allclose(method.predict(permuted), method.predict(episode))


def test_n_way_mismatch_is_explained():
    episode = random_episode(3, 1, 1)
    with pytest.raises(ValueError, match="5-way labels, the episode is 3-way"):
        BlackBox("lstm").predict(episode)


def test_snail_learns_sinusoids():
    torch.manual_seed(0)
    method = BlackBox("snail", k_shot=10, task="regression", width=0.25)
    before = evaluate(method, SinusoidTasks(10, 10, seed=5), n_episodes=100)[0]
    train(method, SinusoidTasks(10, 10, seed=0), TrainConfig(steps=300, meta_batch_size=16, outer_lr=3e-3, val_every=0),
          device="cpu", verbose=False)
    after = evaluate(method, SinusoidTasks(10, 10, seed=5), n_episodes=100)[0]
    assert after < 0.5 * before, (before, after)
