"""SQL text handling for the magics: split a cell into statements, bind ``:name`` parameters.

Both read the text through the engine's one tokenizer (:mod:`kalam_engine.sql.tokens`; the
binding reads a statement's :class:`~kalam_engine.sql.parsed.ParsedStatement`, which the engine
then reuses), so a cell splits exactly where the engine splits a request, and neither a ``;``
nor a ``:name`` inside a string, a quoted identifier, a comment or a ``::`` cast is touched.
Values are never spliced into the SQL: ``:name`` becomes ``$k`` and the value goes to the
engine as parameter ``k``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlglot.tokens import Token, TokenType

from kalam_engine.model.errors import KalamError
from kalam_engine.sql.parsed import QUOTED_TOKENS, ParsedStatement, as_parsed, split_statements

__all__ = ["BoundStatement", "UnboundVariableError", "bind_parameters", "split_statements"]


class UnboundVariableError(NameError):
    """A ``:name`` in the SQL names no notebook variable."""


@dataclass
class BoundStatement:
    """One statement with its ``:name`` references rewritten to ``$1..$n``."""

    sql: str
    params: list[Any] = field(default_factory=list)
    names: list[str] = field(default_factory=list)


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _is_word(tok: Token) -> bool:
    """An unquoted name or keyword (``:limit`` binds a variable named ``limit`` too)."""
    return tok.token_type not in QUOTED_TOKENS and _WORD.fullmatch(tok.text) is not None


def bind_parameters(sql: str | ParsedStatement, namespace: Mapping[str, Any]) -> BoundStatement:
    """Rewrite ``:name`` to ``$k`` and collect the values from ``namespace``.

    ``:name`` is a ``:`` token directly followed by a name token, with no name directly before
    it (``a:b`` is not a parameter). The same name used twice binds once. Text the tokenizer
    cannot read is left as it is, for the engine to report. An unknown name raises
    UnboundVariableError.
    """
    text = sql.text if isinstance(sql, ParsedStatement) else sql
    if ":" not in text:
        return BoundStatement(text)
    try:
        tokens = as_parsed(sql).tokens  # the engine reuses them when nothing is bound
    except KalamError:
        return BoundStatement(text)
    out: list[str] = []
    params: list[Any] = []
    names: list[str] = []
    last = 0
    for i, tok in enumerate(tokens[:-1]):
        following = tokens[i + 1]
        if (tok.token_type is not TokenType.COLON or following.start != tok.end + 1
                or not _is_word(following)
                or (i > 0 and tokens[i - 1].end + 1 == tok.start and _is_word(tokens[i - 1]))):
            continue
        name = text[following.start:following.end + 1]
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
        out.append(text[last:tok.start])
        out.append(f"${k}")
        last = following.end + 1
    out.append(text[last:])
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
