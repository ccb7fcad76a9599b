"""Showing the package's real code and result tables inside the chapters."""

import inspect

from IPython.display import Code, Markdown


def show_source(*objects) -> Code:
    """The source of functions or classes of `mlcourse`, highlighted: the book shows the code it runs."""
    return Code("\n\n".join(inspect.getsource(obj) for obj in objects), language="python")


def table(rows: list[dict], digits: int = 1) -> Markdown:
    """A Markdown table from a list of same-keyed dicts; floats are shown with `digits` decimals."""
    keys = list(rows[0])
    cell = lambda v: f"{v:.{digits}f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r[k]) for k in keys) + " |" for r in rows]
    return Markdown("\n".join(lines))
