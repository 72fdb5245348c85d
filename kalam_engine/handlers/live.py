"""SUBSCRIBE TO: start a live query in this engine and return it with a one-row result."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pyarrow as pa

from kalam_engine.handlers import Params, handles
from kalam_engine.live.sql import SubscribeStatement
from kalam_engine.model.context import ExecutionContext
from kalam_engine.result import Result

if TYPE_CHECKING:
    from kalam_engine.services import Services


@handles(SubscribeStatement)
def subscribe(services: Services, stmt: SubscribeStatement, ctx: ExecutionContext,
              params: Params) -> Result:
    options = dict(stmt.options)
    sub = services.live.subscribe(services, stmt.query_sql, ctx, **options)
    message = (f"Subscription {sub.subscription_id} started: {sub.total_rows} row(s) in the "
               f"snapshot; read result.subscription, then close() it")
    table = pa.table({
        "status": ["active"],
        "subscription": [json.dumps({"id": sub.subscription_id, "sql": stmt.query_sql})],
        "live_id": [sub.live_id],
        "total_rows": pa.array([sub.total_rows], pa.int64()),
        "message": [message],
    })
    return Result("command", table=table, message=message, row_count=1, subscription=sub)
