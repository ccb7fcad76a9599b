"""Time per meta-training step and peak memory of each non-parametric method, with its quick-mode
episode shape (each method in a fresh process, so that peak memory is its own).

Run: MLCOURSE_DATA=../shared/data MLCOURSE_QUIET=1 .venv/bin/python benchmarks/step_time.py
Writes benchmarks/results/step-time-{cpu,cuda}.md, included by book/results.md.
"""

import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

import mlcourse

STEP = """
import resource, sys, time, torch
import mlcourse
from mlcourse import configs
from mlcourse.engine import TrainConfig, train
config = configs.preset(sys.argv[1])
device = mlcourse.get_device()
mlcourse.seed_everything(0)
method, sampler, _ = configs.build(config)
warm = TrainConfig(steps=5, meta_batch_size=config.train.meta_batch_size, val_every=0)
train(method, sampler, warm, device=device, verbose=False)
if device.type == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
timed = TrainConfig(steps=40, meta_batch_size=config.train.meta_batch_size, val_every=0)
start = time.perf_counter()
train(method, sampler, timed, device=device, verbose=False)
if device.type == "cuda":
    torch.cuda.synchronize()
ms = 1000 * (time.perf_counter() - start) / timed.steps
peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
shape = "pairs" if config.method == "siamese" else f"{config.n_way}-way {config.k_shot}-shot {config.n_query}-query"
print(f"| {config.method} | {shape}, meta-batch {config.train.meta_batch_size} | {ms:.0f} | {peak:,.0f} |")
"""


def main() -> None:
    device = mlcourse.get_device()
    name = torch.cuda.get_device_name() if device.type == "cuda" else (platform.processor() or platform.machine())
    memory = "GPU memory allocated" if device.type == "cuda" else "process resident memory, data included"
    lines = [f"Device: {device} ({name}, {torch.get_num_threads()} CPU threads); torch {torch.__version__}; "
             f"load average before the run {os.getloadavg()[0]:.1f} (above 0.5: other jobs shared the CPU).", "",
             f"| method | training episode | ms per step | peak memory (MB, {memory}) |", "|---|---|---|---|"]
    for method in ("siamese", "matching", "protonet"):
        out = subprocess.run([sys.executable, "-c", STEP, method], check=True, capture_output=True, text=True)
        lines.append(out.stdout.strip().splitlines()[-1])
        print(lines[-1], flush=True)
    path = Path(__file__).parent / "results" / f"step-time-{device.type}.md"
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
