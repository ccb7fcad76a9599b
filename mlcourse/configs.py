"""Run settings of each method, in quick mode (a 2-core CPU, minutes) and full mode (published, a GPU)."""

import dataclasses
import functools
from dataclasses import dataclass, field

from mlcourse.data import EpisodeSampler, SinusoidTasks, load_omniglot
from mlcourse.data.bandits import BanditTasks
from mlcourse.data.episodes import VaryingShotSampler
from mlcourse.data.pairs import PairSampler
from mlcourse.engine import TrainConfig
from mlcourse.methods.blackbox import BlackBox
from mlcourse.methods.maml import MAML, Reptile
from mlcourse.methods.matching import MatchingNet
from mlcourse.methods.protonet import ProtoNet
from mlcourse.methods.rl2 import RL2
from mlcourse.methods.siamese import SiameseNet

METHODS = {"protonet": ProtoNet, "matching": MatchingNet, "siamese": SiameseNet,
           "lstm": functools.partial(BlackBox, "lstm"), "snail": functools.partial(BlackBox, "snail"),
           "maml": MAML, "fomaml": functools.partial(MAML, first_order=True), "reptile": Reptile, "rl2": RL2}
BLACK_BOX_METHODS = {"lstm", "snail"}  # they read k_shot examples of each class in a sequence
SIZED_METHODS = {"maml", "fomaml", "reptile"} | BLACK_BOX_METHODS  # their output layer has n_way units


@dataclass
class RunConfig:
    """Everything that defines a meta-training run; stored in its checkpoints."""

    method: str = "protonet"  # a key of METHODS
    method_kwargs: dict = field(default_factory=dict)  # e.g. {"distance": "cosine"}
    data: str = "omniglot"  # "omniglot", "sinusoid" (regression tasks of MAML section 5.1), or "bandit" (chapter 8)
    split: str = "vinyals"  # "vinyals" (paper tables) or "lake"
    train_part: str = "train"  # "trainval" trains on the validation classes too (final runs)
    n_way: int = 5  # training episodes (Siamese: unused, it trains on pairs)
    k_shot: int = 1
    max_k_shot: int = 0  # > k_shot: each training step draws its K from k_shot..max_k_shot (0: always k_shot)
    n_query: int = 15  # (Reptile adapts on all k_shot + n_query examples of a class)
    val_n_way: int = 5  # validation episodes, on the split's validation classes
    val_k_shot: int = 1
    train: TrainConfig = field(default_factory=TrainConfig)


def rl2_bandits() -> RunConfig:
    """Chapter 8's meta-reinforcement learning: an LSTM player (RL^2) of two-armed Bernoulli bandits, 100 pulls.

    A2C on meta-batches of 128 games, Adam 3e-3, the entropy bonus falling to 0 over 1,200 steps; validation on
    500 games with the player's most likely arm at each pull.
    """
    return RunConfig("rl2", {"arms": 2, "pulls": 100}, data="bandit", n_way=2, k_shot=1, n_query=1,
                     train=TrainConfig(steps=1500, meta_batch_size=128, outer_lr=3e-3, val_every=250, val_episodes=500))


def preset(method: str, full: bool = False) -> RunConfig:
    """The course's settings for `method`: quick (CPU, minutes) or full (published, GPU)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    return (FULL if full else QUICK)[method]()


def reference_runs() -> dict[str, RunConfig]:
    """The reference runs, by name (the same in quick and full mode: they are made once, on the CPU or a GPU)."""
    return {name: make() for name, make in REFERENCE.items()}


REPTILE_KWARGS = {"inner_lr": 0.1, "inner_steps": 5, "test_inner_steps": 50, "inner_batch": 10}

QUICK = {
    # Snell et al. train with more ways than they test; 30-way 2-query (90 images a step) fits a
    # 2-core CPU's budget of about 3 minutes, and beat 20-way 3-query in a measured comparison.
    "protonet": lambda: RunConfig("protonet", n_way=30, k_shot=1, n_query=2,
                                  train=TrainConfig(steps=1500, outer_lr=2e-3, lr_halve_every=500, val_every=500)),
    "matching": lambda: RunConfig("matching", n_way=30, k_shot=1, n_query=2,
                                  train=TrainConfig(steps=1500, outer_lr=2e-3, lr_halve_every=500, val_every=500)),
    "siamese": lambda: RunConfig("siamese", train=TrainConfig(steps=1500, meta_batch_size=48, outer_lr=2e-3,
                                                              lr_halve_every=500, val_every=500)),
    # Black-box learners on 5-way 1-shot episodes with 3 queries per class, each query a sequence of its own.
    # SNAIL at half the paper's width, embeddings layer-normalised, the learning rate halved every 500 steps:
    # the best of the variants tuned on a GPU (benchmarks/blackbox_tuning.py, book/results.md). 1,500 steps
    # take 8 minutes on a 2-core CPU; the tuning runs reach 95% validation accuracy only at about 1,600.
    "snail": lambda: RunConfig("snail", method_kwargs={"width": 0.5, "normalize": True}, n_way=5, k_shot=1, n_query=3,
                               train=TrainConfig(steps=1500, meta_batch_size=16, outer_lr=1e-3, lr_halve_every=500,
                                                 val_every=250)),
    # The LSTM's best recipe in that sweep left chance only after about 3,000 steps: more than a CPU's minutes.
    "lstm": lambda: RunConfig("lstm", n_way=5, k_shot=1, n_query=3,
                              train=TrainConfig(steps=1400, meta_batch_size=16, outer_lr=1e-3, val_every=250)),
    # Finn et al.'s inner loop (one step of 0.4, three at test) on meta-batches of 8 tasks. Validation sweep
    # (benchmarks/tuning.py maml, 600 episodes, book/results.md): 15 queries per class reached in 4,000 steps the
    # 96.8% that 5 reached in 6,000, each step about twice as long; a halving learning rate was no better.
    "maml": lambda: RunConfig("maml", method_kwargs={"inner_lr": 0.4, "inner_steps": 1, "test_inner_steps": 3},
                              n_way=5, k_shot=1, n_query=5,
                              train=TrainConfig(steps=6000, meta_batch_size=8, outer_lr=1e-3, val_every=1000)),
    # the same, first order: its cheaper steps buy more of them in the same time (benchmarks/maml_cost.py)
    "fomaml": lambda: first_order(QUICK["maml"](), steps=8500),
    # Nichol et al.'s task shape (10 images per class, 5 inner steps of SGD on batches of 10 images, meta-batch 5), 50
    # test-time steps. The outer step hands theta - mean(phi) to Adam, which Nichol et al. mention as an alternative.
    # Validation sweep (benchmarks/tuning.py reptile, 1,500 steps, 200 episodes): batches of 10 reached 87.8% where
    # every step on all 50 images reached 70.0%, and Adam 87.8% where plain steps (epsilon = 1) reached 80.8%.
    "reptile": lambda: RunConfig("reptile", method_kwargs=dict(REPTILE_KWARGS), n_way=5, k_shot=1, n_query=9,
                                 train=TrainConfig(steps=4000, meta_batch_size=5, outer_lr=1e-3, val_every=500)),
    "rl2": rl2_bandits,
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
    # Mishra et al. 2018's Omniglot model at full width (5-way 1-shot). The paper does not state its number of
    # iterations or meta-batch size; 40,000 steps of 32 episodes here. Layer-normalised embeddings (not theirs).
    "snail": lambda: RunConfig("snail", train_part="trainval", method_kwargs={"normalize": True}, n_way=5, k_shot=1,
                               n_query=1, train=TrainConfig(steps=40000, meta_batch_size=32, outer_lr=1e-3,
                                                            val_every=2000, val_episodes=600)),
    # CS330's first homework: a 2-layer LSTM of 128 units, Adam 1e-3; 40,000 steps of 32 episodes here.
    "lstm": lambda: RunConfig("lstm", train_part="trainval", n_way=5, k_shot=1, n_query=1,
                              train=TrainConfig(steps=40000, meta_batch_size=32, outer_lr=1e-3, val_every=2000,
                                                val_episodes=600)),
    # Finn et al. 2017 (their code's Omniglot command): 5-way 1-shot, one inner step of 0.4 (three at
    # test), meta-batch 32, one query per class, Adam 1e-3, 60,000 iterations.
    "maml": lambda: RunConfig("maml", train_part="trainval", method_kwargs={"inner_lr": 0.4, "inner_steps": 1,
                                                                             "test_inner_steps": 3},
                              n_way=5, k_shot=1, n_query=1,
                              train=TrainConfig(steps=60000, meta_batch_size=32, outer_lr=1e-3, val_every=2000,
                                                val_episodes=600)),
    "fomaml": lambda: first_order(FULL["maml"]()),
    # Nichol et al. 2018, 5-way 1-shot: 10 examples per class in training tasks, 5 inner steps on batches of 10,
    # meta-batch 5, outer step 1.0, 100,000 iterations, 50 test steps. Deviations: SGD inner steps (theirs: Adam with
    # beta1 = 0), the outer step halved every 20,000 iterations (theirs: annealed linearly to 0).
    "reptile": lambda: RunConfig("reptile", train_part="trainval", method_kwargs=dict(REPTILE_KWARGS), n_way=5, k_shot=1,
                                 n_query=9, train=TrainConfig(steps=100000, meta_batch_size=5, outer_lr=1.0, optimizer="sgd",
                                                              lr_halve_every=20000, val_every=2000, val_episodes=600)),
    "rl2": rl2_bandits,  # minutes on a CPU: the same in both modes
}


# Reference runs: each learner trained as long as it needs (up to about 45 minutes on the 2-core CPU) to show
# what its family can do, beside the quick runs a reader retrains in minutes. Every recipe was chosen on
# validation classes; `python -m mlcourse runs NAME` trains one (checkpointed: `--resume` continues it).
REFERENCE = {
    # The LSTM sweep's best variant (benchmarks/blackbox_tuning.py): one layer of 256 units, the query shown
    # before the support set too, 3 queries per class. It left chance after about 4,000 steps in that sweep.
    "lstm-reference": lambda: RunConfig("lstm", method_kwargs={"hidden": 256, "layers": 1, "query_first": True},
                                        n_way=5, k_shot=1, n_query=3,
                                        train=TrainConfig(steps=10000, meta_batch_size=16, outer_lr=1e-3,
                                                          val_every=1000, checkpoint_every=250)),
    # SNAIL on episodes of every K from 1 to 5 (one K per step), so that it meets at training every sequence length it
    # will read at test: the quick run, trained at K = 1 only, reads 5-shot sequences worse than 1-shot ones. The quick
    # recipe otherwise, the learning rate halved every 1,000 steps instead of 500, twice the steps.
    "snail-reference": lambda: dataclasses.replace(QUICK["snail"](), max_k_shot=5, train=TrainConfig(
        steps=3000, meta_batch_size=16, outer_lr=1e-3, lr_halve_every=1000, val_every=250, checkpoint_every=250)),
    # The quick recipe with 128 pairs a step instead of 48 (Koch et al. use 128), twice the steps.
    "siamese-reference": lambda: dataclasses.replace(QUICK["siamese"](), train=TrainConfig(
        steps=3000, meta_batch_size=128, outer_lr=2e-3, lr_halve_every=1000, val_every=500, checkpoint_every=250)),
    # The quick run's recipe (validation sweep above), trained three times longer.
    "reptile-reference": lambda: dataclasses.replace(QUICK["reptile"](), train=TrainConfig(
        steps=12000, meta_batch_size=5, outer_lr=1e-3, val_every=1000, checkpoint_every=500)),
}


def first_order(config: RunConfig, **train_changes) -> RunConfig:
    """A MAML run's config made first-order MAML, with the same settings (and `train_changes`)."""
    return dataclasses.replace(config, method="fomaml", train=dataclasses.replace(config.train, **train_changes))


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


def sinusoid_config(method: str, method_kwargs: dict, k_shot: int, train: TrainConfig) -> RunConfig:
    """A run on MAML's sinusoid tasks: `k_shot` support points and 10 query points per task."""
    return RunConfig(method, method_kwargs, data="sinusoid", split="", train_part="", n_way=1, k_shot=k_shot,
                     n_query=10, val_n_way=1, val_k_shot=k_shot, train=train)


def sinusoid_runs(full: bool = False) -> dict[str, RunConfig]:
    """Chapter 6's regression runs (Finn et al. section 5.1): MAML at K = 5 and 10, and the pretrained baseline.

    Both use the 1-40-40-1 MLP, inner step 0.01, meta-batch 25, Adam 1e-3 (quick: 20,000 steps; the
    paper: 70,000). The baseline is MAML with no inner step: one network trained on every task's
    data at once, then fine-tuned at test time like MAML.
    """
    train = TrainConfig(steps=70000 if full else 20000, meta_batch_size=25, outer_lr=1e-3, val_every=5000)
    kwargs = {"inner_lr": 0.01, "inner_steps": 1, "test_inner_steps": 1, "hidden": 40}
    return {"maml-sinusoid-k5": sinusoid_config("maml", kwargs, 5, train),
            "maml-sinusoid-k10": sinusoid_config("maml", kwargs, 10, train),
            "pretrained-sinusoid": sinusoid_config("maml", {**kwargs, "inner_steps": 0}, 10, train)}


def black_box_runs(full: bool = False) -> dict[str, RunConfig]:
    """Chapter 5's runs beside the two learners: the prototypical network trained on SNAIL's episodes (the
    data-efficiency control), and SNAIL reading sinusoid tasks' (x, y) pairs at K = 5 and 10.

    The control stops at half of SNAIL's steps. The sinusoid runs use MAML's tasks (chapter 6): 10 query
    points, meta-batch 25, Adam 1e-3; SNAIL at a quarter of the paper's width (quick: 4,000 steps).
    """
    snail = preset("snail", full)
    control = dataclasses.replace(snail.train, steps=snail.train.steps // 2, val_every=snail.train.val_every // 2)
    train = TrainConfig(steps=40000 if full else 4000, meta_batch_size=25, outer_lr=1e-3,
                        lr_halve_every=10000 if full else 1500, val_every=10000 if full else 1000)
    return {"protonet-snail-episodes": dataclasses.replace(snail, method="protonet", method_kwargs={}, train=control),
            "snail-sinusoid-k5": sinusoid_config("snail", {"width": 0.25}, 5, train),
            "snail-sinusoid-k10": sinusoid_config("snail", {"width": 0.25}, 10, train)}


def make_method(config: RunConfig):
    """A fresh, untrained method of the kind and with the options that `config` names."""
    kwargs = dict(config.method_kwargs)
    if config.method in SIZED_METHODS:
        kwargs.setdefault("n_way", config.n_way)
        kwargs.setdefault("task", "regression" if config.data == "sinusoid" else "classification")
    if config.method in BLACK_BOX_METHODS:
        kwargs.setdefault("k_shot", max(config.k_shot, config.max_k_shot))  # the longest sequence it trains on
    return METHODS[config.method](**kwargs)


def build(config: RunConfig, seed: int = 0):
    """The method, its training sampler and its validation sampler for a run."""
    method = make_method(config)
    if config.data == "bandit":
        return (method, BanditTasks(method.arms, method.pulls, seed=seed),
                BanditTasks(method.arms, method.pulls, seed=seed + 1))
    if config.data == "sinusoid":
        return (method, SinusoidTasks(config.k_shot, config.n_query, seed=seed),
                SinusoidTasks(config.val_k_shot, config.n_query, seed=seed + 1))
    images = load_omniglot(config.split, config.train_part).images
    if config.method == "siamese":
        sampler = PairSampler(images, seed=seed)
    elif config.max_k_shot > config.k_shot:
        sampler = VaryingShotSampler(images, config.n_way, config.k_shot, config.max_k_shot, config.n_query, seed=seed)
    else:
        sampler = EpisodeSampler(images, config.n_way, config.k_shot, config.n_query, seed=seed)
    val_images = load_omniglot(config.split, "val").images
    val_sampler = EpisodeSampler(val_images, config.val_n_way, config.val_k_shot, 15, seed=seed + 1)
    return method, sampler, val_sampler


def to_dict(config: RunConfig) -> dict:
    return dataclasses.asdict(config)


def from_dict(d: dict) -> RunConfig:
    """The config stored as `d`; fields added to RunConfig since it was stored take their defaults."""
    return RunConfig(**{**d, "train": TrainConfig(**d["train"])})
