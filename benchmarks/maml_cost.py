"""The cost of second order: meta-step time and memory of MAML, first-order MAML and Reptile against
the number of inner steps, and the speed of three implementations of the same MAML meta-step.

Every measurement uses the same episodes: Omniglot 5-way 1-shot, 5 queries per class, meta-batch 8,
Finn et al.'s conv4 (`conv4_maml`), Adam on theta. Each configuration runs in a fresh process, so that
its peak resident memory is its own. Memory is measured two ways: the bytes that autograd keeps for
the outer backward pass of one meta-step (`torch.autograd.graph.saved_tensors_hooks`, each tensor
counted once; torch.func refuses these hooks, so they are counted on the textbook version of the
same meta-step, whose first-order inner graphs are freed before the outer backward), and the
process's peak resident memory (on a GPU: `torch.cuda.max_memory_allocated`).

Implementations of one second-order MAML meta-step (inner step 0.4, one inner step):
  mlcourse  the package: `GradientLearner.predict` vmaps `adapt` (torch.func.grad) over the meta-batch
            (Reptile's `adapt_all` too, on all 30 images of a task, or with `inner_batch=5` on 5 of them a
            step: as many as a first-order MAML inner step reads, so that the two inner steps compare)
  loop      the package's `adapt` called task by task in a Python loop
  autograd  the textbook version: functional_call + torch.autograd.grad(create_graph=True), task by task
The reference to beat: learn2learn 0.2.1's MAML, 170 ms a meta-step on this 2-core CPU (measured once with
learn2learn's own MAML on the same configuration, not by this script).

Run: MLCOURSE_DATA=../shared/data .venv/bin/python benchmarks/maml_cost.py [--quick]
Writes benchmarks/results/maml-cost-{cpu,cuda}.md and .json, and book/_static/maml-cost.png.
"""

import json
import os
import platform
import sys
from pathlib import Path

import torch

import mlcourse
from cost import in_fresh_process
from mlcourse.plots import plot_meta_step_cost

ROOT = Path(__file__).resolve().parents[1]

ONE = r"""
import contextlib, json, sys, torch
import torch.nn.functional as F
from torch.func import functional_call
from cost import SavedBytes, adam_step, timed_steps
import mlcourse
from mlcourse import configs
from mlcourse.data import EpisodeSampler, load_omniglot
from mlcourse.utils import keep_freed_memory

method_name, inner_steps, impl, n_steps = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
inner_batch = int(sys.argv[5])
keep_freed_memory()
device = mlcourse.get_device()
mlcourse.seed_everything(0)
config = configs.preset(method_name)
config.method_kwargs["inner_steps"] = inner_steps
if method_name == "reptile":
    config.method_kwargs["inner_batch"] = inner_batch
method = configs.make_method(config).to(device)
sampler = EpisodeSampler(load_omniglot("vinyals", "train").images, 5, 1, 5, seed=0)
episodes = [sampler.sample(8).to(device) for _ in range(4)]


def textbook_loss(episode, count=contextlib.nullcontext):
    # the meta-loss with torch.autograd.grad, task by task; `count` wraps what the outer backward keeps
    theta, losses = dict(method.model.named_parameters()), []
    second_order = method_name == "maml"
    for i in range(len(episode)):
        task = episode[i]
        x, y = task.support_x, task.support_y
        if method_name == "reptile":  # adapts on all of the task's examples
            x, y = torch.cat([x, task.query_x]), torch.cat([y, task.query_y])
        phi = theta
        with count() if second_order else contextlib.nullcontext():  # first order: the inner graphs are freed
            for _ in range(inner_steps):
                loss = method.loss_fn(functional_call(method.model, phi, (x,)), y)
                grads = torch.autograd.grad(loss, tuple(phi.values()), create_graph=second_order)
                phi = {k: p - method.inner_lr * g for (k, p), g in zip(phi.items(), grads)}
        with count():
            if method_name == "reptile":  # gradient theta - phi: keeps only the (detached) difference
                losses.append(sum((p * (p - phi[k]).detach()).sum() for k, p in theta.items()))
            else:
                losses.append(F.cross_entropy(functional_call(method.model, phi, (task.query_x,)), task.query_y))
    return torch.stack(losses).mean()


def meta_loss(episode):
    if impl == "autograd":
        return textbook_loss(episode)
    if impl == "loop":
        return torch.stack([method.loss(episode[i])[0] for i in range(len(episode))]).mean()
    return method.loss(episode)[0]


step = adam_step(method.parameters(), meta_loss)


for e in episodes[:3]:
    step(e)
# torch.func transforms refuse saved-tensor hooks, so the bytes are counted on the textbook version of the
# same meta-step (the same tensors, computed task by task with torch.autograd.grad)
saved = SavedBytes()
loss = textbook_loss(episodes[0], count=saved.hooks)
del loss
ms, peak = timed_steps(step, episodes, n_steps, device)
print(json.dumps({"method": method_name, "inner_steps": inner_steps, "impl": impl, "inner_batch": inner_batch, "ms": ms,
                  "saved_mb": saved.total / 2**20, "peak_mb": peak}))
"""


def measure(method: str, inner_steps: int, impl: str, n_steps: int, inner_batch: int = 0) -> dict:
    return in_fresh_process(ONE, method, inner_steps, impl, n_steps, inner_batch)


def inner_images(result: dict) -> int:
    """Images one task's inner step reads: the 5 support images, or for Reptile its batch of the 30 it adapts on."""
    if result["method"] == "reptile":
        return result.get("inner_batch") or 30
    return 5


def main() -> None:
    quick = "--quick" in sys.argv
    n_steps = 5 if quick else 20
    device = mlcourse.get_device()
    name = torch.cuda.get_device_name() if device.type == "cuda" else (platform.processor() or platform.machine())
    load = os.getloadavg()[0]
    results = [measure(impl=impl, method="maml", inner_steps=1, n_steps=n_steps) for impl in ("autograd", "loop")]
    for method, inner_batch in (("maml", 0), ("fomaml", 0), ("reptile", 0), ("reptile", 5)):
        for inner_steps in (1, 2, 5, 10):
            results.append(measure(method, inner_steps, "mlcourse", n_steps, inner_batch))
    for r in results:
        r["inner_images"] = inner_images(r)
    memory = "GPU memory allocated" if device.type == "cuda" else "process resident memory, data included"
    lines = [f"Device: {device} ({name}, {torch.get_num_threads()} CPU threads); torch {torch.__version__}; "
             f"load average before the run {load:.1f} (above 0.5: other jobs shared the CPU); "
             f"{n_steps} timed meta-steps each.", "",
             "5-way 1-shot, 5 queries per class, meta-batch 8, conv4 (Finn et al.), Adam on theta.", "",
             f"| method | implementation | images an inner step | inner steps | ms per meta-step | "
             f"MB saved for backward | peak MB ({memory}) |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['impl']} | {r['inner_images']} | {r['inner_steps']} | {r['ms']:.0f} | "
              f"{r['saved_mb']:.1f} | {r['peak_mb']:,.0f} |" for r in results]
    out = Path(__file__).parent / "results" / f"maml-cost-{device.type}"
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"device": name, "load": load, "results": results}, indent=1))
    fig = plot_meta_step_cost(results)
    fig.savefig(ROOT / "book" / "_static" / "maml-cost.png", dpi=120)
    print(f"wrote {out}.md, .json and book/_static/maml-cost.png")


if __name__ == "__main__":
    main()
