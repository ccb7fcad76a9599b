"""The book builds with Jupyter Book 1.x, warnings as errors, from the committed notebook outputs,
and reads offline in a browser: formulas typeset, images shown, internal links lead somewhere."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import browser_check

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """The book built once for this module: (the build's result, its html folder)."""
    jb = shutil.which("jupyter-book", path=str(Path(sys.executable).parent))
    assert jb, "jupyter-book is not installed in this environment: run `make test`, which installs it"
    out = tmp_path_factory.mktemp("book")
    result = subprocess.run([jb, "build", str(ROOT), "--path-output", str(out), "-W", "-n", "--keep-going"],
                            capture_output=True, text=True, timeout=900)
    return result, out / "_build" / "html"


def test_book_builds_without_warnings(book):
    result, html = book
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    for page in ["book/intro", "notebooks/01_tasks_and_episodes", "notebooks/04_prototypical_networks"]:
        assert (html / f"{page}.html").is_file(), page
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file(), "MathJax is not served from the book"


def test_book_reads_offline_in_a_browser(book):
    """Every page, opened from file:// with no network, shows typeset math, its images, working links."""
    if not browser_check.CHROMIUM:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium): "
                    "the offline browser check of the book is skipped")
    html = book[1]
    assert (html / "book" / "notation.html").is_file(), "the book was not built: see test_book_builds_without_warnings"
    report = browser_check.check_book(html)
    pages = {str(page.relative_to(html).with_suffix("")) for page in report}
    toc = [line.split("file:")[-1].strip() for line in (ROOT / "_toc.yml").read_text().splitlines() if "file:" in line]
    assert set(toc) <= pages, f"pages of _toc.yml that were not checked: {set(toc) - pages}"
    typeset = {str(page.relative_to(html)): parsed.typeset for page, (_, parsed) in report.items()}
    assert typeset["book/notation.html"] > 10, f"the notation page's formulas were not typeset: {typeset}"
    broken = [f"{page.relative_to(html)}:\n    " + "\n    ".join(problem[:300] for problem in found)
              for page, (found, _) in report.items() if found]
    assert not broken, "what a reader sees broken in the book, offline:\n" + "\n".join(broken)


BAD_PAGE = """<html><head><script src="https://cdn.example.org/mathjax.js"></script></head><body>
<p>The loss <span class="math">\\(\\mathcal{L}\\)</span> and $$x^2$$.</p>
<p>| method | accuracy | |—|—| | protonet | 97.3 |</p><div>Loading widget...</div>
<img src="missing.png"><a href="nowhere.html">gone</a><a href="good.html#no-such-id">bad anchor</a>
<a href="good.html#here">fine</a><a href="#top">fine</a><a href="#nope">bad anchor</a>
<a href="https://example.org">external</a>
<pre>code may show \\( and |---| freely</pre><p id="top">end</p></body></html>"""


def test_browser_check_finds_what_a_reader_would_see_broken(tmp_path):
    """The checker itself, on a page with one of each fault (no browser needed: its DOM is the file)."""
    (tmp_path / "good.html").write_text('<html><body><h1 id="here">Here</h1></body></html>')
    found = browser_check.problems(browser_check.Page(BAD_PAGE), tmp_path / "bad.html")
    expected = ["raw TeX", "raw Markdown table", "a dead widget", "1 of 1 formulas not typeset", "from the network",
                "missing file: missing.png", "broken link: nowhere.html", "broken anchor: good.html#no-such-id",
                "broken anchor: #nope"]
    for what in expected:
        assert sum(what in problem for problem in found) == 1, (what, found)
    assert len(found) == len(expected), found
    for row in ["|---|---|", "| :-- | --: |", "|—|–|"]:  # as written, and after docutils' smart dashes
        assert browser_check.RAW_TABLE.search(f"| a | b | {row} | 1 | 2 |"), row
    typeset = browser_check.Page('<p>fine: <span class="math"><mjx-container></mjx-container></span></p>')
    assert (typeset.formulas, typeset.typeset) == (1, 1)
    assert browser_check.problems(typeset, tmp_path / "good.html") == []
