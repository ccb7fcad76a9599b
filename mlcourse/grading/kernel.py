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
import shutil
import stat
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
    memory_mb: int = 4096  # memory really used by the kernel and its child processes (shared pages counted once)
    disk_mb: int = 1024  # what the submission may write into its scratch folder and its /tmp together
    shm_mb: int = 256  # the size of the sandbox's /dev/shm (a tmpfs: in no process's memory, in no watched folder)
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
    """A kernel manager whose kernel command is prefixed (by the sandbox's bwrap command line).

    In the sandbox the interpreter is named without its folder (found through the sandbox's PATH), so that the
    kernel's and bwrap's command lines, which the submission can read in /proc, name none of the grader's folders
    but the connection file's.
    """

    prefix: list[str] = []

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        if self.prefix:
            cmd = [os.path.basename(cmd[0]), *cmd[1:]]
        return list(self.prefix) + cmd


def args_fd(prefix: list[str]) -> tuple[list[str], int | None]:
    """bwrap's options moved into a memfd (`bwrap --args FD`), so that its command line, which every process of the
    sandbox can read as /proc/1/cmdline, shows none of the bind paths or variables: the short prefix and the fd."""
    if not prefix or os.path.basename(prefix[0]) != "bwrap" or prefix[-1] != "--":
        return prefix, None
    fd = os.memfd_create("bwrap-args")
    os.write(fd, b"".join(a.encode() + b"\0" for a in prefix[1:-1]))
    os.lseek(fd, 0, os.SEEK_SET)
    return [prefix[0], "--args", str(fd), "--"], fd


class _QuietClient(NotebookClient):
    """Keeps only error outputs, so that a submission cannot flood the grader's memory with output."""

    def output(self, outs, msg, display_id, cell_index):
        if msg["msg_type"] != "error" or len(outs) >= 3:
            return None
        content = msg["content"]  # kept short: a message of any size must not stay in the grader's memory
        trimmed = {**msg, "content": {"ename": str(content.get("ename", "Error"))[:100],
                                      "evalue": str(content.get("evalue", ""))[:400], "traceback": []}}
        return super().output(outs, trimmed, display_id, cell_index)

    def handle_comm_msg(self, outs, msg, cell_index):
        return None


class _Watchdog(threading.Thread):
    """Kills the kernel's process tree when it passes its memory limit or its deadline."""

    def __init__(self, pid: int, deadline: float, memory_mb: int, run: KernelRun,
                 disk: tuple[list[Path], int] | None = None):
        super().__init__(daemon=True)
        self.root, self.deadline, self.limit = psutil.Process(pid), deadline, memory_mb * 2**20
        self.run_, self.done, self.disk = run, threading.Event(), disk

    def tree(self) -> list[psutil.Process]:
        with suppress(psutil.Error):
            return [self.root, *self.root.children(recursive=True)]
        return []

    def used(self, procs) -> int:
        """The bytes the processes really use: the sum of their resident sizes, or, when that passes the limit, the
        sum of their proportional set sizes (a page shared by n processes counts 1/n in each), which forked workers
        (a DataLoader's) that share the parent's pages do not multiply."""
        rss = 0
        for p in procs:
            self.run_.seen.setdefault(p.pid, p)
            with suppress(psutil.Error):
                rss += p.memory_info().rss
        if rss <= self.limit:
            return rss
        return sum(pss(p.pid) for p in procs)

    def run(self) -> None:
        next_disk = 0.0
        while not self.done.wait(POLL_S):
            procs = self.tree()
            if not procs:
                return
            used = self.used(procs)
            self.run_.peak_mb = max(self.run_.peak_mb, used / 2**20)
            reason = "memory limit" if used > self.limit else "timeout" if time.monotonic() > self.deadline else ""
            if not reason and self.disk is not None and time.monotonic() > next_disk:
                next_disk = time.monotonic() + DISK_POLL_S
                if disk_used(self.disk[0], self.disk[1]) > self.disk[1]:
                    reason = "disk limit"
            if reason:
                self.run_.stopped = reason
                kill(procs)
                return


DISK_POLL_S = 0.5  # how often the watchdog adds up what the submission wrote to its writable folders
MAX_FILES = 20_000  # a submission that makes more files than this in its folders is stopped ("disk limit")


def pss(pid: int) -> int:
    """The proportional set size of a process, in bytes (0 if it is gone or unreadable)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    with suppress(psutil.Error):
        return psutil.Process(pid).memory_info().rss
    return 0


def disk_used(folders: list[Path], limit: int) -> int:
    """Bytes allocated under `folders` (files counted once, links not followed); more than `limit` as soon as it is
    passed, or when there are more than MAX_FILES entries."""
    total, entries, stack = 0, 0, [str(f) for f in folders]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    entries += 1
                    if entries > MAX_FILES:
                        return limit + 1
                    with suppress(OSError):
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        else:
                            total += entry.stat(follow_symlinks=False).st_blocks * 512
                    if total > limit:
                        return total
        except OSError:
            continue
    return total


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
                 deadline: float, comm: Path, prefix: list[str] | None = None,
                 writable: list[Path] | None = None):
        self.nb, self.limits, self.run, self.deadline = nb, limits, run, deadline
        self.km = _Manager(kernel_name=KERNEL_NAME, kernel_spec_manager=kernels, transport="ipc",
                           connection_file=str(comm / "kernel.json"))
        self.prefix = list(prefix or [])
        self.client = _QuietClient(nb, km=self.km, allow_errors=True, interrupt_on_timeout=True,
                                   shutdown_kernel="immediate", timeout=int(limits.cell_timeout),
                                   startup_timeout=int(max(10, min(limits.timeout, deadline - time.monotonic()))),
                                   iopub_timeout=4, record_timing=False)
        self.env, self.cwd, self.writable = env, cwd, list(writable or [])
        self.watchdog, self.alive, self._setup = None, False, None

    def __enter__(self) -> "Kernel":
        if _STOP.is_set():
            self.run.stopped = self.run.stopped or "grading interrupted"
            return self
        _LIVE.add(self)
        self.km.prefix, fd = args_fd(self.prefix)
        # the kernel's own stdout and stderr (not the cells' outputs) would flood the grader's terminal
        self._setup = self.client.setup_kernel(env=self.env, cwd=str(self.cwd), stdin=subprocess.DEVNULL,
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                               **({"pass_fds": (fd,)} if fd is not None else {}))
        try:
            self._setup.__enter__()
        except (DeadKernelError, RuntimeError, TimeoutError, OSError) as err:  # the kernel never came up
            self._setup = None
            self._kill_all()
            if not self.run.stopped:
                self.run.stopped = f"kernel failed to start: {type(err).__name__}"
            return self
        finally:
            if fd is not None:
                os.close(fd)
        disk = (self.writable, self.limits.disk_mb * 2**20) if self.writable else None
        self.watchdog = _Watchdog(self.km.provisioner.pid, self.deadline, self.limits.memory_mb, self.run, disk)
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
                    prefix, writable=[scratch]) as kernel:
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
    """Delete a folder, even where the submission took away write permissions.

    What the submission left there is never followed nor opened: a link could point at any path of the machine, a
    FIFO would block the grader. Only real folders are opened (by shutil.rmtree) or get their permissions back.
    """
    def retry(func, path, _):
        for p in (os.path.dirname(path), path):
            with suppress(OSError):
                if stat.S_ISDIR(os.lstat(p).st_mode):
                    os.chmod(p, stat.S_IRWXU)
        if func in (os.unlink, os.rmdir):
            with suppress(OSError):
                func(path)

    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            os.unlink(folder)
            return
    except FileNotFoundError:
        return
    shutil.rmtree(folder, onerror=retry)
