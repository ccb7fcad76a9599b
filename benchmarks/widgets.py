"""How fast the chapters' explorers respond: median time of a control change (redraw included).

Run: MLCOURSE_DATA=/path/to/data MLCOURSE_QUIET=1 .venv/bin/python benchmarks/widgets.py
Writes benchmarks/results/widgets-cpu.md (target: well under a second on the 2-core CPU).
"""

import os
import platform
import statistics
import time
from pathlib import Path

import torch

from mlcourse import runs
from mlcourse.data import load_omniglot
from mlcourse.widgets import CurveExplorer, EpisodeExplorer, PrototypeExplorer, SinusoidExplorer


def median_ms(change, values) -> float:
    times = []
    for value in values:
        start = time.perf_counter()
        change(value)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    episodes = EpisodeExplorer()
    episodes.update()  # data loaded and first figure drawn before timing
    prototypes = PrototypeExplorer(runs.load_run("protonet", device="cpu").method, load_omniglot("vinyals", "test").images)
    sinusoids = SinusoidExplorer({name: runs.load_run(name, device="cpu").method
                                  for name in ("maml-sinusoid-k5", "pretrained-sinusoid")})
    curves = CurveExplorer({f"experiment {i}": ("x", list(range(8)), {f"learner {j}": [(0.5, 0.01)] * 8 for j in range(8)})
                            for i in range(4)})
    rows = [
        ("episode explorer: n_way 2..20, k_shot 1, 3 queries", median_ms(lambda n: setattr(episodes.n_way, "value", n),
                                                                          range(2, 21))),
        ("episode explorer: resample (20-way)", median_ms(lambda _: episodes.resample.click(), range(10))),
        ("prototype explorer: k_shot 1..10", median_ms(lambda k: setattr(prototypes.k_shot, "value", k), range(2, 11))),
        ("prototype explorer: resample", median_ms(lambda _: prototypes.resample.click(), range(10))),
        ("sinusoid explorer: inner steps 0..20", median_ms(lambda s: setattr(sinusoids.steps, "value", s), range(21))),
        ("sinusoid explorer: new task (20 steps)", median_ms(lambda _: sinusoids.resample.click(), range(10))),
        ("curve explorer: experiment (8 learners, 8 points)",
         median_ms(lambda i: setattr(curves.experiment, "value", f"experiment {i % 4}"), range(1, 9))),
    ]
    lines = [f"Explorers' response on CPU ({platform.machine()}, {torch.get_num_threads()} threads), torch "
             f"{torch.__version__}, load average {os.getloadavg()[0]:.1f} at the end.", "",
             "| control change | median (ms) |", "|---|---|", *[f"| {name} | {ms:.0f} |" for name, ms in rows], ""]
    out = Path(__file__).parent / "results" / "widgets-cpu.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
