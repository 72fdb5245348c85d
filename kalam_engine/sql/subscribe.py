"""The subscription SQL KalamDB accepts: ``SELECT cols FROM one_table [WHERE cond]``, and the
statement ``SUBSCRIBE TO [ns.]t [WHERE cond] [OPTIONS (...)]`` (or ``SUBSCRIBE TO SELECT ...``).

Part of the SQL front end (``kalam_engine.live`` imports it; nothing here imports ``live``).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import expressions as exp
from sqlglot.errors import SqlglotError
from sqlglot.tokens import TokenType

from kalam_engine.model.errors import InvalidParameterError, InvalidSqlError, UnsupportedError
from kalam_engine.sql.tokens import TokenCursor

OPTION_NAMES = {"last_rows": "last_rows", "batch_size": "batch_size", "from": "from_seq",
                "from_seq_id": "from_seq", "from_seq": "from_seq"}
_REJECTED = ((exp.With, "WITH"), (exp.Order, "ORDER BY"), (exp.Limit, "LIMIT"),
             (exp.Offset, "OFFSET"), (exp.Group, "GROUP BY"), (exp.Having, "HAVING"),
             (exp.Distinct, "DISTINCT"), (exp.Join, "JOIN"), (exp.Subquery, "a subquery"),
             (exp.Window, "a window function"), (exp.AggFunc, "an aggregate"))


@dataclass(frozen=True, slots=True)
class LiveQuery:
    """A subscription's query: the table, the selected columns (None: every column) and the
    WHERE condition's text (None: every row)."""

    namespace: str | None
    table: str
    columns: tuple[str, ...] | None
    where: str | None
    sql: str


@dataclass(frozen=True, slots=True)
class SubscribeStatement:
    """``SUBSCRIBE TO ...``: the query and its options."""

    query_sql: str
    options: tuple[tuple[str, int], ...]


def _hint() -> str:
    return "subscribe with SELECT cols FROM ns.table [WHERE ...] (one table, plain columns)"


def parse_live_query(sql: str) -> LiveQuery:
    """Check that ``sql`` is a query a subscription may run and take it apart."""
    try:
        trees = [t for t in sqlglot.parse(sql, read="postgres") if t is not None]
    except (SqlglotError, RecursionError) as exc:
        raise InvalidSqlError(f"Cannot parse the subscription query: {exc}",
                              hint=_hint()) from None
    if len(trees) != 1 or not isinstance(trees[0], exp.Select):
        raise UnsupportedError("A subscription runs exactly one SELECT statement", hint=_hint())
    tree = trees[0]
    for kind, what in _REJECTED:
        if tree.find(kind) is not None:
            raise UnsupportedError(f"Subscription queries cannot use {what}", hint=_hint())
    if any(node is not tree for node in tree.find_all(exp.Select)):
        raise UnsupportedError("Subscription queries cannot use a subquery", hint=_hint())
    source = tree.args.get("from") or tree.args.get("from_")
    table = source.this if source is not None else None
    if not isinstance(table, exp.Table) or tree.find(exp.Values) is not None:
        raise UnsupportedError("A subscription reads exactly one table", hint=_hint())
    if table.args.get("catalog") is not None:
        raise UnsupportedError("Use namespace.table in a subscription", hint=_hint())
    columns: list[str] | None = []
    for item in tree.expressions:
        if isinstance(item, exp.Star):
            columns = None
            break
        if not isinstance(item, exp.Column) or (item.table and item.table != table.alias_or_name):
            raise UnsupportedError(
                f"Subscription queries select plain columns, not {item.sql()!r}", hint=_hint())
        assert columns is not None
        columns.append(item.name.lower())
    if columns is not None and len(columns) != len(set(columns)):
        raise InvalidParameterError("A column is selected twice in the subscription",
                                    hint="select each column once")
    where = tree.args.get("where")
    return LiveQuery(table.db.lower() if table.db else None, table.name.lower(),
                     None if columns is None else tuple(columns),
                     where.this.sql(dialect="postgres") if where is not None else None, sql)


def parse_subscribe(cur: TokenCursor) -> SubscribeStatement:
    """``SUBSCRIBE TO ...`` (the cursor is at SUBSCRIBE)."""
    cur.expect("SUBSCRIBE", "TO")
    start = cur.pos
    end = cur.balanced_until({"OPTIONS"})
    body = cur.text_from(start, end)
    options: list[tuple[str, int]] = []
    if cur.accept("OPTIONS"):
        if cur.accept_type(TokenType.L_PAREN) is None:
            raise InvalidSqlError("Expected ( after OPTIONS",
                                  hint="OPTIONS (last_rows=N, batch_size=N, from=SEQ)")
        while cur.accept_type(TokenType.R_PAREN) is None:
            name = cur.word("an option name").lower()
            if cur.accept_type(TokenType.EQ) is None:
                raise InvalidSqlError(f"Expected = after option {name}",
                                      hint="OPTIONS (last_rows=N, batch_size=N, from=SEQ)")
            tok = cur.next()
            if name not in OPTION_NAMES:
                raise InvalidParameterError(
                    f"Unknown subscription option '{name}'",
                    hint="the options are last_rows, batch_size and from (from_seq_id)")
            try:
                value = int(tok.text)
            except ValueError:
                raise InvalidParameterError(
                    f"Option {name} takes a whole number, not {tok.text!r}") from None
            options.append((OPTION_NAMES[name], value))
            cur.accept_type(TokenType.COMMA)
    cur.expect_end()
    if not body:
        raise InvalidSqlError("SUBSCRIBE TO needs a table or a SELECT", hint=_hint())
    query_sql = body if cur.tokens[start].text.upper() == "SELECT" else _select_from(body)
    return SubscribeStatement(query_sql, tuple(options))


def _select_from(body: str) -> str:
    """``[ns.]t [WHERE cond]`` as ``SELECT * FROM [ns.]t [WHERE cond]``."""
    return f"SELECT * FROM {body}"
