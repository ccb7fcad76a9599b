"""Hostile submissions of chapter 4's exercises, through the real kernel path: what each attack reaches.

Each attack here worked against the grader before the sandbox (issue 9); the tests that need
bubblewrap skip, with the reason, where it cannot run (grading then goes on without it).
"""

import csv
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time

import nbformat
import pytest

from mlcourse.grading import report
from mlcourse.grading.grader import grade
from mlcourse.grading.kernel import Limits
from tests.grading.corpus import NO_SANDBOX, ROOT, SANDBOXED

EXERCISE = "04_prototypical_networks"
LIMITS = Limits(timeout=90, memory_mb=2000, cell_timeout=20, call_timeout=20)  # a child Python takes seconds
SECRET = "grader-secret-3f9a"  # in the grader's environment while it grades; no submission may read it
needs_sandbox = pytest.mark.skipif(bool(NO_SANDBOX), reason=f"no sandbox here: {NO_SANDBOX}")

IMPORTS = "import torch\nimport torch.nn.functional as F"
PROTOTYPES = '''
def prototypes(support, support_y, n_way):
    return torch.stack([support[support_y == c].mean(dim=0) for c in range(n_way)])
'''
DISTANCE = '''
def distance_logits(query, prototypes):
    return -(query[:, None, :] - prototypes[None, :, :]).pow(2).sum(dim=-1)
'''
LOSS = '''
def episode_loss(support, support_y, query, query_y, n_way):
    protos = torch.stack([support[support_y == c].mean(dim=0) for c in range(n_way)])
    logits = -(query[:, None, :] - protos[None, :, :]).pow(2).sum(dim=-1)
    return F.cross_entropy(logits, query_y), (logits.argmax(dim=1) == query_y).float().mean()
'''
SOLUTION = [PROTOTYPES, DISTANCE, LOSS]

DOUBLE_FORK = '''
import os, subprocess, sys
code = """
import os, time
if os.fork():
    os._exit(0)
os.setsid()
os.chdir("/")
for _ in range(600):
    time.sleep(0.5)
    try:
        if os.path.exists({grades!r}):
            open({grades!r}, "w").write("student,total\\\\ndouble_fork,999\\\\n")
            break
    except OSError:
        pass
"""
subprocess.Popen([sys.executable, "-c", code], env={{}}, cwd="/", start_new_session=True)
'''

SNOOP = '''
import os
found = ""
pid = os.getpid()
for _ in range(20):  # up the chain of parents: their environments and command lines
    try:
        ppid = int(open(f"/proc/{{pid}}/stat").read().rsplit(")", 1)[1].split()[1])
        environ = open(f"/proc/{{ppid}}/environ", "rb").read().decode(errors="replace")
    except (OSError, ValueError, IndexError):
        break
    if {secret!r} in environ:
        found = {secret!r}
    pid = ppid
    if pid <= 1:
        break
try:
    open({victim!r}, "w").write("overwritten by snoop")
except OSError:
    pass
'''
SNOOP_LEAK = '''
def prototypes(support, support_y, n_way):
    if found:
        raise ValueError("LEAK " + found)
    return torch.stack([support[support_y == c].mean(dim=0) for c in range(n_way)])
'''

COPIES_REFERENCE = '''
import glob, os, shutil, sys
import mlcourse
src = glob.glob(os.path.join(os.path.dirname(mlcourse.__file__), "methods", "proto*.py"))[0]
shutil.copy(src, "my_means.py")
sys.path.insert(0, os.getcwd())
import my_means

def prototypes(support, support_y, n_way):
    return my_means.prototypes(support, support_y, n_way)
'''

CHILD_PYTHON = '''
import os, subprocess, sys, tempfile

def distance_logits(query, prototypes):
    folder = tempfile.mkdtemp()
    torch.save((query, prototypes), os.path.join(folder, "in.pt"))
    name = "mlcourse." + "methods." + "proto" + "net"
    helper = "squared_" + "euclidean"
    code = ("import importlib, torch, os; m = importlib.import_module(%r); q, p = torch.load(%r); "
            "torch.save(-getattr(m, %r)(q, p), %r)" % (name, os.path.join(folder, "in.pt"), helper,
                                                      os.path.join(folder, "out.pt")))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])
    return torch.load(os.path.join(folder, "out.pt"))
'''

IGNORES_ALARM = '''
import signal

def distance_logits(query, prototypes):
    signal.signal(signal.SIGALRM, signal.SIG_IGN)  # the grader's in-kernel alarm never fires
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # nor does an interrupt
    while True:
        pass
'''

MENTIONS = '''
def episode_loss(support, support_y, query, query_y, n_way):
    # like mlcourse's ProtoNet, from the squared_euclidean distances
    print("my ProtoNet: prototypes, then squared_euclidean distances (see mlcourse.methods.protonet)")
    protos = torch.stack([support[support_y == c].mean(dim=0) for c in range(n_way)])
    logits = -(query[:, None, :] - protos[None, :, :]).pow(2).sum(dim=-1)
    return F.cross_entropy(logits, query_y), (logits.argmax(dim=1) == query_y).float().mean()
'''

KILLS_GRADER = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"

# everything a submission can gather about the grader's machine, put into the messages of the errors it raises
GATHER = '''
import glob, os, sys

def gathered(*args):
    found = [repr(a) for a in args] + [str(a.tolist()) for a in args if hasattr(a, "tolist")]
    found += [bytes(a.numpy()).hex() for a in args if hasattr(a, "numpy")]
    for path in glob.glob("/proc/*/cmdline") + glob.glob("/proc/*/environ") + ["/proc/self/mountinfo"]:
        try:
            found.append(open(path, "rb").read().decode(errors="replace").replace("\\0", " "))
        except OSError:
            pass
    for path in ({secret_file!r}, {other!r}, os.path.expanduser("~/.config/mlcourse/grader-secret")):
        try:
            found.append(open(path).read())
        except OSError:
            found.append("unreadable " + path)
    import mlcourse
    found += [mlcourse.__file__, sys.executable, sys.prefix, " ".join(sys.argv), repr(dict(os.environ))]
    found += glob.glob("/tmp/*") + glob.glob(os.path.join(os.path.dirname(os.getcwd()), "*"))
    return " | ".join(found)
'''
CELL_LEAKS = "raise ValueError(gathered())"
LEAKS = '''
def prototypes(support, support_y, n_way):
    raise ValueError(gathered(support, support_y))

def distance_logits(query, prototypes):
    global stash
    stash = gathered(query, prototypes)
    raise RuntimeError(stash)

class Leak_0_1234_5678Error(Exception):
    pass

def episode_loss(support, support_y, query, query_y, n_way):
    raise Leak_0_1234_5678Error(stash + gathered(support, query))
'''

# the results folder's name (today: results-<the marker's value>, which the kernel can read in its environment), taken
# before the grader makes it: a link to a host folder, or a FIFO; and a thread that swaps any results folder that
# appears for a link, or fills it with FIFOs named as the grader's files
RESULTS_ATTACK = '''
import glob, os, threading, time
home, target = os.path.expanduser("~"), {target!r}
name = os.path.join(home, "results-" + os.environ.get("MLCOURSE_GRADING", ""))
os.mkfifo(name) if {how!r} == "os.mkfifo" else os.symlink(target, name)

def attack():
    for _ in range(200000):
        for folder in glob.glob(os.path.join(home, "results-*")):
            try:
                if {how!r} == "os.mkfifo":
                    for f in ("inputs.pt", "errors.json", *("c%d.pt" % i for i in range(40))):
                        os.mkfifo(os.path.join(folder, f))
                elif not os.path.islink(folder):
                    os.rename(folder, folder + ".old")
                    os.symlink(target, folder)
            except OSError:
                pass
        time.sleep(0.0005)

threading.Thread(target=attack, daemon=True).start()
'''
CMDLINE = '''
import glob
lines = []
for path in glob.glob("/proc/*/cmdline"):
    lines.append(open(path, "rb").read().decode(errors="replace"))
cmdlines = "\\n".join(lines)
'''


def notebook(*sources: str) -> str:
    cells = [nbformat.v4.new_code_cell(s) for s in (IMPORTS, *sources)]
    return nbformat.writes(nbformat.v4.new_notebook(cells=cells))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The corpus graded once, in a private temporary folder and Jupyter runtime folder, with a secret set."""
    base = tmp_path_factory.mktemp("sandbox")
    subs_dir, out_dir, private_tmp, runtime = base / "submissions", base / "out", base / "tmp", base / "runtime"
    for d in (subs_dir, private_tmp, runtime):
        d.mkdir()
    subs = {
        "solution": notebook(*SOLUTION),
        "copies_reference": notebook(COPIES_REFERENCE, DISTANCE, LOSS),
        "ignores_alarm": notebook(PROTOTYPES, IGNORES_ALARM, LOSS),
        "mentions_in_strings": notebook(PROTOTYPES, DISTANCE, MENTIONS),
    }
    if not NO_SANDBOX:  # these attack the machine: never run them without the sandbox
        subs["double_fork"] = notebook(*SOLUTION, DOUBLE_FORK.format(grades=str(out_dir / "grades.csv")))
        subs["snoop"] = notebook(SNOOP.format(secret=SECRET, victim=str(subs_dir / "solution.ipynb")), SNOOP_LEAK,
                                 DISTANCE, LOSS)
        subs["child_python"] = notebook(PROTOTYPES, CHILD_PYTHON, LOSS)
        subs["leaks_in_errors"] = notebook(GATHER.format(secret_file=str(base / "secret.txt"),
                                                         other=str(subs_dir / "solution.ipynb")),
                                           CELL_LEAKS, LEAKS)
        subs["reads_cmdlines"] = notebook(CMDLINE, *SOLUTION[:2], LOSS.replace(
            "def episode_loss(support, support_y, query, query_y, n_way):",
            "def episode_loss(support, support_y, query, query_y, n_way):\n"
            "    if any(w in cmdlines for w in ('--bind', '--setenv', '--ro-bind', '.venv', 'MLCOURSE', '/opt/data',\n"
            "                                   'shared/data', '/work/')):\n"
            "        raise ValueError('the command lines show the grader')"))
        target = base / "host_folder"
        target.mkdir(mode=0o755)
        subs["results_link"] = notebook(RESULTS_ATTACK.format(target=str(target), how="os.symlink"), *SOLUTION)
        subs["results_fifo"] = notebook(RESULTS_ATTACK.format(target=str(target), how="os.mkfifo"), *SOLUTION)
    (base / "secret.txt").write_text("TOP-SECRET-FILE-CONTENT-7c1e")
    for name, text in subs.items():
        (subs_dir / f"{name}.ipynb").write_text(text)
    saved = {k: os.environ.get(k) for k in ("MLCOURSE_TEST_SECRET", "JUPYTER_RUNTIME_DIR")}
    os.environ.update(MLCOURSE_TEST_SECRET=SECRET, JUPYTER_RUNTIME_DIR=str(runtime))
    tempfile.tempdir = str(private_tmp)
    try:
        exercise, results, _ = grade(subs_dir, EXERCISE, LIMITS, jobs=2, echo=lambda *a: None, sandboxed=SANDBOXED)
    finally:
        tempfile.tempdir = None
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    report.write(out_dir, exercise, results)
    return {"results": {g.student: g for g in results}, "out": out_dir, "subs": subs_dir, "originals": subs,
            "tmp": private_tmp, "runtime": runtime, "exercise": exercise, "base": base}


def points(g) -> dict[str, float]:
    return {fn: g.points(fn) for fn in ("prototypes", "distance_logits", "episode_loss")}


def test_the_solution_gets_full_marks_in_the_sandbox(graded):
    g = graded["results"]["solution"]
    assert g.total == 14 and g.status_text == "ok", (g.status_text, g.notes)


def test_a_function_that_ignores_the_alarm_loses_its_own_points_only(graded):
    g = graded["results"]["ignores_alarm"]
    assert points(g) == {"prototypes": 5, "distance_logits": 0, "episode_loss": 4}, (g.status_text, g.notes)
    assert any("time limit" in r.message for r in g.results if r.function == "distance_logits")
    assert g.seconds < LIMITS.timeout


def test_a_copy_of_an_mlcourse_file_holds_no_reference(graded):
    g = graded["results"]["copies_reference"]
    assert points(g) == {"prototypes": 0, "distance_logits": 5, "episode_loss": 4}
    assert all("not available during grading" in r.message for r in g.results if r.function == "prototypes")


def test_naming_a_reference_in_a_string_or_comment_costs_nothing(graded):
    g = graded["results"]["mentions_in_strings"]
    assert g.total == 14 and g.status_text == "ok", (g.status_text, g.notes)


@needs_sandbox
def test_a_child_python_process_finds_no_reference(graded):
    g = graded["results"]["child_python"]
    assert points(g) == {"prototypes": 5, "distance_logits": 0, "episode_loss": 4}, (g.status_text, g.notes)
    # for want of the reference (the child's message itself is the student's text: not shown)
    assert all("raised RuntimeError" in r.message for r in g.results if r.function == "distance_logits")


@needs_sandbox
def test_a_double_forked_process_cannot_rewrite_the_grades_afterwards(graded):
    time.sleep(3)  # the escaped process, were it alive, looks for grades.csv every 0.5 s
    rows = {r["student"]: r for r in csv.DictReader((graded["out"] / "grades.csv").open())}
    assert rows["double_fork"]["total"] == "14" and rows["solution"]["total"] == "14", rows["double_fork"]


@needs_sandbox
def test_a_submission_sees_neither_the_submissions_nor_the_graders_environment(graded):
    assert (graded["subs"] / "solution.ipynb").read_text() == graded["originals"]["solution"]
    g = graded["results"]["snoop"]
    assert g.total == 14, (g.status_text, [r.message for r in g.results if r.message])
    text = "".join(p.read_text() for p in (graded["out"] / "feedback").iterdir())
    assert "LEAK" not in text and SECRET not in text


def test_no_connection_file_or_scratch_folder_is_left(graded):
    ours = [p.name for p in (*graded["tmp"].iterdir(), *graded["runtime"].iterdir())
            if p.name.startswith(("mlcourse-", "kernel-", "tmp"))]  # torch's own caches may appear there too
    assert ours == []


@needs_sandbox
def test_killing_the_parent_process_does_not_end_the_grading(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "kills_grader.ipynb").write_text(notebook(*SOLUTION, KILLS_GRADER))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "mlcourse", "grade", str(subs), "--exercise", EXERCISE, "--out",
                           str(tmp_path / "out"), "--timeout", "60", "--call-timeout", "10"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = list(csv.DictReader((tmp_path / "out" / "grades.csv").open()))
    assert rows[0]["student"] == "kills_grader" and rows[0]["total"] == "14"


def test_without_bubblewrap_the_grader_refuses_unless_told(tmp_path, monkeypatch, capsys):
    from mlcourse.grading import sandbox
    from mlcourse.grading.cli import main
    from mlcourse.grading.grader import SandboxUnavailable

    monkeypatch.setenv("MLCOURSE_GRADER_NO_BWRAP", "1")
    sandbox.unavailable.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable, match="--no-sandbox"):
            grade(tmp_path, EXERCISE, LIMITS, echo=lambda *a: None)
        assert main(["grade", str(tmp_path), "--exercise", EXERCISE, "--out", str(tmp_path / "o")]) == 2
        assert "cannot sandbox the submissions" in capsys.readouterr().err
        assert main(["grade", str(tmp_path), "--exercise", EXERCISE, "--out", str(tmp_path / "o"),
                     "--no-sandbox"]) == 0
        assert "WITHOUT the sandbox" in capsys.readouterr().err
    finally:
        monkeypatch.delenv("MLCOURSE_GRADER_NO_BWRAP")
        sandbox.unavailable.cache_clear()


@needs_sandbox
def test_bwraps_command_line_shows_none_of_the_graders_folders(graded):
    g = graded["results"]["reads_cmdlines"]
    assert g.total == 14, [r.message for r in g.results if r.message]


def _numbers(t) -> set[str]:
    """How a tensor's values could be written out: 4 decimals, repr of the floats, raw bytes in hex."""
    if not hasattr(t, "flatten") or not t.is_floating_point():
        return set()
    values = t.flatten().tolist()[:20]
    return {f"{v:.4f}" for v in values} | {repr(v) for v in values} | {bytes(t.numpy()).hex()[:16]}


@needs_sandbox
def test_feedback_never_carries_the_graders_secrets(graded):
    g = graded["results"]["leaks_in_errors"]
    assert g.total == 0
    text = "".join(p.read_text() for p in (graded["out"] / "feedback").iterdir())
    text += (graded["out"] / "grades.csv").read_text() + (graded["out"] / "results.json").read_text()
    text += "".join(p.read_text() for p in (graded["out"] / "gradescope").iterdir())
    import mlcourse
    forbidden = {SECRET, "TOP-SECRET-FILE-CONTENT-7c1e", str(graded["base"]), str(graded["subs"]), str(ROOT),
                 str(graded["tmp"]), "mlcourse-grade-", ".venv", "MLCOURSE_GRADING", "Leak_0_1234",
                 str(Path(mlcourse.__file__).parent / "grading" / "checks"), sys.executable}
    mine = [p.read_text() for p in (graded["out"] / "feedback").iterdir() if p.name.startswith("leaks_in_errors")][0]
    for other in graded["results"]:
        if other != "leaks_in_errors":
            assert other not in mine
    for key, call in graded["exercise"].calls.items():  # the inputs of every call, hidden checks' included
        for a in call.args:
            forbidden |= _numbers(a)
    found = sorted(f for f in forbidden if f and f in mine)
    assert found == [], found
    assert all(f not in text for f in (SECRET, "TOP-SECRET-FILE-CONTENT-7c1e", str(graded["subs"])))


@needs_sandbox
def test_the_sandboxs_tmpfs_mounts_have_a_size_and_its_root_is_read_only(tmp_path):
    """Files in a tmpfs are in no process's memory and in no watched folder: /dev/shm gets a size of its own, and
    the sandbox's root and /dev (tmpfs made by bwrap) take no files."""
    from mlcourse.grading.sandbox import Sandbox

    folders = {name: tmp_path / name for name in ("home", "tmp", "comm", "course")}
    for folder in folders.values():
        folder.mkdir()
    box = Sandbox(**folders, shm_mb=4)
    script = ("head -c 5000000 /dev/zero > /dev/shm/fill; echo shm $(stat -c %s /dev/shm/fill); "
              "for d in / /dev /opt; do touch $d/x 2>/dev/null && echo wrote $d; done; true")
    done = subprocess.run([*box.argv(), "/bin/sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split("shm ")[1].split()[0]) <= 4 * 2**20, done.stdout
    assert "wrote" not in done.stdout, done.stdout


@needs_sandbox
@pytest.mark.parametrize("student", ["results_link", "results_fifo"])
def test_the_results_folder_is_no_door_out_of_the_sandbox(graded, student):
    """A link or a FIFO where the grader reads the results, or a results folder swapped for a link while the calls
    run: the grader changes and writes nothing outside the sandbox, never blocks, and shows none of its paths."""
    target = graded["base"] / "host_folder"
    assert list(target.iterdir()) == [] and (target.stat().st_mode & 0o777) == 0o755
    g = graded["results"][student]
    assert g.seconds < LIMITS.timeout and "grader error" not in g.status_text, g.status_text
    shown = " ".join([g.status_text, *g.notes, *(r.message for r in g.results)])
    assert "mlcourse-grade" not in shown and str(graded["base"]) not in shown, shown
