"""Showing the package's real code and result tables inside the chapters."""

import html
import inspect

from IPython.display import Code


def show_source(*objects) -> Code:
    """The source of functions or classes of `mlcourse`, highlighted: the book shows the code it runs."""
    return Code("\n\n".join(inspect.getsource(obj) for obj in objects), language="python")


class Table:
    """A results table that renders as HTML (JupyterLab, the book) and as aligned text (terminals, nbval)."""

    def __init__(self, rows: list[dict], digits: int = 1):
        if not rows:
            raise ValueError("a table needs at least one row")
        self.keys = list(rows[0])
        cell = lambda v: f"{v:.{digits}f}" if isinstance(v, float) else str(v)  # noqa: E731
        self.cells = [[cell(row[k]) for k in self.keys] for row in rows]

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(k)}</th>" for k in self.keys)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.cells)
        return f'<table class="mlcourse-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

    def __repr__(self) -> str:
        widths = [max(len(x) for x in column) for column in zip(self.keys, *self.cells)]
        line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()  # noqa: E731
        return "\n".join([line(self.keys), line("-" * w for w in widths)] + [line(row) for row in self.cells])


def table(rows: list[dict], digits: int = 1) -> Table:
    """A table from a list of same-keyed dicts; floats are shown with `digits` decimals."""
    return Table(rows, digits)
