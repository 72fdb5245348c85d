"""The hot write log: every acknowledged write is one row in SQLite holding an Arrow IPC batch.

A write is acknowledged only after its transaction commits. On open the log is replayed into the
in-memory partitions; a flush removes the entries it moved to Parquet.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

import pyarrow as pa

from kalam_engine.storage.sqlite_db import SqliteDatabase

# Batches this large are LZ4-compressed: bulk inserts log a third of the bytes for little CPU.
COMPRESS_FROM_BYTES = 1 << 16
_LZ4 = pa.ipc.IpcWriteOptions(compression="lz4")
_PLAIN = pa.ipc.IpcWriteOptions()  # explicit: without options pyarrow reads os.environ per call


def encode_batch(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    options = _LZ4 if table.nbytes >= COMPRESS_FROM_BYTES else _PLAIN
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode_batch(blob: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(blob)).read_all()


class HotLog:
    __slots__ = ("_db",)

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction around several appends (and catalog changes made inside it)."""
        with self._db.transaction() as conn:
            yield conn

    def append(self, table_key: str, scope: str, schema_version: int, max_seq: int,
               rows: pa.Table) -> int:
        with self._db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO hot_log (table_key, scope, schema_version, max_seq, batch) "
                "VALUES (?, ?, ?, ?, ?)",
                (table_key, scope, schema_version, max_seq, encode_batch(rows)))
            return int(cur.lastrowid or 0)

    def entries(self, table_key: str | None = None, after_id: int = 0,
                ) -> Iterator[tuple[int, str, str, pa.Table]]:
        """(log id, table key, scope, rows) in write order; only ids above ``after_id``."""
        sql = "SELECT id, table_key, scope, batch FROM hot_log WHERE id > ?"
        args: tuple = (after_id,)
        if table_key is not None:
            sql += " AND table_key = ?"
            args = (after_id, table_key)
        for log_id, key, scope, blob in self._db.query(sql + " ORDER BY id", args):
            yield log_id, key, scope, decode_batch(blob)

    def remove_table(self, table_key: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM hot_log WHERE table_key = ?", (table_key,))

    @staticmethod
    def remove_scope(conn: sqlite3.Connection, table_key: str, scope: str) -> None:
        """Drop a scope's entries (a flush moved them to Parquet) inside ``conn``'s
        transaction."""
        conn.execute("DELETE FROM hot_log WHERE table_key = ? AND scope = ?", (table_key, scope))

    def remove_older_than(self, table_key: str, seq_floor: int) -> int:
        """Drop entries whose rows all have ``_seq`` below ``seq_floor`` (expired stream rows)."""
        with self._db.transaction() as conn:
            cur = conn.execute("DELETE FROM hot_log WHERE table_key = ? AND max_seq < ?",
                               (table_key, seq_floor))
            return cur.rowcount

    def extent(self, up_to_id: int | None = None) -> tuple[int, int]:
        """(largest id, number of entries), counting only ids up to ``up_to_id`` if given. Ids
        are never reused (AUTOINCREMENT): the same count up to an id means nothing below it
        was removed."""
        sql = "SELECT COALESCE(MAX(id), 0), COUNT(*) FROM hot_log"
        args: tuple = ()
        if up_to_id is not None:
            sql += " WHERE id <= ?"
            args = (up_to_id,)
        top, count = self._db.query(sql, args)[0]
        return int(top), int(count)

    def table_keys(self) -> set[str]:
        return {r[0] for r in self._db.query("SELECT DISTINCT table_key FROM hot_log")}

    def max_seq(self) -> int:
        rows = self._db.query("SELECT COALESCE(MAX(max_seq), 0) FROM hot_log")
        return int(rows[0][0])
