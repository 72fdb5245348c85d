"""A request's ``params``: checked once, before any statement runs.

``params`` is a list (or tuple) of values bound to ``$1``, ``$2``, ... in order. The statements
must use exactly as many as are given: the highest ``$n`` found by sqlglot's tokenizer (string
literals, quoted names and comments are not placeholders) is the count they need. Each value
must be one DataFusion can bind: it is converted the way DataFusion converts it
(``pyarrow.scalar``), so a value that would fail there (an int beyond 64 bits, a str with a lone
surrogate, a list mixing lists and scalars, an arbitrary object) is refused here with the
parameter's number. A datetime with a time zone is bound as the same instant in UTC (DataFusion
knows fewer zone names than Python: ``right/Europe/Vienna`` made it panic). The SQL text itself
must be valid Unicode (UTF-8 encodable).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from sqlglot.tokens import TokenType

from kalam_engine.model.errors import InvalidParameterError, InvalidSqlError
from kalam_engine.sql.parsed import ParsedStatement, as_parsed, per_statement


def placeholders_used(sql: str | ParsedStatement) -> int:
    """The highest ``$n`` of ``sql`` (0 when it has none): the tokenizer reads ``$n`` as a
    PARAMETER token followed by its number (``$$..$$`` strings and quoted text are tokens of
    their own, so a ``$`` inside them never counts)."""
    text = sql.text if isinstance(sql, ParsedStatement) else sql
    if "$" not in text:
        return 0
    return _highest_placeholder(as_parsed(sql))


@per_statement
def _highest_placeholder(stmt: ParsedStatement) -> int:
    highest = 0
    for tok, following in itertools.pairwise(stmt.tokens):
        if (tok.token_type is TokenType.PARAMETER and following.token_type is TokenType.NUMBER
                and following.start == tok.end + 1 and following.text.isdigit()):
            highest = max(highest, int(following.text))
    return highest


def check_text(sql: str) -> None:
    """Refuse SQL text that is not valid Unicode (a lone surrogate such as ``'\\ud800'``)."""
    try:
        sql.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidSqlError(
            f"The SQL text holds a character that is not valid Unicode at position "
            f"{exc.start}: {sql[exc.start]!r}",
            hint="remove it, or decode the text with errors='replace' first") from None


def _normalise(value: Any) -> Any:
    """``value`` with every time-zone-aware datetime (also in lists and dicts) moved to UTC."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is None else value.astimezone(dt.UTC)
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    return value


def _checked(index: int, value: Any) -> Any:
    """``value`` normalised, once pyarrow (as DataFusion) has accepted it."""
    try:
        value = _normalise(value)
        pa.scalar(value)
        return value
    except (pa.ArrowException, OverflowError, TypeError, ValueError) as exc:
        detail = str(exc).split("\n")[0]
        if isinstance(exc, UnicodeEncodeError):
            detail = "it holds a character that is not valid Unicode (a lone surrogate)"
        elif isinstance(exc, OverflowError) and isinstance(value, int):
            detail = "the integer does not fit in 64 bits"
        raise InvalidParameterError(
            f"Parameter ${index} ({type(value).__name__}) cannot be bound: {detail}",
            hint="use None, bool, int (64-bit), float, str, bytes, Decimal, date/time values "
                 "or lists of one type") from None


def bind_params(statements: Sequence[str | ParsedStatement], params: Any) -> list[Any] | None:
    """``params`` as a list, after checking them against ``statements`` (and the texts)."""
    for sql in statements:
        check_text(sql.text if isinstance(sql, ParsedStatement) else sql)
    if params is not None and (isinstance(params, (str, bytes, bytearray, dict))
                               or not isinstance(params, (list, tuple))):
        raise InvalidParameterError(
            f"params must be a list or tuple of values, not {type(params).__name__}",
            hint="e.g. params=[42, 'text'] for $1 and $2")
    given = [_checked(i, value) for i, value in enumerate(params or (), start=1)]
    used = max((placeholders_used(sql) for sql in statements), default=0)
    if len(given) != used:
        span = "$1" if used == 1 else f"$1..${used}"
        uses = f"uses {used} parameter(s) ({span})" if used else "uses no parameters"
        raise InvalidParameterError(
            f"The statement {uses} but {len(given)} value(s) were given",
            hint="pass exactly one value per $n in params=[...]")
    return given if params is not None else None
