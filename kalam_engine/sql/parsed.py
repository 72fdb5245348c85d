"""One statement as the engine reads it: its text, its tokens, its kind and its sqlglot tree.

A :class:`ParsedStatement` is made once per statement (by :func:`split_parsed` from a request's
one tokenization, or by :func:`as_parsed` from a statement's text) and handed to everything
that looks at the statement: the classifier (:func:`kalam_engine.sql.parser.parse_statement`),
the parameter count, the default ORDER BY, the point-lookup and vector fast paths, the table
prefetch, the JSON and vector rewrites and the magics' ``:name`` binding. The tokens come from
the one tokenizer (:mod:`kalam_engine.sql.tokens`); the sqlglot tree is parsed on first use
and kept, and so is what each :func:`per_statement` function found for the statement.

The statements read recently are kept by text (bounded by the texts' total length, since a
statement with its tokens and tree takes about 165 bytes per character), so a repeated
statement is the same object and is not read again. Equality and hashing go by the text.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import sqlglot
from sqlglot import expressions as exp
from sqlglot.errors import SqlglotError
from sqlglot.tokens import Token, TokenType

from kalam_engine.sql.tokens import (
    QUOTED_TOKENS,
    check_length,
    split_pieces,
    split_statements,
    tokenize,
)

__all__ = ["QUOTED_TOKENS", "ParsedStatement", "as_parsed", "per_statement", "split_parsed",
           "split_statements"]

T = TypeVar("T")
_UNPARSED: Any = object()


class ParsedStatement:
    """One statement: ``text``, its ``tokens``, its ``kind`` (the first token's text in upper
    case, as DataFusion reads it: after comments; "" for none) and its sqlglot ``trees``
    (parsed once, on first use; shared: read them, never change them)."""

    __slots__ = ("__weakref__", "_kind", "_memo", "_tokens", "_trees", "text")  # frozen

    text: str

    def __init__(self, text: str, tokens: tuple[Token, ...] | None = None) -> None:
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "_tokens", tokens)
        object.__setattr__(self, "_trees", _UNPARSED)
        object.__setattr__(self, "_kind", None)
        object.__setattr__(self, "_memo", {})  # what per_statement functions found for it

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
        kind = self._kind
        if kind is None:
            tokens = self.tokens
            kind = tokens[0].text.upper() if tokens else ""
            object.__setattr__(self, "_kind", kind)
        return kind

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
        """The statement as sqlglot trees (sqlglot's default dialect, as the fast paths have
        always read statements); empty when sqlglot cannot read it (or recurses too deep on
        it: DataFusion then decides)."""
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
    does), reading the text once; a statement seen recently is the same object again."""
    check_length(sql)
    recent = _SPLITS.get(sql)
    if recent is not None:
        return recent
    known = _STATEMENTS.get(sql)
    if known is not None and _whole_statement(known):
        pieces: tuple[ParsedStatement, ...] = (known,)
    else:
        pieces = tuple(_STATEMENTS.get_or_make(text, tokens)
                       for text, tokens in split_pieces(sql))
    _SPLITS.put(sql, pieces)
    return pieces


def _whole_statement(stmt: ParsedStatement) -> bool:
    """Whether splitting ``stmt.text`` gives back exactly ``stmt`` (known without reading)."""
    tokens = stmt._tokens  # read already, or None: then the split reads the text
    text = stmt.text
    return bool(tokens) and tokens[-1].end == len(text) - 1 and text == text.strip() and \
        all(tok.token_type is not TokenType.SEMICOLON for tok in tokens)


def as_parsed(sql: str | ParsedStatement) -> ParsedStatement:
    """``sql`` as a ParsedStatement (the text taken whole, as one statement; its tokens and
    tree are read when first asked for). A text seen recently gives the same object again."""
    if isinstance(sql, ParsedStatement):
        return sql
    check_length(sql)
    return _STATEMENTS.get_or_make(sql, None)


def per_statement(fn: Callable[[ParsedStatement], T]) -> Callable[[ParsedStatement], T]:
    """Remember what ``fn`` finds for a statement on the statement itself (so it lives and
    goes with the statement: a statement read recently is the same object again, see
    :func:`as_parsed`). Errors are not remembered."""

    @functools.wraps(fn)
    def remembered(stmt: ParsedStatement) -> T:
        memo = stmt._memo
        try:
            return memo[remembered]
        except KeyError:
            value = memo[remembered] = fn(stmt)
            return value

    return remembered


class _Recent(Generic[T]):
    """The most recently used values by text, bounded by count and by the texts' total length
    (a text longer than an eighth of that is not kept); thread-safe."""

    def __init__(self, max_entries: int, max_chars: int) -> None:
        self._max_entries = max_entries
        self._max_chars = max_chars
        self._chars = 0
        self._by_text: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, text: str) -> T | None:
        hit = self._by_text.get(text)  # no lock: each OrderedDict call is atomic
        if hit is not None:
            with contextlib.suppress(KeyError):  # dropped by another thread meanwhile
                self._by_text.move_to_end(text)
        return hit

    def put(self, text: str, value: T) -> None:
        if len(text) > self._max_chars // 8:
            return
        with self._lock:
            if text not in self._by_text:
                self._chars += len(text)
            self._by_text[text] = value
            while len(self._by_text) > self._max_entries or self._chars > self._max_chars:
                old, _ = self._by_text.popitem(last=False)
                self._chars -= len(old)


class _Statements(_Recent[ParsedStatement]):
    """The statements read recently, so that each is read once while it is in use."""

    def get_or_make(self, text: str, tokens: tuple[Token, ...] | None) -> ParsedStatement:
        hit = self.get(text)
        if hit is None:
            hit = ParsedStatement(text, tokens)
            self.put(text, hit)
        elif tokens is not None and hit._tokens is None:
            object.__setattr__(hit, "_tokens", tokens)
        return hit


# Statements keep their tokens and tree (about 165 bytes per character of text when both are
# read), so the statements kept are bounded by their text's length: 256 Ki characters here,
# and as many in the requests' splits (mostly the same statements).
_STATEMENTS = _Statements(max_entries=4096, max_chars=1 << 18)
_SPLITS: _Recent[tuple[ParsedStatement, ...]] = _Recent(max_entries=1024, max_chars=1 << 18)
