"""Tuning sweep of Reptile (chapter 7) on validation classes: inner mini-batches, the outer optimizer.

Each variant trains on 5-way tasks of the vinyals training classes with 10 images per class (Nichol et
al.'s training shots) and is validated on 200 episodes of the validation classes (5-way 1-shot), at
the end with 10 and 50 test-time inner steps. The test classes are never read. Variants run one after
the other on one CPU thread each (`--jobs` at once). Appends one JSON line per variant to
benchmarks/results/reptile-tuning.jsonl.
Usage: MLCOURSE_DATA=... python benchmarks/reptile_tuning.py [--steps 1500] [--only NAME ...] [--jobs 1]
"""

import argparse
import dataclasses
import json
import multiprocessing as mp
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "reptile-tuning.jsonl"
BASE = {"inner_lr": 0.1, "inner_steps": 5, "test_inner_steps": 10}
VARIANTS = {  # name: (method options, training options)
    "full batch, Adam 1e-3": ({}, {}),
    "batches of 10, Adam 1e-3": ({"inner_batch": 10}, {}),
    "batches of 10, SGD epsilon 1": ({"inner_batch": 10}, {"optimizer": "sgd", "outer_lr": 1.0}),
    "batches of 10, inner lr 0.05, Adam 1e-3": ({"inner_batch": 10, "inner_lr": 0.05}, {}),
}


def run_variant(job) -> dict:
    name, steps = job
    import torch
    torch.set_num_threads(1)
    from mlcourse.configs import RunConfig, build
    from mlcourse.engine import TrainConfig, evaluate, train
    from mlcourse.utils import keep_freed_memory, seed_everything
    keep_freed_memory()
    kwargs, changes = VARIANTS[name]
    train_config = TrainConfig(**{"steps": steps, "meta_batch_size": 5, "outer_lr": 1e-3, "val_every": steps // 3,
                                  "val_episodes": 200, **changes})
    config = RunConfig("reptile", {**BASE, **kwargs}, n_way=5, k_shot=1, n_query=9, train=train_config)
    seed_everything(0)
    method, sampler, val_sampler = build(config)
    val_start = val_sampler.state_dict()
    start = time.time()
    history = train(method, sampler, config.train, val_sampler, device="cpu", verbose=False)
    wall_s = time.time() - start
    final = {}
    for test_steps in (10, 50):
        method.test_inner_steps = test_steps
        val_sampler.load_state_dict(val_start)  # the same 200 validation episodes each time
        final[test_steps] = evaluate(method, val_sampler, 200, device="cpu")
    return {"name": name, "method_kwargs": config.method_kwargs, "train": dataclasses.asdict(config.train),
            "wall_s": wall_s, "val_step": history.val_step, "val": history.val_metric,
            "final_val": {str(k): v for k, v in final.items()},
            "final_loss": sum(history.loss[-100:]) / len(history.loss[-100:])}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--jobs", type=int, default=1)
    a = parser.parse_args()
    jobs = [(name, a.steps) for name in a.only or VARIANTS]
    with mp.get_context("spawn").Pool(a.jobs) as pool, open(RESULTS, "a") as log:
        for row in pool.imap_unordered(run_variant, jobs):
            log.write(json.dumps(row) + "\n")
            log.flush()
            print(f"{row['name']}: {row['wall_s']:.0f} s, val " + " ".join(f"{v:.3f}" for v in row["val"])
                  + "; final " + ", ".join(f"{k} steps {m:.3f}" for k, (m, _) in row["final_val"].items()), flush=True)


if __name__ == "__main__":
    main()
