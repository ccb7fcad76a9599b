"""The `exercises` and `grade` commands."""

import argparse
import csv

from mlcourse.grading.cli import add_commands, main
from tests.grading.corpus import NO_SANDBOX, ROOT


def test_commands_register_with_a_run_function():
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["grade", "subs", "--exercise", "01_tasks_and_episodes", "--out", "o",
                              "--timeout", "30", "--memory-mb", "900", "--jobs", "2"])
    assert args.timeout == 30 and args.memory_mb == 900 and args.jobs == 2 and callable(args.run)
    assert callable(parser.parse_args(["exercises", "--check"]).run)


def test_exercises_check_passes_on_the_repository(capsys):
    assert main(["exercises", "--check", "--root", str(ROOT)]) == 0
    assert "up to date" in capsys.readouterr().out


def test_grade_writes_outputs_and_a_summary(tmp_path, capsys):
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "nobody.ipynb").write_text("{not json")
    no_sandbox = ["--no-sandbox"] if NO_SANDBOX else []
    assert main(["grade", str(subs), "--exercise", "01_tasks_and_episodes", "--out", str(tmp_path / "out"),
                 *no_sandbox]) == 0
    out = capsys.readouterr().out
    assert "Graded 1 submissions of 01_tasks_and_episodes" in out and "not a notebook" in out
    rows = list(csv.DictReader((tmp_path / "out" / "grades.csv").open()))
    assert rows[0]["student"] == "nobody" and rows[0]["total"] == "0"


def test_grade_reports_an_unknown_exercise(tmp_path, capsys):
    assert main(["grade", str(tmp_path), "--exercise", "99_nothing", "--out", str(tmp_path / "o")]) == 2
    assert "no checks for exercise" in capsys.readouterr().err
