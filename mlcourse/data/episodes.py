"""Episodes: N-way K-shot classification tasks drawn from a class-indexed tensor of images."""

from dataclasses import dataclass, fields, replace

import torch


@dataclass
class Episode:
    """One task (or a batch of tasks, with a leading meta_batch_size dimension).

    Support and query are ordered class by class: `support_x.view(n_way, k_shot, ...)` works.
    """

    support_x: torch.Tensor  # ([B,] n_way * k_shot, 1, 28, 28)
    support_y: torch.Tensor  # ([B,] n_way * k_shot) int64 in 0..n_way-1
    query_x: torch.Tensor  # ([B,] n_way * n_query, 1, 28, 28)
    query_y: torch.Tensor  # ([B,] n_way * n_query)
    n_way: int
    k_shot: int
    n_query: int
    classes: torch.Tensor | None = None  # ([B,] n_way) the split's class indices, for classification
    params: torch.Tensor | None = None  # ([B,] 2) amplitude and phase, for sinusoid regression
    batched: bool = False  # True when every tensor has a leading meta_batch_size dimension

    def to(self, device) -> "Episode":
        """The same episode with every tensor on `device`."""
        moved = {f.name: getattr(self, f.name).to(device) for f in fields(self)
                 if isinstance(getattr(self, f.name), torch.Tensor)}
        return replace(self, **moved)

    def __getitem__(self, i: int) -> "Episode":
        """Episode `i` of a batch."""
        if not self.batched:
            raise TypeError("this episode is not a batch; only batches of episodes can be indexed")
        picked = {f.name: getattr(self, f.name)[i] for f in fields(self)
                  if isinstance(getattr(self, f.name), torch.Tensor)}
        return replace(self, **picked, batched=False)

    def __len__(self) -> int:
        return self.support_y.shape[0] if self.batched else 1


def stack_episodes(episodes: list[Episode]) -> Episode:
    """A batch from a list of same-sized episodes (adds the meta_batch_size dimension)."""
    first = episodes[0]
    stacked = {f.name: torch.stack([getattr(e, f.name) for e in episodes]) for f in fields(first)
               if isinstance(getattr(first, f.name), torch.Tensor)}
    return replace(first, **stacked, batched=True)


class SeededSampler:
    """A sampler of tasks whose randomness is one torch.Generator, saved and restored for exact resume."""

    def __init__(self, seed: int):
        self.generator = torch.Generator().manual_seed(seed)

    def _one(self) -> Episode:
        raise NotImplementedError

    def sample(self, meta_batch_size: int | None = None) -> Episode:
        """One episode, or a batch of `meta_batch_size` episodes stacked on a new first dimension."""
        if meta_batch_size is None:
            return self._one()
        return stack_episodes([self._one() for _ in range(meta_batch_size)])

    def state_dict(self) -> dict:
        """The random state, so that a resumed run draws the same episodes."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


class EpisodeSampler(SeededSampler):
    """Draws N-way K-shot episodes with `n_query` queries per class from `images`.

    Each episode picks `n_way` distinct classes, then `k_shot + n_query` distinct drawings of each,
    so support and query never share an image; labels are the class's position in the episode.
    Indexing one in-memory tensor keeps sampling far cheaper than a training step.
    """

    def __init__(self, images: torch.Tensor, n_way: int, k_shot: int, n_query: int, seed: int = 0):
        n_classes, n_per_class = images.shape[:2]  # images: (n_classes, n_per_class, ...)
        if not 1 <= n_way <= n_classes:
            raise ValueError(f"n_way={n_way} needs between 1 and {n_classes} classes (the number in this split)")
        if k_shot < 1 or n_query < 0 or k_shot + n_query > n_per_class:
            raise ValueError(f"k_shot={k_shot} + n_query={n_query} must be at most the {n_per_class} images "
                             "per class, with k_shot >= 1 and n_query >= 0")
        super().__init__(seed)
        self.images, self.n_way, self.k_shot, self.n_query = images, n_way, k_shot, n_query

    def _one(self) -> Episode:
        n_classes, n_per_class = self.images.shape[:2]
        g, k = self.generator, self.k_shot
        classes = torch.randperm(n_classes, generator=g)[: self.n_way]  # (n_way,)
        drawings = torch.rand(self.n_way, n_per_class, generator=g).argsort(dim=1)[:, : k + self.n_query]
        x = self.images[classes[:, None], drawings]  # (n_way, k_shot + n_query, 1, 28, 28)
        labels = torch.arange(self.n_way)
        return Episode(
            support_x=x[:, :k].reshape(-1, *x.shape[2:]),  # (n_way * k_shot, 1, 28, 28)
            support_y=labels.repeat_interleave(k),
            query_x=x[:, k:].reshape(-1, *x.shape[2:]),  # (n_way * n_query, 1, 28, 28)
            query_y=labels.repeat_interleave(self.n_query),
            n_way=self.n_way, k_shot=k, n_query=self.n_query,
            classes=classes,
        )


class VaryingShotSampler(EpisodeSampler):
    """Episodes whose K is drawn uniformly from `k_shot..max_k_shot` for each meta-batch (one K per batch,
    so that its episodes stack). Trains a learner for every K it will meet at test time."""

    def __init__(self, images: torch.Tensor, n_way: int, k_shot: int, max_k_shot: int, n_query: int, seed: int = 0):
        if max_k_shot < k_shot:
            raise ValueError(f"max_k_shot={max_k_shot} must be at least k_shot={k_shot}")
        super().__init__(images, n_way, max_k_shot, n_query, seed)  # checks that the largest K fits
        self.min_k_shot, self.max_k_shot = k_shot, max_k_shot

    def sample(self, meta_batch_size: int | None = None) -> Episode:
        self.k_shot = int(torch.randint(self.min_k_shot, self.max_k_shot + 1, (), generator=self.generator))
        return super().sample(meta_batch_size)
