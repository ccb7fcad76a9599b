"""Run a submission's cells in a fresh kernel, under a wall-clock limit and a memory limit.

A watchdog thread sums the resident memory of the kernel's process tree (psutil) and kills it all
when the limit is passed or the time is up. An address-space limit (RLIMIT_AS) is not used: the
CUDA build of torch reserves far more address space than it uses, and would not even import.

The kernel talks to the grader over ZMQ's ipc transport (Unix sockets) whose files, with the
connection file, live in a private folder that the caller removes: no TCP port is opened, and the
kernel can run in a sandbox without a network (`sandbox.Sandbox`), whose command line then prefixes
the kernel's. Limits that matter are enforced from outside: a cell that runs past its time can be
interrupted (or, for the grader's calls, the whole kernel killed), and the watchdog kills the tree.
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

KERNEL_NAME = "mlcourse-grader"
POLL_S = 0.05  # how often the watchdog looks at the kernel's memory and the clock
_LIVE: set["Kernel"] = set()  # the kernels running now, in any thread
_STOP = threading.Event()  # set when grading is interrupted: no kernel starts any more


def stop_all() -> None:
    """Kill every running kernel and start no new one (grading was interrupted)."""
    _STOP.set()
    for kernel in list(_LIVE):
        kernel._kill_all()


def allow_kernels() -> None:
    """Let kernels start again (a new grading run)."""
    _STOP.clear()


@dataclass
class Limits:
    """What one submission may use."""

    timeout: float = 300.0  # wall-clock seconds for the whole notebook, kernel start included
    memory_mb: int = 4096  # resident memory of the kernel and its child processes
    cell_timeout: float = 120.0  # a cell running longer is interrupted, and the next cell runs
    call_timeout: float = 20.0  # one call of a graded function


@dataclass
class KernelRun:
    """What happened in the kernel: a stop reason ('' when it ran to the end) and the cells' errors."""

    stopped: str = ""  # "timeout", "memory limit", "kernel died", "kernel failed to start: ..."
    cell_errors: dict[int, str] = field(default_factory=dict)  # cell index (in the run) -> 'Error: message'
    seen: dict[int, psutil.Process] = field(default_factory=dict)  # every process seen in the kernel's tree
    peak_mb: float = 0.0


def kernel_spec_dir(folder: Path) -> KernelSpecManager:
    """A kernel spec that runs ipykernel with this very interpreter (not whatever 'python3' names).

    Interrupts go as a message on the control channel (ipykernel then signals itself), since a signal
    sent to the process group from outside does not reach a kernel in a sandbox of its own.
    """
    spec = folder / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "mlcourse grader",
                                                  "language": "python", "interrupt_mode": "message"}))
    return KernelSpecManager(kernel_dirs=[str(folder)])


class _Manager(AsyncKernelManager):
    """A kernel manager whose kernel command is prefixed (by the sandbox's bwrap command line)."""

    prefix: list[str] = []

    def format_kernel_cmd(self, extra_arguments=None):
        return list(self.prefix) + super().format_kernel_cmd(extra_arguments)


class _QuietClient(NotebookClient):
    """Keeps only error outputs, so that a submission cannot flood the grader's memory with output."""

    def output(self, outs, msg, display_id, cell_index):
        if msg["msg_type"] != "error" or len(outs) >= 3:
            return None
        return super().output(outs, msg, display_id, cell_index)

    def handle_comm_msg(self, outs, msg, cell_index):
        return None


class _Watchdog(threading.Thread):
    """Kills the kernel's process tree when it passes its memory limit or its deadline."""

    def __init__(self, pid: int, deadline: float, memory_mb: int, run: KernelRun):
        super().__init__(daemon=True)
        self.root, self.deadline, self.limit = psutil.Process(pid), deadline, memory_mb * 2**20
        self.run_, self.done = run, threading.Event()

    def tree(self) -> list[psutil.Process]:
        with suppress(psutil.Error):
            return [self.root, *self.root.children(recursive=True)]
        return []

    def run(self) -> None:
        while not self.done.wait(POLL_S):
            procs = self.tree()
            if not procs:
                return
            rss = 0
            for p in procs:
                self.run_.seen.setdefault(p.pid, p)
                with suppress(psutil.Error):
                    rss += p.memory_info().rss
            self.run_.peak_mb = max(self.run_.peak_mb, rss / 2**20)
            reason = "memory limit" if rss > self.limit else "timeout" if time.monotonic() > self.deadline else ""
            if reason:
                self.run_.stopped = reason
                kill(procs)
                return


def kill(procs) -> None:
    """SIGKILL each process that still exists."""
    for p in procs:
        with suppress(psutil.Error):
            p.kill()


def _error_of(cell) -> str:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename', 'Error')}: {out.get('evalue', '')}".replace("\n", " ")[:200]
    return ""


class Kernel:
    """One kernel running the cells of `nb` on demand, under the watchdog; a context manager.

    `run` and `deadline` may be shared by several kernels of one submission (a fresh kernel after a
    call that had to be killed): the memory peak, the processes seen and the deadline carry over.
    """

    def __init__(self, nb, cwd: Path, env: dict, limits: Limits, kernels: KernelSpecManager, run: KernelRun,
                 deadline: float, comm: Path, prefix: list[str] | None = None):
        self.nb, self.limits, self.run, self.deadline = nb, limits, run, deadline
        self.km = _Manager(kernel_name=KERNEL_NAME, kernel_spec_manager=kernels, transport="ipc",
                           connection_file=str(comm / "kernel.json"))
        self.km.prefix = list(prefix or [])
        self.client = _QuietClient(nb, km=self.km, allow_errors=True, interrupt_on_timeout=True,
                                   shutdown_kernel="immediate", timeout=int(limits.cell_timeout),
                                   startup_timeout=int(max(10, min(limits.timeout, deadline - time.monotonic()))),
                                   iopub_timeout=4, record_timing=False)
        self.env, self.cwd = env, cwd
        self.watchdog, self.alive, self._setup = None, False, None

    def __enter__(self) -> "Kernel":
        if _STOP.is_set():
            self.run.stopped = self.run.stopped or "grading interrupted"
            return self
        _LIVE.add(self)
        # the kernel's own stdout and stderr (not the cells' outputs) would flood the grader's terminal
        self._setup = self.client.setup_kernel(env=self.env, cwd=str(self.cwd), stdin=subprocess.DEVNULL,
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self._setup.__enter__()
        except (DeadKernelError, RuntimeError, TimeoutError, OSError) as err:  # the kernel never came up
            self._setup = None
            self._kill_all()
            if not self.run.stopped:
                self.run.stopped = f"kernel failed to start: {type(err).__name__}: {err}"[:200]
            return self
        self.watchdog = _Watchdog(self.km.provisioner.pid, self.deadline, self.limits.memory_mb, self.run)
        self.watchdog.start()
        self.alive = True
        return self

    def execute(self, index: int, timeout: float | None = None, interrupt: bool = True) -> str:
        """Run cell `index`: '' when it ran (its error, if any, is in run.cell_errors), 'timeout' when it ran past
        `timeout` without being interrupted (interrupt=False), 'died' when the kernel is gone."""
        if not self.alive or self.run.stopped:
            return "died"
        limit = self.limits.cell_timeout if timeout is None else timeout
        self.client.timeout = max(1, int(min(limit, self.deadline - time.monotonic()) + 1))
        self.client.interrupt_on_timeout = interrupt
        cell = self.nb.cells[index]
        try:
            self.client.execute_cell(cell, index)
        except DeadKernelError:
            self.alive = False
            return "died"
        except CellTimeoutError:
            if interrupt or time.monotonic() > self.deadline:  # an interrupt did not help: the whole time is up
                self.run.stopped = self.run.stopped or "timeout"
                self.alive = False
                return "died"
            self.alive = False
            self._kill_all()
            return "timeout"
        if _error_of(cell):
            self.run.cell_errors[index] = _error_of(cell)
        if self.run.stopped:
            self.alive = False
            return "died"
        return ""

    def _kill_all(self) -> None:
        procs = self.watchdog.tree() if self.watchdog else []
        with suppress(Exception):
            if self.km.provisioner is not None and self.km.provisioner.pid:
                procs = procs or [psutil.Process(self.km.provisioner.pid)]
        kill(procs)

    def __exit__(self, *exc) -> None:
        _LIVE.discard(self)
        if self.watchdog is not None:
            self.watchdog.done.set()
        self._kill_all()
        if self.watchdog is not None:
            self.watchdog.join()
        if self._setup is not None:
            with suppress(Exception):
                self._setup.__exit__(None, None, None)  # also removes the connection file and the ipc sockets


def run_cells(nb, scratch: Path, env: dict, limits: Limits, kernels: KernelSpecManager,
              before_cell=None, comm: Path | None = None, prefix: list[str] | None = None) -> KernelRun:
    """Execute every code cell of `nb` in a fresh kernel in `scratch`; errors in cells do not stop the run.

    `before_cell(index)` is called in the grader's process just before cell `index` runs. The kernel's connection
    file and sockets go into `comm` (a private temporary folder, removed at the end, when none is given).
    """
    run = KernelRun()
    own_comm = comm is None
    comm = Path(tempfile.mkdtemp(prefix="mlcourse-kernel-")) if own_comm else comm
    try:
        with Kernel(nb, scratch, env, limits, kernels, run, time.monotonic() + limits.timeout, comm,
                    prefix) as kernel:
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                if before_cell is not None:
                    before_cell(index)
                if kernel.execute(index):
                    run.stopped = run.stopped or "kernel died"
                    break
    finally:
        if own_comm:
            remove_tree(comm)
    return run


def kill_leftovers(run: KernelRun, marker: tuple[str, str], scratch: Path) -> None:
    """Kill processes a submission left behind: seen in its tree, or carrying its marker or working in its scratch."""
    kill(run.seen.values())  # psutil refuses to signal a pid that has since been reused by another process
    key, value = marker
    for p in psutil.process_iter():
        if p.pid == os.getpid():
            continue
        with suppress(psutil.Error):
            if p.environ().get(key) == value or Path(p.cwd()).is_relative_to(scratch):
                p.kill()


def make_scratch() -> Path:
    """A fresh private directory (mode 0700, random name) for one submission."""
    return Path(tempfile.mkdtemp(prefix="mlcourse-grade-"))


def remove_tree(folder: Path) -> None:
    """Delete a folder, even where the submission took away write permissions."""
    import shutil
    import stat

    def retry(func, path, _):
        for p in (Path(path).parent, Path(path)):
            with suppress(OSError):
                os.chmod(p, stat.S_IRWXU)
        with suppress(OSError):
            func(path)
    shutil.rmtree(folder, onerror=retry)
