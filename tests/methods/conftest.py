"""Helpers for the method tests: small random episodes and permutations of them."""

import pytest
import torch

from mlcourse.data import Episode


def random_episode(n_way=5, k_shot=3, n_query=4, seed=0, batch=None) -> Episode:
    g = torch.Generator().manual_seed(seed)
    lead = () if batch is None else (batch,)
    return Episode(
        support_x=torch.rand(*lead, n_way * k_shot, 1, 28, 28, generator=g),
        support_y=torch.arange(n_way).repeat_interleave(k_shot).expand(*lead, -1).clone(),
        query_x=torch.rand(*lead, n_way * n_query, 1, 28, 28, generator=g),
        query_y=torch.arange(n_way).repeat_interleave(n_query).expand(*lead, -1).clone(),
        n_way=n_way, k_shot=k_shot, n_query=n_query, batched=batch is not None,
    )


def shuffle_support(episode: Episode, seed: int = 1) -> Episode:
    """The same episode with its support examples in another order."""
    perm = torch.randperm(episode.support_y.shape[-1], generator=torch.Generator().manual_seed(seed))
    return Episode(episode.support_x[perm], episode.support_y[perm], episode.query_x, episode.query_y,
                   episode.n_way, episode.k_shot, episode.n_query)


def relabel(episode: Episode, perm: torch.Tensor) -> Episode:
    """The same episode with class c renamed perm[c]."""
    return Episode(episode.support_x, perm[episode.support_y], episode.query_x, perm[episode.query_y],
                   episode.n_way, episode.k_shot, episode.n_query)


@pytest.fixture
def episode():
    return random_episode()


def check_invariances(method, episode, atol=1e-5):
    """Predictions do not depend on the support order, and follow a relabelling of the classes."""
    method.eval()
    with torch.no_grad():
        logits = method.predict(episode)
        assert logits.shape == (episode.n_way * episode.n_query, episode.n_way)
        assert torch.allclose(method.predict(shuffle_support(episode)), logits, atol=atol)
        perm = torch.tensor([2, 0, 4, 1, 3])
        relabelled = method.predict(relabel(episode, perm))
        assert torch.allclose(relabelled[:, perm], logits, atol=atol)  # new column perm[c] = old column c
