"""Kalam for notebooks: an embedded, multi-tenant SQL database in the style of KalamDB.

    import kalam_engine
    db = kalam_engine.connect(":memory:")
    db.execute("CREATE NAMESPACE app")
    db.execute("CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(), "
               "body TEXT NOT NULL)")
    db.execute("INSERT INTO app.notes (body) VALUES ($1)", user="alice", params=["hi"])
    db.execute("SELECT * FROM app.notes", user="alice").to_pandas()
"""

from kalam_engine.catalog.cache import CacheStats, SchemaCache
from kalam_engine.engine import Engine, connect
from kalam_engine.live import LiveEvent, LiveQuery, Subscription, parse_live_query
from kalam_engine.model.context import AccessLevel, ExecutionContext, Role, TableId, TableType
from kalam_engine.model.errors import (
    AlreadyExistsError,
    ConstraintError,
    CorruptDataError,
    DataDirectoryLockedError,
    EngineClosedError,
    ExecutionError,
    InvalidParameterError,
    InvalidSqlError,
    KalamError,
    MissingFileError,
    NamespaceNotFoundError,
    PermissionDeniedError,
    ReadOnlyError,
    ResourceLimitError,
    RetiredProviderError,
    StorageError,
    TableNotFoundError,
    UnsupportedError,
)
from kalam_engine.result import Result

__all__ = [
    "AccessLevel",
    "AlreadyExistsError",
    "CacheStats",
    "ConstraintError",
    "CorruptDataError",
    "DataDirectoryLockedError",
    "Engine",
    "EngineClosedError",
    "ExecutionContext",
    "ExecutionError",
    "InvalidParameterError",
    "InvalidSqlError",
    "KalamError",
    "LiveEvent",
    "LiveQuery",
    "MissingFileError",
    "NamespaceNotFoundError",
    "PermissionDeniedError",
    "ReadOnlyError",
    "ResourceLimitError",
    "Result",
    "RetiredProviderError",
    "Role",
    "SchemaCache",
    "StorageError",
    "Subscription",
    "TableId",
    "TableNotFoundError",
    "TableType",
    "UnsupportedError",
    "connect",
    "parse_live_query",
]
