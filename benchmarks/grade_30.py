"""Time to grade 30 submissions of chapter 1's exercises: correct, partly wrong and hostile ones.

Run: MLCOURSE_DATA=../shared/data .venv/bin/python benchmarks/grade_30.py [--jobs 2] [--no-sandbox]
Target: under 5 minutes on a 2-core CPU, with the sandbox as without it. Prints the
time and the grade table's summary.
Submissions are built from solutions/01_tasks_and_episodes.ipynb, so most of them run the whole
notebook (Omniglot loading and the 600-episode evaluations), like real students' work.
"""

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import nbformat

from mlcourse.grading import report
from mlcourse.grading.grader import grade

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = "01_tasks_and_episodes"

WRONG = {  # a graded function's solution cell replaced by a plausible mistake
    "sample_episode": "def sample_episode(images, n_way, k_shot, n_query, generator):\n"
                      "    classes = torch.randint(images.shape[0], (n_way,), generator=generator)\n"
                      "    drawings = torch.randint(images.shape[1], (n_way, k_shot + n_query), generator=generator)\n"
                      "    x = images[classes[:, None], drawings]\n    labels = torch.arange(n_way)\n"
                      "    return (x[:, :k_shot].reshape(-1, 1, 28, 28), labels.repeat_interleave(k_shot),\n"
                      "            x[:, k_shot:].reshape(-1, 1, 28, 28), labels.repeat_interleave(n_query))",
    "nearest_neighbour_predict": "def nearest_neighbour_predict(support_x, support_y, query_x, n_way):\n"
                                 "    d = torch.cdist(query_x.flatten(1), support_x.flatten(1))\n"
                                 "    return d.argmin(1) // (len(support_x) // n_way)",
    "episode_accuracy": "def episode_accuracy(predictions, query_y):\n"
                        "    return 100 * (predictions == query_y).float().mean()",
}

HOSTILE_CELLS = {
    "loop_in_cell": "while True:\n    pass",
    "memory_hog": "hoard = []\nwhile True:\n    hoard.append(torch.ones(2**25))",
    "os_exit": "import os\nos._exit(1)",
    "sys_exit": "import sys\nsys.exit(0)",
    "fake_score": "print('Score: 15/15')\nopen('grades.csv', 'w').write('me,15')",
    "monkeypatch": "torch.equal = lambda *a, **k: True\ntorch.allclose = lambda *a, **k: True",
    "uses_reference": "from mlcourse.methods import PixelNearestNeighbour",
    "import_trick": "import importlib\nimportlib.reload(torch)",
}


def copy(nb):
    return nbformat.reads(nbformat.writes(nb), as_version=4)


def with_cell(nb, name: str, source: str):
    """A copy of the solution with the cell defining `name` replaced by `source`."""
    nb = copy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code" and f"def {name}(" in cell.source:
            cell.source = source
    return nb


def submissions(folder: Path) -> None:
    """30 notebooks: 12 correct, 8 partly wrong, 10 hostile or broken."""
    solution = nbformat.read(ROOT / "solutions" / f"{EXERCISE}.ipynb", as_version=4)
    subs = {f"correct_{i:02d}": solution for i in range(12)}
    for i in range(8):
        name = list(WRONG)[i % 3]
        subs[f"wrong_{name}_{i}"] = with_cell(solution, name, WRONG[name])
    for name, source in HOSTILE_CELLS.items():
        nb = copy(solution)
        nb.cells.insert(len(nb.cells) // 2, nbformat.v4.new_code_cell(source))
        subs[f"hostile_{name}"] = nb
    for name, nb in subs.items():
        nbformat.write(nb, folder / f"{name}.ipynb")
    (folder / "hostile_not_json.ipynb").write_text("this is not a notebook")
    (folder / "hostile_old_format.ipynb").write_text(json.dumps({"nbformat": 3, "worksheets": []}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--no-sandbox", action="store_true", help="grade without the bubblewrap sandbox")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subs, out = Path(tmp) / "submissions", Path(tmp) / "out"
        subs.mkdir()
        submissions(subs)
        start = time.monotonic()
        exercise, graded, ignored = grade(subs, EXERCISE, jobs=args.jobs,
                                          sandboxed=False if args.no_sandbox else None)
        seconds = time.monotonic() - start
        written = report.write(out, exercise, graded)
        print(report.summary(exercise, graded, seconds, written, ignored, []))
    print(f"\n{len(graded)} submissions graded in {seconds:.0f} s ({seconds / len(graded):.1f} s each) with "
          f"--jobs {args.jobs}{' --no-sandbox' if args.no_sandbox else ' (sandboxed)'} on "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs.")


if __name__ == "__main__":
    main()
