"""Black-box adaptation: a sequence model reads the labelled support set, then predicts a query's label.

The task's predictor is the network's state after reading the support set, phi_i = f_theta(D_tr_i), and
the prediction is y_ts = f_theta(D_tr_i, x_ts): no prototypes, no inner gradient steps, only a forward pass.
Two sequence models read the same sequences: an LSTM (the "MANN" learner of CS330's first homework,
after Santoro et al. 2016) and a SNAIL-style stack of temporal convolutions and causal attention
(Mishra et al. 2018).

Each query gets a sequence of its own: the support set in a shuffled order, each example with its
one-hot label, then the query with a zero label. The prediction is read at the last position, so no
query ever sees a query label or another query.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from mlcourse.data.episodes import Episode
from mlcourse.methods.base import Method, accuracy, task_mse
from mlcourse.models import conv4, embed_images


def build_sequences(support_z: torch.Tensor, support_y: torch.Tensor, query_z: torch.Tensor, n_way: int,
                    generator: torch.Generator | None = None, shuffle: bool = True) -> torch.Tensor:
    """One sequence per query: shuffled (support, one-hot label) pairs, then (query, zero label).

    (S, d), (S,), (Q, d) -> (Q, S + 1, d + n_way). The shuffle draws from `generator` (on the CPU).
    Leading batch dimensions are allowed: ([B,] S, d), ([B,] S), ([B,] Q, d) -> ([B,] Q, S + 1, d + n_way),
    with an order of its own for each episode. Regression passes float targets (S, 1) as `support_y` and
    `n_way=0`: the target itself is the "label" channel. `shuffle=False` keeps the given order.
    """
    n_support, n_query = support_z.shape[-2], query_z.shape[-2]
    shape = support_z.shape[:-2] + (n_support,)
    order = torch.rand(shape, generator=generator).argsort(dim=-1) if shuffle else torch.arange(n_support).expand(shape)
    order = order.to(support_z.device)  # ([B,] S)
    labels = F.one_hot(support_y, n_way).to(support_z.dtype) if n_way else support_y  # ([B,] S, n_way or 1)
    support = torch.cat([support_z, labels], dim=-1)  # ([B,] S, d + n_way)
    support = support.gather(-2, order.unsqueeze(-1).expand_as(support))  # pairs move together
    query = torch.cat([query_z, query_z.new_zeros(*query_z.shape[:-1], labels.shape[-1])], dim=-1)  # ([B,] Q, d + n_way)
    support = support.unsqueeze(-3).expand(*shape[:-1], n_query, n_support, support.shape[-1])  # ([B,] Q, S, d + n_way)
    return torch.cat([support, query.unsqueeze(-2)], dim=-2)  # ([B,] Q, S + 1, d + n_way)


def causal_mask(length: int, device=None) -> torch.Tensor:
    """(length, length) booleans, True where position i may read position j: j <= i."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Soft attention in which each position reads only itself and earlier positions.

    (N, T, d_k), (N, T, d_k), (N, T, d_v) -> (N, T, d_v); scores scaled by 1 / sqrt(d_k).
    """
    scores = q @ k.transpose(-1, -2) / math.sqrt(k.shape[-1])  # (N, T, T)
    scores = scores.masked_fill(~causal_mask(q.shape[-2], q.device), float("-inf"))
    return scores.softmax(dim=-1) @ v


class AttentionBlock(nn.Module):
    """Mishra et al.'s attention block: causal attention read, concatenated to its input. d -> d + value_size."""

    def __init__(self, d: int, key_size: int, value_size: int):
        super().__init__()
        self.query, self.key, self.value = nn.Linear(d, key_size), nn.Linear(d, key_size), nn.Linear(d, value_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, T, d) -> (N, T, d + value_size)
        return torch.cat([x, causal_attention(self.query(x), self.key(x), self.value(x))], dim=-1)


class DenseBlock(nn.Module):
    """A dilated causal convolution (kernel 2) with a gated activation, concatenated to its input.

    A kernel-2 convolution reads two positions, t - dilation and t: it is written as two linear maps,
    which run several times faster than Conv1d on short sequences on a CPU.
    """

    def __init__(self, d: int, dilation: int, filters: int):
        super().__init__()
        self.dilation = dilation
        self.now = nn.Linear(d, 2 * filters)  # the tanh and the sigmoid halves
        self.past = nn.Linear(d, 2 * filters, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, T, d) -> (N, T, d + filters)
        past = F.pad(x, (0, 0, self.dilation, 0))[:, :x.shape[1]]  # x[t - dilation], zeros before the start
        a, b = (self.now(x) + self.past(past)).chunk(2, dim=-1)  # (N, T, filters) each
        return torch.cat([x, torch.tanh(a) * torch.sigmoid(b)], dim=-1)


def tc_block(d: int, seq_len: int, filters: int) -> tuple[nn.Sequential, int]:
    """Dense blocks of dilation 1, 2, 4, ... until the receptive field covers `seq_len`; and the output width."""
    blocks = []
    for i in range(max(1, math.ceil(math.log2(seq_len)))):
        blocks.append(DenseBlock(d, 2 ** i, filters))
        d += filters
    return nn.Sequential(*blocks), d


class SNAILLearner(nn.Module):
    """attention / TC / attention / TC / attention / linear, as Mishra et al.'s Omniglot model.

    Their sizes: attention (64, 32), TC 128 filters, attention (256, 128), TC 128, attention (512, 256);
    `width` scales every size by width / 1 (width=0.25 keeps a step cheap on a CPU).
    (N, T, d_in) -> (N, T, n_out)
    """

    def __init__(self, d_in: int, n_out: int, seq_len: int, width: float = 1.0):
        super().__init__()
        size = lambda n: max(1, round(n * width))
        layers, d = [], d_in
        for kind, a, b in (("att", 64, 32), ("tc", 128, 0), ("att", 256, 128), ("tc", 128, 0), ("att", 512, 256)):
            if kind == "att":
                layers.append(AttentionBlock(d, size(a), size(b)))
                d += size(b)
            else:
                block, d = tc_block(d, seq_len, size(a))
                layers.append(block)
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(d, n_out)  # their 1x1 convolution

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(seq))


class LSTMLearner(nn.Module):
    """An LSTM over the sequence and a linear read-out at every position. (N, T, d_in) -> (N, T, n_out)"""

    def __init__(self, d_in: int, n_out: int, hidden: int = 128, layers: int = 2):
        super().__init__()
        self.lstm = nn.LSTM(d_in, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(seq)[0])


def query_loss(outputs: torch.Tensor, query_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy and accuracy read at the query position (the last) of each sequence only.

    ([B,] Q, S + 1, n_way), ([B,] Q) -> mean loss (scalar), accuracy (scalar). Support positions carry their
    own label as input: a loss there would teach copying, not learning.
    """
    logits = outputs[..., -1, :]  # ([B,] Q, n_way)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), query_y.reshape(-1))
    return loss, accuracy(logits, query_y).mean()


class BlackBox(Method):
    """A sequence learner over embedded support examples with their labels: `learner` "lstm" or "snail".

    `task="classification"`: conv4 embeddings (64-d) of images and one-hot labels of `n_way` classes.
    `task="regression"`: tokens (x, y) of the sinusoid tasks, the query's y zeroed; predicts y.
    `k_shot` sizes SNAIL's temporal convolutions (their receptive field covers n_way * k_shot + 1 steps).
    `normalize` layer-normalises the embeddings; `query_first` also shows the query before the support set.
    """

    def __init__(self, learner: str = "snail", n_way: int = 5, k_shot: int = 1, task: str = "classification",
                 width: float = 1.0, hidden: int = 128, layers: int = 2, shuffle: bool = True,
                 normalize: bool = False, query_first: bool = False):
        super().__init__()
        if learner not in {"lstm", "snail"}:
            raise ValueError(f"learner must be 'lstm' or 'snail', not {learner!r}")
        if task not in {"classification", "regression"}:
            raise ValueError(f"task must be 'classification' or 'regression', not {task!r}")
        classify = task == "classification"
        if normalize and not classify:
            raise ValueError("normalize applies to image embeddings; regression tokens are (x, y)")
        self.embed = conv4() if classify else nn.Identity()  # support and query pass it separately
        if normalize:
            self.embed = nn.Sequential(self.embed, nn.LayerNorm(64))
        self.n_way, self.metric, self.shuffle, self.query_first = n_way, "accuracy" if classify else "mse", shuffle, query_first
        d_in, n_out = (64 + n_way, n_way) if classify else (2, 1)
        self.learner = (SNAILLearner(d_in, n_out, n_way * k_shot + 1, width) if learner == "snail"
                        else LSTMLearner(d_in, n_out, hidden, layers))

    def sequences(self, episode: Episode) -> torch.Tensor:
        """The episode's sequences, ([B,] Q, S + 1, d + n_way); the support order is shuffled unless `shuffle` is off."""
        if self.metric == "accuracy" and episode.n_way != self.n_way:
            raise ValueError(f"this learner reads {self.n_way}-way labels, the episode is {episode.n_way}-way: "
                             f"train a learner with n_way={episode.n_way} for it")
        support_z, query_z = embed_images(self.embed, episode.support_x), embed_images(self.embed, episode.query_x)
        labels = self.n_way if self.metric == "accuracy" else 0
        seq = build_sequences(support_z, episode.support_y, query_z, labels, shuffle=self.shuffle)
        if self.query_first:  # the query, unlabelled, before the support set too: (.., Q, S + 2, d + n_way)
            seq = torch.cat([seq[..., -1:, :], seq], dim=-2)
        return seq

    def outputs(self, episode: Episode) -> torch.Tensor:
        """The learner's output at every position of every sequence: ([B,] Q, S + 1, n_way or 1)."""
        seq = self.sequences(episode)
        return self.learner(seq.reshape(-1, *seq.shape[-2:])).reshape(*seq.shape[:-1], -1)

    def predict(self, episode: Episode) -> torch.Tensor:
        """Logits (or predicted y) of the queries, read at the last position: ([B,] Q, n_way or 1)."""
        return self.outputs(episode)[..., -1, :]

    def loss(self, episode: Episode) -> tuple[torch.Tensor, float]:
        """Cross-entropy and accuracy (or MSE twice) of the queries, read at their own positions only."""
        if self.metric == "accuracy":
            loss, acc = query_loss(self.outputs(episode), episode.query_y)
            return loss, acc.item()
        loss = F.mse_loss(self.predict(episode), episode.query_y)
        return loss, loss.item()

    def score(self, episode: Episode) -> torch.Tensor:
        if self.metric == "accuracy":
            return super().score(episode)
        with torch.no_grad():
            return task_mse(self.predict(episode), episode.query_y).reshape(-1)
