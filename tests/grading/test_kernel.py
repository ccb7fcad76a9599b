"""Running cells in a fresh kernel: errors go on, slow cells are interrupted, limits and leftovers are enforced."""

import os
import time

import nbformat
import psutil

from mlcourse.grading.kernel import Limits, kernel_spec_dir, kill_leftovers, run_cells


def run(tmp_path, *sources, **limits):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(scratch), "MARK": "m1"}
    result = run_cells(nb, scratch, env, Limits(**limits), kernel_spec_dir(tmp_path / "kernels"))
    return result, nb, scratch


def test_cells_run_in_scratch_errors_do_not_stop_slow_cells_are_interrupted(tmp_path):
    result, nb, scratch = run(
        tmp_path, "import os\nprint(os.getcwd(), os.environ['HOME'])", "1 / 0", "while True:\n    pass",
        "open('done', 'w').write('yes')", timeout=60, cell_timeout=3)
    assert result.stopped == ""
    assert result.cell_errors[1].startswith("ZeroDivisionError")
    assert result.cell_errors[2].startswith("KeyboardInterrupt")
    assert (scratch / "done").read_text() == "yes"
    assert nb.cells[0].outputs == []  # outputs other than errors are not kept


def test_memory_limit_and_leftover_processes(tmp_path):
    spawn = ("import subprocess\n"
             "p = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
             "open('pid', 'w').write(str(p.pid))")
    hog = "hoard = []\nwhile True:\n    hoard.append(bytearray(2**24) + bytearray(1))"
    start = time.monotonic()
    result, _, scratch = run(tmp_path, spawn, hog, "print('never')", timeout=60, memory_mb=300, cell_timeout=30)
    assert result.stopped == "memory limit" and result.peak_mb > 300
    assert time.monotonic() - start < 30
    pid = int((scratch / "pid").read_text())
    kill_leftovers(result, ("MARK", "m1"), scratch)
    psutil.Process(pid).wait(timeout=5) if psutil.pid_exists(pid) else None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_wall_clock_limit(tmp_path):
    result, _, _ = run(tmp_path, "import time\nwhile True:\n    try:\n        time.sleep(10)\n"
                                 "    except KeyboardInterrupt:\n        pass", timeout=6, cell_timeout=2)
    assert result.stopped == "timeout"


def test_disk_limit(tmp_path):
    write = "open('big', 'wb').write(bytes(64 * 2**20))"
    result, _, scratch = run(tmp_path, write, "import time\ntime.sleep(20)", "open('done', 'w')",
                             timeout=60, cell_timeout=30, disk_mb=16)
    assert result.stopped == "disk limit"
    assert not (scratch / "done").exists()


def test_memory_shared_with_forked_workers_counts_once(tmp_path):
    """Four forked children share the parent's 300 MB: their resident sizes add up to far more than the
    limit, their proportional set sizes (what the machine really holds) do not; a DataLoader's workers do this."""
    share = ("import os, time\n"
             "block = bytearray(300 * 2**20)\n"
             "block[::4096] = b'1' * len(block[::4096])  # touch every page\n"
             "children = []\n"
             "for _ in range(4):\n"
             "    pid = os.fork()\n"
             "    if pid == 0:\n"
             "        time.sleep(4)\n"
             "        os._exit(0)\n"
             "    children.append(pid)\n"
             "for pid in children:\n"
             "    os.waitpid(pid, 0)")
    result, _, scratch = run(tmp_path, share, "open('done', 'w')", timeout=60, memory_mb=1000, cell_timeout=30)
    assert result.stopped == "", result.stopped
    assert (scratch / "done").exists()


def test_removing_a_folder_never_follows_a_link_nor_opens_a_fifo(tmp_path, monkeypatch):
    """What a submission leaves in its folders (a link to a host folder, a FIFO) cannot make the cleanup change or
    block on anything outside them, even when a removal fails and is retried."""
    from mlcourse.grading.kernel import remove_tree

    host = tmp_path / "host"
    host.mkdir(mode=0o755)
    tree = tmp_path / "tree"
    (tree / "locked").mkdir(parents=True)
    (tree / "locked" / "link").symlink_to(host)
    os.mkfifo(tree / "fifo")
    (tree / "locked").chmod(0o500)
    unlink = os.unlink

    def refuse_once(path, *args, **kwargs):  # as an unprivileged grader meets a folder it may not write
        if os.fspath(path).endswith("link") and not getattr(refuse_once, "done", False):
            refuse_once.done = True
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", refuse_once)
    remove_tree(tree)
    assert not tree.exists() and (host.stat().st_mode & 0o777) == 0o755
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    import threading
    worker = threading.Thread(target=remove_tree, args=(fifo,), daemon=True)
    worker.start()
    worker.join(5)
    assert not worker.is_alive() and not fifo.exists()
