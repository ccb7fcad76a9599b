"""A bubblewrap (bwrap) sandbox per submission: what the student's kernel and its children can see and reach.

Inside: new user, PID, network, IPC, UTS and cgroup namespaces (no network at all, only a loopback
of its own); a read-only view of the system's libraries, the interpreter and its virtual
environment, the course package (the per-run copy with the references stubbed out) and the data;
a private home (the scratch folder, the only writable place besides a private /tmp); a fresh /proc
that shows the sandbox's processes only; an environment made of the variables given here and
nothing else. The sandbox's own root and /dev are read-only, and /dev/shm is a tmpfs of a fixed size
(files there are in no process's memory and in no folder that the disk watcher sees). The grader's
inputs come through a folder that is read-only inside. The grader talks to the kernel over ZMQ's ipc
transport: Unix sockets in a per-submission folder bound at the same path inside, so no TCP port is
shared between the two.

Killing the bwrap process that the grader started ends the sandbox's PID namespace, and with it
every process the submission started, double-forked or not.
"""

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

HOME = "/home/student"  # the scratch folder, as the kernel sees it
COURSE = "/opt/course"  # holds the per-run copy of the mlcourse package (PYTHONPATH)
DATA = "/opt/data"  # MLCOURSE_DATA inside
INPUTS = "/opt/inputs"  # the grader's inputs for the calls, read-only inside
TMP = "/tmp"
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "nsswitch.conf")


def bwrap() -> str | None:
    """The bwrap executable, if installed."""
    return shutil.which("bwrap")


@functools.cache
def unavailable() -> str:
    """'' when bwrap can build the sandbox on this machine, else why not (tried once per process)."""
    if os.environ.get("MLCOURSE_GRADER_NO_BWRAP"):  # to test, on a machine that has it, what happens without
        return "bubblewrap switched off by MLCOURSE_GRADER_NO_BWRAP"
    exe = bwrap()
    if exe is None:
        return "bubblewrap (bwrap) is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    try:
        probe = subprocess.run([exe, *_system_binds(), "--unshare-all", "--die-with-parent", "--proc", "/proc",
                                "--dev", "/dev", "--", "/bin/true"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"bwrap could not run: {err}"
    if probe.returncode != 0:
        return f"bwrap cannot create namespaces here: {probe.stderr.strip()[:200]}"
    return ""


def _system_binds() -> list[str]:
    """Read-only binds of the system's programs and libraries (symlinked top-level folders stay symlinks)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for name in ETC_FILES:
        if os.path.exists(f"/etc/{name}"):
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    return args


def _interpreter_dirs() -> list[str]:
    """The folders the kernel's interpreter needs: the virtual environment and the Python it was made from."""
    dirs = []
    for d in (sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))):
        d = os.path.realpath(d)
        if not d.startswith("/usr/") and d != "/usr" and not any(d == k or d.startswith(k + "/") for k in dirs):
            dirs.append(d)
    return sorted(set(dirs))


@dataclass
class Sandbox:
    """The view of one submission: host folders bound into it, and the variables of its environment."""

    home: Path  # writable, at HOME
    tmp: Path  # writable, at /tmp
    comm: Path  # writable, at the same path: the kernel's connection file and ipc sockets
    course: Path  # read-only, at COURSE: holds the mlcourse package the kernel imports
    data: str | None = None  # read-only, at DATA
    inputs: Path | None = None  # read-only, at INPUTS: written by the grader only
    env: dict[str, str] = field(default_factory=dict)
    shm_mb: int = 256  # the size of /dev/shm, a tmpfs that no memory or disk limit counts

    def argv(self) -> list[str]:
        """The bwrap command line that runs a program inside the sandbox (the program's argv follows)."""
        args = [bwrap() or "bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--uid", "65534",
                "--gid", "65534", "--hostname", "sandbox", *_system_binds()]
        args += ["--proc", "/proc", "--dev", "/dev", "--size", str(self.shm_mb * 2**20), "--tmpfs", "/dev/shm",
                 "--remount-ro", "/dev", "--bind", str(self.tmp), TMP]
        for d in _interpreter_dirs():  # after /tmp: a checkout (and its .venv) may itself live under /tmp
            args += ["--ro-bind", d, d]
        args += ["--bind", str(self.home), HOME, "--ro-bind", str(self.course), COURSE,
                 "--bind", str(self.comm), str(self.comm)]
        if self.data:
            args += ["--ro-bind", self.data, DATA]
        if self.inputs:
            args += ["--ro-bind", str(self.inputs), INPUTS]
        args += ["--remount-ro", "/", "--chdir", HOME, "--clearenv"]
        for key, value in self.env.items():
            args += ["--setenv", key, value]
        return args + ["--"]
