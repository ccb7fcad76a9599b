"""The meta-training loop every method plugs into, evaluation with confidence intervals, checkpoints."""

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from mlcourse.data.episodes import EpisodeSampler
from mlcourse.methods.base import Method
from mlcourse.models import embed_images
from mlcourse.utils import get_device, keep_freed_memory, mean_ci, quiet


@dataclass
class TrainConfig:
    """Hyperparameters of meta-training (method-specific ones live in the method)."""

    steps: int = 2000  # meta-training iterations, one meta-batch each
    meta_batch_size: int = 1  # episodes averaged per step
    outer_lr: float = 1e-3  # learning rate of the outer optimizer
    optimizer: str = "adam"  # "adam", or "sgd" (plain steps: Reptile's theta + outer_lr * mean(phi - theta))
    lr_halve_every: int = 0  # halve the learning rate every this many steps (0: constant)
    val_every: int = 500  # validate every this many steps (0: never)
    val_episodes: int = 100  # validation episodes, the same ones each time
    checkpoint_every: int = 0  # also checkpoint every this many steps (0: at validations and the end)
    seed: int = 0  # seeds torch's global generator for the run


@dataclass
class History:
    """What happened during training, step by step."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    metric: list[float] = field(default_factory=list)  # training accuracy (or MSE) of each step
    val_step: list[int] = field(default_factory=list)
    val_metric: list[float] = field(default_factory=list)
    val_ci: list[float] = field(default_factory=list)
    wall_s: float = 0.0  # seconds spent training, the parts before a resume included


def episode_scores(method: Method, sampler, n_episodes: int = 600, batch: int = 20, device=None,
                   progress: bool = False) -> list[float]:
    """The score (accuracy, or MSE) of each of `n_episodes` episodes from `sampler`, in eval mode."""
    device = device or next(method.parameters(), torch.empty(0)).device
    keep_freed_memory()
    was_training = method.training
    method.eval()
    scores = []
    with tqdm(total=n_episodes, disable=quiet() or not progress, desc="evaluate") as bar:
        while len(scores) < n_episodes:
            size = min(batch, n_episodes - len(scores))
            scores += method.score(sampler.sample(size).to(device)).tolist()
            bar.update(size)
    method.train(was_training)
    return scores


def evaluate(method: Method, sampler, n_episodes: int = 600, batch: int = 20, device=None,
             progress: bool = False) -> tuple[float, float]:
    """Mean score (accuracy, or MSE) over `n_episodes` episodes and its 95% confidence interval."""
    return mean_ci(episode_scores(method, sampler, n_episodes, batch, device, progress))


def _validate(method, val_sampler, config, device) -> tuple[float, float]:
    """Score on the same validation episodes each time (the sampler's state is restored after)."""
    state = val_sampler.state_dict()
    result = evaluate(method, val_sampler, config.val_episodes, device=device)
    val_sampler.load_state_dict(state)
    return result


def save_checkpoint(path, method, optimizer, scheduler, sampler, history, step, config, extra):
    """Everything needed to resume exactly: weights, optimizer, random states, history, config."""
    state = {
        "step": step,
        "model": method.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "sampler": sampler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "history": dataclasses.asdict(history),
        "config": {"train": dataclasses.asdict(config), **(extra or {})},
    }
    save_atomically(state, path)


def save_atomically(state: dict, path) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves a half-written file at `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path) -> dict:
    """A checkpoint as a dict of plain tensors and numbers (no code is unpickled)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def make_optimizer(method: Method, config: TrainConfig) -> torch.optim.Optimizer:
    """The outer optimizer that `config` names."""
    optimizers = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}
    if config.optimizer not in optimizers:
        raise ValueError(f"optimizer must be one of {sorted(optimizers)}, not {config.optimizer!r}")
    return optimizers[config.optimizer](method.parameters(), lr=config.outer_lr)


def train(method: Method, sampler, config: TrainConfig, val_sampler=None, checkpoint=None,
          resume: bool = False, device=None, extra_config: dict | None = None,
          verbose: bool = True) -> History:
    """Meta-train `method` on episodes from `sampler`; resume from `checkpoint` when asked and present."""
    device = device or get_device()
    keep_freed_memory()
    method.to(device).train()
    optimizer = make_optimizer(method, config)
    halve = config.lr_halve_every or config.steps + 1
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=halve, gamma=0.5)
    history, start = History(), 0
    torch.manual_seed(config.seed)
    if resume and checkpoint and Path(checkpoint).is_file():
        state = load_checkpoint(checkpoint)
        method.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        sampler.load_state_dict(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        history, start = History(**state["history"]), state["step"]

    started, earlier = time.perf_counter(), history.wall_s

    def save(step):
        history.wall_s = earlier + time.perf_counter() - started
        if checkpoint:
            save_checkpoint(checkpoint, method, optimizer, scheduler, sampler, history, step, config, extra_config)

    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, disable=quiet(), desc="train")
    step, before_step = start, None
    try:
        for step in bar:
            before_step = sampler.state_dict(), torch.get_rng_state()  # an interrupted step is redone on resume
            loss, metric = method.loss(sampler.sample(config.meta_batch_size).to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            history.step.append(step + 1)
            history.loss.append(loss.item())
            history.metric.append(metric)
            bar.set_postfix(loss=f"{loss.item():.3f}", **{method.metric: f"{metric:.3f}"}, refresh=False)
            done = step + 1
            if val_sampler is not None and config.val_every and done % config.val_every == 0:
                mean, ci = _validate(method, val_sampler, config, device)
                history.val_step.append(done)
                history.val_metric.append(mean)
                history.val_ci.append(ci)
                if verbose:
                    bar.write(validation_line(history, -1, method.metric))
            if config.val_every and done % config.val_every == 0 or (
                    config.checkpoint_every and done % config.checkpoint_every == 0):
                save(done)
    except KeyboardInterrupt:
        if before_step is not None and len(history.step) == step:  # interrupted inside a step: back to the random states it started from
            sampler.load_state_dict(before_step[0])
            torch.set_rng_state(before_step[1])
        save(len(history.step))  # the last completed step: `resume=True` continues exactly from here
        raise
    finally:
        bar.close()
    save(config.steps)
    return history


def validation_line(history: History, i: int, metric: str = "accuracy") -> str:
    """Validation `i` of a run: its step, the mean training loss of the 100 steps before it, the score."""
    step = history.val_step[i]
    recent = history.loss[:step][-100:]
    return (f"step {step}: train loss {sum(recent) / len(recent):.3f}, "
            f"val {metric} {history.val_metric[i]:.4f} ± {history.val_ci[i]:.4f}")


def validation_report(history: History, metric: str = "accuracy") -> str:
    """Every validation of a run, one line each (what training printed as it went)."""
    return "\n".join(validation_line(history, i, metric) for i in range(len(history.val_step)))


# The four settings of the published Omniglot tables: (n_way, k_shot).
STANDARD_SETTINGS = ((5, 1), (5, 5), (20, 1), (20, 5))


def embed_all(method: Method, images: torch.Tensor, device=None, batch: int = 1000) -> torch.Tensor:
    """Every image embedded once, in eval mode: (n_classes, n_per_class, 1, 28, 28) -> (n_classes, n_per_class, d)."""
    device = device or next(method.parameters()).device
    was_training = method.training
    method.eval()
    flat = images.reshape(-1, *images.shape[2:])  # (n_classes * n_per_class, 1, 28, 28)
    with torch.no_grad():
        z = torch.cat([embed_images(method.embed, flat[i:i + batch].to(device)) for i in range(0, len(flat), batch)])
    method.train(was_training)
    return z.reshape(*images.shape[:2], -1)


def evaluate_settings(method: Method, images: torch.Tensor, settings=STANDARD_SETTINGS, n_episodes: int = 600,
                      seed: int = 0, device=None) -> dict:
    """Test accuracy (mean, 95% CI) for each (n_way, k_shot) setting, on the same seeded episodes each time.

    Queries: 15 per class for 5-way, 5 per class for 20-way (the mean is unbiased either way; fewer
    queries keep 20-way evaluation affordable on a CPU), fewer where K leaves fewer of a class's 20 images.
    Methods that embed each image on its own (chapters 2-5, in eval mode) get every image embedded once
    when the episodes read more images than there are, which gives the same predictions, faster.
    """
    scores = settings_scores(method, images, settings, n_episodes, seed, device)
    return {setting: mean_ci(s) for setting, s in scores.items()}


def settings_scores(method: Method, images: torch.Tensor, settings=STANDARD_SETTINGS, n_episodes: int = 600,
                    seed: int = 0, device=None) -> dict:
    """Each episode's accuracy for each (n_way, k_shot) setting: {(n_way, k_shot): [n_episodes floats]}.

    Every setting draws its episodes from `seed`, and whatever else is random in a prediction (a black box's
    support order) from torch's global generator seeded with `seed` too, restored afterwards: the same
    call gives the same scores, and its first episodes do not depend on `n_episodes`.
    """
    queries = {(n, k): min(15 if n <= 5 else 5, images.shape[1] - k) for n, k in settings}  # fewer where K leaves fewer
    images_read = n_episodes * sum(n * (k + q) for (n, k), q in queries.items())
    embed_once = hasattr(method, "embed") and images_read > images.shape[0] * images.shape[1]
    data = embed_all(method, images, device) if embed_once else images
    results = {}
    for n_way, k_shot in settings:
        sampler = EpisodeSampler(data, n_way, k_shot, queries[n_way, k_shot], seed=seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            results[n_way, k_shot] = episode_scores(method, sampler, n_episodes, device=device)
    return results
