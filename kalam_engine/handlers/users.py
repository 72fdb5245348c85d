"""system.users and system.jobs rows (user commands arrive with the roles work)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from kalam_engine.context import ExecutionContext, Role

if TYPE_CHECKING:
    from kalam_engine.engine import Engine

TS = pa.timestamp("us", tz="UTC")
USER_COLUMNS = ("user_id", "password_hash", "role", "email", "auth_type", "auth_data",
                "failed_login_attempts", "locked_until", "last_login_at", "created_at",
                "updated_at", "last_seen", "deleted_at")


def _ts(values: list) -> pa.Array:
    return pa.array([None if v is None else int(v * 1_000_000) for v in values],
                    pa.int64()).cast(TS)


def users_table(engine: Engine, ctx: ExecutionContext) -> pa.Table:
    rows = engine._db.query(f"SELECT {', '.join(USER_COLUMNS)} FROM users ORDER BY user_id")
    cols = {name: [r[i] for r in rows] for i, name in enumerate(USER_COLUMNS)}
    if ctx.role < Role.DBA:
        cols["password_hash"] = ["***" if v else None for v in cols["password_hash"]]
        cols["auth_data"] = ["***" if v else None for v in cols["auth_data"]]
    n = len(rows)
    return pa.table({
        "user_id": pa.array(cols["user_id"], pa.string()),
        "password_hash": pa.array(cols["password_hash"], pa.string()),
        "role": pa.array(cols["role"], pa.string()),
        "email": pa.array(cols["email"], pa.string()),
        "auth_type": pa.array(cols["auth_type"], pa.string()),
        "auth_data": pa.array(cols["auth_data"], pa.string()),
        "storage_mode": pa.array(["table"] * n, pa.string()),
        "storage_id": pa.array([None] * n, pa.string()),
        "failed_login_attempts": pa.array(cols["failed_login_attempts"], pa.int32()),
        "locked_until": _ts(cols["locked_until"]),
        "last_login_at": _ts(cols["last_login_at"]),
        "created_at": _ts(cols["created_at"]),
        "updated_at": _ts(cols["updated_at"]),
        "last_seen": _ts(cols["last_seen"]),
        "deleted_at": _ts(cols["deleted_at"]),
    })


JOB_COLUMNS = ("job_id", "job_type", "status", "parameters", "message", "exception_trace",
               "created_at", "updated_at", "started_at", "finished_at")


def jobs_table(engine: Engine) -> pa.Table:
    rows = engine._db.query(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs ORDER BY created_at")
    cols = {name: [r[i] for r in rows] for i, name in enumerate(JOB_COLUMNS)}
    out = {name: pa.array(cols[name], pa.string()) for name in JOB_COLUMNS[:6]}
    out.update({name: _ts(cols[name]) for name in JOB_COLUMNS[6:]})
    return pa.table(out)
