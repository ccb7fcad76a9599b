"""Open the built book in headless Chromium, offline, and list what a reader would see broken.

    python -m tests.browser_check _build/html [--screenshots DIR]

Each page is loaded from file:// with every host name unresolvable, so nothing comes from the
network; the DOM after the scripts ran (MathJax included) is then checked for raw TeX, MathJax
errors, raw Markdown tables, missing images or scripts, and internal links that lead nowhere.
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SKIPPED_PAGES = {"genindex.html", "search.html", "index.html"}  # index.html only redirects to the intro
CODE_TAGS = {"script", "style", "noscript", "pre", "code", "kbd", "samp", "textarea", "mjx-container"}
LOADED_RELS = {"stylesheet", "preload", "modulepreload", "icon"}  # <link>s that load a file (others navigate)
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
RAW_TEX = re.compile(r"\\\(|\\\[|\$\$|\\begin\{")  # \( \[ $$ \begin{ left as text: math MathJax never typeset
RAW_TABLE = re.compile(r"\|(?:\s*:?[-—–]+:?\s*\|)+")  # a |---|:--| row (docutils turns --- into an em dash)
DEAD_WIDGET = re.compile(r"Loading widget|Error displaying widget")  # a widget's output where no kernel runs


def render(page: Path, budget_ms: int = 10000) -> str:
    """The page's DOM after its scripts ran for `budget_ms` of virtual time, with no network."""
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", f"--user-data-dir={profile}",
             "--host-resolver-rules=MAP * ~NOTFOUND", "--disable-background-networking",
             f"--virtual-time-budget={budget_ms}", "--dump-dom", page.resolve().as_uri()],
            capture_output=True, text=True, timeout=120)
    if result.returncode != 0 or "</html>" not in result.stdout:
        raise RuntimeError(f"chromium could not render {page}: {result.stderr[-2000:]}")
    return result.stdout


def screenshot(page: Path, png: Path, width: int = 1280, height: int = 2000) -> None:
    """A PNG of the top of the page as a reader's browser window shows it, offline."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
                        f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND",
                        "--virtual-time-budget=10000", f"--window-size={width},{height}",
                        f"--screenshot={png.resolve()}", page.resolve().as_uri()],
                       capture_output=True, timeout=120, check=True)


class Page(HTMLParser):
    """What the checks need from one HTML document: prose text, ids, links, images, formulas."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.text, self.ids, self.links, self.resources, self.errors = [], set(), [], [], []
        self.formulas = self.typeset = 0
        self._stack = []  # [tag, is_math, has_mjx] of each open element
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.ids.update(v for k, v in attrs.items() if k == "id" or (tag == "a" and k == "name"))
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag in ("img", "script") and attrs.get("src"):
            self.resources.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            loaded = LOADED_RELS & set((attrs.get("rel") or "").split())
            (self.resources if loaded else self.links).append(attrs["href"])
        if tag == "mjx-container":
            for entry in self._stack:
                entry[2] = entry[2] or entry[1]
        if tag == "mjx-merror":
            self.errors.append(attrs.get("data-mjx-error", "MathJax error"))
        if tag not in VOID_TAGS:
            is_math = "math" in (attrs.get("class") or "").split()
            self.formulas += is_math
            self._stack.append([tag, is_math, False])

    def handle_endtag(self, tag):
        if tag not in (entry[0] for entry in self._stack):
            return  # a stray end tag closes nothing
        while self._stack:
            open_tag, is_math, has_mjx = self._stack.pop()
            self.typeset += is_math and has_mjx
            if open_tag == tag:
                break

    def handle_data(self, data):
        if not any(tag in CODE_TAGS for tag, _, _ in self._stack):
            self.text.append(data)


@lru_cache(maxsize=None)
def ids_in(path: Path) -> frozenset:
    """The ids (and <a name>) that a built HTML file defines, from the file itself."""
    return frozenset(Page(path.read_text(encoding="utf-8")).ids)


def problems(parsed: Page, page: Path) -> list[str]:
    """What is broken in one rendered page (its DOM after scripts ran, parsed); `page` is its file."""
    found = []
    text = " ".join(" ".join(parsed.text).split())
    for pattern, what in [(RAW_TEX, "raw TeX (untypeset math)"), (RAW_TABLE, "raw Markdown table"),
                          (DEAD_WIDGET, "a dead widget (the book needs a static figure instead)")]:
        matches = list(pattern.finditer(text))
        if matches:
            first = matches[0]
            found.append(f"{what}, {len(matches)}x, first: ...{text[max(0, first.start() - 60):first.end() + 60]}...")
    if parsed.typeset < parsed.formulas:
        found.append(f"{parsed.formulas - parsed.typeset} of {parsed.formulas} formulas not typeset by MathJax")
    found += [f"MathJax error: {error}" for error in parsed.errors]
    for src in parsed.resources:
        url = urlsplit(src)
        if url.scheme in ("http", "https") or src.startswith("//"):
            found.append(f"loads {src} from the network: missing offline")
        elif not url.scheme and not (page.parent / unquote(url.path)).is_file():
            found.append(f"missing file: {src}")
    for href in parsed.links:
        url = urlsplit(href)
        if url.scheme or href.startswith("//"):
            continue  # external links (https:, mailto:) are the reader's to follow online
        if not url.path:  # an anchor on this page
            if url.fragment and unquote(url.fragment) not in parsed.ids:
                found.append(f"broken anchor: {href}")
            continue
        target = page.parent / unquote(url.path)
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            found.append(f"broken link: {href}")
        elif url.fragment and target.suffix == ".html" and unquote(url.fragment) not in ids_in(target.resolve()):
            found.append(f"broken anchor: {href}")
    return found


def book_pages(html_dir: Path) -> list[Path]:
    """Every content page of a built book (not its assets, index, search or redirect)."""
    pages = [p for p in sorted(html_dir.rglob("*.html")) if p.relative_to(html_dir).parts[0] != "_static"]
    return [p for p in pages if str(p.relative_to(html_dir)) not in SKIPPED_PAGES]


def check_book(html_dir: Path) -> dict[Path, tuple[list[str], Page]]:
    """Render every page offline: {page: (problems, parsed DOM)}."""
    pages = book_pages(html_dir)
    with ThreadPoolExecutor(max_workers=2) as pool:
        doms = list(pool.map(render, pages))
    parsed = [Page(dom) for dom in doms]
    return {page: (problems(dom, page), dom) for page, dom in zip(pages, parsed)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", nargs="?", type=Path, default=Path("_build/html"), help="the built book")
    parser.add_argument("--screenshots", type=Path, help="also save a PNG of the top of each page here")
    args = parser.parse_args()
    if not CHROMIUM:
        print("chromium is not installed (Debian: apt-get install chromium)")
        return 2
    failed = 0
    for page, (found, parsed) in check_book(args.html_dir).items():
        name = page.relative_to(args.html_dir)
        print(f"{name}: {parsed.typeset}/{parsed.formulas} formulas typeset, {len(found)} problems")
        for problem in found:
            print(f"    {problem[:300]}")
        failed += bool(found)
        if args.screenshots:
            args.screenshots.mkdir(parents=True, exist_ok=True)
            screenshot(page, args.screenshots / (str(name.with_suffix("")).replace("/", "_") + ".png"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
