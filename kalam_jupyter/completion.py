"""Tab completion of namespaces, tables and columns inside ``%%kalam`` cells and ``%kalam`` lines.

It runs in the kernel as an IPython completer matcher, so every front end (JupyterLab, Notebook,
VS Code, the terminal) gets it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from IPython.core.completer import (
    CompletionContext,
    SimpleCompletion,
    SimpleMatcherResult,
    context_matcher,
)

__all__ = ["KEYWORDS", "make_matcher", "sql_completions"]

Snapshot = Mapping[str, Mapping[str, Iterable[str]]]

_KEYWORD_TEXT = (
    "SELECT FROM WHERE GROUP BY ORDER LIMIT OFFSET HAVING JOIN LEFT RIGHT INNER OUTER ON AS "
    "AND OR NOT NULL IS IN LIKE BETWEEN DISTINCT COUNT SUM AVG MIN MAX INSERT INTO VALUES "
    "UPDATE SET DELETE CREATE DROP ALTER TABLE USER SHARED STREAM NAMESPACE PRIMARY KEY "
    "DEFAULT WITH SHOW TABLES DESCRIBE NOW SNOWFLAKE_ID TEXT BIGINT INT DOUBLE BOOLEAN "
    "TIMESTAMP DESC ASC CASE WHEN THEN ELSE END EXECUTE"
)
KEYWORDS: tuple[str, ...] = tuple(_KEYWORD_TEXT.split())

_TABLE_CONTEXT = {"FROM", "JOIN", "INTO", "UPDATE", "TABLE", "DESCRIBE", "EXISTS"}
_WORD_BEFORE = re.compile(r"([A-Za-z_]+)\s+[\w.]*$")
_DOTTED = re.compile(r"\b([A-Za-z_]\w*)\.([A-Za-z_]\w*)\b")
_ALIAS = re.compile(r"\b([A-Za-z_]\w*)\.([A-Za-z_]\w*)\s+(?:AS\s+)?([A-Za-z_]\w*)", re.IGNORECASE)


def _norm(snapshot: Snapshot) -> dict[str, dict[str, list[str]]]:
    return {ns: {t: list(cols) for t, cols in tables.items()} for ns, tables in snapshot.items()}


def _starts(candidates: Iterable[str], prefix: str) -> list[str]:
    p = prefix.lower()
    return [c for c in candidates if c.lower().startswith(p)]


def sql_completions(
    before: str, token: str, snapshot: Snapshot, whole: str | None = None
) -> list[tuple[str, str]]:
    """Completions ``(text, type)`` for ``token`` given the SQL text ``before`` the cursor.

    ``whole`` is the statement text around the cursor; tables and aliases named anywhere in
    it narrow the column candidates.
    """
    cat = _norm(snapshot)
    scope = whole if whole is not None else before
    out: list[tuple[str, str]] = []
    referenced = [
        (m.group(1).lower(), m.group(2).lower())
        for m in _DOTTED.finditer(scope)
        if m.group(1).lower() in cat and m.group(2).lower() in cat[m.group(1).lower()]
    ]
    aliases = {
        m.group(3).lower(): (m.group(1).lower(), m.group(2).lower())
        for m in _ALIAS.finditer(scope)
        if m.group(3).upper() not in KEYWORDS
    }
    if "." in token:
        head, _, tail = token.rpartition(".")
        parts = head.lower().split(".")
        if len(parts) == 1 and parts[0] in cat:
            for t in _starts(sorted(cat[parts[0]]), tail):
                out.append((f"{head}.{t}", "table"))
        cols: list[str] = []
        if len(parts) == 2 and parts[0] in cat and parts[1] in cat[parts[0]]:
            cols = cat[parts[0]][parts[1]]
        elif len(parts) == 1 and parts[0] in aliases:
            ns, t = aliases[parts[0]]
            cols = cat.get(ns, {}).get(t, [])
        elif len(parts) == 1:
            for ns, t in referenced:
                if t == parts[0]:
                    cols = cat[ns][t]
        for c in _starts(cols, tail):
            out.append((f"{head}.{c}", "column"))
        return out
    m = _WORD_BEFORE.search(before)
    previous = m.group(1).upper() if m else ""
    if previous in _TABLE_CONTEXT:
        for ns in _starts(sorted(cat), token):
            out.append((f"{ns}.", "namespace"))
        for ns in sorted(cat):
            for t in sorted(cat[ns]):
                if t.lower().startswith(token.lower()) or f"{ns}.{t}".startswith(token.lower()):
                    out.append((f"{ns}.{t}", "table"))
        return out
    columns: list[str] = []
    everything = [(n, t) for n in cat for t in cat[n]]
    for ns, t in referenced or everything:
        for c in cat[ns][t]:
            if c not in columns:
                columns.append(c)
    out.extend((c, "column") for c in _starts(columns, token))
    if token:
        upper = token.isupper() or not token.islower()
        kws = _starts(KEYWORDS, token)
        out.extend(((k if upper else k.lower()), "keyword") for k in kws)
        out.extend((f"{ns}.", "namespace") for ns in _starts(sorted(cat), token))
    return out


def _sql_around_cursor(context: CompletionContext) -> tuple[str, str] | None:
    """(SQL before the cursor, all SQL) in a %%kalam cell or after %kalam; else None."""
    lines = context.full_text.split("\n")
    first = lines[0].lstrip()
    full_line = context.line_with_cursor
    line = full_line[: context.cursor_position]
    if first.startswith("%%kalam"):
        if context.cursor_line == 0:
            return None
        return "\n".join([*lines[1 : context.cursor_line], line]), "\n".join(lines[1:])
    idx = line.find("%kalam ")
    if idx >= 0:
        start = idx + len("%kalam ")
        rest, whole = line[start:], full_line[start:]
        if "<<" in rest:
            rest = rest.split("<<", 1)[1]
        return rest, whole
    return None


def make_matcher(get_snapshot: Callable[[], Snapshot | None]) -> Any:
    """An IPython v2 matcher that completes SQL names from ``get_snapshot()``."""

    @context_matcher(identifier="kalam_sql", priority=10)
    def kalam_sql_matcher(context: CompletionContext) -> SimpleMatcherResult:
        around = _sql_around_cursor(context)
        if around is None:
            return {"completions": [], "suppress": False}
        before, whole = around
        snapshot = get_snapshot() or {}
        token = re.search(r"[\w.]*$", before)
        frag = token.group(0) if token else ""
        items = sql_completions(before, frag, snapshot, whole)
        return {
            "completions": [SimpleCompletion(text, type=kind) for text, kind in items],
            "matched_fragment": frag,
            "suppress": bool(items),
            "ordered": True,
        }

    return kalam_sql_matcher
