"""The engine's storage: one TableStore per table, the hot log, and the _seq generator."""

from __future__ import annotations

import threading

from kalam_engine.catalog.definitions import SEQ_COLUMN, TableDefinition
from kalam_engine.context import TableId, TableType
from kalam_engine.ids import SnowflakeGenerator
from kalam_engine.storage.hot_log import HotLog
from kalam_engine.storage.sqlite_db import SqliteDatabase
from kalam_engine.storage.table_store import TableStore, WriteListener


class StorageManager:
    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db
        self.log = HotLog(db)
        self.seq = SnowflakeGenerator()
        self._stores: dict[TableId, TableStore] = {}
        self._lock = threading.Lock()
        self._listeners: list[WriteListener] = []

    def store_for(self, definition: TableDefinition) -> TableStore:
        """The TableStore of a table, created on first use (data outlives providers)."""
        store = self._stores.get(definition.table_id)
        if store is None:
            with self._lock:
                store = self._stores.get(definition.table_id)
                if store is None:
                    key = definition.primary_key or SEQ_COLUMN
                    store = TableStore(definition.table_id, definition.table_type, key, self.log)
                    for listener in self._listeners:
                        store.add_listener(listener)
                    self._stores[definition.table_id] = store
        return store

    def existing_store(self, table_id: TableId) -> TableStore | None:
        return self._stores.get(table_id)

    def add_listener(self, listener: WriteListener) -> None:
        self._listeners.append(listener)
        for store in self._stores.values():
            store.add_listener(listener)

    def drop_table(self, table_id: TableId) -> None:
        with self._lock:
            self._stores.pop(table_id, None)
        self.log.remove_table(table_id.key)

    def replay(self, definitions: dict[str, TableDefinition]) -> None:
        """Load the hot log into memory (on open)."""
        self.seq.observe(self.log.max_seq())
        for _log_id, key, scope, rows in self.log.entries():
            definition = definitions.get(key)
            if definition is None:
                continue
            self.store_for(definition).replay(scope, rows)

    def data_sizes(self) -> dict[str, int]:
        rows = hot = 0
        for store in list(self._stores.values()):
            r, b = store.hot_stats()
            rows += r
            hot += b
        return {"hot_rows": rows, "hot_bytes": hot, "cold_rows": 0, "cold_bytes": 0}

    def scope_of(self, table_type: TableType, user_id: str) -> str:
        return "" if table_type is TableType.SHARED else user_id
