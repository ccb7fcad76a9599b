"""The book builds with Jupyter Book 1.x, warnings as errors, from the committed notebook outputs."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_book_builds_without_warnings(tmp_path):
    jb = shutil.which("jupyter-book", path=str(Path(sys.executable).parent))
    assert jb, "jupyter-book is not installed in this environment: run `make test`, which installs it"
    result = subprocess.run([jb, "build", str(ROOT), "--path-output", str(tmp_path), "-W", "-n", "--keep-going"],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    html = tmp_path / "_build" / "html"
    for page in ["book/intro", "notebooks/01_tasks_and_episodes", "notebooks/04_prototypical_networks"]:
        assert (html / f"{page}.html").is_file(), page
