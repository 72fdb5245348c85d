"""STREAM tables: short-lived per-user events; rows older than TTL_SECONDS are invisible."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from kalam_engine.model.context import ExecutionContext
from kalam_engine.model.definitions import SEQ_COLUMN
from kalam_engine.providers.core import BaseTableProvider
from kalam_engine.storage.eviction import ttl_seq_floor


class StreamTableProvider(BaseTableProvider):
    __slots__ = ()

    def scope(self, ctx: ExecutionContext) -> str:
        return ctx.user_id

    @property
    def ttl_seconds(self) -> int:
        return self.core.definition.options.ttl_seconds or 0

    def ttl_floor(self, now: float | None = None) -> int:
        """The smallest _seq still alive."""
        return ttl_seq_floor(self.ttl_seconds, now)

    def _fresh(self, rows: pa.Table) -> pa.Table:
        if rows.num_rows == 0:
            return rows
        return rows.filter(pc.greater_equal(rows[SEQ_COLUMN], self.ttl_floor()))
