"""Run settings of each method, in quick mode (a 2-core CPU, minutes) and full mode (published, a GPU)."""

import dataclasses
from dataclasses import dataclass, field

from mlcourse.data import EpisodeSampler, load_omniglot
from mlcourse.data.pairs import PairSampler
from mlcourse.engine import TrainConfig
from mlcourse.methods.matching import MatchingNet
from mlcourse.methods.protonet import ProtoNet
from mlcourse.methods.siamese import SiameseNet

METHODS = {"protonet": ProtoNet, "matching": MatchingNet, "siamese": SiameseNet}


@dataclass
class RunConfig:
    """Everything that defines a meta-training run; stored in its checkpoints."""

    method: str = "protonet"  # a key of METHODS
    method_kwargs: dict = field(default_factory=dict)  # e.g. {"distance": "cosine"}
    split: str = "vinyals"  # "vinyals" (paper tables) or "lake"
    train_part: str = "train"  # "trainval" trains on the validation classes too (final runs)
    n_way: int = 5  # training episodes (Siamese: unused, it trains on pairs)
    k_shot: int = 1
    n_query: int = 15
    val_n_way: int = 5  # validation episodes, on the split's validation classes
    val_k_shot: int = 1
    train: TrainConfig = field(default_factory=TrainConfig)


def preset(method: str, full: bool = False) -> RunConfig:
    """The course's settings for `method`: quick (CPU, minutes) or full (published, GPU)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    return (FULL if full else QUICK)[method]()


QUICK = {
    # Snell et al. train with more ways than they test; 30-way 2-query (90 images a step) fits a
    # 2-core CPU's budget of about 3 minutes, and beat 20-way 3-query in a measured comparison.
    "protonet": lambda: RunConfig("protonet", n_way=30, k_shot=1, n_query=2,
                                  train=TrainConfig(steps=1500, outer_lr=2e-3, lr_halve_every=500, val_every=500)),
    "matching": lambda: RunConfig("matching", n_way=30, k_shot=1, n_query=2,
                                  train=TrainConfig(steps=1500, outer_lr=2e-3, lr_halve_every=500, val_every=500)),
    "siamese": lambda: RunConfig("siamese", train=TrainConfig(steps=1500, meta_batch_size=48, outer_lr=2e-3,
                                                              lr_halve_every=500, val_every=500)),
}

FULL = {
    # Snell et al. 2017: 60-way 5-query episodes, Adam 1e-3 halved every 2000 episodes, train + val classes.
    "protonet": lambda: RunConfig("protonet", train_part="trainval", n_way=60, k_shot=1, n_query=5,
                                  train=TrainConfig(steps=20000, outer_lr=1e-3, lr_halve_every=2000,
                                                    val_every=1000, val_episodes=600)),
    # Vinyals et al. 2016: episodes like the test episodes (5-way 1-shot here); full context embeddings
    # are left off, as in the paper's Omniglot table (it reports them for miniImageNet only).
    "matching": lambda: RunConfig("matching", train_part="trainval", n_way=5, k_shot=1,
                                  n_query=15, train=TrainConfig(steps=20000, meta_batch_size=32, outer_lr=1e-3,
                                                                lr_halve_every=5000, val_every=1000,
                                                                val_episodes=600)),
    # Koch et al. 2015 train on verification pairs (their deeper net and affine distortions are not reproduced).
    "siamese": lambda: RunConfig("siamese", train_part="trainval",
                                 train=TrainConfig(steps=30000, meta_batch_size=128, outer_lr=1e-3,
                                                   lr_halve_every=5000, val_every=1000, val_episodes=600)),
}


def fce_comparison(config: RunConfig, full: bool = False) -> dict[str, RunConfig]:
    """Chapter 3's short runs of a matching network without and with full context embeddings."""
    short = TrainConfig(steps=5000 if full else 300, outer_lr=config.train.outer_lr, val_every=0)
    return {"matching-short": dataclasses.replace(config, method_kwargs={}, train=short),
            "matching-fce-short": dataclasses.replace(config, method_kwargs={"full_context": True}, train=short)}


def protonet_ablations(config: RunConfig) -> dict[str, RunConfig]:
    """Chapter 4's short runs: the recipe, cosine instead of squared Euclidean, 5-way training episodes.

    Each trains for a third of the recipe's steps on as many images per step as the recipe.
    """
    short = dataclasses.replace(config.train, steps=config.train.steps // 3, val_every=0)
    images_per_class = config.n_way * (config.k_shot + config.n_query) // 5  # 5-way episodes, same image count
    return {
        "protonet-short": dataclasses.replace(config, train=short),
        "protonet-cosine-short": dataclasses.replace(config, method_kwargs={"distance": "cosine"}, train=short),
        "protonet-5way-short": dataclasses.replace(config, n_way=5, n_query=images_per_class - config.k_shot,
                                                   train=short),
    }


def make_method(config: RunConfig):
    """A fresh, untrained method of the kind and with the options that `config` names."""
    return METHODS[config.method](**config.method_kwargs)


def build(config: RunConfig, seed: int = 0):
    """The method, its training sampler and its validation sampler for a run."""
    method = make_method(config)
    images = load_omniglot(config.split, config.train_part).images
    if config.method == "siamese":
        sampler = PairSampler(images, seed=seed)
    else:
        sampler = EpisodeSampler(images, config.n_way, config.k_shot, config.n_query, seed=seed)
    val_images = load_omniglot(config.split, "val").images
    val_sampler = EpisodeSampler(val_images, config.val_n_way, config.val_k_shot, 15, seed=seed + 1)
    return method, sampler, val_sampler


def to_dict(config: RunConfig) -> dict:
    return dataclasses.asdict(config)


def from_dict(d: dict) -> RunConfig:
    return RunConfig(**{**d, "train": TrainConfig(**d["train"])})
