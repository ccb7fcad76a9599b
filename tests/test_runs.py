"""Committed runs are what the code makes, match the chapters' configs, and replay or retrain as promised."""

import dataclasses
import re
from pathlib import Path

import pytest
import torch

from mlcourse import configs, runs
from mlcourse.engine import TrainConfig, train
from mlcourse.utils import seed_everything

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = runs.registry(full=False)
FIRST_STEPS = 20


def stored(name: str) -> dict:
    return torch.load(runs.RUNS_DIR / f"{name}.pt", map_location="cpu", weights_only=True)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_each_run_is_committed_with_the_chapters_config(name):
    path = runs.RUNS_DIR / f"{name}.pt"
    assert path.is_file(), f"{path} is missing: run `make runs` (or `python -m mlcourse runs {name}`) and commit it"
    state = stored(name)
    stored_config = configs.to_dict(configs.from_dict(state["config"]))  # later fields: their defaults
    assert stored_config == configs.to_dict(REGISTRY[name]), f"{name} was made with other settings: `make runs`"
    assert len(state["history"]["loss"]) == REGISTRY[name].train.steps
    assert state["made"]["command"] == f"python -m mlcourse runs {name}"
    weights = sum(t.numel() * t.element_size() for t in state["model"].values())
    assert path.stat().st_size < weights + 600_000, "a finished run keeps weights and history only"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_the_first_steps_of_each_committed_run_are_reproduced_by_the_code(name):
    """Retrain the first steps from the stored config: a stale or hand-edited run fails here.

    Float rounding differs between CPUs, thread counts and kernels, and training amplifies it step by
    step (on another CPU, Reptile's loss moves by 1e-2 at step 2, the Siamese network's by 1e-2 by step
    10): the first loss (data, initial weights, loss function) is compared as it is, the first
    FIRST_STEPS (optimiser, learning rates) on their mean.
    """
    state = stored(name)
    config = REGISTRY[name]
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=FIRST_STEPS, val_every=0))
    seed_everything(config.train.seed)
    method, sampler, _ = configs.build(config, seed=config.train.seed)
    history = train(method, sampler, config.train, device="cpu", verbose=False)
    expected = state["history"]["loss"][:FIRST_STEPS]
    assert history.loss[0] == pytest.approx(expected[0], rel=1e-4, abs=1e-6), name
    mean = sum(history.loss) / FIRST_STEPS
    assert mean == pytest.approx(sum(expected) / FIRST_STEPS, rel=2e-2), name


def test_the_runs_folder_stays_small():
    total = sum(p.stat().st_size for p in runs.RUNS_DIR.glob("*.pt"))
    assert total < 30_000_000, f"{total / 1e6:.1f} MB of committed runs"  # 26 MB with the reference runs, 11 of them SNAIL


def test_a_run_on_varying_k_samples_every_k_and_sizes_its_learner_for_the_largest():
    config = configs.reference_runs()["snail-reference"]
    assert config.k_shot == 1 and config.max_k_shot == 5
    method = configs.make_method(config)
    tc = method.learner.body[1]  # its first temporal-convolution block: dilations up to the longest sequence
    assert [block.dilation for block in tc] == [1, 2, 4, 8, 16]  # 5 * 5 + 1 = 26 positions
    images = torch.rand(10, 20, 1, 28, 28)
    sampler = configs.VaryingShotSampler(images, 5, config.k_shot, config.max_k_shot, config.n_query)
    assert {sampler.sample(2).k_shot for _ in range(40)} == {1, 2, 3, 4, 5}


def test_the_chapters_replay_exactly_the_registered_runs():
    used = set()
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        used |= set(re.findall(r'runs\.replay\(\\?"([\w-]+)', notebook.read_text()))
    direct = {"siamese", "matching", "protonet"}  # replayed by name in the chapters; variants come from configs
    assert direct <= used, direct - used
    assert used <= set(REGISTRY), used - set(REGISTRY)


def test_full_mode_runs_are_kept_apart_from_the_committed_ones(monkeypatch, tmp_path):
    monkeypatch.setenv("MLCOURSE_RUNS", str(tmp_path))
    assert runs.run_path("protonet", full=True) == tmp_path / "protonet-full.pt"
    assert runs.run_path("protonet", full=False) == tmp_path / "protonet.pt"
    assert set(runs.registry(full=True)) == set(REGISTRY)


# Replay behaviour, on a tiny run in a scratch folder.

def tiny(steps: int = 2, lr: float = 1e-3) -> configs.RunConfig:
    return configs.RunConfig("protonet", n_way=5, k_shot=1, n_query=2,
                             train=TrainConfig(steps=steps, outer_lr=lr, val_every=0))


@pytest.fixture
def scratch_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("MLCOURSE_RUNS", str(tmp_path))
    monkeypatch.delenv("MLCOURSE_RETRAIN", raising=False)
    return tmp_path


def test_a_missing_run_is_trained_saved_then_replayed(scratch_runs, capsys):
    first = runs.replay("tiny", tiny(), device="cpu", full=False)
    assert not first.loaded and (scratch_runs / "tiny.pt").is_file()
    assert "training now (no finished run" in capsys.readouterr().out
    again = runs.replay("tiny", tiny(), device="cpu", full=False)
    out = capsys.readouterr().out
    assert again.loaded and "loaded the finished run made by `python -m mlcourse runs tiny`" in out
    assert again.history == first.history
    for a, b in zip(first.method.state_dict().values(), again.method.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())


def test_a_config_mismatch_never_loads_silently(scratch_runs, capsys):
    runs.replay("tiny", tiny(), device="cpu", full=False)
    capsys.readouterr()
    other = runs.replay("tiny", tiny(lr=1e-2), device="cpu", full=False)
    assert not other.loaded
    assert "made with other settings (train)" in capsys.readouterr().out
    assert stored_config(scratch_runs / "tiny.pt") == configs.to_dict(tiny(lr=1e-2))  # the new run replaced it


def test_retraining_is_done_when_asked(scratch_runs, monkeypatch, capsys):
    runs.replay("tiny", tiny(), device="cpu", full=False)
    assert not runs.replay("tiny", tiny(), retrain=True, device="cpu", full=False).loaded
    monkeypatch.setenv("MLCOURSE_RETRAIN", "1")
    assert not runs.replay("tiny", tiny(), device="cpu", full=False).loaded
    assert capsys.readouterr().out.count("retraining was asked for") == 2


def test_the_command_line_lists_and_trains_runs(scratch_runs, monkeypatch, capsys):
    from mlcourse.__main__ import main

    monkeypatch.setattr(runs, "registry", lambda full=False: {"tiny": tiny()})
    assert main(["runs", "--list"]) == 0
    assert "missing" in capsys.readouterr().out
    assert main(["runs", "tiny", "--device", "cpu"]) == 0
    assert runs.load_run("tiny").made["steps"] == 2
    with pytest.raises(SystemExit, match="unknown run"):
        main(["runs", "nope"])


def stored_config(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["config"]


def test_a_reference_run_is_never_trained_by_a_chapter(scratch_runs, monkeypatch, capsys):
    monkeypatch.setitem(configs.REFERENCE, "tiny-reference", tiny)
    monkeypatch.setenv("MLCOURSE_RETRAIN", "1")  # asks chapters to retrain their quick runs, not reference runs
    with pytest.raises(RuntimeError, match="python -m mlcourse runs tiny-reference"):
        runs.replay("tiny-reference", tiny(), device="cpu", full=False)
    runs.train_run("tiny-reference", tiny(), scratch_runs / "tiny-reference.pt", device="cpu", verbose=False)
    assert runs.replay("tiny-reference", tiny(), retrain=True, device="cpu", full=False).loaded
    with pytest.raises(RuntimeError, match="other settings"):
        runs.replay("tiny-reference", tiny(lr=1e-2), device="cpu", full=False)


def test_an_interrupted_command_line_run_resumes_exactly(scratch_runs, monkeypatch):
    config = tiny(steps=6)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, checkpoint_every=1))
    whole = runs.train_run("whole", config, scratch_runs / "whole.pt", device="cpu", verbose=False)
    build, calls = configs.build, []

    def interrupted_build(config, seed=0):
        method, sampler, val_sampler = build(config, seed)
        loss = method.loss

        def stop_at_the_fourth_step(episode):
            calls.append(1)
            if len(calls) == 4:
                raise KeyboardInterrupt
            return loss(episode)
        method.loss = stop_at_the_fourth_step
        return method, sampler, val_sampler

    checkpoint = scratch_runs / "checkpoints" / "part.pt"
    monkeypatch.setattr(configs, "build", interrupted_build)
    with pytest.raises(KeyboardInterrupt):
        runs.train_run("part", config, scratch_runs / "part.pt", device="cpu", verbose=False, checkpoint=checkpoint)
    assert checkpoint.is_file() and not (scratch_runs / "part.pt").exists()
    resumed = runs.train_run("part", config, scratch_runs / "part.pt", device="cpu", verbose=False,
                             checkpoint=checkpoint, resume=True)
    assert resumed.history.loss == whole.history.loss
    assert not checkpoint.exists(), "the checkpoint is removed once the finished run is saved"
    assert resumed.made["wall_s"] >= 0 and resumed.history.wall_s > 0
