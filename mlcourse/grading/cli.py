"""The `exercises` and `grade` commands of `python -m mlcourse`."""

import argparse
import signal
import sys
import time
from pathlib import Path

from mlcourse.grading.kernel import Limits


NO_SANDBOX_WARNING = """\
WARNING: grading WITHOUT the sandbox (--no-sandbox). The submissions' code runs as your user, with:
  - your files: it can read and change anything your account can, the submissions and the output folder included;
  - your processes: it can kill or trace the grader and other kernels, and leave processes behind that escape it;
  - the network;
  - the real mlcourse package on disk (the kernel imports a copy with the references stubbed out, but the
    original files can be found and read).
Grade only code you trust this way, or run the grader in a container (see book/instructors.md)."""


def add_commands(subparsers) -> None:
    """Add `exercises` and `grade` to the course's command line."""
    ex = subparsers.add_parser("exercises", help="write exercises/ from solutions/ (or check that it is fresh)",
                               description="Write exercises/NN_slug.ipynb from solutions/NN_slug.ipynb.")
    ex.add_argument("--check", action="store_true", help="only check that exercises/ is up to date (exit 1 if not)")
    ex.add_argument("--root", type=Path, default=Path("."), help="the course repository (default: here)")
    ex.set_defaults(run=run_exercises)

    defaults = Limits()
    gr = subparsers.add_parser("grade", help="grade a folder of submitted notebooks",
                               description="Grade every NN_slug.ipynb submission in a folder; write grades.csv, "
                                           "feedback/, results.json and gradescope/ into --out. Limits default "
                                           "to the exercise set's own (else to the values shown).")
    gr.add_argument("submissions", type=Path, help="folder of submitted notebooks (student = file name)")
    gr.add_argument("--exercise", required=True, help="the exercise set, e.g. 01_tasks_and_episodes")
    gr.add_argument("--out", type=Path, required=True, help="folder for the grades (created if needed)")
    gr.add_argument("--timeout", type=float, help=f"wall-clock seconds per submission ({defaults.timeout:g})")
    gr.add_argument("--memory-mb", type=int, help=f"memory limit of a submission's kernel, MB ({defaults.memory_mb})")
    gr.add_argument("--disk-mb", type=int,
                    help=f"what a submission may write into its scratch folder and /tmp, MB ({defaults.disk_mb})")
    gr.add_argument("--shm-mb", type=int, help=f"size of the sandbox's /dev/shm, MB ({defaults.shm_mb})")
    gr.add_argument("--cell-timeout", type=float,
                    help=f"seconds before a cell is interrupted ({defaults.cell_timeout:g})")
    gr.add_argument("--call-timeout", type=float,
                    help=f"seconds per call of a graded function ({defaults.call_timeout:g})")
    gr.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default 1)")
    gr.add_argument("--seed", type=int, default=None,
                    help="seed of the hidden inputs (default: from the exercise name and the grader secret, "
                         "$MLCOURSE_GRADER_SECRET or ~/.config/mlcourse/grader-secret, made on first use)")
    gr.add_argument("--no-sandbox", action="store_true",
                    help="run the kernels without the bubblewrap sandbox (only for code you trust: see "
                         "book/instructors.md for what is then not protected)")
    gr.set_defaults(run=run_grade)


def run_exercises(args) -> int:
    """Regenerate exercises/ (or check it)."""
    from mlcourse.grading.exercises import check_fresh, write_all

    if args.check:
        stale = check_fresh(args.root)
        for problem in stale:
            print(problem, file=sys.stderr)
        if stale:
            print("exercises/ is stale: run `make exercises` (python -m mlcourse exercises)", file=sys.stderr)
            return 1
        print("exercises/ is up to date")
        return 0
    for path in write_all(args.root):
        print(f"wrote {path}")
    return 0


def run_grade(args) -> int:
    """Grade a folder of submissions and write the results."""
    from mlcourse.grading import report
    from mlcourse.grading.grader import SandboxUnavailable, grade

    given = {"timeout": args.timeout, "memory_mb": args.memory_mb, "disk_mb": args.disk_mb, "shm_mb": args.shm_mb,
             "cell_timeout": args.cell_timeout, "call_timeout": args.call_timeout}
    limits = {k: v for k, v in given.items() if v is not None}
    start = time.monotonic()
    before = report.snapshot(args.out)
    if args.no_sandbox:
        print(NO_SANDBOX_WARNING, file=sys.stderr)
    signal.signal(signal.SIGTERM, _terminate)  # as Ctrl-C: kernels stopped, temporary folders removed
    try:
        exercise, graded, ignored = grade(args.submissions, args.exercise, limits, args.jobs, args.seed,
                                          sandboxed=False if args.no_sandbox else None)
    except (ValueError, FileNotFoundError, SandboxUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    written = report.write(args.out, exercise, graded)
    ours = {"grades.csv", "results.json"} | {f"{d}/{n}" for d in ("feedback", "gradescope")
                                             for n in report.output_names(graded)[d]}
    strays = sorted(report.snapshot(args.out) - before - ours)
    print(report.summary(exercise, graded, time.monotonic() - start, written, ignored, strays))
    return 0


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    """`python -m mlcourse.grading.cli {exercises,grade} ...` (the same commands as `python -m mlcourse`)."""
    parser = argparse.ArgumentParser(prog="python -m mlcourse.grading.cli", description=__doc__)
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
