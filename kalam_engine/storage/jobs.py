"""Rows of the ``jobs`` table (read by system.jobs) for storage work: flush, compaction,
backup, restore and user exports."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from kalam_engine.storage.sqlite_db import SqliteDatabase

FLUSH_PREFIX = "FL"
COMPACT_PREFIX = "CO"
BACKUP_PREFIX, RESTORE_PREFIX, EXPORT_PREFIX = "BK", "RS", "UE"
JOB_TYPES = {FLUSH_PREFIX: "flush", COMPACT_PREFIX: "compact", BACKUP_PREFIX: "backup",
             RESTORE_PREFIX: "restore", EXPORT_PREFIX: "user_export"}


@dataclass(slots=True)
class Job:
    """One job, recorded when it ends (ours run synchronously)."""

    prefix: str
    parameters: dict[str, Any]
    job_id: str = ""
    started_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.job_id = self.job_id or f"{self.prefix}-{uuid.uuid4().hex[:16]}"


def record_job(target: SqliteDatabase | sqlite3.Connection, job: Job, status: str, message: str,
               trace: str | None = None) -> None:
    """Insert the finished job; pass a connection to join an open transaction."""
    now = time.time()
    args = (job.job_id, JOB_TYPES[job.prefix], status, json.dumps(job.parameters), message,
            trace, job.started_at, now, job.started_at, now)
    sql = ("INSERT INTO jobs (job_id, job_type, status, parameters, message, exception_trace, "
           "created_at, updated_at, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    if isinstance(target, sqlite3.Connection):
        target.execute(sql, args)
        return
    with target.transaction() as conn:
        conn.execute(sql, args)
