"""Bounds on the shape of a statement, checked before any parser sees its text.

sqlglot (our fast paths) parses by recursion: about 40 nested brackets exhaust Python's
recursion limit. DataFusion's parser stops at 50 levels, but its planner and executor recurse
over binary operator chains: ``1+1+...`` with about 9,000 terms overflows the main thread's stack
(about 2,500 on a Tokio worker's 2 MiB stack) and kills the process, and planning time grows with
the square of the chain (1,000 terms about 1 s, 4,000 about 14 s), during which nothing can
interrupt it; 5,000 ``UNION ALL`` branches crash it too. So each statement is measured first,
with a scanner of its own that never recurses, and rejected with a clear error when it is over
a limit:

- ``max_depth``: brackets ``( [ {`` and ``CASE ... END`` open at once (32; real queries use
  fewer than 10; sqlglot fails at about 40, DataFusion at 50);
- ``max_terms``: binary operators in one expression, its bracketed parts included, or set
  operations (UNION, ...) chained at one level (1,000: planning about 1 s, well below the
  2,500 that crash an executor thread);
- ``max_operators``: binary operators in the whole statement (5,000: planning under about 6 s);
- ``max_tokens``: tokens in the statement (250,000: a 1 MiB multi-row INSERT has about that).

Where SQL dialects disagree on where a string or comment ends (backslash escapes, nested block
comments), the text is measured under each reading and the largest figures count, so a
statement cannot hide brackets or operators from the check.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from kalam_engine.model.errors import InvalidSqlError

__all__ = ["DEFAULT_LIMITS", "ShapeLimits", "StatementShape", "check_statement_shape",
           "measure"]


@dataclass(frozen=True)
class ShapeLimits:
    """The largest statement shape the engine accepts."""

    max_depth: int = 32
    max_terms: int = 1_000
    max_operators: int = 5_000
    max_tokens: int = 250_000


DEFAULT_LIMITS = ShapeLimits()


@dataclass(frozen=True)
class StatementShape:
    """A statement's measured size: the figures :class:`ShapeLimits` bounds."""

    depth: int = 0
    terms: int = 0
    operators: int = 0
    tokens: int = 0

    def widest(self, other: StatementShape) -> StatementShape:
        return StatementShape(max(self.depth, other.depth), max(self.terms, other.terms),
                              max(self.operators, other.operators),
                              max(self.tokens, other.tokens))


_SIMPLE = re.compile(
    r"\s+"
    r"|[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*"   # word
    r"|\$\d+|\?\d*"                                          # parameter
    r"|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?"  # number
    r"|::|<>|<=|>=|!=|\|\||->>|->|=>|<<|>>|@>|<@|!~\*|!~|~\*"  # two- or three-char operator
    r"|.", re.DOTALL)
_OPEN, _CLOSE = "([{", ")]}"
_WORD_OPERATORS = frozenset({"AND", "OR", "NOT", "IS", "LIKE", "ILIKE", "IN", "BETWEEN", "XOR",
                             "DIV", "COLLATE", "SIMILAR", "REGEXP", "RLIKE", "OVERLAPS", "AT"})
# Words that end one expression and start another at the same bracket level.
_SET_OPERATIONS = frozenset({"UNION", "INTERSECT", "EXCEPT", "MINUS"})
_CLAUSE_WORDS = _SET_OPERATIONS | frozenset({
    "SELECT", "FROM", "WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "OFFSET", "JOIN", "ON", "USING",
    "WINDOW", "QUALIFY", "VALUES", "SET", "RETURNING", "WHEN", "THEN", "ELSE", "BY",
    "PARTITION", "AS", "INTO", "WITH"})


class _Frame:
    """One open bracket (or CASE): operators of the expression being read, and of the finished
    expressions before it."""

    __slots__ = ("case", "done", "segment", "set_operations")

    def __init__(self, case: bool = False) -> None:
        self.case = case
        self.segment = 0  # binary operators of the current expression, nested parts included
        self.done = 0     # of the finished expressions in this bracket
        self.set_operations = 0  # UNION / INTERSECT / EXCEPT chained at this level


def _skip_string(sql: str, pos: int, quote: str, backslash: bool) -> int:
    """The offset after the string or quoted name starting at ``pos`` (text end if open)."""
    i = pos + 1
    n = len(sql)
    while i < n:
        ch = sql[i]
        if backslash and ch == "\\":
            i += 2
            continue
        if ch == quote:
            if i + 1 < n and sql[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return n


def _skip_block_comment(sql: str, pos: int, nested: bool) -> int:
    if not nested:
        end = sql.find("*/", pos + 2)
        return len(sql) if end < 0 else end + 2
    depth, i = 0, pos
    while i < len(sql):
        if sql.startswith("/*", i):
            depth += 1
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return len(sql)


class _Measure:
    """The running measurement of one reading of a statement, token by token."""

    __slots__ = ("depth", "operand_before", "operators", "stack", "terms", "tokens")

    def __init__(self) -> None:
        self.stack = [_Frame()]
        self.depth = self.terms = self.operators = self.tokens = 0
        self.operand_before = False  # whether the previous token ends an operand

    def quoted(self) -> None:
        """A string or quoted name: one operand."""
        self.tokens += 1
        self.operand_before = True

    def token(self, text: str) -> None:
        """One unquoted token (a word, number, parameter, operator or punctuation)."""
        self.tokens += 1
        top = self.stack[-1]
        upper = text.upper() if text[0].isalpha() or text[0] == "_" else text
        if text in _OPEN or upper == "CASE":
            self.stack.append(_Frame(case=upper == "CASE"))
            self.depth = max(self.depth, len(self.stack) - 1)
            self.operand_before = False
        elif (text in _CLOSE and len(self.stack) > 1 and not top.case) or \
                (upper == "END" and top.case):
            self.stack.pop()
            self.stack[-1].segment += top.done + top.segment
            self.terms = max(self.terms, self.stack[-1].segment)
            self.operand_before = True
        elif text == ".":
            self.operand_before = False  # t.* is a name, not a product
        elif text == "," or text == ";" or upper in _CLAUSE_WORDS:
            self._end_expression(top, upper)
        elif upper in _WORD_OPERATORS or (not text[0].isalnum() and text[0] not in "_$?"
                                          and text not in _CLOSE):
            if self.operand_before:  # binary; a prefix operator (-1, NOT x) adds nothing
                top.segment += 1
                self.operators += 1
                self.terms = max(self.terms, top.segment)
            self.operand_before = False
        else:
            self.operand_before = True

    def _end_expression(self, top: _Frame, upper: str) -> None:
        top.done += top.segment
        top.segment = 0
        self.operand_before = False
        if upper in _SET_OPERATIONS:  # a chain of them nests like a chain of operators
            top.set_operations += 1
            self.operators += 1
            self.terms = max(self.terms, top.set_operations)

    def over(self, limits: ShapeLimits) -> bool:
        return (self.depth > limits.max_depth or self.terms > limits.max_terms
                or self.operators > limits.max_operators or self.tokens > limits.max_tokens)

    def shape(self) -> StatementShape:
        return StatementShape(self.depth, self.terms, self.operators, self.tokens)


def _measure_one(sql: str, backslash: bool, nested: bool, limits: ShapeLimits
                 ) -> StatementShape:
    measure = _Measure()
    pos, n = 0, len(sql)
    while pos < n:
        ch = sql[pos]
        if ch == "'" or ch == '"' or ch == "`":
            pos = _skip_string(sql, pos, ch, backslash and ch == "'")
            measure.quoted()
            continue
        if ch == "-" and sql.startswith("--", pos):
            end = sql.find("\n", pos)
            pos = n if end < 0 else end + 1
            continue
        if ch == "/" and sql.startswith("/*", pos):
            pos = _skip_block_comment(sql, pos, nested)
            continue
        match = _SIMPLE.match(sql, pos)
        assert match is not None  # the pattern ends with "." (any character)
        pos = match.end()
        if match.group(0)[0].isspace():
            continue
        measure.token(match.group(0))
        if measure.over(limits):
            break  # over a limit already: the rest cannot make it acceptable
    return measure.shape()


@functools.lru_cache(maxsize=1024)
def measure(sql: str, limits: ShapeLimits = DEFAULT_LIMITS) -> StatementShape:
    """The shape of ``sql``: the largest figures over every reading of its strings and
    comments (measuring stops early once a figure is over ``limits``)."""
    shape = StatementShape()
    for backslash in (False, True) if "\\" in sql else (False,):
        for nested in (False, True) if "/*" in sql else (False,):
            shape = shape.widest(_measure_one(sql, backslash, nested, limits))
    return shape


def check_statement_shape(sql: str, limits: ShapeLimits = DEFAULT_LIMITS) -> None:
    """Raise InvalidSqlError when the statement ``sql`` is over one of ``limits``."""
    shape = measure(sql, limits)
    if shape.depth > limits.max_depth:
        raise InvalidSqlError(
            f"The statement nests brackets or CASE more than {limits.max_depth} levels deep",
            hint="flatten the expression, e.g. move inner parts into a WITH clause")
    if shape.terms > limits.max_terms:
        raise InvalidSqlError(
            f"An expression has more than {limits.max_terms} operators",
            hint="use IN (...) instead of long OR chains, or split the work into several "
                 "statements")
    if shape.operators > limits.max_operators:
        raise InvalidSqlError(
            f"The statement has more than {limits.max_operators} operators",
            hint="split it into several statements")
    if shape.tokens > limits.max_tokens:
        raise InvalidSqlError(
            f"The statement has more than {limits.max_tokens} tokens",
            hint="split it into smaller statements or load bulk data with insert_arrow")
