"""Chapter 8, "model and architecture intertwined": the same recipes with a narrower and a wider backbone.

The prototypical network gets another embedding (`ProtoNet(conv4(hidden=h))`: one argument); first-order MAML
another functional network (`hidden=h`), whose inner step of 0.4 was chosen for the 64-channel one. Each
variant trains on its quick preset's episodes for a short budget (`--steps`: the prototypical network's, then
first-order MAML's) and is scored on 600 episodes of the validation classes (5-way 1-shot); the test classes are
never read. Variants run on one CPU thread each (`--jobs` at once), one run each. Appends one JSON line per
variant to benchmarks/results/backbones.jsonl.
Usage: MLCOURSE_DATA=... python benchmarks/backbones.py [--steps 500 1000] [--only prototypical-128 ...] [--jobs 2]
"""

import argparse
import dataclasses
import json
import multiprocessing as mp
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "backbones.jsonl"
WIDTHS = (32, 64, 128)  # channels of each of conv4's four blocks; 64 is the course's (and the papers') backbone
LEARNERS = ("prototypical", "fomaml")


def variant(learner: str, width: int, steps: int):
    """(config, method) of one variant: the learner's quick preset, `steps` long, with a conv4 of `width` channels."""
    from mlcourse.configs import make_method, preset
    from mlcourse.methods.protonet import ProtoNet
    from mlcourse.models import conv4
    base = preset("protonet" if learner == "prototypical" else "fomaml")
    train = dataclasses.replace(base.train, steps=steps, val_every=0)
    if learner == "prototypical":
        return dataclasses.replace(base, train=train), ProtoNet(conv4(hidden=width))
    config = dataclasses.replace(base, method_kwargs={**base.method_kwargs, "hidden": width}, train=train)
    return config, make_method(config)


def run_variant(job) -> dict:
    learner, width, steps = job
    import torch
    torch.set_num_threads(1)
    from mlcourse.configs import build
    from mlcourse.engine import evaluate, train
    from mlcourse.utils import keep_freed_memory, seed_everything
    keep_freed_memory()
    seed_everything(0)
    config, method = variant(learner, width, steps)
    _, sampler, val_sampler = build(config)
    start = time.time()
    history = train(method, sampler, config.train, device="cpu", verbose=False)
    wall_s = time.time() - start
    val = evaluate(method, val_sampler, 600, device="cpu")
    return {"learner": learner, "width": width, "params": sum(p.numel() for p in method.parameters()),
            "steps": steps, "wall_s": wall_s, "final_val": val, "final_loss": sum(history.loss[-50:]) / 50}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, nargs=2, default=(500, 1000), metavar=("PROTOTYPICAL", "FOMAML"))
    parser.add_argument("--only", nargs="*", help="variants as LEARNER-WIDTH, e.g. fomaml-128")
    parser.add_argument("--jobs", type=int, default=1)
    a = parser.parse_args()
    steps = dict(zip(LEARNERS, a.steps))
    jobs = [(learner, width, steps[learner]) for learner in LEARNERS for width in WIDTHS
            if not a.only or f"{learner}-{width}" in a.only]
    jobs.sort(key=lambda job: -job[1] * job[2])  # the longest first, so that the jobs finish together
    with mp.get_context("spawn").Pool(a.jobs) as pool, open(RESULTS, "a") as log:
        for row in pool.imap_unordered(run_variant, jobs):
            log.write(json.dumps(row) + "\n")
            log.flush()
            m, ci = row["final_val"]
            print(f"{row['learner']} {row['width']}: {row['params']:,} parameters, {row['wall_s']:.0f} s, "
                  f"val {100 * m:.1f} ± {100 * ci:.1f}", flush=True)


if __name__ == "__main__":
    main()
