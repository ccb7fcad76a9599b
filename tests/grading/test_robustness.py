"""Any file name, a shared feedback name, and the instructor's secret seed: a row and a status for everyone."""

import csv
import os
import signal
import subprocess
import sys
import time

import nbformat
import psutil
import torch

from mlcourse.grading import checks, report
from mlcourse.grading.grader import grade, read_results
from tests.grading.corpus import NO_SANDBOX, ROOT, SANDBOXED

EXERCISE = "01_tasks_and_episodes"


def test_names_that_are_not_utf8_or_that_meet_each_get_a_row_and_a_feedback_file(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    names = [b"caf\xe9.ipynb", b"caf\xe8.ipynb", b"a b.ipynb", b"a_b.ipynb", b"A_B.ipynb", "ĉu ne.ipynb".encode()]
    for name in names:
        with open(os.path.join(os.fsencode(subs), name), "wb") as f:
            f.write(b"{not a notebook")
    exercise, graded, _ = grade(subs, EXERCISE, echo=lambda *a: None, sandboxed=SANDBOXED)
    assert len(graded) == len(names) and all(g.status_text.startswith("not a notebook") for g in graded)
    report.write(tmp_path / "out", exercise, graded)
    rows = list(csv.DictReader((tmp_path / "out" / "grades.csv").open(encoding="utf-8")))
    assert len(rows) == len(names) and "ĉu ne" in {r["student"] for r in rows}
    feedback = list((tmp_path / "out" / "feedback").iterdir())
    assert len({p.name.lower() for p in feedback}) == len(names)  # never shared, even where case is ignored


def test_hidden_inputs_come_from_the_instructors_secret(tmp_path, monkeypatch):
    assert checks.default_seed(EXERCISE, "s3cret") != checks.default_seed(EXERCISE) == checks.default_seed(EXERCISE, None)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv(checks.SECRET_ENV, raising=False)
    assert checks.grader_secret() is None
    checks.secret_file().parent.mkdir(parents=True)
    checks.secret_file().write_text("from-a-file\n")
    assert checks.grader_secret() == "from-a-file"
    public = checks.build(EXERCISE)
    monkeypatch.setenv(checks.SECRET_ENV, "s3cret")
    secret, _, _ = grade(tmp_path, EXERCISE, echo=lambda *a: None, sandboxed=SANDBOXED)
    first = lambda ex: ex.calls["c0"].args[0]  # noqa: E731
    assert not first(public).equal(first(secret))
    assert first(secret).equal(first(checks.build(EXERCISE, checks.default_seed(EXERCISE, "s3cret"))))


def test_an_interrupted_run_leaves_no_kernel_folder_or_connection_file(tmp_path):
    subs, private_tmp = tmp_path / "subs", tmp_path / "tmp"
    subs.mkdir()
    private_tmp.mkdir()
    cells = [nbformat.v4.new_code_cell("import time\nwhile True:\n    time.sleep(0.1)")]
    (subs / "loops.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook(cells=cells)))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(private_tmp),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    command = [sys.executable, "-m", "mlcourse", "grade", str(subs), "--exercise", EXERCISE, "--out",
               str(tmp_path / "out"), "--cell-timeout", "120", "--timeout", "200"]
    grader = subprocess.Popen(command + (["--no-sandbox"] if NO_SANDBOX else []), cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not any(p.name.startswith("mlcourse-") for p in private_tmp.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(8)  # the kernel is up and looping
    grader.send_signal(signal.SIGTERM)
    assert grader.wait(timeout=60) != 0
    time.sleep(1)
    assert [p.name for p in private_tmp.iterdir() if p.name.startswith(("mlcourse-", "tmp"))] == []
    assert not (tmp_path / "runtime").exists() or list((tmp_path / "runtime").iterdir()) == []
    stray = [p for p in psutil.process_iter(["cmdline"]) if str(private_tmp) in " ".join(p.info["cmdline"] or [])]
    assert stray == []


def test_what_a_submission_returns_is_bounded_in_total(tmp_path):
    """Each call's file is under the per-call limit; together they pass the submission's budget: the calls past
    it get an error, not a place in the grader's memory."""
    keys = [f"call{i}" for i in range(3)]
    for key in keys:
        torch.save({"out": torch.zeros(100_000)}, tmp_path / f"{key}.pt")  # 400 kB each
    outputs, errors = read_results(tmp_path, keys, budget=1_000_000)
    assert sorted(outputs) == ["call0", "call1"]
    assert "limit on what one submission may return in all" in errors["call2"]
