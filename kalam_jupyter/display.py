"""How results, messages, progress and errors look in a notebook.

Everything here is presentation: HTML tables with escaped cells, one-line messages for DDL and
DML, the elapsed-time line of a long statement, and short error text with a hint.
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = [
    "KalamFrame",
    "Message",
    "Progress",
    "ResultInfo",
    "close_names",
    "format_error",
    "human_bytes",
    "result_frame",
]


def human_bytes(n: float | int | None) -> str:
    """1536 -> '1.5 KiB'."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover


def _elapsed(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.1f} ms"


@dataclass(frozen=True)
class ResultInfo:
    """What the HTML view of a query result needs beside the rows."""

    total_rows: int
    column_types: tuple[tuple[str, str], ...]
    took_ms: float | None
    as_user: str | None
    display_limit: int


_NULL = '<span class="kalam-null" style="opacity:.5">NULL</span>'


def _cell(value: Any, sql_type: str = "") -> str:
    if value is None:
        return _NULL
    try:
        if pd.isna(value):
            return _NULL
    except (TypeError, ValueError):
        pass
    if isinstance(value, float) and "int" in sql_type and value.is_integer():
        # an integer column with NULLs became float64 in pandas; show the integers
        return str(int(value))
    return html.escape(str(value))


class KalamFrame(pd.DataFrame):
    """A plain pandas DataFrame that renders itself as a Kalam result table in notebooks.

    Any derived frame (slicing, arithmetic, ...) is an ordinary ``pd.DataFrame``.
    """

    _metadata = ["_kalam_info"]

    @property
    def _constructor(self) -> type[pd.DataFrame]:
        return pd.DataFrame

    def _repr_html_(self) -> str:
        info: ResultInfo | None = getattr(self, "_kalam_info", None)
        if info is None:
            return pd.DataFrame._repr_html_(self) or ""
        return render_result_html(self, info)


def result_frame(df: pd.DataFrame, info: ResultInfo) -> KalamFrame:
    """Wrap ``df`` (no copy of the data) so that it displays with ``info``."""
    frame = KalamFrame(df, copy=False)
    object.__setattr__(frame, "_kalam_info", info)
    return frame


_TYPE_STYLE = "style='font-weight:normal;opacity:.6;font-size:smaller'"


def render_result_html(df: pd.DataFrame, info: ResultInfo) -> str:
    limit = max(0, int(info.display_limit))
    shown = df.head(limit)
    types = dict(info.column_types)
    head = "".join(
        f"<th>{html.escape(str(c))}<br><span class='kalam-type' {_TYPE_STYLE}>"
        f"{html.escape(types.get(str(c), str(df.dtypes.iloc[i])))}</span></th>"
        for i, c in enumerate(df.columns)
    )
    col_types = [types.get(str(c), "") for c in df.columns]
    body = "".join(
        "<tr>"
        + "".join(f"<td>{_cell(v, t)}</td>" for v, t in zip(row, col_types, strict=True))
        + "</tr>"
        for row in shown.itertuples(index=False, name=None)
    )
    total = info.total_rows
    noun = "row" if total == 1 else "rows"
    footer = f"{total} {noun}"
    if total > len(shown):
        footer += f" (showing first {len(shown)}; Kalam.display_limit = {limit})"
    footer += f" · {_elapsed(info.took_ms)}"
    if info.as_user:
        footer += f" · as {html.escape(info.as_user)}"
    return (
        "<div class='kalam-result'>"
        "<table class='dataframe kalam-table'>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        f"<div class='kalam-footer' style='font-size:smaller;opacity:.8'>{footer}</div>"
        "</div>"
    )


@dataclass(frozen=True)
class Message:
    """The one line shown for DDL, DML and commands."""

    text: str
    kind: str
    rows: int | None
    took_ms: float | None
    as_user: str | None

    def line(self) -> str:
        parts = [self.text or f"{self.kind.upper()} done"]
        if self.kind == "dml" and self.rows is not None and f"{self.rows} row" not in parts[0]:
            parts.append(f"{self.rows} row{'s' if self.rows != 1 else ''} affected")
        if self.took_ms is not None:
            parts.append(_elapsed(self.took_ms))
        if self.as_user:
            parts.append(f"as {self.as_user}")
        return " · ".join(parts)

    def __repr__(self) -> str:
        return "✔ " + self.line()

    def _repr_html_(self) -> str:
        return (
            "<div class='kalam-message' style='font-family:monospace'>✔ "
            f"{html.escape(self.line())}</div>"
        )


@dataclass(frozen=True)
class Progress:
    """The elapsed-time line of a statement that runs longer than a second."""

    elapsed_s: float
    state: str = "running"

    def line(self) -> str:
        if self.state == "running":
            return f"⏳ running · {self.elapsed_s:.1f} s elapsed"
        return f"{self.state} after {self.elapsed_s:.1f} s"

    def __repr__(self) -> str:
        return self.line()

    def _repr_html_(self) -> str:
        return f"<div class='kalam-progress'>{html.escape(self.line())}</div>"


def _catalog_names(snapshot: Mapping[str, Mapping[str, Iterable[str]]]) -> dict[str, list[str]]:
    tables: list[str] = []
    columns: list[str] = []
    for ns, tbls in snapshot.items():
        for t, cols in tbls.items():
            tables.append(f"{ns}.{t}")
            columns.extend(cols)
    return {
        "namespaces": sorted(snapshot),
        "tables": sorted(tables),
        "columns": sorted(set(columns)),
    }


_DOTTED = re.compile(r"\b(?:[A-Za-z_]\w*\.)?([A-Za-z_]\w*)\.([A-Za-z_]\w*)\b")
_QUOTED = re.compile(r"'([A-Za-z_][\w.]*)'|\"([A-Za-z_][\w.]*)\"|`([A-Za-z_][\w.]*)`")


def close_names(
    code: str,
    message: str,
    sql: str,
    snapshot: Mapping[str, Mapping[str, Iterable[str]]],
) -> list[str]:
    """Names in the catalog close to the unknown names in ``message`` / ``sql``."""
    names = _catalog_names(snapshot)
    if code == "NAMESPACE_NOT_FOUND":
        pool = names["namespaces"]
    elif code == "TABLE_NOT_FOUND":
        pool = names["tables"]
    else:
        pool = names["columns"] + names["tables"]
    known = {n.lower() for n in pool}
    wanted: list[str] = []
    for text in (message, sql):
        for m in _DOTTED.finditer(text):
            wanted.append(f"{m.group(1)}.{m.group(2)}")
            if code == "NAMESPACE_NOT_FOUND":
                wanted.append(m.group(1))
        for m in _QUOTED.finditer(text):
            wanted.append(next(g for g in m.groups() if g))
    out: list[str] = []
    lowered = {p.lower(): p for p in pool if not p.lower().startswith("system.")}
    for name in wanted:
        key = name.lower()
        if key in known:
            continue
        candidates = difflib.get_close_matches(key, list(lowered), n=3, cutoff=0.6)
        if not candidates and "." in key and code == "TABLE_NOT_FOUND":
            bare = key.split(".", 1)[1]
            candidates = [p for p in lowered if p.split(".", 1)[1] == bare]
        for c in candidates:
            if lowered[c] not in out:
                out.append(lowered[c])
    return out


def format_error(
    err: Exception,
    sql: str = "",
    snapshot: Mapping[str, Mapping[str, Iterable[str]]] | None = None,
    statement_no: tuple[int, int] | None = None,
) -> str:
    """One or two lines: ``CODE: message`` and, when there is one, ``Hint: ...``."""
    code = getattr(err, "code", type(err).__name__)
    message = getattr(err, "message", None) or str(err)
    first = f"{code}: {message}"
    if statement_no and statement_no[1] > 1:
        first += f" (statement {statement_no[0]} of {statement_no[1]})"
    hint = getattr(err, "hint", None)
    wants_names = code in {"TABLE_NOT_FOUND", "NAMESPACE_NOT_FOUND"} or (
        not hint and "column" in message.lower()
    )
    if snapshot is not None and wants_names:
        suggestions = close_names(code, message, sql, snapshot or {})
        if suggestions and not (hint and "did you mean" in hint.lower()):
            extra = "did you mean " + ", ".join(suggestions) + "?"
            hint = f"{hint}; {extra}" if hint else extra
    if hint:
        return f"{first}\nHint: {hint}"
    return first
