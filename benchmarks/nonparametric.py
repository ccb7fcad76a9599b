"""Time to accuracy of the non-parametric methods: train each with its preset, then test on
600 episodes of the four standard settings. Also time per training step and peak memory.

Run: MLCOURSE_DATA=../shared/data MLCOURSE_QUIET=1 .venv/bin/python benchmarks/nonparametric.py [--full]
Writes benchmarks/results/nonparametric-{quick,full}-{cpu,cuda}.md, included by book/results.md.
"""

import argparse
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

import mlcourse
from mlcourse import configs
from mlcourse.data import load_omniglot
from mlcourse.engine import evaluate_settings, train

PAPER = {  # 5w1s, 5w5s, 20w1s, 20w5s
    "siamese": (96.7, 98.4, 88.0, 96.5),  # Koch et al., as reported by Vinyals et al. 2016
    "matching": (98.1, 98.9, 93.8, 98.5),  # Vinyals et al. 2016
    "protonet": (98.8, 99.7, 96.0, 98.9),  # Snell et al. 2017
}


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated, or the process's peak resident memory on a CPU (data included)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(name: str, full: bool, device: torch.device, test_images: torch.Tensor) -> str:
    config = configs.preset(name, full=full)
    mlcourse.seed_everything(config.train.seed)
    method, sampler, val_sampler = configs.build(config)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    train(method, sampler, config.train, val_sampler, device=device, verbose=False)
    seconds = time.perf_counter() - start
    results = evaluate_settings(method, test_images, device=device)
    ours = " | ".join(f"{100 * m:.1f} ± {100 * ci:.1f}" for m, ci in results.values())
    paper = " / ".join(str(p) for p in PAPER[name])
    per_step = 1000 * seconds / config.train.steps
    return (f"| {name} | {config.train.steps} | {seconds / 60:.1f} | {per_step:.0f} | "
            f"{peak_memory_mb(device):,.0f} | {ours} | {paper} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--methods", nargs="*", default=["siamese", "matching", "protonet"])
    parser.add_argument("--row", help="measure one method in this process and print its table row")
    args = parser.parse_args()
    full = args.full or mlcourse.full_mode()
    device = mlcourse.get_device()
    if args.row:  # each method runs in its own process, so that peak memory is its own
        print(run(args.row, full, device, load_omniglot("vinyals", "test").images))
        return
    lines = [
        f"Mode: {'full' if full else 'quick'}; device: {device} ({hardware(device)}); torch {torch.__version__}.",
        "Training includes periodic validation. Accuracy: mean ± 95% CI over 600 test episodes",
        "(`vinyals` test classes; 15 queries per class for 5-way, 5 for 20-way).",
        "",
        "| method | steps | training (min) | ms / step | peak memory (MB) | 5-way 1-shot | 5-way 5-shot "
        "| 20-way 1-shot | 20-way 5-shot | paper (same order) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in args.methods:
        cmd = [sys.executable, __file__, "--row", name] + (["--full"] if full else [])
        lines.append(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        print(lines[-1], flush=True)
    out = Path(__file__).parent / "results" / f"nonparametric-{'full' if full else 'quick'}-{device.type}.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
