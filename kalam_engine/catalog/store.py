"""Catalog persistence: namespaces and every schema version of every table, in SQLite."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

from kalam_engine.model.context import TableId
from kalam_engine.model.definitions import TableDefinition
from kalam_engine.storage.sqlite_db import SqliteDatabase


class CatalogStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        # Namespaces change only through this store; every query's catalog asks for them.
        self._namespaces: list[tuple[str, float, dict[str, Any]]] | None = None

    def forget_cached(self) -> None:
        """Drop what is cached (a read-only engine saw another process change the catalog)."""
        self._namespaces = None

    # --- namespaces
    def namespaces(self) -> list[tuple[str, float, dict[str, Any]]]:
        """(name, created_at, options) of every namespace; the options dicts are the cached
        ones, so copy before changing them."""
        cached = self._namespaces
        if cached is None:
            rows = self._db.query(
                "SELECT name, created_at, options FROM namespaces ORDER BY name")
            cached = [(n, c, json.loads(o) if o else {}) for n, c, o in rows]
            self._namespaces = cached
        return list(cached)

    @contextlib.contextmanager
    def _namespaces_changing(self) -> Iterator[sqlite3.Connection]:
        """A transaction that changes namespaces; the cached list is dropped after it,
        committed or not (a read inside it may have cached what it was about to write)."""
        try:
            with self._db.transaction() as conn:
                yield conn
        finally:
            self._namespaces = None

    def namespace_exists(self, name: str) -> bool:
        return bool(self._db.query("SELECT 1 FROM namespaces WHERE name = ?", (name,)))

    def create_namespace(self, name: str, options: dict[str, Any] | None = None) -> None:
        with self._namespaces_changing() as conn:
            conn.execute("INSERT INTO namespaces (name, created_at, options) VALUES (?, ?, ?)",
                         (name, time.time(), json.dumps(options or {})))

    def set_namespace_options(self, name: str, options: dict[str, Any]) -> None:
        with self._namespaces_changing() as conn:
            conn.execute("UPDATE namespaces SET options = ? WHERE name = ?",
                         (json.dumps(options), name))

    def drop_namespace(self, name: str) -> None:
        with self._namespaces_changing() as conn:
            conn.execute("DELETE FROM namespaces WHERE name = ?", (name,))

    # --- tables
    def save_table(self, definition: TableDefinition) -> None:
        """Store a new schema version and make it the latest."""
        tid = definition.table_id
        with self._db.transaction() as conn:
            conn.execute("UPDATE schemas SET is_latest = 0 WHERE table_key = ?", (tid.key,))
            conn.execute(
                "INSERT OR REPLACE INTO schemas (table_key, namespace, table_name, schema_version,"
                " is_latest, dropped, definition, created_at) VALUES (?, ?, ?, ?, 1, 0, ?, ?)",
                (tid.key, tid.namespace, tid.name, definition.schema_version,
                 definition.to_json(), time.time()))

    def drop_table(self, table_id: TableId) -> None:
        """Forget a table: its schema history goes too (a new table may take the name)."""
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM schemas WHERE table_key = ?", (table_id.key,))

    def load_table(self, table_id: TableId) -> TableDefinition | None:
        rows = self._db.query(
            "SELECT definition FROM schemas WHERE table_key = ? AND is_latest = 1",
            (table_id.key,))
        return TableDefinition.from_json(rows[0][0]) if rows else None

    def latest_tables(self, namespace: str | None = None) -> list[TableDefinition]:
        sql = "SELECT definition FROM schemas WHERE is_latest = 1"
        args: tuple = ()
        if namespace is not None:
            sql += " AND namespace = ?"
            args = (namespace,)
        rows = self._db.query(sql + " ORDER BY namespace, table_name", args)
        return [TableDefinition.from_json(r[0]) for r in rows]

    def table_names(self, namespace: str) -> list[str]:
        rows = self._db.query(
            "SELECT table_name FROM schemas WHERE is_latest = 1 AND namespace = ? "
            "ORDER BY table_name", (namespace,))
        return [r[0] for r in rows]

    def all_versions(self) -> list[tuple[TableDefinition, bool]]:
        rows = self._db.query(
            "SELECT definition, is_latest FROM schemas ORDER BY table_key, schema_version")
        return [(TableDefinition.from_json(d), bool(latest)) for d, latest in rows]
