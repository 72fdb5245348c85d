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
import threading
from collections import OrderedDict
from typing import Any

import sqlglot
from sqlglot import expressions as exp
from sqlglot.errors import SqlglotError
from sqlglot.tokens import Token, TokenType

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
    does, reading the text once), each made once per statement text."""
    check_length(sql)
    return _split_parsed(sql)


@functools.lru_cache(maxsize=1024)
def _split_parsed(sql: str) -> tuple[ParsedStatement, ...]:
    known = _STATEMENTS.get(sql)
    if known is not None and _whole_statement(known):
        return (known,)  # already read as one statement (e.g. by the magics' binding)
    return tuple(_STATEMENTS.get_or_make(text, tokens) for text, tokens in split_pieces(sql))


def _whole_statement(stmt: ParsedStatement) -> bool:
    """Whether splitting ``stmt.text`` gives back exactly ``stmt`` (known without reading)."""
    tokens = stmt._tokens  # read already, or None: then the split reads the text
    text = stmt.text
    return bool(tokens) and tokens[-1].end == len(text) - 1 and text == text.strip() and \
        all(tok.token_type is not TokenType.SEMICOLON for tok in tokens)


def as_parsed(sql: str | ParsedStatement) -> ParsedStatement:
    """``sql`` as a ParsedStatement (the text taken whole, as one statement; its tokens and
    tree are read when first asked for). The same text gives the same object while it is
    among the most recently used statements."""
    if isinstance(sql, ParsedStatement):
        return sql
    check_length(sql)
    return _STATEMENTS.get_or_make(sql, None)


class _Statements:
    """The most recently used statements by text (so each is read once), thread-safe."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._by_text: OrderedDict[str, ParsedStatement] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, text: str) -> ParsedStatement | None:
        with self._lock:
            return self._by_text.get(text)

    def get_or_make(self, text: str, tokens: tuple[Token, ...] | None) -> ParsedStatement:
        with self._lock:
            hit = self._by_text.get(text)
            if hit is not None:
                self._by_text.move_to_end(text)
                if tokens is not None and hit._tokens is None:
                    object.__setattr__(hit, "_tokens", tokens)
                return hit
            made = self._by_text[text] = ParsedStatement(text, tokens)
            if len(self._by_text) > self._capacity:
                self._by_text.popitem(last=False)
            return made


_STATEMENTS = _Statements(2048)
