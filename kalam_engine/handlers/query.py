"""SELECT and the other statements DataFusion runs itself (EXPLAIN, SHOW COLUMNS, ...); BEGIN and
COMMIT, refused."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kalam_engine.auth.permissions import require_admin
from kalam_engine.handlers import Params, handles
from kalam_engine.model.context import ExecutionContext
from kalam_engine.model.errors import UnsupportedError
from kalam_engine.query.point_lookup import point_lookup_shape, run_point_lookup
from kalam_engine.result import Result
from kalam_engine.sql import statements as st

if TYPE_CHECKING:
    from kalam_engine.services import Services

_META_WORDS = ("EXPLAIN", "SHOW", "DESCRIBE", "DESC")


@handles(st.QueryStatement)
def query(services: Services, stmt: st.QueryStatement, ctx: ExecutionContext,
          params: Params) -> Result:
    first = stmt.verb
    if first in _META_WORDS:
        require_admin(ctx, first)
    if first == "SELECT" and services.fast_paths:
        shape = point_lookup_shape(stmt.parsed)
        if shape is not None:
            rows = run_point_lookup(services.runner.resolver, shape, ctx, params)
            if rows is not None:
                return Result("query", table=rows, row_count=rows.num_rows)
    table = services.runner.run(ctx, stmt.parsed, params, default_order=first == "SELECT")
    return Result("query", table=table, row_count=table.num_rows)


@handles(st.TransactionStatement)
def transaction(services: Services, stmt: st.TransactionStatement, ctx: ExecutionContext,
                params: Params) -> Result:
    """BEGIN / COMMIT / ROLLBACK: refused, every statement commits on its own."""
    raise UnsupportedError(
        f"{stmt.verb} is not supported: every statement commits on its own",
        hint="each statement is atomic; group rows into one INSERT for atomicity")
