"""Run a submission's cells in a fresh kernel, under a wall-clock limit and a memory limit.

A watchdog thread sums the resident memory of the kernel and its children (psutil) and kills them
all when the limit is passed or the time is up. An address-space limit (RLIMIT_AS) is not used: the
CUDA build of torch reserves far more address space than it uses, and would not even import.
"""

import json
import os
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
    """A kernel spec that runs ipykernel with this very interpreter (not whatever 'python3' names)."""
    spec = folder / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "mlcourse grader",
                                                  "language": "python"}))
    return KernelSpecManager(kernel_dirs=[str(folder)])


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


def run_cells(nb, scratch: Path, env: dict, limits: Limits, kernels: KernelSpecManager,
              before_cell=None) -> KernelRun:
    """Execute every code cell of `nb` in a fresh kernel in `scratch`; errors in cells do not stop the run.

    `before_cell(index)` is called in the grader's process just before cell `index` runs.
    """
    run = KernelRun()
    start = time.monotonic()
    deadline = start + limits.timeout
    km = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=kernels)
    client = _QuietClient(nb, km=km, allow_errors=True, interrupt_on_timeout=True, shutdown_kernel="immediate",
                          timeout=int(limits.cell_timeout), startup_timeout=int(max(10, limits.timeout)),
                          iopub_timeout=4, record_timing=False)
    watchdog = None
    try:
        with client.setup_kernel(env=env, cwd=str(scratch)):
            watchdog = _Watchdog(km.provisioner.pid, deadline, limits.memory_mb, run)
            watchdog.start()
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                if before_cell is not None:
                    before_cell(index)
                client.timeout = max(1, int(min(limits.cell_timeout, deadline - time.monotonic()) + 1))
                try:
                    client.execute_cell(cell, index)
                except DeadKernelError:
                    run.stopped = run.stopped or "kernel died"
                    break
                except CellTimeoutError:
                    run.stopped = run.stopped or "timeout"
                    break
                if _error_of(cell):
                    run.cell_errors[index] = _error_of(cell)
                if run.stopped:
                    break
    except (DeadKernelError, RuntimeError, TimeoutError, OSError) as err:  # the kernel never came up
        if not run.stopped:
            run.stopped = f"kernel failed to start: {type(err).__name__}: {err}"[:200]
    finally:
        if watchdog is not None:
            watchdog.done.set()
            kill(watchdog.tree())
            watchdog.join()
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
