"""SELECT and the other statements DataFusion runs itself (EXPLAIN, SHOW COLUMNS, ...)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kalam_engine.auth.permissions import require_admin
from kalam_engine.model.context import ExecutionContext
from kalam_engine.query.point_lookup import point_lookup_shape, run_point_lookup
from kalam_engine.result import Result
from kalam_engine.sql import statements as st

if TYPE_CHECKING:
    from kalam_engine.engine import Engine

_META_WORDS = ("EXPLAIN", "SHOW", "DESCRIBE", "DESC")


def query(engine: Engine, stmt: st.QueryStatement, ctx: ExecutionContext,
          params: list[Any] | None) -> Result:
    first = stmt.verb
    if first in _META_WORDS:
        require_admin(ctx, first)
    if first == "SELECT" and engine.fast_paths:
        shape = point_lookup_shape(stmt.parsed)
        if shape is not None:
            rows = run_point_lookup(engine.runner.resolver, shape, ctx, params)
            if rows is not None:
                return Result("query", table=rows, row_count=rows.num_rows)
    table = engine.runner.run(ctx, stmt.parsed, params, default_order=first == "SELECT")
    return Result("query", table=table, row_count=table.num_rows)
