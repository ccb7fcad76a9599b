"""Stored test evaluations are what the code computes for the committed runs, and are never reused for other weights."""

import json

import pytest
import torch

from mlcourse import configs, evaluations, runs
from mlcourse.engine import TrainConfig, settings_scores

FIRST_EPISODES = 20
FIRST_SHIFTED_EPISODES = 5  # chapter 8 stores 16 shifted evaluations per learner: fewer each keeps the suite short
STORE = runs.RUNS_DIR / evaluations.STORE
STORED = evaluations.read_store(STORE)


def test_every_stored_evaluation_belongs_to_a_committed_run_as_it_is_now():
    assert STORED, f"{STORE} is missing: execute the chapters (they store the evaluations they make)"
    for file_name, entry in STORED.items():
        path = runs.RUNS_DIR / file_name
        assert path.is_file(), f"{file_name} has stored evaluations but no committed run"
        assert entry["sha256"] == evaluations.file_sha256(path), f"{file_name} changed after it was evaluated"
        for key, scores in entry["scores"].items():
            assert len(scores) == evaluations.parse_key(key)["n_episodes"], key


@pytest.mark.parametrize("file_name", sorted(STORED))
def test_the_first_episodes_of_each_stored_evaluation_are_reproduced_by_the_code(file_name):
    run = runs.load_run(file_name.removesuffix(".pt"), runs.RUNS_DIR / file_name, device="cpu")
    by_data = {}
    for key, scores in STORED[file_name]["scores"].items():
        k = evaluations.parse_key(key)
        data = (k["split"], k["part"], k["seed"], k["shift"], k["test_inner_steps"])
        by_data.setdefault(data, []).append(((k["n_way"], k["k_shot"]), scores))
    for (split, part, seed, shift, steps), stored in by_data.items():
        first = FIRST_EPISODES if shift is None else FIRST_SHIFTED_EPISODES
        again = evaluations.compute_scores(run.method, split, part, [s for s, _ in stored], first, seed, shift, steps)
        for setting, scores in stored:
            difference = torch.tensor(again[setting]) - torch.tensor(scores[:first])
            # float noise between CPUs can flip a near tie (one query of 75 or 100); changed code or weights move many
            assert difference.abs().max() <= 0.034 and difference.abs().mean() <= 0.005, (file_name, setting, shift)


def tiny_run(folder, lr: float = 1e-3):
    config = configs.RunConfig("protonet", n_way=5, k_shot=1, n_query=2,
                               train=TrainConfig(steps=2, outer_lr=lr, val_every=0))
    return runs.train_run("tiny", config, folder / "tiny.pt", device="cpu", verbose=False)


def test_an_evaluation_is_computed_once_then_read_and_dropped_when_the_run_changes(tmp_path, monkeypatch):
    run = tiny_run(tmp_path)
    first = evaluations.evaluate_run(run, [(5, 1), (5, 5)], n_episodes=30)
    stored = json.loads((tmp_path / evaluations.STORE).read_text())
    assert set(stored["tiny.pt"]["scores"]) == {"vinyals/test 5-way 1-shot, 30 episodes, seed 0",
                                                "vinyals/test 5-way 5-shot, 30 episodes, seed 0"}
    computed = []
    monkeypatch.setattr(evaluations, "settings_scores", lambda *a, **k: computed.append(a) or settings_scores(*a, **k))
    assert evaluations.evaluate_run(run, [(5, 5)], n_episodes=30)[5, 5] == first[5, 5] and not computed
    evaluations.evaluate_run(run, [(20, 1)], n_episodes=30)
    assert [a[2] for a in computed] == [[(20, 1)]], "only the missing setting is computed"

    retrained = tiny_run(tmp_path, lr=1e-2)  # the same file name, other weights
    computed.clear()
    evaluations.evaluate_run(retrained, [(5, 1)], n_episodes=30)
    assert computed, "a changed run is evaluated again"
    assert list(json.loads((tmp_path / evaluations.STORE).read_text())["tiny.pt"]["scores"]) == [
        "vinyals/test 5-way 1-shot, 30 episodes, seed 0"], "the old run's evaluations are dropped"


def test_scores_do_not_depend_on_the_global_generator_nor_change_it(vinyals_train):
    run_method = configs.make_method(configs.preset("snail"))  # its support order is drawn at random
    images = vinyals_train.images[:40]
    torch.manual_seed(1)
    a = settings_scores(run_method, images, [(5, 1)], 10)
    torch.manual_seed(2)
    before = torch.get_rng_state()
    b = settings_scores(run_method, images, [(5, 1)], 10)
    assert a == b and torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("shift,steps", [(None, None), (("shear", 0.25), None), (None, 10), (("noise", 0.1), 50)])
def test_keys_read_back(shift, steps):
    key = evaluations.settings_key("lake", "val", 20, 5, 100, 3, shift, steps)
    assert evaluations.parse_key(key) == {"split": "lake", "part": "val", "n_way": 20, "k_shot": 5,
                                          "n_episodes": 100, "seed": 3, "shift": shift, "test_inner_steps": steps}


def test_options_change_what_is_evaluated_and_leave_the_learner_as_it_was(tmp_path):
    config = configs.RunConfig("maml", method_kwargs={"inner_lr": 0.4, "inner_steps": 1, "test_inner_steps": 3},
                               n_way=5, k_shot=1, n_query=2, train=TrainConfig(steps=3, val_every=0))
    run = runs.train_run("tiny-maml", config, tmp_path / "tiny-maml.pt", device="cpu", verbose=False)
    plain = evaluations.evaluation_scores(run, [(5, 1)], n_episodes=20)[5, 1]
    none = evaluations.evaluation_scores(run, [(5, 1)], n_episodes=20, test_inner_steps=0)[5, 1]
    sheared = evaluations.evaluation_scores(run, [(5, 1)], n_episodes=20, shift=("shear", 1.0))[5, 1]
    assert run.method.test_inner_steps == 3
    assert none != plain and sheared != plain
    assert len(json.loads((tmp_path / evaluations.STORE).read_text())["tiny-maml.pt"]["scores"]) == 3
    protonet = tiny_run(tmp_path)
    with pytest.raises(ValueError, match="takes no test-time gradient steps"):
        evaluations.evaluation_scores(protonet, [(5, 1)], n_episodes=20, test_inner_steps=5)
