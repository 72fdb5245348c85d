"""Every error a user can cause, each with a KalamDB error code.

Hierarchy::

    KalamError (code SQL_EXECUTION_ERROR)
    ├── InvalidSqlError        INVALID_SQL         the statement cannot be parsed or is malformed
    ├── InvalidParameterError  INVALID_PARAMETER   a bad option, name, value, type or parameter
    │   └── ConstraintError    INVALID_PARAMETER   NOT NULL, primary key uniqueness
    ├── TableNotFoundError     TABLE_NOT_FOUND     unknown table
    ├── NamespaceNotFoundError NAMESPACE_NOT_FOUND unknown namespace
    ├── AlreadyExistsError     ALREADY_EXISTS      a namespace, table or user that exists already
    ├── PermissionDeniedError  PERMISSION_DENIED   the caller's role may not do this
    ├── UnsupportedError       UNSUPPORTED         valid SQL that this engine does not do
    ├── ExecutionError         SQL_EXECUTION_ERROR the query failed while it ran
    │   └── ResourceLimitError SQL_EXECUTION_ERROR over the memory budget or the statement timeout
    ├── RetiredProviderError   TABLE_NOT_FOUND     a provider replaced by ALTER or removed by DROP
    ├── EngineClosedError      INTERNAL_ERROR      the engine was closed
    ├── ReadOnlyError          PERMISSION_DENIED   a write on an engine opened read_only=True
    └── StorageError           INTERNAL_ERROR      the data directory cannot be used as asked
        ├── DataDirectoryLockedError INTERNAL_ERROR another process holds the directory
        ├── CorruptDataError   INTERNAL_ERROR      a catalog or segment fails its checks
        └── MissingFileError   MISSING_FILE        a file the catalog names is gone
"""

from __future__ import annotations

__all__ = [
    "AlreadyExistsError",
    "ConstraintError",
    "CorruptDataError",
    "DataDirectoryLockedError",
    "EngineClosedError",
    "ExecutionError",
    "InvalidParameterError",
    "InvalidSqlError",
    "KalamError",
    "MissingFileError",
    "NamespaceNotFoundError",
    "PermissionDeniedError",
    "ReadOnlyError",
    "ResourceLimitError",
    "RetiredProviderError",
    "StorageError",
    "TableNotFoundError",
    "UnsupportedError",
]


class KalamError(Exception):
    """Base of every user-facing error. ``code`` is the KalamDB error code."""

    code: str = "SQL_EXECUTION_ERROR"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class InvalidSqlError(KalamError):
    code = "INVALID_SQL"


class InvalidParameterError(KalamError):
    code = "INVALID_PARAMETER"


class ConstraintError(InvalidParameterError):
    code = "INVALID_PARAMETER"


class TableNotFoundError(KalamError):
    code = "TABLE_NOT_FOUND"


class NamespaceNotFoundError(KalamError):
    code = "NAMESPACE_NOT_FOUND"


class AlreadyExistsError(KalamError):
    code = "ALREADY_EXISTS"


class PermissionDeniedError(KalamError):
    code = "PERMISSION_DENIED"


class UnsupportedError(KalamError):
    code = "UNSUPPORTED"


class ExecutionError(KalamError):
    code = "SQL_EXECUTION_ERROR"


class RetiredProviderError(KalamError):
    code = "TABLE_NOT_FOUND"


class EngineClosedError(KalamError):
    code = "INTERNAL_ERROR"


class ResourceLimitError(ExecutionError):
    """A statement went over a limit: the memory budget or the statement timeout."""

    code = "SQL_EXECUTION_ERROR"


class ReadOnlyError(KalamError):
    code = "PERMISSION_DENIED"


class StorageError(KalamError):
    code = "INTERNAL_ERROR"


class DataDirectoryLockedError(StorageError):
    code = "INTERNAL_ERROR"


class CorruptDataError(StorageError):
    code = "INTERNAL_ERROR"


class MissingFileError(StorageError):
    code = "MISSING_FILE"
