"""KalamDB's SQL functions for DataFusion: SNOWFLAKE_ID(), UUID_V7(), ULID(), CURRENT_USER(),
CURRENT_ROLE(). They are registered once per (pooled) session; the identity functions hold no
identity, they ask the session for the context of the request it serves when they run."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
from datafusion import SessionContext, udf

from kalam_engine.model.context import ExecutionContext
from kalam_engine.model.ids import SnowflakeGenerator, ulid, uuid_v7


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

    def register(self, session: SessionContext,
                 current: Callable[[], ExecutionContext]) -> None:
        """Register every function on ``session``; ``current()`` is the running request's
        context."""
        for fn in self.by_name.values():
            session.register_udf(fn)
        session.register_udf(udf(
            lambda *a: pa.array([current().user_id] * _rows(list(a)), pa.string()), [],
            pa.string(), "stable", "current_user"))
        session.register_udf(udf(
            lambda *a: pa.array([current().role.label] * _rows(list(a)), pa.string()), [],
            pa.string(), "stable", "current_role"))
