"""What Koch et al.'s ingredients buy the Siamese network within the quick-mode budget (1500 steps).

Each variant changes one thing of chapter 2's quick preset (affine distortions of the training
pairs, 128 pairs a step instead of 48, a conv4 twice as wide) or combines them; each is trained
from the same seed and tested on 600 seeded 5-way and 20-way 1-shot episodes of the test classes.

Run: MLCOURSE_DATA=/path/to/data MLCOURSE_QUIET=1 .venv/bin/python benchmarks/siamese_variants.py [NAMES...]
Writes benchmarks/results/siamese-variants-{cpu,cuda}.md.
"""

import dataclasses
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

import mlcourse
from mlcourse import configs, runs
from mlcourse.data import load_omniglot
from mlcourse.engine import evaluate_settings


def variants() -> dict[str, configs.RunConfig]:
    base = configs.preset("siamese")
    more_pairs = dataclasses.replace(base.train, meta_batch_size=128)
    return {
        "quick preset (48 pairs, conv4 64 wide)": base,
        "+ affine distortions": dataclasses.replace(base, method_kwargs={"distort": True}),
        "+ 128 pairs a step": dataclasses.replace(base, train=more_pairs),
        "+ conv4 128 wide": dataclasses.replace(base, method_kwargs={"dim": 128}),
        "+ all three": dataclasses.replace(base, method_kwargs={"distort": True, "dim": 128}, train=more_pairs),
    }


def main(names: list[str]) -> None:
    device = mlcourse.get_device()
    test_images = load_omniglot("vinyals", "test").images
    rows, scratch = [], Path(tempfile.mkdtemp())  # variants are measured, not committed
    for name, config in variants().items():
        if names and not any(n in name for n in names):
            continue
        if config == configs.preset("siamese"):  # chapter 2's committed run is this very run (same seed, same code)
            run = runs.load_run("siamese", device=device)
            minutes = run.made["wall_s"] / 60
        else:
            start = time.perf_counter()
            run = runs.train_run("siamese-variant", config, scratch / "siamese-variant.pt", device, verbose=False)
            minutes = (time.perf_counter() - start) / 60
        results = evaluate_settings(run.method, test_images, settings=((5, 1), (20, 1)), device=device)
        cells = " | ".join(f"{100 * m:.1f} ± {100 * ci:.1f}" for m, ci in results.values())
        rows.append(f"| {name} | {cells} | {minutes:.1f} | {os.getloadavg()[0]:.1f} |")
        print(rows[-1], flush=True)
    hardware = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
    out = Path(__file__).parent / "results" / f"siamese-variants-{device.type}.md"
    out.write_text("\n".join([
        f"Siamese variants, 1500 steps each, seed 0, on {hardware}, torch {torch.__version__}; "
        "600 test episodes per setting (vinyals test classes), mean ± 95% CI.",
        "",
        "The quick preset's row evaluates chapter 2's committed run (its training time is the one stored with it).",
        "",
        "| variant | 5-way 1-shot (%) | 20-way 1-shot (%) | training (min) | load after |",
        "|---|---|---|---|---|",
        *rows, ""]))
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
