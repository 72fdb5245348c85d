"""SQL text handling for the magics: split a cell into statements, bind ``:name`` parameters.

One scanner walks the text once and knows where string literals, quoted identifiers, comments
and ``::`` casts are, so that neither a ``;`` nor a ``:name`` inside them is touched. Values are
never spliced into the SQL: ``:name`` becomes ``$k`` and the value goes to the engine as
parameter ``k``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BoundStatement", "UnboundVariableError", "bind_parameters", "split_statements"]


class UnboundVariableError(NameError):
    """A ``:name`` in the SQL names no notebook variable."""


@dataclass
class BoundStatement:
    """One statement with its ``:name`` references rewritten to ``$1..$n``."""

    sql: str
    params: list[Any] = field(default_factory=list)
    names: list[str] = field(default_factory=list)


def _is_ident_start(ch: str) -> bool:
    return ch.isalpha() or ch == "_"


def _is_ident_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _quoted_end(text: str, start: int, quote: str) -> int:
    """Index just past the quoted run that opens at ``start`` (doubled quote = escaped)."""
    i = start + 1
    n = len(text)
    while i < n:
        if text[i] == quote:
            if i + 1 < n and text[i + 1] == quote:
                i += 2
                continue
            return i + 1
        if text[i] == "\\" and quote == "'" and start > 0 and text[start - 1] in "eE":
            i += 2  # E'...' strings allow backslash escapes
            continue
        i += 1
    return n


def _dollar_quote_end(text: str, start: int) -> int | None:
    """If a ``$tag$ ... $tag$`` string opens at ``start``, the index past it; else None."""
    j = start + 1
    while j < len(text) and _is_ident_char(text[j]) and not text[j].isdigit():
        j += 1
    if j >= len(text) or text[j] != "$":
        return None
    tag = text[start : j + 1]
    end = text.find(tag, j + 1)
    return len(text) if end < 0 else end + len(tag)


def _scan(text: str, on_colon: Callable[[int], int | None] | None = None) -> list[tuple[int, int]]:
    """Walk ``text``; return statement spans split on top-level ``;``.

    ``on_colon(i)`` is called for each ``:`` that may start a parameter (outside literals,
    comments and ``::``); it returns the index past the parameter it consumed, or None.
    """
    spans: list[tuple[int, int]] = []
    n = len(text)
    i = 0
    start = 0
    depth = 0
    while i < n:
        ch = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if ch in "'\"`":
            i = _quoted_end(text, i, ch)
        elif ch == "-" and nxt == "-":
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif ch == "/" and nxt == "*":
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch == "$" and (nxt == "$" or _is_ident_start(nxt)):
            end = _dollar_quote_end(text, i)
            i = end if end is not None else i + 1
        elif ch == ":" and nxt == ":":
            i += 2  # a cast: x::INT
        elif ch == ":" and on_colon is not None and (i == 0 or text[i - 1] != ":"):
            consumed = on_colon(i)
            i = consumed if consumed is not None else i + 1
        elif ch == "(":
            depth += 1
            i += 1
        elif ch == ")":
            depth = max(0, depth - 1)
            i += 1
        elif ch == ";" and depth == 0:
            spans.append((start, i))
            start = i + 1
            i += 1
        else:
            i += 1
    spans.append((start, n))
    return spans


def _only_comments(text: str) -> bool:
    """True when ``text`` holds nothing but whitespace and comments."""
    stripped: list[str] = []
    for line in text.splitlines():
        code = line.split("--", 1)[0]
        stripped.append(code)
    rest = "\n".join(stripped)
    while "/*" in rest:
        a = rest.index("/*")
        b = rest.find("*/", a + 2)
        rest = rest[:a] + ("" if b < 0 else rest[b + 2 :])
    return not rest.strip()


def split_statements(text: str) -> list[str]:
    """Split SQL text into statements on top-level semicolons; empty pieces are dropped."""
    pieces = [text[a:b].strip() for a, b in _scan(text)]
    return [p for p in pieces if p and not _only_comments(p)]


def bind_parameters(sql: str, namespace: Mapping[str, Any]) -> BoundStatement:
    """Rewrite ``:name`` to ``$k`` and collect the values from ``namespace``.

    The same name used twice binds once. ``:name`` inside string literals, quoted identifiers,
    comments and ``::`` casts is left alone. An unknown name raises UnboundVariableError.
    """
    out: list[str] = []
    params: list[Any] = []
    names: list[str] = []
    last = 0

    def on_colon(i: int) -> int | None:
        nonlocal last
        j = i + 1
        if j >= len(sql) or not _is_ident_start(sql[j]):
            return None
        if i > 0 and _is_ident_char(sql[i - 1]):
            return None  # a:b is not a parameter (e.g. a time literal outside quotes)
        while j < len(sql) and _is_ident_char(sql[j]):
            j += 1
        name = sql[i + 1 : j]
        if name not in namespace:
            raise UnboundVariableError(
                f"no notebook variable named {name!r} for :{name} "
                "(define it in Python first, or quote the text)"
            )
        if name in names:
            k = names.index(name) + 1
        else:
            names.append(name)
            params.append(to_param(namespace[name]))
            k = len(names)
        out.append(sql[last:i])
        out.append(f"${k}")
        last = j
        return j

    _scan(sql, on_colon)
    out.append(sql[last:])
    return BoundStatement("".join(out), params, names)


def to_param(value: Any) -> Any:
    """Turn numpy / pandas scalars into plain Python values the engine understands."""
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy":
        try:
            return item()
        except (ValueError, TypeError):
            return value
    to_py = getattr(value, "to_pydatetime", None)
    if callable(to_py):
        return to_py()
    return value
