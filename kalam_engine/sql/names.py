"""Name rules for namespaces, tables, columns and users (checked before a name reaches a path)."""

from __future__ import annotations

import re

from kalam_engine.errors import InvalidParameterError

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_]+$")
MAX_NAME_LENGTH = 64
RESERVED_NAMESPACES = frozenset({
    "system", "sys", "root", "kalamdb", "kalam", "main", "default", "sql", "admin", "internal",
    "information_schema", "pg_catalog", "datafusion"})
RESERVED_COLUMNS = frozenset({
    "_id", "_row_id", "_rowid", "_key", "_updated", "_created", "_timestamp", "_version", "_hash",
    "_seq", "_deleted", "_commit_seq"})
RESERVED_KEYWORDS = frozenset({
    "all", "alter", "and", "any", "as", "asc", "between", "by", "case", "cast", "check", "column",
    "constraint", "create", "cross", "current_user", "default", "delete", "desc", "distinct",
    "drop", "else", "end", "except", "exists", "false", "fetch", "for", "foreign", "from", "full",
    "grant", "group", "having", "in", "inner", "insert", "intersect", "into", "is", "join", "left",
    "like", "limit", "not", "null", "offset", "on", "or", "order", "outer", "primary",
    "references", "right", "select", "set", "table", "then", "to", "true", "union", "unique",
    "update", "using", "values", "when", "where", "with"})


def validate_name(name: str, kind: str) -> str:
    """Return the lowercase name, or raise a clear INVALID_PARAMETER error."""
    shown = name if len(name) <= 80 else name[:77] + "..."
    rule = (f"{kind} names use letters, digits and _, start with a letter, and have at most "
            f"{MAX_NAME_LENGTH} characters")
    if not name or not NAME_PATTERN.match(name) or not name.isascii():
        raise InvalidParameterError(f"Invalid {kind} name {shown!r}", hint=rule)
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidParameterError(f"Invalid {kind} name {shown!r}: longer than "
                                    f"{MAX_NAME_LENGTH} characters", hint=rule)
    if name[0] == "_" or name[0].isdigit():
        raise InvalidParameterError(f"Invalid {kind} name {shown!r}: it may not start with "
                                    "'_' or a digit", hint=rule)
    lower = name.lower()
    if lower in RESERVED_KEYWORDS:
        raise InvalidParameterError(f"Invalid {kind} name {shown!r}: it is a reserved SQL "
                                    "keyword", hint="choose another name")
    return lower


def validate_namespace(name: str, *, creating: bool = False) -> str:
    lower = validate_name(name, "namespace")
    if creating and lower in RESERVED_NAMESPACES:
        raise InvalidParameterError(f"Namespace name '{lower}' is reserved",
                                    hint="choose another namespace name")
    return lower


def validate_column(name: str) -> str:
    if name.lower() in RESERVED_COLUMNS:
        raise InvalidParameterError(f"Column name '{name}' is reserved for system columns",
                                    hint="choose another column name")
    return validate_name(name, "column")


def validate_user_id(name: str) -> str:
    """User ids keep their case-folded form; they become partition directory names."""
    if not name or len(name) > 128 or not NAME_PATTERN.match(name) or not name.isascii():
        raise InvalidParameterError(
            f"Invalid user id {name[:80]!r}",
            hint="user ids use letters, digits and _ and have at most 128 characters")
    return name
