"""Step time and memory of the black-box learners (chapter 5) beside the prototypical network.

Every learner trains on the same episodes, chapter 5's quick setting: Omniglot 5-way 1-shot, 3 queries
per class, meta-batch 16 (320 images a step), Adam. Each learner runs in a fresh process, so that its
peak resident memory is its own. Memory is measured two ways: the bytes that autograd keeps for the
backward pass of one step (`torch.autograd.graph.saved_tensors_hooks`, each tensor counted once), and
the process's peak resident memory (on a GPU: `torch.cuda.max_memory_allocated`).

Run: MLCOURSE_DATA=../shared/data .venv/bin/python benchmarks/blackbox_cost.py [--steps 20]
Writes benchmarks/results/blackbox-cost-{cpu,cuda}.md and .json.
"""

import argparse
import json
import platform
from pathlib import Path

import torch

from cost import in_fresh_process

ROOT = Path(__file__).resolve().parents[1]
LEARNERS = {"protonet": "prototypical network (chapter 4's method)", "lstm": "LSTM", "snail": "SNAIL-style"}

ONE = r"""
import json, sys, torch
import mlcourse
from mlcourse import configs
from mlcourse.data import EpisodeSampler, load_omniglot
from mlcourse.utils import keep_freed_memory
from cost import SavedBytes, adam_step, timed_steps

name, n_steps = sys.argv[1], int(sys.argv[2])
keep_freed_memory()  # as the engine does
device = mlcourse.get_device()
mlcourse.seed_everything(0)
config = configs.black_box_runs()["protonet-snail-episodes"] if name == "protonet" else configs.preset(name)
method = configs.make_method(config).to(device)
step = adam_step(method.parameters(), lambda episode: method.loss(episode)[0])
sampler = EpisodeSampler(load_omniglot("vinyals", "train").images, 5, 1, 3, seed=0)
episodes = [sampler.sample(16).to(device) for _ in range(4)]

for e in episodes[:3]:
    step(e)
saved = SavedBytes()
with saved.hooks():
    loss, _ = method.loss(episodes[0])
del loss
ms, peak = timed_steps(step, episodes, n_steps, device)
params = sum(p.numel() for p in method.parameters())
print(json.dumps({"learner": name, "ms": ms, "saved_mb": saved.total / 2**20, "peak_mb": peak, "params": params}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    a = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    results = [in_fresh_process(ONE, name, a.steps) for name in LEARNERS]
    where = (torch.cuda.get_device_name() if device == "cuda"
             else f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads")
    lines = [f"Measured on {where}, torch {torch.__version__}: `benchmarks/blackbox_cost.py --steps {a.steps}`. "
             "5-way 1-shot, 3 queries per class, meta-batch 16 (320 images a step).", "",
             "| learner | parameters | ms a step | saved for backward (MB) | peak memory (MB) |",
             "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {LEARNERS[r['learner']]} | {r['params']:,} | {r['ms']:.0f} | {r['saved_mb']:.0f} "
                     f"| {r['peak_mb']:.0f} |")
    out = ROOT / "benchmarks" / "results"
    (out / f"blackbox-cost-{device}.md").write_text("\n".join(lines) + "\n")
    (out / f"blackbox-cost-{device}.json").write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
