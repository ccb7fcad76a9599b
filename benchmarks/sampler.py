"""Episode sampling speed, and its share of a conv4 (prototypical network) training step.

Run: MLCOURSE_DATA=../shared/data .venv/bin/python benchmarks/sampler.py (writes benchmarks/results/sampler-cpu.md)
Target: sampling under 2% of a training step on a 2-core CPU.
"""

import os
import platform
import time
from pathlib import Path

import torch

from mlcourse.data import EpisodeSampler, load_omniglot
from mlcourse.methods.protonet import ProtoNet


def per_second(fn, seconds: float = 2.0) -> float:
    """Calls of `fn` per second, after one warm-up call."""
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    images = load_omniglot("vinyals", "train").images
    method = ProtoNet()
    optimizer = torch.optim.Adam(method.parameters())
    lines = [f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads; "
             f"torch {torch.__version__}; training step: prototypical network, conv4, Adam; "
             f"load average before the run {os.getloadavg()[0]:.1f} (above 0.5: other jobs shared the CPU).", "",
             "| episode | episodes/s | training steps/s | sampling share of a step |", "|---|---|---|---|"]
    for n_way, k_shot, n_query in [(5, 1, 15), (20, 5, 15)]:
        sampler = EpisodeSampler(images, n_way, k_shot, n_query, seed=0)
        episodes = per_second(sampler.sample)
        episode = sampler.sample()

        def step():
            loss, _ = method.loss(episode)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        steps = per_second(step, seconds=5.0)
        share = steps / episodes  # (time per episode) / (time per step)
        lines.append(f"| {n_way}-way {k_shot}-shot {n_query}-query | {episodes:,.0f} | {steps:.1f} | {100 * share:.2f}% |")
    out = Path(__file__).parent / "results" / "sampler-cpu.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
