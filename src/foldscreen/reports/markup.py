"""HTML pieces shared by the report's sections: sections, sortable tables and their cells."""

from __future__ import annotations

from html import escape

import numpy as np
import pandas as pd


def section(title: str, content: str, anchor: str | None = None) -> str:
    anchor = anchor or title.lower().replace(" ", "-")
    return f'<section id="{escape(anchor)}"><h2>{escape(title)}</h2>{content}</section>'


def table(name: str, headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)
    body = "".join(f"<tr>{''.join(cells)}</tr>" for cells in rows)
    return (f'<div class="scroll"><table class="sortable" id="table-{escape(name)}">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and np.isnan(value))


def cell(value: object) -> str:
    """A table cell; numbers carry their exact value in `data-v` for sorting."""
    if is_missing(value):
        return '<td class="num" data-v="">-</td>'
    if isinstance(value, (bool, np.bool_)):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, (int, np.integer)):
        return f'<td class="num" data-v="{int(value)}">{int(value)}</td>'
    if isinstance(value, (float, np.floating)):
        return f'<td class="num" data-v="{float(value)!r}">{value:.3f}</td>'
    return f"<td>{escape(str(value))}</td>"


def capped(shown: int, total: int, table_name: str) -> str:
    text = capped_text(shown, total, table_name)
    return f'<p class="note capped">{text}</p>' if text else ""


def capped_text(shown: int, total: int, table_name: str) -> str:
    return f" Showing {shown:,} of {total:,}; all are in <code>{table_name}</code>." if shown < total else ""
