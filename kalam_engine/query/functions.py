"""KalamDB's SQL functions for DataFusion: SNOWFLAKE_ID(), UUID_V7(), ULID(), CURRENT_USER(),
CURRENT_ROLE(). The id functions are built once; the identity functions read the request's
context and are built per request only when the statement names them."""

from __future__ import annotations

import pyarrow as pa
from datafusion import SessionContext, udf

from kalam_engine.context import ExecutionContext
from kalam_engine.ids import SnowflakeGenerator, ulid, uuid_v7


def _rows(args: list[pa.Array]) -> int:
    return len(args[0]) if args else 1


class IdFunctions:
    """The engine's id UDFs (shared, stateless apart from the engine's id generator)."""

    def __init__(self, seq: SnowflakeGenerator) -> None:
        def snowflake(*args: pa.Array) -> pa.Array:
            n = _rows(list(args))
            first = seq.next_range(n)
            return pa.array(range(first, first + n), pa.int64())

        self.by_name = {
            "snowflake_id": udf(snowflake, [], pa.int64(), "volatile", "snowflake_id"),
            "uuid_v7": udf(lambda *a: pa.array([uuid_v7() for _ in range(_rows(list(a)))]),
                           [], pa.string(), "volatile", "uuid_v7"),
            "ulid": udf(lambda *a: pa.array([ulid() for _ in range(_rows(list(a)))]),
                        [], pa.string(), "volatile", "ulid"),
        }

    def register_needed(self, session: SessionContext, lowered_sql: str,
                        ctx: ExecutionContext) -> None:
        for name, fn in self.by_name.items():
            if name in lowered_sql:
                session.register_udf(fn)
        if "current_user" in lowered_sql:
            user = ctx.user_id
            session.register_udf(udf(lambda *a: pa.array([user] * _rows(list(a))), [],
                                     pa.string(), "stable", "current_user"))
        if "current_role" in lowered_sql:
            role = ctx.role.label
            session.register_udf(udf(lambda *a: pa.array([role] * _rows(list(a))), [],
                                     pa.string(), "stable", "current_role"))
