"""What the notebook layer needs of a database: :class:`KalamBackend`.

Two classes satisfy it: the embedded :class:`kalam_engine.Engine` and
:class:`kalam_jupyter.remote.RemoteClient` (a KalamDB server over its HTTP API). The magics, the
``df.kalam`` accessor and the inspector are typed against this protocol and use nothing else,
so each works the same way in both modes. A figure a backend cannot report is ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import pandas as pd
import pyarrow as pa

from kalam_engine.model.classification import StatementClass
from kalam_engine.model.definitions import TableDefinition

__all__ = ["BackendResult", "CacheFigures", "CacheSource", "KalamBackend"]

Snapshot = dict[str, dict[str, list[str]]]


class BackendResult(Protocol):
    """One statement's answer: a query's rows, or a command's message and row count."""

    kind: str  # "query" or "command"
    row_count: int
    message: str | None
    took_ms: float | None
    as_user: str | None

    def to_arrow(self) -> pa.Table: ...

    def to_pandas(self) -> pd.DataFrame: ...


class CacheFigures(Protocol):
    """The schema cache's counters (``kalam_engine.CacheStats``); None: not reported."""

    @property
    def entries(self) -> int | None: ...
    @property
    def capacity(self) -> int | None: ...
    @property
    def hits(self) -> int | None: ...
    @property
    def misses(self) -> int | None: ...
    @property
    def evictions(self) -> int | None: ...
    @property
    def revived(self) -> int | None: ...
    @property
    def built(self) -> int | None: ...
    @property
    def live_providers(self) -> int | None: ...
    @property
    def memory_bytes(self) -> int | None: ...


class CacheSource(Protocol):
    def stats(self) -> CacheFigures: ...


@runtime_checkable
class KalamBackend(Protocol):
    """An embedded engine or a server connection, as the notebook layer uses it."""

    @property
    def cache(self) -> CacheSource: ...

    def execute(self, sql: str, *, user: str | None = None,
                params: list[Any] | None = None) -> BackendResult:
        """Run ``sql`` (one or more statements) as ``user``; the last statement's result."""
        ...

    def subscribe(self, sql: str, *, user: str | None = None) -> Any:
        """A live query (``next_event(timeout=)``, ``close()``)."""
        ...

    def classify(self, sql: str) -> StatementClass:
        """What ``sql`` does, from its text (read / write / invalid, the USE namespace)."""
        ...

    def table_definition(self, table: str) -> TableDefinition:
        """Columns, types, NOT NULL and defaults of ``namespace.table``."""
        ...

    def insert_arrow(self, table: str, data: pa.Table, *, user: str | None = None,
                     user_column: str | None = None) -> int:
        """Insert checked Arrow rows; the number inserted."""
        ...

    def catalog_snapshot(self) -> Snapshot | None:
        """namespace -> table -> column names (for completion and "did you mean")."""
        ...

    def table_stats(self) -> list[dict[str, Any]]:
        """One dict per table (``table``, ``type``, sizes; a missing key: not reported)."""
        ...

    def user_count(self) -> int | None:
        """Users with rows in USER/STREAM tables (None: not reported)."""
        ...

    def data_sizes(self) -> Mapping[str, int | None]:
        """``hot_rows``, ``hot_bytes``, ``cold_rows``, ``cold_bytes`` over all tables."""
        ...

    def close(self) -> None: ...
