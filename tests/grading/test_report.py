"""The files of a grading run: grades.csv, feedback, results.json, gradescope/, and the summary."""

import csv
import json

from mlcourse.grading.grader import Graded
from mlcourse.grading.report import feedback, safe_name, snapshot, summary, write
from mlcourse.grading.scoring import CheckResult
from mlcourse.grading.spec import Exercise


def example():
    ex = Exercise("00_tiny")
    fn = ex.function("f", "f(x)", references=())
    fn.check("visible one", 1, ["c0"], None, hidden=False)
    fn.check("hidden one", 2, ["c0"], None)
    results = lambda p, msg: [CheckResult("f", "visible one", p[0], 1, False, msg[0]),  # noqa: E731
                              CheckResult("f", "hidden one", p[1], 2, True, msg[1])]
    graded = [Graded("ana", [], results((1, 2), ("", ""))),
              Graded("../bob <b>`x`</b>", ["timeout"], results((1, 0), ("", "raised `ValueError`\x1b[0m <script>")),
                     notes=["cell 2 raised ValueError"])]
    return ex, graded


def test_outputs_are_written_and_old_ones_replaced(tmp_path):
    ex, graded = example()
    (tmp_path / "feedback").mkdir()
    (tmp_path / "feedback" / "old.md").write_text("from a previous run")
    write(tmp_path, ex, graded)
    rows = list(csv.DictReader((tmp_path / "grades.csv").open()))
    assert rows[0] == {"student": "ana", "f": "3", "total": "3", "max": "3", "status": "ok"}
    assert rows[1]["student"] == "../bob <b>`x`</b>" and rows[1]["status"] == "timeout"
    assert sorted(p.name for p in (tmp_path / "feedback").iterdir()) == ["_.._bob__b__x___b_.md", "ana.md"]
    data = json.loads((tmp_path / "results.json").read_text())
    assert [s["score"] for s in data["submissions"]] == [3, 1] and data["max_score"] == 3
    tests = json.loads((tmp_path / "gradescope" / "ana.json").read_text())["tests"]
    assert tests[1]["name"] == "f: hidden one [hidden check]"
    assert snapshot(tmp_path) >= {"grades.csv", "results.json", "feedback/ana.md"}


def test_feedback_is_safe_markdown():
    ex, graded = example()
    text = feedback(ex, graded[1])
    assert "**1 / 3 points.** Status: timeout." in text and "*(hidden check)*" in text
    assert "<script>" not in text and "\x1b" not in text and "`ValueError`" not in text
    assert safe_name(".hidden") == "_.hidden" and safe_name("a/b") == "a_b"


def test_summary_fits_a_screen():
    ex, graded = example()
    text = summary(ex, graded * 20, 12.3, [], ["readme.txt"], ["evil.txt"])
    assert text.startswith("Graded 40 submissions of 00_tiny in 12 s") and len(text.splitlines()) < 25
    assert "Status: ok 20, timeout 20" in text and "evil.txt" in text and "readme.txt" in text
