"""The training loop: it learns, it resumes exactly, and evaluation reports a 95% interval."""

import pytest
import torch

from mlcourse.data import EpisodeSampler
from mlcourse.engine import TrainConfig, evaluate, load_checkpoint, train
from mlcourse.methods import PixelNearestNeighbour
from mlcourse.methods.protonet import ProtoNet
from mlcourse.models import conv4


def tiny_method():
    torch.manual_seed(0)
    return ProtoNet(conv4(hidden=8))


def samplers(images) -> dict:
    return {"sampler": EpisodeSampler(images[:3000], 5, 1, 3, seed=1),
            "val_sampler": EpisodeSampler(images[3000:], 5, 1, 3, seed=2)}


def test_resume_gives_the_same_numbers_as_an_uninterrupted_run(vinyals_train, tmp_path):
    config = TrainConfig(steps=12, meta_batch_size=2, outer_lr=1e-2, lr_halve_every=5, val_every=4, val_episodes=6)
    whole_method = tiny_method()
    whole = train(whole_method, config=config, **samplers(vinyals_train.images), device="cpu", verbose=False)

    part_method, ckpt = tiny_method(), tmp_path / "run.pt"
    first = TrainConfig(**{**config.__dict__, "steps": 8})
    # an "interrupted" run: stops after 8 of 12 steps, then a fresh process resumes
    train(part_method, config=first, **samplers(vinyals_train.images), checkpoint=ckpt, device="cpu", verbose=False)
    resumed_method = tiny_method()
    resumed = train(resumed_method, config=config, **samplers(vinyals_train.images), checkpoint=ckpt, resume=True,
                    device="cpu", verbose=False)
    assert resumed.loss == whole.loss and resumed.val_metric == whole.val_metric
    for a, b in zip(whole_method.state_dict().values(), resumed_method.state_dict().values()):
        assert torch.equal(a, b)
    state = load_checkpoint(ckpt)
    assert state["step"] == 12 and state["config"]["train"]["steps"] == 12


def test_keyboard_interrupt_saves_a_resumable_checkpoint(vinyals_train, tmp_path):
    class Interrupting(ProtoNet):
        calls = 0

        def loss(self, episode):
            Interrupting.calls += 1
            if Interrupting.calls == 6:
                raise KeyboardInterrupt
            return super().loss(episode)

    torch.manual_seed(0)
    method, ckpt = Interrupting(conv4(hidden=8)), tmp_path / "run.pt"
    try:
        train(method, config=TrainConfig(steps=10, val_every=0), **samplers(vinyals_train.images), checkpoint=ckpt,
              device="cpu", verbose=False)
    except KeyboardInterrupt:
        pass
    assert load_checkpoint(ckpt)["step"] == 5


def test_training_learns(vinyals_train):
    torch.manual_seed(0)
    method = ProtoNet(conv4(hidden=32))
    train_s, val_s = samplers(vinyals_train.images).values()
    before, _ = evaluate(method, val_s, 100)
    train(method, train_s, TrainConfig(steps=150, outer_lr=3e-3, val_every=0), device="cpu", verbose=False)
    after, ci = evaluate(method, val_s, 100)
    assert after > before + 0.1 and after > 0.75, (before, after)


def test_evaluate_reports_mean_and_interval(numbered_images):
    # pixels hold image ids (class * 100 + drawing): the nearest support image is always of the query's class
    mean, ci = evaluate(PixelNearestNeighbour(), EpisodeSampler(numbered_images, 5, 1, 5, seed=0), 50)
    assert mean == 1.0 and ci == 0.0


def test_evaluating_on_precomputed_embeddings_matches_evaluating_on_images(vinyals_train):
    from mlcourse.engine import evaluate_settings

    method = tiny_method()
    images = vinyals_train.images[:200]
    fast = evaluate_settings(method, images, settings=((5, 1), (20, 5)), n_episodes=30)
    for (n_way, k_shot), (mean, _) in fast.items():
        sampler = EpisodeSampler(images, n_way, k_shot, n_query=15 if n_way <= 5 else 5, seed=0)
        assert evaluate(method, sampler, 30)[0] == pytest.approx(mean, abs=1e-9)


def test_the_validation_report_repeats_what_training_printed(vinyals_train, capsys):
    from mlcourse.engine import validation_report

    config = TrainConfig(steps=6, outer_lr=1e-2, val_every=3, val_episodes=4)
    history = train(tiny_method(), config=config, **samplers(vinyals_train.images), device="cpu", verbose=True)
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step")]
    assert validation_report(history).splitlines() == printed and len(printed) == 2
