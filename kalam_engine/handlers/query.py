"""SELECT and the other statements DataFusion runs itself (EXPLAIN, SHOW COLUMNS, ...)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlglot.tokens import TokenType

from kalam_engine.auth.permissions import require_admin
from kalam_engine.context import ExecutionContext
from kalam_engine.errors import UnsupportedError
from kalam_engine.query.point_lookup import point_lookup_shape, run_point_lookup
from kalam_engine.result import Result
from kalam_engine.sql import statements as st
from kalam_engine.sql.tokens import tokenize

if TYPE_CHECKING:
    from kalam_engine.engine import Engine

_META_WORDS = ("EXPLAIN", "SHOW", "DESCRIBE", "DESC")
_EXPLAIN_OPTIONS = {"ANALYZE", "VERBOSE"}
_QUERY_START = {"SELECT", "WITH", "VALUES", "(", "TABLE"}


def _check_read_only(sql: str) -> None:
    """DataFusion also runs COPY ... TO, SELECT ... INTO and DDL (e.g. under EXPLAIN ANALYZE);
    those would write outside the data directory or bypass the providers, so only queries pass."""
    if "into" not in sql.lower() and "explain" not in sql.lower():
        return
    tokens = tokenize(sql)
    i = 0
    if tokens and tokens[0].text.upper() == "EXPLAIN":
        i = 1
        while i < len(tokens):
            word = tokens[i].text.upper()
            if word in _EXPLAIN_OPTIONS:
                i += 1
            elif word == "FORMAT":
                i += 2
            else:
                break
        if i >= len(tokens) or tokens[i].text.upper() not in _QUERY_START:
            shown = tokens[i].text if i < len(tokens) else "nothing"
            raise UnsupportedError(f"EXPLAIN of {shown!r} is not supported",
                                   hint="EXPLAIN [ANALYZE] works on SELECT / WITH queries")
    if any(t.token_type is TokenType.INTO for t in tokens):
        raise UnsupportedError("SELECT ... INTO is not supported",
                               hint="CREATE TABLE first, then INSERT INTO t SELECT ...")


def query(engine: Engine, stmt: st.QueryStatement, ctx: ExecutionContext,
          params: list[Any] | None) -> Result:
    first = stmt.verb
    if first in _META_WORDS:
        require_admin(ctx, first)
    if first == "SELECT" and engine.fast_paths:
        shape = point_lookup_shape(stmt.sql)
        if shape is not None:
            rows = run_point_lookup(engine.runner.resolver, shape, ctx, params)
            if rows is not None:
                return Result("query", table=rows, row_count=rows.num_rows)
    _check_read_only(stmt.sql)
    table = engine.runner.run(ctx, stmt.sql, params, default_order=first == "SELECT")
    return Result("query", table=table, row_count=table.num_rows)
