"""Time and minor page faults (fresh pages the OS must zero) of a prototypical-network training step with glibc's default allocator settings and with
`mlcourse.utils.keep_freed_memory()` (each in a fresh process).

Run: MLCOURSE_DATA=../shared/data .venv/bin/python benchmarks/allocator.py
"""

import subprocess
import sys
import time

STEP = """
import resource, sys, time, torch
from mlcourse.data import EpisodeSampler, load_omniglot
from mlcourse.methods.protonet import ProtoNet
from mlcourse.utils import keep_freed_memory
if sys.argv[1] == "kept":
    assert keep_freed_memory()
sampler = EpisodeSampler(load_omniglot("vinyals", "train").images, 30, 1, 2, seed=0)
method = ProtoNet()
optimizer = torch.optim.Adam(method.parameters())
for i in range(45):
    if i == 5:
        start, faults = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    loss, _ = method.loss(sampler.sample())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / 40
print(f"{1000 * (time.perf_counter() - start) / 40:.0f} | {faults:,.0f}")
"""


def main() -> None:
    print("| allocator | ms per 30-way 1-shot 2-query step | page faults per step |\n|---|---|---|")
    for mode in ("default", "kept"):
        ms = subprocess.run([sys.executable, "-c", STEP, mode], check=True, capture_output=True, text=True).stdout
        print(f"| {mode} | {ms.strip()} |")


if __name__ == "__main__":
    main()
