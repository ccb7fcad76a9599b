"""What each learner of chapter 8 costs: a meta-training step of its own recipe, and adapting to one new task.

Every learner is the one chapter 8 compares (`mlcourse.comparison.LEARNERS`), built from its run's config:
- a meta-training step: its run's own episodes (or pairs) and meta-batch, Adam, timed over `--steps` steps
  after 3 warm-up steps; the bytes autograd saves for that step's backward pass (each tensor counted once;
  torch.func, which MAML and Reptile use, refuses these hooks: "n/a");
- adapting to a new task: one 5-way 1-shot (and 5-shot) test episode of 75 queries, in eval mode, from the
  support set to the queries' predictions (a forward pass, a sequence read, or k gradient steps), the
  median of 20 repetitions.
Each learner runs in a fresh process, so that its peak resident memory (data included) is its own.

Run: MLCOURSE_DATA=../shared/data .venv/bin/python benchmarks/learner_cost.py [--steps 20]
Writes benchmarks/results/learner-cost-{cpu,cuda}.md and .json.
"""

import argparse
import json
import os
import platform
from pathlib import Path

import torch

from cost import in_fresh_process
from mlcourse.comparison import LEARNERS

ROOT = Path(__file__).resolve().parents[1]

ONE = r"""
import json, statistics, sys, time, torch
import mlcourse
from mlcourse import configs, runs
from mlcourse.comparison import images_per_step
from mlcourse.data import EpisodeSampler, load_omniglot
from mlcourse.utils import keep_freed_memory
from cost import SavedBytes, adam_step, timed_steps

run_name, n_steps = sys.argv[1], int(sys.argv[2])
keep_freed_memory()  # as the engine does
device = mlcourse.get_device()
mlcourse.seed_everything(0)
config = runs.registry()[run_name]
method, sampler, _ = configs.build(config)
method.to(device).train()
step = adam_step(method.parameters(), lambda batch: method.loss(batch)[0])
batches = [sampler.sample(config.train.meta_batch_size).to(device) for _ in range(4)]

for b in batches[:3]:
    step(b)
saved = SavedBytes()
try:
    with saved.hooks():
        loss, _ = method.loss(batches[0])
    del loss
    saved_mb = saved.total / 2**20
except RuntimeError:  # torch.func transforms refuse saved-tensor hooks
    saved_mb = None
ms, peak = timed_steps(step, batches, n_steps, device)

method.eval()
test = load_omniglot("vinyals", "test").images
adapt_ms = {}
for k_shot in (1, 5):
    episode = EpisodeSampler(test, 5, k_shot, 15, seed=0).sample().to(device)
    times = []
    for _ in range(20):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        method.score(episode)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(1000 * (time.perf_counter() - start))
    adapt_ms[k_shot] = statistics.median(times)
print(json.dumps({"run": run_name, "ms": ms, "images": images_per_step(config), "saved_mb": saved_mb, "peak_mb": peak,
                  "params": sum(p.numel() for p in method.parameters()), "adapt_ms_1shot": adapt_ms[1],
                  "adapt_ms_5shot": adapt_ms[5]}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    a = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    load = os.getloadavg()[0]
    results = [{"learner": learner.name, "family": learner.family, **in_fresh_process(ONE, learner.run, a.steps)}
               for learner in LEARNERS]
    where = (torch.cuda.get_device_name() if device == "cuda"
             else f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads")
    lines = [f"Measured on {where}, torch {torch.__version__}, load average {load:.1f} before the run: "
             f"`benchmarks/learner_cost.py --steps {a.steps}`. Each learner's own training step; adapting = one "
             "5-way test episode of 75 queries, from support set to predictions, in eval mode.", "",
             "| learner | run | parameters | images a step | ms a step | saved for backward (MB) | peak memory (MB) "
             "| adapting, 1-shot (ms) | adapting, 5-shot (ms) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        saved = "n/a" if r["saved_mb"] is None else f"{r['saved_mb']:.0f}"
        lines.append(f"| {r['learner']} | `{r['run']}` | {r['params']:,} | {r['images']:.0f} | {r['ms']:.0f} | {saved} "
                     f"| {r['peak_mb']:.0f} | {r['adapt_ms_1shot']:.1f} | {r['adapt_ms_5shot']:.1f} |")
    out = ROOT / "benchmarks" / "results"
    (out / f"learner-cost-{device}.md").write_text("\n".join(lines) + "\n")
    (out / f"learner-cost-{device}.json").write_text(json.dumps({"where": where, "torch": str(torch.__version__),
                                                                  "load": load, "steps": a.steps,
                                                                  "learners": results}, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
