"""The files a grading run writes: grades.csv, feedback/<student>.md, results.json, gradescope/<student>.json."""

import csv
import io
import json
import os
import re
import shutil
import statistics
import tempfile
from collections import Counter
from pathlib import Path

from mlcourse.grading.grader import Graded
from mlcourse.grading.spec import Exercise

HIDDEN_NOTE = ("Hidden checks run your functions on inputs that the grader draws when it grades; "
               "they are named here, but their inputs and expected values are not shown.")


def safe_name(student: str) -> str:
    """A file name for a student's feedback: letters, digits, '.', '_' and '-' only, never hidden."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", student) or "_"
    return "_" + name if name.startswith(".") else name


def _clean(text: str, limit: int = 300) -> str:
    """Student-influenced text made safe for markdown: one line, no backticks, no HTML."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(text))
    return text.replace("`", "'").replace("<", "&lt;").replace(">", "&gt;")[:limit]


def grades_csv(exercise: Exercise, graded: list[Graded]) -> str:
    """One row per submission: points per graded function, total, max, status."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = [fn.name for fn in exercise.functions]
    writer.writerow(["student", *names, "total", "max", "status"])
    for g in graded:
        writer.writerow([g.student, *[f"{g.points(n):g}" for n in names], f"{g.total:g}",
                         f"{exercise.max_points:g}", g.status_text])
    return out.getvalue()


def feedback(exercise: Exercise, g: Graded) -> str:
    """The markdown feedback of one submission: which checks passed, which failed and why."""
    lines = [f"# {exercise.name}: feedback for {_clean(g.student, 80)}", "",
             f"**{g.total:g} / {exercise.max_points:g} points.** Status: {_clean(g.status_text)}.", ""]
    for fn in exercise.functions:
        mine = [r for r in g.results if r.function == fn.name]
        lines += [f"## `{fn.signature}`: {g.points(fn.name):g} / {fn.max_points:g}", ""]
        for r in mine:
            mark = "✓" if r.passed else "✗"
            kind = " *(hidden check)*" if r.hidden else ""
            why = f"  \n  {_clean(r.message)}" if r.message else ""
            lines.append(f"- {mark} **{r.points:g}/{r.max_points:g}** {r.name}{kind}{why}")
        lines.append("")
    if g.notes:
        lines += ["## Notes", ""] + [f"- {_clean(n)}" for n in g.notes] + [""]
    lines += [HIDDEN_NOTE, ""]
    return "\n".join(lines)


def gradescope(exercise: Exercise, g: Graded) -> dict:
    """One submission in Gradescope's results.json format."""
    tests = [{"name": f"{r.function}: {r.name}" + (" [hidden check]" if r.hidden else ""),
              "score": r.points, "max_score": r.max_points, "status": "passed" if r.passed else "failed",
              "output": r.message or "passed", "visibility": "visible"} for r in g.results]
    output = f"Status: {g.status_text}."
    if g.notes:
        output += "\n" + "\n".join(g.notes)
    return {"score": g.total, "max_score": exercise.max_points, "output": output + "\n" + HIDDEN_NOTE,
            "visibility": "visible", "stdout_visibility": "hidden", "tests": tests}


def results_json(exercise: Exercise, graded: list[Graded]) -> dict:
    """Every submission's Gradescope-style result, by student."""
    return {"exercise": exercise.name, "max_score": exercise.max_points,
            "submissions": [{"student": g.student, "status": g.status_text, **gradescope(exercise, g)}
                            for g in graded]}


def snapshot(out_dir: Path) -> set[str]:
    """The files under `out_dir` now (to notice files that appear during grading)."""
    if not out_dir.is_dir():
        return set()
    return {str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file() or p.is_symlink()}


def _write(path: Path, text: str) -> None:
    """Write atomically: a temporary file beside `path`, then a rename over it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; grades are meant to be read
    os.replace(tmp, path)


def _write_folder(folder: Path, files: dict[str, str]) -> None:
    """Replace `folder` with exactly `files` (built aside, then swapped in)."""
    new = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-new-"))
    new.chmod(0o755)
    for name, text in files.items():
        (new / name).write_text(text, encoding="utf-8")
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.exists():
        old = folder.parent / f".{folder.name}-old-{new.name.rsplit('-', 1)[-1]}"
        folder.rename(old)
        shutil.rmtree(old, ignore_errors=True)
    new.rename(folder)


def file_names(graded: list[Graded]) -> list[str]:
    """One file name per submission, never shared: safe_name, with '-2', '-3', ... where two would meet (letter case
    ignored, for the file systems that ignore it)."""
    names, seen = [], set()
    for g in graded:
        base = name = safe_name(g.student)
        n = 1
        while name.lower() in seen:
            n += 1
            name = f"{base}-{n}"
        seen.add(name.lower())
        names.append(name)
    return names


def output_names(graded: list[Graded]) -> dict[str, list[str]]:
    """The file names written into feedback/ and gradescope/."""
    names = file_names(graded)
    return {"feedback": [f"{n}.md" for n in names], "gradescope": [f"{n}.json" for n in names]}


def write(out_dir: Path, exercise: Exercise, graded: list[Graded]) -> list[Path]:
    """Write every output file of a grading run into `out_dir`; the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _write(out_dir / "grades.csv", grades_csv(exercise, graded))
    _write(out_dir / "results.json", json.dumps(results_json(exercise, graded), indent=1) + "\n")
    names = file_names(graded)
    _write_folder(out_dir / "feedback", {f"{n}.md": feedback(exercise, g) for n, g in zip(names, graded)})
    _write_folder(out_dir / "gradescope",
                  {f"{n}.json": json.dumps(gradescope(exercise, g), indent=1) + "\n" for n, g in zip(names, graded)})
    return [out_dir / "grades.csv", out_dir / "feedback", out_dir / "results.json", out_dir / "gradescope"]


def summary(exercise: Exercise, graded: list[Graded], seconds: float, written: list[Path],
            ignored: list[str], strays: list[str]) -> str:
    """A one-screen summary of a grading run."""
    lines = [f"Graded {len(graded)} submissions of {exercise.name} in {seconds:.0f} s "
             f"(out of {exercise.max_points:g} points)."]
    if graded:
        for fn in exercise.functions:
            pts = [g.points(fn.name) for g in graded]
            full = sum(p == fn.max_points for p in pts)
            lines.append(f"  {fn.name:<28} mean {statistics.mean(pts):5.2f} / {fn.max_points:g}"
                         f"   full marks {full}/{len(graded)}")
        totals = [g.total for g in graded]
        lines.append(f"  {'total':<28} mean {statistics.mean(totals):5.2f} / {exercise.max_points:g}"
                     f"   median {statistics.median(totals):g}")
        kinds = Counter(s.split(":")[0].split(" (")[0] for g in graded for s in (g.status or ["ok"]))
        lines.append("Status: " + ", ".join(f"{k} {n}" for k, n in kinds.most_common()))
        odd = [g for g in graded if g.status]
        for g in odd[:10]:
            lines.append(f"  {g.student}: {g.total:g}  {g.status_text}"[:150])
        if len(odd) > 10:
            lines.append(f"  ... and {len(odd) - 10} more (see grades.csv)")
    if ignored:
        lines.append(f"Ignored {len(ignored)} files that are not .ipynb: {', '.join(ignored[:5])}"
                     + (" ..." if len(ignored) > 5 else ""))
    if strays:
        lines.append(f"Warning: {len(strays)} files appeared in the output folder while grading (a submission "
                     f"may have written them; they are not grades): {', '.join(strays[:5])}")
    lines.append("Wrote " + ", ".join(str(p) for p in written))
    return "\n".join(lines)
