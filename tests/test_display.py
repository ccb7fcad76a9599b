"""Result tables render as real tables in HTML (the book, JupyterLab) and as aligned text (nbval, terminals)."""

import pytest

from mlcourse.display import table


def test_a_table_renders_as_html_and_as_aligned_text():
    t = table([{"setting": "5-way 1-shot", "ours (%)": 97.25, "note": "<b>"}, {"setting": "20-way", "ours (%)": 91.0,
                                                                              "note": ""}])
    html = t._repr_html_()
    assert html.count("<tr>") == 3 and "<th>ours (%)</th>" in html and "<td>97.2</td>" in html
    assert "&lt;b&gt;" in html and "|---" not in html  # escaped, and no Markdown left for the book to show raw
    lines = repr(t).splitlines()
    assert lines[0].split() == ["setting", "ours", "(%)", "note"] and set(lines[1]) <= {"-", " "}
    assert lines[2].index("97.2") == lines[0].index("ours")  # columns line up


def test_an_empty_table_is_refused():
    with pytest.raises(ValueError, match="at least one row"):
        table([])
