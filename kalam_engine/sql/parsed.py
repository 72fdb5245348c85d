"""One statement as the engine reads it: its text, its tokens, its kind and its sqlglot tree.

A :class:`ParsedStatement` is made once per statement (by :func:`split_parsed` from a request's
one tokenization, or by :func:`as_parsed` from a statement's text) and handed to everything
that looks at the statement: the classifier (:func:`kalam_engine.sql.parser.parse_statement`),
the parameter count, the default ORDER BY, the point-lookup and vector fast paths, the table
prefetch, the JSON and vector rewrites and the magics' ``:name`` binding. The tokens come from
the one tokenizer (:mod:`kalam_engine.sql.tokens`); the sqlglot tree is parsed on first use
and kept. Equality and hashing go by the text (the tokens and the tree follow from it), so
caches keyed by a ParsedStatement are caches per statement text.
"""

from __future__ import annotations

import functools
from typing import Any

import sqlglot
from sqlglot import expressions as exp
from sqlglot.errors import SqlglotError
from sqlglot.tokens import Token

from kalam_engine.sql.tokens import check_length, split_pieces, tokenize

__all__ = ["ParsedStatement", "as_parsed", "split_parsed"]

_UNPARSED: Any = object()


class ParsedStatement:
    """One statement: ``text``, its ``tokens``, its ``kind`` (the first token's text in upper
    case, as DataFusion reads it: after comments; "" for none) and its sqlglot ``trees``
    (parsed once, on first use; shared: read them, never change them)."""

    __slots__ = ("_tokens", "_trees", "text")

    text: str

    def __init__(self, text: str, tokens: tuple[Token, ...] | None = None) -> None:
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "_tokens", tokens)
        object.__setattr__(self, "_trees", _UNPARSED)

    @property
    def tokens(self) -> tuple[Token, ...]:
        """The statement's tokens (read on first use when the statement was not split from a
        request); raises InvalidSqlError for text the tokenizer cannot read."""
        tokens = self._tokens
        if tokens is None:
            tokens = tuple(tokenize(self.text))
            object.__setattr__(self, "_tokens", tokens)
        return tokens

    @property
    def kind(self) -> str:
        tokens = self.tokens
        return tokens[0].text.upper() if tokens else ""

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"ParsedStatement is read-only (cannot set {name})")

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, ParsedStatement) and other.text == self.text)

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"ParsedStatement({self.text[:60]!r})"

    @property
    def trees(self) -> tuple[exp.Expression, ...]:
        """The statement as sqlglot trees; empty when sqlglot cannot read it (or recurses too
        deep on it: DataFusion then decides)."""
        trees = self._trees
        if trees is _UNPARSED:
            try:
                trees = tuple(t for t in sqlglot.parse(self.text) if t is not None)
            except (SqlglotError, RecursionError):
                trees = ()
            object.__setattr__(self, "_trees", trees)
        return trees

    @property
    def tree(self) -> exp.Expression | None:
        """The one sqlglot tree of the statement, or None (unreadable, or not one statement)."""
        trees = self.trees
        return trees[0] if len(trees) == 1 else None


def split_parsed(sql: str) -> tuple[ParsedStatement, ...]:
    """The statements of a request (split as :func:`kalam_engine.sql.tokens.split_statements`
    does, reading the text once), each made once per request text."""
    check_length(sql)
    return _split_parsed(sql)


@functools.lru_cache(maxsize=1024)
def _split_parsed(sql: str) -> tuple[ParsedStatement, ...]:
    return tuple(ParsedStatement(text, tokens) for text, tokens in split_pieces(sql))


def as_parsed(sql: str | ParsedStatement) -> ParsedStatement:
    """``sql`` as a ParsedStatement (the text taken whole, as one statement; its tokens and
    tree are read when first asked for)."""
    if isinstance(sql, ParsedStatement):
        return sql
    return _parsed(sql)


@functools.lru_cache(maxsize=1024)
def _parsed(sql: str) -> ParsedStatement:
    check_length(sql)
    return ParsedStatement(sql)
