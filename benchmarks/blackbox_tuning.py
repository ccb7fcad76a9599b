"""Tuning sweep of the black-box learners (chapter 5): what breaks the LSTM's plateau, how wide SNAIL must be.

Each variant trains on 5-way 1-shot episodes of the vinyals training classes and is validated every
`--val-every` steps on 200 validation episodes; variants run in parallel processes (one GPU or CPU).
Writes one JSON line per variant (validation curve, wall time) and a markdown table.
Usage: MLCOURSE_DATA=... python benchmarks/blackbox_tuning.py [--steps 3000] [--jobs 6] [--device cuda] [--out DIR]
"""

import argparse
import json
import multiprocessing as mp
import time
from pathlib import Path

VARIANTS = {  # name: (learner, method options, training options other than the command line's)
    # first sweep, 3,000 steps, 1 query per class, meta-batch 16
    "lstm": ("lstm", {}, {}),
    "lstm lr 3e-4": ("lstm", {}, {"outer_lr": 3e-4}),
    "lstm normalize": ("lstm", {"normalize": True}, {}),
    "lstm query first": ("lstm", {"query_first": True}, {}),
    "lstm normalize + query first": ("lstm", {"normalize": True, "query_first": True}, {}),
    "lstm normalize lr 3e-3": ("lstm", {"normalize": True}, {"outer_lr": 3e-3}),
    "lstm 1x256 query first": ("lstm", {"query_first": True, "hidden": 256, "layers": 1}, {}),
    "snail width 1": ("snail", {}, {}),
    "snail width 0.5": ("snail", {"width": 0.5}, {}),
    "snail width 0.25": ("snail", {"width": 0.25}, {}),
    "snail width 0.5 normalize": ("snail", {"width": 0.5, "normalize": True}, {}),
    "snail width 0.5 lr 3e-3": ("snail", {"width": 0.5}, {"outer_lr": 3e-3}),
    # second sweep, longer
    "lstm 1x256": ("lstm", {"hidden": 256, "layers": 1}, {}),
    "lstm 1x256 query first normalize": ("lstm", {"query_first": True, "hidden": 256, "layers": 1, "normalize": True}, {}),
    "lstm normalize lr 3e-4": ("lstm", {"normalize": True}, {"outer_lr": 3e-4}),
    "lstm 1x256 query first, 3 queries": ("lstm", {"query_first": True, "hidden": 256, "layers": 1}, {"n_query": 3}),
    "lstm, 3 queries": ("lstm", {}, {"n_query": 3}),
    "lstm 1x256, 3 queries": ("lstm", {"hidden": 256, "layers": 1}, {"n_query": 3}),
    "snail width 0.5 normalize, 3 queries": ("snail", {"width": 0.5, "normalize": True}, {"n_query": 3}),
    "snail width 0.25 normalize, 3 queries": ("snail", {"width": 0.25, "normalize": True}, {"n_query": 3}),
    "snail width 0.5 normalize, halve 1500": ("snail", {"width": 0.5, "normalize": True}, {"lr_halve_every": 1500}),
    "snail width 0.5 normalize, 3 queries, batch 8": ("snail", {"width": 0.5, "normalize": True},
                                                      {"n_query": 3, "meta_batch_size": 8}),
    # third sweep, 1,600 steps: learning-rate schedules for the CPU budget
    "snail q3 halve 500": ("snail", {"width": 0.5, "normalize": True}, {"n_query": 3, "lr_halve_every": 500}),
    "snail q3 halve 800": ("snail", {"width": 0.5, "normalize": True}, {"n_query": 3, "lr_halve_every": 800}),
    "snail q3 lr 2e-3 halve 400": ("snail", {"width": 0.5, "normalize": True},
                                   {"n_query": 3, "outer_lr": 2e-3, "lr_halve_every": 400}),
    "snail q3 width 1": ("snail", {"normalize": True}, {"n_query": 3}),
    "lstm, 3 queries, lr 2e-3": ("lstm", {}, {"n_query": 3, "outer_lr": 2e-3}),
    "lstm, 3 queries, normalize": ("lstm", {"normalize": True}, {"n_query": 3}),
}


def run_variant(args):
    name, (learner, kwargs, changes), steps, n_query, batch, val_every, device = args
    import torch
    torch.set_num_threads(1 if device == "cuda" else 2)
    from mlcourse.configs import RunConfig, build
    from mlcourse.engine import TrainConfig, train
    train_options = {"steps": steps, "meta_batch_size": batch, "outer_lr": 1e-3, "val_every": val_every,
                     "val_episodes": 200, **{k: v for k, v in changes.items() if k != "n_query"}}
    config = RunConfig(learner, method_kwargs=kwargs, n_way=5, k_shot=1, n_query=changes.get("n_query", n_query),
                       train=TrainConfig(**train_options))
    method, sampler, val_sampler = build(config)
    start = time.time()
    history = train(method, sampler, config.train, val_sampler, device=device, verbose=False)
    return {"name": name, "learner": learner, "kwargs": kwargs, "train": train_options, "n_query": config.n_query, "wall_s": time.time() - start, "device": device,
            "val_step": history.val_step, "val": history.val_metric,
            "final_loss": sum(history.loss[-100:]) / len(history.loss[-100:])}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--n-query", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--val-every", type=int, default=250)
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--out", default="benchmarks/results")
    a = parser.parse_args()
    names = a.only or list(VARIANTS)
    jobs = [(n, VARIANTS[n], a.steps, a.n_query, a.batch, a.val_every, a.device) for n in names]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with mp.get_context("spawn").Pool(a.jobs) as pool, open(out / "blackbox-tuning.jsonl", "a") as log:
        for row in pool.imap_unordered(run_variant, jobs):
            log.write(json.dumps(row) + "\n")
            log.flush()
            print(f"{row['name']}: {row['wall_s']:.0f} s, val " + " ".join(f"{v:.2f}" for v in row["val"]), flush=True)
            rows.append(row)
    lines = ["| variant | queries per class | val accuracy by step | final train loss |", "|---|---|---|---|"]
    for row in sorted(rows, key=lambda r: names.index(r["name"])):
        curve = ", ".join(f"{s}: {v:.3f}" for s, v in zip(row["val_step"], row["val"]))
        lines.append(f"| {row['name']} | {row['n_query']} | {curve} | {row['final_loss']:.3f} |")
    (out / "blackbox-tuning.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
