"""The grader end to end: good, wrong and hostile submissions of chapter 1, each graded right."""

import csv
import json
import shutil

import pytest
import torch

from mlcourse.grading import report
from mlcourse.grading.checks import build, default_seed, grader_secret
from mlcourse.grading.grader import _new_folder, grade, parse_notebook, read_results, resolve_limits
from mlcourse.grading.kernel import Limits
from tests.grading.checks.notebooks import GradedSet
from tests.grading.corpus import (EXERCISE, EXERCISES, EXPECTED, GLOBAL_RNG_SAMPLER, PERCENT_ACCURACY,
                                  SANDBOXED, SOLUTION, WRONG_NEAREST, functions, hostile, notebook)

LIMITS = Limits(timeout=90, memory_mb=2000, cell_timeout=30, call_timeout=2)


def _write(folder, subs):
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in subs.items():
        path = folder / f"{name}.ipynb"
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The whole corpus graded once (two submissions at a time), and the files written."""
    base = tmp_path_factory.mktemp("grading")
    subs_dir, out_dir = base / "submissions", base / "out"
    subs = hostile(out_dir, subs_dir)
    subs["solution"] = SOLUTION.read_bytes()
    subs["exercise"] = EXERCISES.read_bytes()
    _write(subs_dir, subs)
    (subs_dir / "notes.txt").write_text("not a notebook, and not .ipynb: ignored")
    before = report.snapshot(out_dir)
    exercise, results, ignored = grade(subs_dir, EXERCISE, LIMITS, jobs=2, echo=lambda *a: None,
                                       sandboxed=SANDBOXED)
    strays = sorted(report.snapshot(out_dir) - before)
    report.write(out_dir, exercise, results)
    return {"exercise": exercise, "results": {g.student: g for g in results}, "ignored": ignored,
            "out": out_dir, "subs": subs_dir, "strays": strays}


def test_the_solution_gets_full_marks(graded):
    g = graded["results"]["solution"]
    assert g.total == graded["exercise"].max_points == 15 and g.status_text == "ok", (g.status_text, g.notes)
    assert all(r.passed for r in g.results), [r.message for r in g.results if not r.passed]


def test_the_exercise_gets_zero_and_the_run_goes_on(graded):
    g = graded["results"]["exercise"]
    assert g.total == 0 and g.status_text == "ok"
    assert all("not written yet" in r.message for r in g.results)


@pytest.mark.parametrize("student", [s for s, e in EXPECTED.items() if e is not None])
def test_each_bad_submission_gets_its_grade_and_status(graded, student):
    total, status = EXPECTED[student]
    g = graded["results"][student]
    assert g.total == total, (g.status_text, [(r.name, r.message) for r in g.results if not r.passed])
    assert g.status_text.startswith(status), g.status_text


def test_a_partly_wrong_submission_gets_what_its_functions_earn(graded):
    ns = {}
    exec("import torch\n" + GLOBAL_RNG_SAMPLER + WRONG_NEAREST + PERCENT_ACCURACY, ns)
    seed = default_seed(EXERCISE, grader_secret())  # the grader's inputs: from this installation's secret
    expected = GradedSet(EXERCISE, seed).results(ns, time_limit=5)
    g = graded["results"]["partly_wrong"]
    assert [r.points for r in g.results] == [r.points for r in expected]
    assert 0 < g.total < 15


def test_flagged_and_failing_submissions_say_why(graded):
    results = graded["results"]
    assert "PixelNearestNeighbour" in " ".join(results["uses_reference"].notes)
    assert "importlib" in " ".join(results["import_trick"].notes)
    nearest = [r for r in results["raises"].results if r.function == "nearest_neighbour_predict"]
    # the type of the error, never its message: a graded call's message is computed from the grader's inputs
    assert all("raised ValueError" in r.message and "I give up" not in r.message for r in nearest)
    timed = [r for r in results["loops_in_function"].results if r.function == "sample_episode"]
    assert all("time limit" in r.message for r in timed)
    assert any("not defined" in r.message for r in results["missing_function"].results)


def test_outputs_are_right_despite_a_submission_writing_there(graded):
    out = graded["out"]
    rows = {r["student"]: r for r in csv.DictReader((out / "grades.csv").open())}
    assert set(rows) == set(graded["results"]) and "everyone_else" not in rows
    assert rows["solution"]["total"] == "15" and rows["file_vandal"]["total"] == "15"
    assert rows["monkeypatch"]["total"] == "7" and rows["fake_score"]["total"] == "0"
    assert rows["solution"]["sample_episode"] == "7" and rows["solution"]["max"] == "15"
    assert (out / "feedback" / "monkeypatch.md").read_text().startswith("# 01_tasks_and_episodes: feedback")
    assert graded["ignored"] == ["notes.txt"]
    if SANDBOXED is False:  # the vandal reached the folders: what it wrote is reported, never mistaken for grades
        assert "evil.txt" in graded["strays"] and (out / "evil.txt").exists()
        assert not list(graded["subs"].glob("*.ipynb"))  # it deleted them all: graded from memory anyway
    else:  # in the sandbox it sees neither folder
        assert graded["strays"] == [] and not (out / "evil.txt").exists()
        assert len(list(graded["subs"].glob("*.ipynb"))) == len(graded["results"])


def test_feedback_names_hidden_checks_without_their_inputs(graded):
    text = (graded["out"] / "feedback" / "partly_wrong.md").read_text()
    assert "(hidden check)" in text and "reproducible from the generator alone" in text
    assert "✗" in text and "✓" in text
    assert "tensor(" not in text and "[[" not in text  # no input or expected values


def test_results_json_is_gradescope_style(graded):
    data = json.loads((graded["out"] / "results.json").read_text())
    subs = {s["student"]: s for s in data["submissions"]}
    sol = subs["solution"]
    assert sol["score"] == sol["max_score"] == 15
    assert {"name", "score", "max_score", "output", "visibility"} <= set(sol["tests"][0])
    assert sum(t["score"] for t in subs["partly_wrong"]["tests"]) == subs["partly_wrong"]["score"]
    one = json.loads((graded["out"] / "gradescope" / "solution.json").read_text())
    assert one["score"] == 15 and len(one["tests"]) == len(sol["tests"])


def test_grading_twice_gives_the_same_grades(graded, tmp_path):
    again = {"partly_wrong": notebook(*functions(sample_episode=GLOBAL_RNG_SAMPLER,
                                                 nearest_neighbour_predict=WRONG_NEAREST,
                                                 episode_accuracy=PERCENT_ACCURACY)),
             "missing_function": notebook(*functions(episode_accuracy=""))}
    _write(tmp_path, again)
    _, results, _ = grade(tmp_path, EXERCISE, LIMITS, jobs=2, echo=lambda *a: None, sandboxed=SANDBOXED)
    for g in results:
        first = graded["results"][g.student]
        assert [r.points for r in g.results] == [r.points for r in first.results]
        assert [r.message for r in g.results] == [r.message for r in first.results]


def test_limits_stop_what_does_not_end(graded):
    results = graded["results"]
    assert results["loops_ignoring_interrupts"].seconds < LIMITS.timeout + 20
    assert results["memory_hog"].seconds < LIMITS.timeout
    assert "cell 5" in results["loops_in_cell"].status_text  # the interrupted cell, by its position


def test_parse_notebook_refuses_what_is_not_a_notebook():
    assert parse_notebook(None)[1].startswith("not graded")
    assert parse_notebook(b"\xff\xfe")[1] == "not a notebook: the file is not JSON"
    assert parse_notebook(b"[1, 2]")[1].startswith("not a notebook")
    assert parse_notebook(b'{"nbformat": 4, "cells": [{"cell_type": "weird"}]}')[1].startswith("not a notebook")
    assert parse_notebook(b'{"nbformat": 2, "worksheets": []}')[1].startswith("old notebook format (nbformat 2)")
    nb, problem = parse_notebook(SOLUTION.read_bytes())
    assert problem == "" and nb.cells


def test_read_results_takes_plain_tensors_only(tmp_path):
    torch.save({"c0:0": torch.ones(3), "c0:1": torch.zeros(2)}, tmp_path / "c0.pt")
    torch.save({"c1:0": [1, 2, 3]}, tmp_path / "c1.pt")  # not a tensor
    (tmp_path / "c2.pt").write_bytes(b"garbage")
    (tmp_path / "c3.pt").symlink_to(tmp_path / "c0.pt")  # links are not followed
    (tmp_path / "errors.json").write_text(json.dumps({"c4": "ValueError: \x1b[31mbad\n" + "x" * 500, "c5": 3}))
    outputs, errors = read_results(tmp_path, ["c0", "c1", "c2", "c3", "c4", "c5"])
    assert set(outputs) == {"c0"} and [t.shape for t in outputs["c0"]] == [(3,), (2,)]
    assert set(errors) == {"c1", "c2", "c4"}
    assert len(errors["c4"]) <= 200 and "\x1b" not in errors["c4"] and "\n" not in errors["c4"]
    shutil.rmtree(tmp_path)
    assert read_results(tmp_path, ["c0"]) == ({}, {})


def test_a_results_folder_is_open_before_its_name_appears_and_swapping_it_leads_nowhere(tmp_path):
    """The kernel may replace the results folder by a link the moment it appears: the grader keeps reading the
    folder it made, through the descriptor it opened before the name was visible."""
    import os

    home, private, elsewhere = tmp_path / "home", tmp_path / "private", tmp_path / "elsewhere"
    for d in (home, private, elsewhere):
        d.mkdir()
    home_fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
    fd = _new_folder(private, home_fd, "results-x")
    try:
        assert (home / "results-x").is_dir() and not list(private.iterdir())
        (home / "results-x").rename(home / "moved")  # the kernel's swap
        (home / "results-x").symlink_to(elsewhere)
        torch.save({"c0:0": torch.ones(2)}, home / "moved" / "c0.pt")  # what the harness wrote before the swap
        torch.save({"c1:0": torch.ones(3)}, elsewhere / "c1.pt")
        outputs, _ = read_results(fd, ["c0", "c1"])
        assert sorted(outputs) == ["c0"]  # the folder made, never the link's target
    finally:
        os.close(fd)
        os.close(home_fd)


def test_limits_come_from_the_exercise_set_unless_given():
    ex = build(EXERCISE)
    assert resolve_limits(ex, None) == Limits(timeout=180, cell_timeout=60, call_timeout=10)
    assert resolve_limits(ex, {"memory_mb": 900}).memory_mb == 900 and resolve_limits(ex, {}).timeout == 180
    assert resolve_limits(ex, LIMITS) is LIMITS


def test_results_are_read_from_regular_files_only_and_bounded_in_elements(tmp_path):
    """A few hundred bytes holding a stride-0 tensor would expand to gigabytes in the grader; links and FIFOs are
    never followed nor opened (a FIFO would block the grader)."""
    import os

    torch.save({"c0:0": torch.zeros(1).expand(2**31)}, tmp_path / "c0.pt")  # 8 GiB as float32 once expanded
    assert (tmp_path / "c0.pt").stat().st_size < 2000
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere.pt"
    torch.save({"c1:0": torch.ones(2)}, elsewhere)
    (tmp_path / "c1.pt").symlink_to(elsewhere)
    os.mkfifo(tmp_path / "c2.pt")
    (tmp_path / "errors.json").symlink_to(elsewhere)
    torch.save({"c3:0": torch.arange(4).float()}, tmp_path / "c3.pt")
    outputs, errors = read_results(tmp_path, ["c0", "c1", "c2", "c3"])
    assert sorted(outputs) == ["c3"] and outputs["c3"][0].tolist() == [0, 1, 2, 3]
    assert "elements" in errors["c0"]
