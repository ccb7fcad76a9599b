"""Every method trains end to end through the engine and the command line on a tiny configuration."""

import dataclasses

import pytest
import torch

from mlcourse import configs
from mlcourse.__main__ import main
from mlcourse.data import EpisodeSampler
from mlcourse.engine import TrainConfig, load_checkpoint, train


def loss_falls(method, data, steps: int = 60):
    """The mean loss of the last 10 steps is well below that of the first 10 (a few seconds of training)."""
    torch.manual_seed(0)
    history = train(method, EpisodeSampler(data.images, 5, 1, 5, seed=0),
                    TrainConfig(steps=steps, outer_lr=3e-3, val_every=0), device="cpu", verbose=False)
    first, last = sum(history.loss[:10]), sum(history.loss[-10:])
    assert last < 0.8 * first, (first, last)


@pytest.mark.parametrize("name", sorted(configs.METHODS))
def test_engine_runs_each_method_end_to_end(name):
    config = configs.preset(name)
    config = dataclasses.replace(config, train=TrainConfig(steps=3, meta_batch_size=2, val_every=3, val_episodes=4))
    method, sampler, val_sampler = configs.build(config)
    history = train(method, sampler, config.train, val_sampler, device="cpu", verbose=False)
    assert len(history.loss) == 3 and len(history.val_metric) == 1 and 0 <= history.val_metric[0] <= 1


@pytest.mark.parametrize("full", [False, True])
def test_presets_build(full):
    for name in configs.METHODS:
        config = configs.preset(name, full=full)
        assert configs.from_dict(configs.to_dict(config)) == config


def test_command_line_trains_and_evaluates(tmp_path, capsys):
    ckpt = str(tmp_path / "run.pt")
    assert main(["train", "--method", "protonet", "--steps", "2", "--checkpoint", ckpt, "--device", "cpu"]) == 0
    assert load_checkpoint(ckpt)["step"] == 2
    assert main(["evaluate", "--checkpoint", ckpt, "--episodes", "5", "--device", "cpu"]) == 0
    assert "5-way 1-shot" in capsys.readouterr().out


def test_command_line_trains_a_bandit_player_and_says_evaluate_is_for_omniglot(tmp_path):
    ckpt = str(tmp_path / "rl2.pt")
    assert main(["train", "--method", "rl2", "--steps", "2", "--checkpoint", ckpt, "--device", "cpu"]) == 0
    with pytest.raises(SystemExit, match="bandit run"):
        main(["evaluate", "--checkpoint", ckpt, "--episodes", "5", "--device", "cpu"])


def test_full_mode_is_the_published_protonet_setting():
    config = configs.preset("protonet", full=True)
    assert (config.n_way, config.n_query, config.train.outer_lr, config.train.lr_halve_every) == (60, 5, 1e-3, 2000)


@pytest.mark.parametrize("name", sorted(configs.sinusoid_runs()))
def test_sinusoid_runs_train_through_the_engine(name):
    config = configs.sinusoid_runs()[name]
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=3, val_every=3, val_episodes=8))
    method, sampler, val_sampler = configs.build(config)
    history = train(method, sampler, config.train, val_sampler, device="cpu", verbose=False)
    assert method.metric == "mse" and len(history.loss) == 3 and history.val_metric[0] > 0


def test_full_mode_is_the_published_maml_setting():
    config = configs.preset("maml", full=True)
    kw = config.method_kwargs
    assert (config.n_way, config.k_shot, kw["inner_lr"], kw["inner_steps"], kw["test_inner_steps"]) == (5, 1, 0.4, 1, 3)
    assert (config.train.meta_batch_size, config.train.steps, config.train.outer_lr) == (32, 60000, 1e-3)
    assert configs.make_method(configs.preset("fomaml", full=True)).first_order


def test_an_unknown_optimizer_is_a_clear_error():
    method = configs.make_method(configs.preset("protonet"))
    with pytest.raises(ValueError, match="optimizer must be one of"):
        train(method, None, TrainConfig(steps=1, optimizer="adagrad"), device="cpu")
