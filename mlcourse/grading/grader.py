"""Grade a folder of submitted notebooks against an exercise set's checks.

Each submission runs in its own kernel, in its own scratch directory, under time and memory limits.
The kernel only computes the graded functions' outputs on inputs that the grader chooses and writes
them as plain tensors; the grader loads them with `torch.load(weights_only=True)` and does every
comparison and all the scoring here, in its own process.
"""

import atexit
import json
import os
import secrets
import shutil
import stat
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import nbformat
import torch

from mlcourse.grading import checks
from mlcourse.grading.harness import encode_call
from mlcourse.grading import redact, sandbox
from mlcourse.grading.kernel import (Kernel, KernelRun, Limits, allow_kernels, kernel_spec_dir, kill_leftovers,
                                     make_scratch, remove_tree, stop_all)
from mlcourse.grading.scoring import CheckResult, score
from mlcourse.grading.spec import Exercise
from mlcourse.grading.static import screen, voided
from mlcourse.grading.stubs import stubbed_package

MAX_SUBMISSION_BYTES = 50 * 2**20  # a bigger notebook is refused without running it
MAX_RESULT_BYTES = 256 * 2**20  # per call, read back from the kernel
MAX_TOTAL_RESULT_BYTES = 512 * 2**20  # per submission, all calls and kernels together
MARKER = "MLCOURSE_GRADING"  # environment variable that tags a submission's processes


@dataclass
class Graded:
    """One submission's grade: per-check results, status, and notes for its feedback."""

    student: str
    status: list[str]
    results: list[CheckResult]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total(self) -> float:
        return sum(r.points for r in self.results)

    @property
    def status_text(self) -> str:
        return "; ".join(self.status) or "ok"

    def points(self, function: str) -> float:
        return sum(r.points for r in self.results if r.function == function)


def read_submissions(folder: Path) -> tuple[list[tuple[str, bytes]], list[str]]:
    """Every `*.ipynb` in `folder`, read into memory once (student = file stem), and the names of other files."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder of submitted notebooks")
    subs, ignored = [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix != ".ipynb":
            ignored.append(path.name)
            continue
        student = os.fsencode(path.stem).decode("utf-8", "replace")  # a name that is not UTF-8 still gets a row
        subs.append((student, path.read_bytes() if path.stat().st_size <= MAX_SUBMISSION_BYTES else None))
    return subs, ignored


def parse_notebook(raw: bytes | None) -> tuple[nbformat.NotebookNode | None, str]:
    """The notebook, or None and why it cannot be graded."""
    if raw is None:
        return None, f"not graded: larger than {MAX_SUBMISSION_BYTES // 2**20} MB"
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None, "not a notebook: the file is not JSON"
    if not isinstance(data, dict) or "nbformat" not in data:
        return None, "not a notebook: JSON, but not a Jupyter notebook"
    major = data.get("nbformat")
    if not isinstance(major, int) or major > 4:
        return None, f"not a notebook: unknown notebook format {major!r}"
    if major < 4:
        return None, f"old notebook format (nbformat {major}): open it in Jupyter and save it again, then resubmit"
    cells = data.get("cells")
    if not isinstance(cells, list) or not all(
            isinstance(c, dict) and c.get("cell_type") in {"code", "markdown", "raw"}
            and isinstance(c.get("source", ""), (str, list)) for c in cells):
        return None, "not a notebook: its cells are missing or malformed"
    for c in cells:
        if isinstance(c.get("source"), list):
            c["source"] = "".join(str(s) for s in c["source"])
    return nbformat.from_dict(data), ""


def _prelude(exercise: Exercise) -> str:
    paths = [p for fn in exercise.functions for p in fn.references]
    return ("import sys as _sys\n"  # an editable install's finder would import the real package, not the copy
            "_sys.meta_path[:] = [f for f in _sys.meta_path if not str(getattr(f, '__module__', '')).startswith("
            "'__editable__')]\n"
            "del _sys\n"
            "import mlcourse.grading.harness as _grading_harness\n"
            f"_grading_harness.disable({paths!r})\n"
            "del _grading_harness\n")


def _harness_setup(inputs: str, results: str, call_timeout: float) -> str:
    return ("import mlcourse.grading.harness as _grading_harness\n"
            f"_grading_harness.load_calls({inputs!r}, {results!r}, {call_timeout!r}, globals())\n")


def _harness_call(key: str) -> str:
    return f"_grading_harness.run_call({key!r})\n"


CALL_GRACE_S = 2  # beyond the call time limit, before the grader kills the kernel from outside


def run_notebook(nb, exercise: Exercise, ctx: "_Context") -> tuple[KernelRun, dict, dict]:
    """Run the student's cells, then the grader's calls, one cell per call; the outputs ({key: tensors}) and errors
    ({key: message}).

    A call that runs past its time limit (plus a grace period) is stopped by killing the kernel from outside: that
    function gets an error for its remaining calls, and a fresh kernel runs the student's cells again for the calls
    of the other functions. A kernel that dies during a call is handled the same way.
    """
    work = make_scratch()
    _LIVE.add(work)
    scratch, comm, tmp = work / "home", work / "comm", work / "tmp"
    for d in (scratch, comm, tmp):
        d.mkdir(mode=0o700)
    token = secrets.token_hex(8)
    results = scratch / f"results-{token}"
    home_inside = sandbox.HOME if ctx.sandboxed else str(scratch)
    results_inside = f"{home_inside}/results-{token}"
    n_student = len(nb.cells)
    cells = [nbformat.v4.new_code_cell(_prelude(exercise))]
    cells += [nbformat.v4.new_code_cell(c.source) if c.cell_type == "code" else nbformat.v4.new_markdown_cell("")
              for c in nb.cells]
    cells.append(nbformat.v4.new_code_cell(_harness_setup(f"{results_inside}/inputs.pt", results_inside,
                                                          ctx.limits.call_timeout)))
    setup_index = len(cells) - 1
    keys = list(exercise.calls)
    call_index = {}
    for key in keys:
        call_index[key] = len(cells)
        cells.append(nbformat.v4.new_code_cell(_harness_call(key)))
    run_nb = nbformat.v4.new_notebook(cells=cells)
    run = KernelRun(stopped="not run")
    outputs, errors, failed, died = {}, {}, {}, False
    try:
        (scratch / "submission.ipynb").write_text(nbformat.writes(nb))  # a copy: the original is never touched
        for f in ctx.omniglot_cache:
            target = scratch / ".cache" / "mlcourse" / f.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, target)
        env = _kernel_env(home_inside, ctx, token)
        if ctx.sandboxed:
            box = sandbox.Sandbox(home=scratch, tmp=tmp, comm=comm, course=ctx.course,
                                  data=ctx.omniglot_root, env=env)
            prefix, launch_env = box.argv(), {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        else:
            prefix, launch_env = [], env
        run = KernelRun()
        deadline = time.monotonic() + ctx.limits.timeout
        pending, first = list(keys), True
        while True:
            restart = False
            with Kernel(run_nb, scratch, launch_env, ctx.limits, ctx.kernels, run, deadline, comm, prefix,
                        writable=[scratch, tmp, comm]) as kernel:
                known = dict(run.cell_errors)
                ran = all(not kernel.execute(i) for i in range(1 + n_student) if cells[i].cell_type == "code")
                if not first:  # a fresh kernel after a stopped call: the student's cells again, their errors known
                    run.cell_errors = known
                if not ran:
                    run.stopped = run.stopped or "kernel died"
                else:
                    if results.exists():
                        remove_tree(results)
                    results.mkdir(mode=0o700)  # the inputs exist only once the student's cells have run
                    torch.save({"calls": [c for c in ctx.calls if c["key"] in pending]}, results / "inputs.pt")
                    if not kernel.execute(setup_index, timeout=60):
                        while pending:
                            key = pending.pop(0)
                            function = exercise.calls[key].function
                            if function in failed:
                                errors.setdefault(key, f"skipped: an earlier call {failed[function]}")
                                continue
                            outcome = kernel.execute(call_index[key], timeout=ctx.limits.call_timeout + CALL_GRACE_S,
                                                     interrupt=False)
                            if not outcome:
                                continue
                            if run.stopped:  # the whole submission's time or memory is up
                                break
                            if outcome == "timeout":
                                errors[key] = f"CallTimeout: ran past its time limit of {ctx.limits.call_timeout:g} s"
                                failed[function] = "ran past its time limit"
                            else:
                                errors[key] = "the kernel ended during this call"
                                failed[function] = "ended the kernel"
                                died = True
                            restart = any(exercise.calls[k].function not in failed for k in pending)
                            break
            got, got_errors = read_results(results, keys, MAX_TOTAL_RESULT_BYTES - sum(
                t.numel() * t.element_size() for ts in outputs.values() for t in ts), ctx.public_error)
            outputs.update(got)
            for k, e in got_errors.items():
                if k not in outputs:
                    errors.setdefault(k, e)
            if results.exists():
                remove_tree(results)
            if not restart or run.stopped:
                break
            first = False
        for key in pending:
            function = exercise.calls[key].function
            if function in failed and key not in outputs:
                errors.setdefault(key, f"skipped: an earlier call {failed[function]}")
        if died and not run.stopped:
            run.stopped = "kernel died"
        hide = {str(work): "~", str(ctx.course): "<mlcourse>"}  # no path of the grader's in the feedback
        errors = {k: _scrub(e, hide) for k, e in errors.items()}
        run.cell_errors = {i: _scrub(e, hide) for i, e in run.cell_errors.items()}
        if n_student + 1 in run.cell_errors:  # the grader's setup cell: what broke it is the student's code's doing
            run.cell_errors[n_student + 1] = ctx.public_error(run.cell_errors[n_student + 1])
    finally:
        kill_leftovers(run, (MARKER, token), work)
        remove_tree(work)
        _LIVE.discard(work)
    return run, outputs, errors


def _scrub(text: str, replace: dict[str, str]) -> str:
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


def _kernel_env(home: str, ctx: "_Context", token: str) -> dict[str, str]:
    """A small, explicit environment: nothing of the grader's own environment leaks into the kernel."""
    inside = ctx.sandboxed
    env = {
        "PATH": os.pathsep.join(dict.fromkeys([os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin"]))
        if inside else os.environ.get("PATH", os.defpath), "LANG": "C.UTF-8", "HOME": home, "USER": "student",
        "TMPDIR": sandbox.TMP if inside else str(Path(home).parent / "tmp"), "IPYTHONDIR": f"{home}/.ipython",
        "MPLCONFIGDIR": f"{home}/.matplotlib", "MPLBACKEND": "Agg", "MLCOURSE_QUIET": "1",
        "JUPYTER_RUNTIME_DIR": f"{home}/.jupyter-runtime",
        "PYTHONHASHSEED": "0", "PYTHONPATH": sandbox.COURSE if inside else str(ctx.course),
        "CUDA_VISIBLE_DEVICES": "", "MLCOURSE_DEVICE": "cpu", "JUPYTER_PLATFORM_DIRS": "1",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",  # the same float results on any machine, no contention
        "PYDEVD_DISABLE_FILE_VALIDATION": "1", MARKER: token,
    }
    if ctx.omniglot_root:
        env["MLCOURSE_DATA"] = sandbox.DATA if inside else ctx.omniglot_root
    return env


def read_results(folder: Path, keys: list[str], budget: int = 2**62, public=None) -> tuple[dict, dict]:
    """The tensors and errors the harness wrote, read back as plain tensors and short strings only.

    At most `budget` bytes of files are read in all (what a submission returns is bounded in total, not only per
    call); the errors, which the student's process writes, pass through `public` (what may be shown of them)."""
    outputs, errors = {}, {}
    public = public or (lambda text: text)
    if not folder.is_dir() or folder.is_symlink():
        return outputs, errors
    for key in keys:
        path = folder / f"{key}.pt"
        if not _regular(path, MAX_RESULT_BYTES):
            continue
        size = path.stat().st_size
        if size > budget:
            errors[key] = "its outputs pass the grader's limit on what one submission may return in all"
            continue
        budget -= size
        try:
            data = torch.load(path, weights_only=True, map_location="cpu")
        except Exception:
            errors[key] = "its outputs could not be read back"
            continue
        tensors = _tensors_of(data, key)
        if tensors is None:
            errors[key] = "its outputs were not plain tensors"
        else:
            outputs[key] = tensors
    path = folder / "errors.json"
    if _regular(path, 2**20):
        try:
            raw = json.loads(path.read_text())
        except (ValueError, OSError, UnicodeDecodeError):
            raw = {}
        if isinstance(raw, dict):
            for key in keys:
                if key not in outputs and isinstance(raw.get(key), str):
                    errors[key] = public("".join(ch for ch in raw[key] if ch.isprintable())[:200])
    return outputs, errors


def _regular(path: Path, max_bytes: int) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size <= max_bytes


def _tensors_of(data, key: str) -> list[torch.Tensor] | None:
    if not isinstance(data, dict):
        return None
    tensors = []
    while f"{key}:{len(tensors)}" in data:
        t = data[f"{key}:{len(tensors)}"]
        if type(t) is not torch.Tensor or t.layout != torch.strided or t.device.type != "cpu":
            return None
        tensors.append(t.detach())
    return tensors


@dataclass
class _Context:
    exercise: Exercise
    calls: list[dict]
    limits: Limits
    kernels: object
    omniglot_root: str | None
    omniglot_cache: list[Path]
    course: Path  # holds the copy of mlcourse, references stubbed, that the kernels import
    sandboxed: bool  # each kernel runs in its own bubblewrap sandbox
    students: list[str] = field(default_factory=list)  # every student's name, kept out of the others' feedback
    secrets_: list[str] = field(default_factory=list)  # strings of the grader's that no feedback may hold

    def public_error(self, text: str) -> str:
        """What feedback may show of an error that the student's process wrote (see redact.public_error)."""
        return redact.public_error(text, self.exercise)


def grade_submission(student: str, raw: bytes | None, ctx: _Context) -> Graded:
    """Grade one submission (never raises for anything the submission does)."""
    start = time.monotonic()
    ex = ctx.exercise
    nb, problem = parse_notebook(raw)
    if nb is None:
        results = score(ex, {}, {}, {fn.name: problem for fn in ex.functions})
        return Graded(student, [problem], results, seconds=time.monotonic() - start)
    findings = screen(nb.cells, ex)
    flagged = voided(findings, ex)
    run, outputs, errors = run_notebook(nb, ex, ctx)
    results = score(ex, outputs, errors)  # a flag is advice: the references are stubs in the kernel anyway
    status = [run.stopped] if run.stopped else []
    if flagged:
        status.append(f"flagged: uses the reference implementation ({', '.join(sorted(flagged))})")
    notes = [f"cell {f.cell}: {f.what} (flagged for a look by the instructor; no points are taken for it)"
             for f in findings]
    interrupted = [i for i, e in sorted(run.cell_errors.items())
                   if e.startswith("KeyboardInterrupt") and 1 <= i <= len(nb.cells)]
    if interrupted:
        status.append(f"cell time limit: cell {', '.join(map(str, interrupted))} interrupted")
    notes += [f"cell {i} raised {e}" for i, e in sorted(run.cell_errors.items())
              if 1 <= i <= len(nb.cells)][:20]
    harness_error = run.cell_errors.get(len(nb.cells) + 1)
    if harness_error:
        notes.append(f"the grader's calls failed in your kernel: {harness_error}")
    if not run.stopped and not outputs and not errors:
        status.append("no results from the kernel")
    graded = Graded(student, status, results, notes, seconds=time.monotonic() - start)
    return redact.graded(graded, ctx.secrets_, [s for s in ctx.students if s != student])


def omniglot_for_kernels(echo=print) -> tuple[str | None, list[Path]]:
    """The folder to give kernels as MLCOURSE_DATA and the preprocessed cache files to copy into their home."""
    from mlcourse.data.omniglot import OmniglotError, cache_dir, find_omniglot, load_characters

    try:
        root = find_omniglot(download=False)
        load_characters(download=False)  # preprocess once here, not in every kernel
    except OmniglotError as err:
        echo(f"warning: Omniglot is not available, so cells that load it will fail in every submission:\n{err}")
        return None, []
    return str(root.parent), sorted(cache_dir().glob("omniglot*.pt"))


def grade(submissions: Path, exercise_name: str, limits: Limits | dict | None = None, jobs: int = 1,
          seed: int | None = None, echo=print, sandboxed: bool | None = None
          ) -> tuple[Exercise, list[Graded], list[str]]:
    """Grade every notebook in `submissions`: the exercise, the grades (by student), and the files ignored.

    `limits` replaces the exercise set's default limits; a dict overrides only the fields it names. Each kernel runs
    in a bubblewrap sandbox; `sandboxed=False` runs them without one (only for trusted code), and the default (None)
    refuses to grade when the sandbox cannot be built here (RuntimeError, which says why).
    """
    if seed is None:
        secret = checks.grader_secret()
        if secret is None:
            echo(f"warning: no grader secret ({checks.SECRET_ENV} or {checks.secret_file()}): the hidden inputs are "
                 "drawn from the exercise's name alone, which anyone with the repository can reproduce")
        seed = checks.default_seed(exercise_name, secret) if checks.STEM.match(exercise_name) else 0
    exercise = checks.build(exercise_name, seed)
    if sandboxed is None or sandboxed:
        why = sandbox.unavailable()
        if why:
            raise SandboxUnavailable(f"cannot sandbox the submissions: {why}. Install bubblewrap, or grade only "
                                     "code you trust with --no-sandbox (see book/instructors.md)")
    limits = resolve_limits(exercise, limits)
    subs, ignored = read_submissions(Path(submissions))
    root, cache = omniglot_for_kernels(echo) if exercise.uses_omniglot else (None, [])
    calls = [encode_call(k, c) for k, c in exercise.calls.items()]
    run_dir = make_scratch()
    _LIVE.add(run_dir)
    try:
        course = stubbed_package(run_dir / "course", [p for fn in exercise.functions for p in fn.references])
        ctx = _Context(exercise, calls, limits, kernel_spec_dir(run_dir / "kernels"), root, cache, course,
                       sandboxed is not False, [s for s, _ in subs],
                       redact.grader_secrets(run_dir, Path(submissions), root, cache))
        allow_kernels()
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            try:
                graded = list(pool.map(lambda s: _announce(_safely(s[0], s[1], ctx), exercise, echo), subs))
            except BaseException:  # interrupted (Ctrl-C, SIGTERM): stop every kernel now, then clean up
                pool.shutdown(wait=False, cancel_futures=True)
                stop_all()
                raise
    finally:
        remove_tree(run_dir)
        _LIVE.discard(run_dir)
    return exercise, graded, ignored


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot be built on this machine, and grading without it was not asked for."""


_LIVE: set[Path] = set()  # the temporary folders of this process's grading runs, removed at exit if still there


@atexit.register
def _remove_live() -> None:
    for folder in list(_LIVE):
        remove_tree(folder)


def resolve_limits(exercise: Exercise, limits: Limits | dict | None) -> Limits:
    """`limits` itself, or the exercise set's defaults with the fields of a dict replaced."""
    if isinstance(limits, Limits):
        return limits
    return replace(Limits(**exercise.limits), **(limits or {}))


def _safely(student: str, raw: bytes | None, ctx: _Context) -> Graded:
    """grade_submission, and should the grader itself fail on this submission, a zero that says so."""
    try:
        return grade_submission(student, raw, ctx)
    except Exception as err:  # a bug or an environment problem: this submission needs a look, the run goes on
        problem = f"grader error: {type(err).__name__}: {err}"[:200]
        voided_all = {fn.name: problem for fn in ctx.exercise.functions}
        return Graded(student, [problem], score(ctx.exercise, {}, {}, voided_all))


def _announce(g: Graded, exercise: Exercise, echo) -> Graded:
    echo(f"  {g.student}: {g.total:g}/{exercise.max_points:g}  {g.status_text}  ({g.seconds:.1f} s)")
    return g
