"""Tuning sweeps on validation classes: Reptile's recipe (chapter 7) and MAML's quick preset (chapter 6).

Every variant trains on 5-way 1-shot tasks of the vinyals training classes and is validated on episodes of
the validation classes (5-way 1-shot); the test classes are never read. Variants run one after the other
on one CPU thread each (`--jobs` at once). Appends one JSON line per variant to
benchmarks/results/LEARNER-tuning.jsonl.
- reptile: inner mini-batches and the outer optimizer, 1,500 steps (`--steps`), Nichol et al.'s training
  shots (10 images per class), 200 validation episodes, scored at the end with 10 and 50 test-time steps.
- maml: the choices behind `configs.preset("maml")` (queries per class, a halving learning rate, 4,000
  or 6,000 steps), Finn et al.'s inner loop, 600 validation episodes every 2,000 steps.
Usage: MLCOURSE_DATA=... python benchmarks/tuning.py reptile|maml [--steps N] [--only NAME ...] [--jobs 1]
"""

import argparse
import dataclasses
import json
import multiprocessing as mp
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
REPTILE = {"inner_lr": 0.1, "inner_steps": 5, "test_inner_steps": 10}
VARIANTS = {  # learner: {name: (method options, task shape and training options)}
    "reptile": {
        "full batch, Adam 1e-3": ({}, {}),
        "batches of 10, Adam 1e-3": ({"inner_batch": 10}, {}),
        "batches of 10, SGD epsilon 1": ({"inner_batch": 10}, {"optimizer": "sgd", "outer_lr": 1.0}),
        "batches of 10, inner lr 0.05, Adam 1e-3": ({"inner_batch": 10, "inner_lr": 0.05}, {}),
    },
    "maml": {  # the longest first, so that two jobs finish together
        "15 queries, constant lr, 4,000 steps": ({}, {"n_query": 15, "steps": 4000}),
        "5 queries, constant lr, 6,000 steps": ({}, {"n_query": 5, "steps": 6000}),
        "5 queries, lr halved every 1,000 steps, 4,000 steps": ({}, {"n_query": 5, "steps": 4000,
                                                                     "lr_halve_every": 1000}),
    },
}
FINAL_TEST_STEPS = {"reptile": (10, 50), "maml": (3,)}


def variant_config(learner: str, name: str, steps: int):
    """The RunConfig of one variant: the learner's base recipe with the variant's changes."""
    from mlcourse.configs import RunConfig, preset
    from mlcourse.engine import TrainConfig
    kwargs, changes = VARIANTS[learner][name]
    if learner == "reptile":
        train = TrainConfig(**{"steps": steps, "meta_batch_size": 5, "outer_lr": 1e-3, "val_every": steps // 3,
                               "val_episodes": 200, **changes})
        return RunConfig("reptile", {**REPTILE, **kwargs}, n_way=5, k_shot=1, n_query=9, train=train)
    base = preset("maml")
    shape = {k: v for k, v in changes.items() if k == "n_query"}
    train = dataclasses.replace(base.train, val_every=2000, val_episodes=600,
                                **{k: v for k, v in changes.items() if k != "n_query"})
    return dataclasses.replace(base, method_kwargs={**base.method_kwargs, **kwargs}, train=train, **shape)


def run_variant(job) -> dict:
    learner, name, steps = job
    import torch
    torch.set_num_threads(1)
    from mlcourse.configs import build
    from mlcourse.engine import evaluate, train
    from mlcourse.utils import keep_freed_memory, seed_everything
    keep_freed_memory()
    config = variant_config(learner, name, steps)
    seed_everything(0)
    method, sampler, val_sampler = build(config)
    val_start = val_sampler.state_dict()
    start = time.time()
    history = train(method, sampler, config.train, val_sampler, device="cpu", verbose=False)
    wall_s = time.time() - start
    final = {}
    for test_steps in FINAL_TEST_STEPS[learner]:
        method.test_inner_steps = test_steps
        val_sampler.load_state_dict(val_start)  # the validation episodes of training, again
        final[test_steps] = evaluate(method, val_sampler, config.train.val_episodes, device="cpu")
    return {"name": name, "n_query": config.n_query, "method_kwargs": config.method_kwargs,
            "train": dataclasses.asdict(config.train), "wall_s": wall_s, "val_step": history.val_step,
            "val": history.val_metric, "val_ci": history.val_ci, "final_val": {str(k): v for k, v in final.items()},
            "final_loss": sum(history.loss[-100:]) / len(history.loss[-100:])}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("learner", choices=sorted(VARIANTS))
    parser.add_argument("--steps", type=int, default=1500, help="reptile's training steps (maml's are the variant's)")
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--jobs", type=int, default=1)
    a = parser.parse_args()
    jobs = [(a.learner, name, a.steps) for name in a.only or VARIANTS[a.learner]]
    with mp.get_context("spawn").Pool(a.jobs) as pool, open(RESULTS / f"{a.learner}-tuning.jsonl", "a") as log:
        for row in pool.imap_unordered(run_variant, jobs):
            log.write(json.dumps(row) + "\n")
            log.flush()
            print(f"{row['name']}: {row['wall_s']:.0f} s, val " + " ".join(f"{v:.3f}" for v in row["val"])
                  + "; final " + ", ".join(f"{k} steps {m:.3f}" for k, (m, _) in row["final_val"].items()), flush=True)


if __name__ == "__main__":
    main()
