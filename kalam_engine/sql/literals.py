"""Statements as sqlglot reads them, for the fast paths: names, plain literals and ``$n``
parameters read as DataFusion reads them (the trees come from
:class:`~kalam_engine.sql.parsed.ParsedStatement`, parsed once per statement).

The fast paths (point lookups, literal INSERT values, table prefetch) only take statements whose
parts are this simple; anything else is left to DataFusion.
"""

from __future__ import annotations

import re
from typing import Any

from sqlglot import expressions as exp

from kalam_engine.sql.parsed import as_parsed

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_PARAM = re.compile(r"^\$([1-9]\d*)$")
_INTEGER = re.compile(r"^\d+$")
_DECIMAL = re.compile(r"^(\d+\.\d*|\.\d+)$")


def syntax_trees(sql: str) -> tuple[exp.Expression, ...]:
    """The statements of ``sql`` as sqlglot trees (shared: read them, never change them);
    empty when sqlglot cannot read the text (or recurses too deep on it). For a text that is
    not a statement of its own (an INSERT's VALUES list); a statement's tree is its
    :attr:`ParsedStatement.trees <kalam_engine.sql.parsed.ParsedStatement.trees>`."""
    return as_parsed(sql).trees


class NotALiteral(ValueError):
    """The expression is not a plain literal or parameter."""


class Param:
    """A ``$n`` parameter; ``index`` is 0-based."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


def plain_name(identifier: exp.Expression | None) -> str | None:
    """An identifier's name as DataFusion resolves it (unquoted names fold to lower case), or
    None when it is not an identifier or is a quoted mixed-case name (no Kalam name is)."""
    if not isinstance(identifier, exp.Identifier):
        return None
    name = identifier.this
    if identifier.quoted and name != name.lower():
        return None
    return name.lower()


def table_name(table: exp.Table, catalog: str | None = None) -> tuple[str | None, str] | None:
    """``(namespace or None, name)`` of a table reference whose parts are plain names (see
    :func:`plain_name`), or None; a catalog part must be ``catalog``."""
    name = plain_name(table.this)
    part = table.args.get("catalog")
    if name is None or (part is not None and (catalog is None or plain_name(part) != catalog)):
        return None
    db = table.args.get("db")
    namespace = plain_name(db) if db is not None else None
    if db is not None and namespace is None:
        return None
    return namespace, name


def param_index(node: exp.Expression) -> int | None:
    """The 0-based index of a ``$n`` parameter (sqlglot reads it as a column), else None."""
    if isinstance(node, exp.Column) and not node.table:
        found = _PARAM.match(node.name)
        if found:
            return int(found.group(1)) - 1
    return None


def literal_value(node: exp.Expression) -> Any:
    """A literal's Python value (int within int64, float, str, bool, None) or a ``Param``;
    raise NotALiteral for anything else, including strings with backslashes, whose reading
    is left to DataFusion."""
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    index = param_index(node)
    if index is not None:
        return Param(index)
    negative = isinstance(node, exp.Neg)
    if negative:
        node = node.this
    if isinstance(node, exp.Literal):
        text = node.this
        if node.is_string:
            if negative or "\\" in text:
                raise NotALiteral(text)
            return text
        if _INTEGER.match(text):
            number = -int(text) if negative else int(text)
            if not INT64_MIN <= number <= INT64_MAX:
                raise NotALiteral(text)
            return number
        if _DECIMAL.match(text):
            return -float(text) if negative else float(text)
    raise NotALiteral(type(node).__name__)
