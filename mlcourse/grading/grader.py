"""Grade a folder of submitted notebooks against an exercise set's checks.

Each submission runs in its own kernel, in its own scratch directory, under time and memory limits.
The kernel only computes the graded functions' outputs on inputs that the grader chooses and writes
them as plain tensors; the grader loads them with `torch.load(weights_only=True)` and does every
comparison and all the scoring here, in its own process.
"""

import atexit
import io
import json
import os
import secrets
import shutil
import stat
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import nbformat
import torch

from mlcourse.grading import checks
from mlcourse.grading.harness import MAX_NUMEL, WATCHED, encode_call
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
    for c in cells:  # what Jupyter fills in when it opens a notebook that lacks it
        if isinstance(c.get("source"), list):
            c["source"] = "".join(str(s) for s in c["source"])
        c.setdefault("source", "")
        if not isinstance(c.get("metadata"), dict):
            c["metadata"] = {}
        if c["cell_type"] == "code":
            c.setdefault("outputs", [])
            c.setdefault("execution_count", None)
    if not isinstance(data.get("metadata"), dict):
        data["metadata"] = {}
    return nbformat.from_dict(data), ""


PRELUDE = ("import sys as _sys\n"  # an editable install's finder would import the real package, not the copy
           "_sys.meta_path[:] = [f for f in _sys.meta_path if not str(getattr(f, '__module__', '')).startswith("
           "'__editable__')]\n"
           "del _sys\n")
HARNESS = "_grading_harness"  # the harness's namespace in the kernel, made by the setup cell after the student's cells


def _harness_setup(inputs: str, results: str, call_timeout: float) -> str:
    """The cell that runs the grader's own harness and adapters source (never the kernel's copy of them)."""
    here = Path(__file__).parent
    sources = {name: (here / f"{name}.py").read_text(encoding="utf-8") for name in ("adapters", "harness")}
    return (f"{HARNESS}, _grading_adapters = {{'__name__': 'grading_harness'}}, {{'__name__': 'grading_adapters'}}\n"
            f"exec(compile({sources['adapters']!r}, 'grading_adapters', 'exec'), _grading_adapters)\n"
            f"exec(compile({sources['harness']!r}, 'grading_harness', 'exec'), {HARNESS})\n"
            f"{HARNESS}['ADAPTERS'] = _grading_adapters\n"
            "del _grading_adapters\n"
            f"{HARNESS}['load_calls']({inputs!r}, {results!r}, {call_timeout!r}, globals())\n")


def _harness_call(key: str) -> str:
    return f"{HARNESS}['run_call']({key!r})\n"


CALL_GRACE_S = 2  # beyond the call time limit, before the grader kills the kernel from outside


def run_notebook(nb, exercise: Exercise, ctx: "_Context") -> tuple[KernelRun, dict, dict, list[str]]:
    """Run the student's cells, then the grader's calls, one cell per call; the outputs ({key: tensors}), errors
    ({key: message}) and what the kernel's harness found replaced of what it relies on (harness.WATCHED).

    A call that runs past its time limit (plus a grace period) is stopped by killing the kernel from outside: that
    function gets an error for its remaining calls, and a fresh kernel runs the student's cells again for the calls
    of the other functions. A kernel that dies during a call is handled the same way.

    The grader writes only into folders that the sandbox cannot write (the inputs reach it through a read-only
    bind); of the scratch folder, which the kernel can write, it only makes each round's results folder under a
    fresh random name and reads regular files from it through a descriptor (`read_results`).
    """
    work = make_scratch()
    _LIVE.add(work)
    scratch, comm, tmp, inputs = work / "home", work / "comm", work / "tmp", work / "inputs"
    private = work / "private"  # the grader's own: results folders are made and opened here, then moved into home
    for d in (scratch, comm, tmp, inputs, private):
        d.mkdir(mode=0o700)
    token = secrets.token_hex(8)  # marks the submission's processes; the kernel can read it in its environment
    home_inside = sandbox.HOME if ctx.sandboxed else str(scratch)
    inputs_inside = sandbox.INPUTS if ctx.sandboxed else str(inputs)
    n_student = len(nb.cells)
    cells = [nbformat.v4.new_code_cell(PRELUDE)]
    cells += [nbformat.v4.new_code_cell(c.source) if c.cell_type == "code" else nbformat.v4.new_markdown_cell("")
              for c in nb.cells]
    cells.append(nbformat.v4.new_code_cell(""))  # the harness's setup, written for each kernel
    setup_index = len(cells) - 1
    keys = list(exercise.calls)
    call_index = {}
    for key in keys:
        call_index[key] = len(cells)
        cells.append(nbformat.v4.new_code_cell(_harness_call(key)))
    run_nb = nbformat.v4.new_notebook(cells=cells)
    run = KernelRun(stopped="not run")
    outputs, errors, failed, died, tampered = {}, {}, {}, False, []
    home_fd = None
    try:
        (scratch / "submission.ipynb").write_text(nbformat.writes(nb))  # a copy: the original is never touched
        for f in ctx.omniglot_cache:
            target = scratch / ".cache" / "mlcourse" / f.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, target)
        home_fd = os.open(scratch, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)  # before any kernel runs
        env = _kernel_env(home_inside, ctx, token)
        if ctx.sandboxed:
            box = sandbox.Sandbox(home=scratch, tmp=tmp, comm=comm, course=ctx.course, data=ctx.omniglot_root,
                                  inputs=inputs, env=env, shm_mb=ctx.limits.shm_mb)
            prefix, launch_env = box.argv(), {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        else:
            prefix, launch_env = [], env
        run = KernelRun()
        deadline = time.monotonic() + ctx.limits.timeout
        pending, first, results_fd = list(keys), True, None
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
                else:  # the inputs exist only once the student's cells have run
                    name = f"results-{secrets.token_hex(8)}"
                    results_fd = _new_folder(private, home_fd, name)
                    inputs_name = f"inputs-{name}.pt"
                    _write_new(inputs / inputs_name, {"calls": [c for c in ctx.calls if c["key"] in pending]})
                    cells[setup_index].source = _harness_setup(f"{inputs_inside}/{inputs_name}",
                                                               f"{home_inside}/{name}", ctx.limits.call_timeout)
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
            if results_fd is not None:
                got, got_errors = read_results(results_fd, keys, MAX_TOTAL_RESULT_BYTES - sum(
                    _expanded_bytes(ts) for ts in outputs.values()), ctx.public_error)
                outputs.update(got)
                for k, e in got_errors.items():
                    if k not in outputs:
                        errors.setdefault(k, e)
                tampered = sorted(set(tampered) | set(read_tampered(results_fd)))
                os.close(results_fd)
                results_fd = None
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
        if home_fd is not None:
            os.close(home_fd)
        remove_tree(work)
        _LIVE.discard(work)
    return run, outputs, errors, tampered


def _new_folder(private: Path, parent_fd: int, name: str) -> int:
    """A descriptor of a new folder `name` in the folder `parent_fd`, opened before its name appears there.

    The folder is made and opened in the grader's `private` folder, then moved in: whatever the kernel later puts
    in its place (a link, a FIFO) is never followed, since the grader reads the folder through this descriptor.
    """
    private_fd = os.open(private, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.mkdir(name, 0o700, dir_fd=private_fd)
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=private_fd)
        try:
            os.rename(name, name, src_dir_fd=private_fd, dst_dir_fd=parent_fd)
        except BaseException:
            os.close(fd)
            raise
    finally:
        os.close(private_fd)
    return fd


def _write_new(path: Path, value) -> None:
    """torch.save `value` into a new file (never through a link, never over an existing file)."""
    buffer = io.BytesIO()
    torch.save(value, buffer)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(buffer.getvalue())


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


def read_results(folder: Path | int, keys: list[str], budget: int = 2**62, public=None) -> tuple[dict, dict]:
    """The tensors and errors the harness wrote, read back as plain tensors and short strings only.

    `folder` is a path or an open folder's descriptor. Only regular files are read, through descriptors opened
    without following links and without waiting (a FIFO or a leased file is skipped), and each only up to its limit.
    At most `budget` bytes of tensors are taken in all, counted as they expand in memory (a stride-0 tensor saved in
    a few bytes counts all its elements); the errors, which the student's process writes, pass through `public`
    (what may be shown of them)."""
    outputs, errors = {}, {}
    public = public or (lambda text: text)
    with _folder(folder) as fd:
        if fd is None:
            return outputs, errors
        for key in keys:
            raw = _read_regular(fd, f"{key}.pt", MAX_RESULT_BYTES)
            if raw is None:
                continue
            try:
                data = torch.load(io.BytesIO(raw), weights_only=True, map_location="cpu")
            except Exception:
                errors[key] = "its outputs could not be read back"
                continue
            tensors = _tensors_of(data, key)
            if tensors is None:
                errors[key] = "its outputs were not plain tensors"
            elif any(t.numel() > MAX_NUMEL for t in tensors) or _expanded_bytes(tensors) > MAX_RESULT_BYTES:
                errors[key] = f"its outputs hold more elements than the grader takes ({MAX_NUMEL:,} per tensor)"
            elif max(len(raw), _expanded_bytes(tensors)) > budget:
                errors[key] = "its outputs pass the grader's limit on what one submission may return in all"
            else:
                budget -= max(len(raw), _expanded_bytes(tensors))
                outputs[key] = tensors
        raw = _read_regular(fd, "errors.json", 2**20)
    try:
        found = json.loads(raw) if raw is not None else {}
    except (ValueError, UnicodeDecodeError, RecursionError):
        found = {}
    if isinstance(found, dict):
        for key in keys:
            if key not in outputs and isinstance(found.get(key), str):
                errors[key] = public("".join(ch for ch in found[key] if ch.isprintable())[:200])
    return outputs, errors


def read_tampered(folder: Path | int) -> list[str]:
    """What the kernel's harness found replaced of what it relies on: names from harness.WATCHED only."""
    with _folder(folder) as fd:
        raw = None if fd is None else _read_regular(fd, "tampered.json", 2**14)
    try:
        found = json.loads(raw) if raw is not None else []
    except (ValueError, UnicodeDecodeError, RecursionError):
        return []
    return [name for name in WATCHED if isinstance(found, list) and name in found]


@contextmanager
def _folder(folder: Path | int):
    """A descriptor of `folder` (None when it is not a folder: a link is not followed); one given is kept open."""
    if isinstance(folder, int):
        yield folder
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)


def _read_regular(folder_fd: int, name: str, max_bytes: int) -> bytes | None:
    """The bytes of file `name` of a folder, when it is a regular file of at most `max_bytes`; else None."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=folder_fd)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > max_bytes:
            return None
        try:
            raw = f.read(max_bytes + 1)
        except OSError:
            return None
    return raw if len(raw) <= max_bytes else None


def _expanded_bytes(tensors: list[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


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
    flagged = voided([f for f in findings if not f.grader], ex)
    run, outputs, errors, tampered = run_notebook(nb, ex, ctx)
    results = score(ex, outputs, errors)  # a flag is advice: the references are stubs in the kernel anyway
    status = [run.stopped] if run.stopped else []
    if flagged:
        status.append(f"flagged: uses the reference implementation ({', '.join(sorted(flagged))})")
    if any(f.grader for f in findings):
        status.append("flagged: reaches for the grader's code (see the notes)")
    if tampered:
        status.append(f"flagged: changed what the grader's calls rely on ({', '.join(tampered)})")
    notes = [f"cell {f.cell}: {f.what} (flagged for a look by the instructor; no points are taken for it)"
             for f in findings]
    if tampered:
        notes.append(f"the notebook's code replaced {', '.join(tampered)}, which the grader's calls use: the checks "
                     "of inputs left unchanged and of the generator's use may have been fooled (flagged for a look)")
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
            secret = checks.new_secret()
            echo(f"made a grader secret for this installation in {checks.secret_file()} (readable by you only): the "
                 "hidden inputs are drawn from it; keep it, and keep it out of the students' reach")
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
        problem = redact.clean(f"grader error: {type(err).__name__}: {err}", ctx.secrets_, [])[:200]
        voided_all = {fn.name: problem for fn in ctx.exercise.functions}
        return Graded(student, [problem], score(ctx.exercise, {}, {}, voided_all))


def _announce(g: Graded, exercise: Exercise, echo) -> Graded:
    echo(f"  {g.student}: {g.total:g}/{exercise.max_points:g}  {g.status_text}  ({g.seconds:.1f} s)")
    return g
