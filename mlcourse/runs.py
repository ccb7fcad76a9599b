"""Finished training runs that the chapters replay: trained once, committed, loaded by default.

A chapter asks for a run by name and passes the config it shows. When a committed run of that
name exists and was made with exactly that config, it is loaded (weights and history); otherwise,
or when retraining is asked for (`MLCOURSE_RETRAIN=1` or `retrain=True`), it is trained now and
saved. `python -m mlcourse runs` (`make runs`) retrains every run that the chapters use.

Reference runs (`configs.REFERENCE`) train for up to about 45 minutes: a chapter replays them but
never trains one itself; they are made on the command line, checkpointed as they go.
"""

import dataclasses
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from mlcourse import configs
from mlcourse.configs import RunConfig
from mlcourse.data.omniglot import cache_dir
from mlcourse.engine import History, load_checkpoint, save_atomically, train
from mlcourse.methods.base import Method
from mlcourse.utils import full_mode, get_device, seed_everything, truthy_env

RUNS_DIR = Path(__file__).resolve().parents[1] / "notebooks" / "runs"


@dataclass
class Run:
    """A finished run: the trained method, what happened while it trained, and how it was made."""

    name: str
    method: Method
    history: History
    made: dict  # steps, wall time, device, torch version, command, date
    loaded: bool  # True when replayed from the committed file, False when trained just now
    config: RunConfig | None = None  # the settings it was made with
    path: Path | None = None  # its file


def registry(full: bool = False) -> dict[str, RunConfig]:
    """Every run a chapter shows, by name (quick mode, or the full-mode settings)."""
    runs = {name: configs.preset(name, full) for name in ("siamese", "matching", "protonet")}
    runs.update(configs.fce_comparison(runs["matching"], full))
    runs.update(configs.protonet_ablations(runs["protonet"]))
    runs.update({name: configs.preset(name, full) for name in ("lstm", "snail", "maml", "fomaml", "reptile", "rl2")})
    runs.update(configs.sinusoid_runs(full))
    runs.update(configs.black_box_runs(full))
    runs.update(configs.reference_runs())
    return runs


def is_reference(name: str) -> bool:
    """True for a reference run: trained on the command line only, never silently by a chapter."""
    return name in configs.REFERENCE


def runs_dir() -> Path:
    """Where finished runs live: $MLCOURSE_RUNS, else `notebooks/runs/` of this checkout."""
    return Path(os.environ.get("MLCOURSE_RUNS") or RUNS_DIR)


def run_path(name: str, full: bool | None = None) -> Path:
    """The file of run `name`; full-mode runs are kept apart from the committed quick-mode ones."""
    full = full_mode() if full is None else full
    return runs_dir() / f"{name}{'-full' if full else ''}.pt"


def retrain_requested() -> bool:
    """True when $MLCOURSE_RETRAIN asks every chapter to train its runs from scratch."""
    return truthy_env("MLCOURSE_RETRAIN")


def replay(name: str, config: RunConfig, retrain: bool = False, device=None, full: bool | None = None) -> Run:
    """Run `name` loaded from its committed file when its config equals `config`; else trained now and saved."""
    if is_reference(name):
        return replay_reference(name, config, device)
    path = run_path(name, full)
    retrain = retrain or retrain_requested()
    state = None if retrain or not path.is_file() else load_checkpoint(path)  # the file is read once, here
    reason = _why_train(state, path, config, retrain)
    if reason is None:
        run = _from_state(name, state, device, path)
        print(f"{name}: loaded the finished run made by `{run.made['command']}` "
              f"({_describe(run.made)}); MLCOURSE_RETRAIN=1 trains it again")
        return run
    print(f"{name}: training now ({reason})")
    return train_run(name, config, path, device)


def replay_reference(name: str, config: RunConfig, device=None) -> Run:
    """Reference run `name`, loaded; an error that says how to make it when it is missing or made otherwise."""
    path = run_path(name, full=False)
    state = load_checkpoint(path) if path.is_file() else None
    reason = _why_train(state, path, config, retrain=False)
    if reason is not None:
        raise RuntimeError(f"{name} is a reference run, trained for up to 45 minutes, and cannot be replayed: {reason}. "
                           f"Train it on the command line: python -m mlcourse runs {name} (--resume continues it)")
    run = _from_state(name, state, device, path)
    print(f"{name}: loaded the reference run made by `{run.made['command']}` ({_describe(run.made)})")
    return run


def checkpoint_path(name: str) -> Path:
    """Where a run being trained on the command line is checkpointed (the user cache, never the repository)."""
    return cache_dir() / "checkpoints" / f"{name}.pt"


def _why_train(state: dict | None, path: Path, config: RunConfig, retrain: bool) -> str | None:
    """Why the run stored at `path` (`state`, None when not read) cannot be replayed for `config` (None: it can)."""
    if retrain:
        return "retraining was asked for"
    if state is None:
        return f"no finished run at {path}"
    stored = configs.to_dict(configs.from_dict(state["config"]))  # settings added since take their defaults
    wanted = configs.to_dict(config)
    if stored != wanted:
        changed = sorted(k for k in wanted if stored.get(k) != wanted[k])
        return f"the stored run was made with other settings ({', '.join(changed)})"
    return None


def train_run(name: str, config: RunConfig, path: Path | None = None, device=None, verbose: bool = True,
              checkpoint: Path | None = None, resume: bool = False) -> Run:
    """Train `config` from scratch (seeded as in the chapters) and save it as a finished run.

    With `checkpoint`, training state is saved there as it goes (config.train.checkpoint_every) and
    `resume=True` continues from it exactly; the checkpoint is deleted once the run is saved.
    """
    device = get_device(device)
    seed_everything(config.train.seed)
    method, sampler, val_sampler = configs.build(config, seed=config.train.seed)
    history = train(method, sampler, config.train, val_sampler, checkpoint=checkpoint, resume=resume, device=device,
                    verbose=verbose)
    made = {
        "command": f"python -m mlcourse runs {name}" + (" --full" if path and path.stem.endswith("-full") else ""),
        "steps": config.train.steps,
        "wall_s": round(history.wall_s, 1),  # a resumed run counts its earlier parts too
        "device": _device_name(device),
        "torch": str(torch.__version__),
        "date": time.strftime("%Y-%m-%d"),
        "load": round(os.getloadavg()[0], 1),  # other work on the machine slows the wall time above
    }
    path = path or run_path(name)
    save_run(path, method, history, config, made)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    return Run(name, method, history, made, loaded=False, config=config, path=path)


def save_run(path: Path, method: Method, history: History, config: RunConfig, made: dict) -> None:
    """A finished run as one small file: weights, history, config, how it was made (no optimizer state)."""
    save_atomically({"model": {k: v.detach().cpu() for k, v in method.state_dict().items()},
                     "history": dataclasses.asdict(history), "config": configs.to_dict(config), "made": made}, path)


def load_run(name: str, path: Path | None = None, device=None) -> Run:
    """The finished run `name` as saved (plain tensors and numbers only: nothing is unpickled)."""
    path = path or run_path(name)
    return _from_state(name, load_checkpoint(path), device, path)


def _from_state(name: str, state: dict, device=None, path: Path | None = None) -> Run:
    config = configs.from_dict(state["config"])
    method = configs.make_method(config)
    method.load_state_dict(state["model"])
    method.to(get_device(device))
    return Run(name, method, History(**state["history"]), state["made"], loaded=True, config=config, path=path)


def _describe(made: dict) -> str:
    load = f", load {made['load']}" if "load" in made else ""
    return f"{made['steps']} steps, {made['wall_s'] / 60:.1f} min on {made['device']}{load}, torch {made['torch']}"


def _device_name(device) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
