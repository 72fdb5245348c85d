"""Name rules for namespaces, tables, columns and users (checked before a name reaches a path)."""

from __future__ import annotations

import re

from kalam_engine.model.errors import InvalidParameterError

NAME_PATTERN = re.compile(r"[a-zA-Z0-9_]+")  # used with fullmatch: "$" would accept a final "\n"
MAX_NAME_LENGTH = 64
RESERVED_NAMESPACES = frozenset({
    "system", "sys", "root", "kalamdb", "kalam", "main", "default", "sql", "admin", "internal",
    "information_schema", "pg_catalog", "datafusion"})
MAX_USER_ID_LENGTH = 128
RESERVED_USER_IDS = frozenset({"anonymous", "system", "sys", "kalamdb", "kalam", "internal",
                               "public", "information_schema", "pg_catalog", "datafusion"})
WINDOWS_DEVICE_NAMES = frozenset(
    {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(10)})
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
    if not isinstance(name, str) or not name or not NAME_PATTERN.fullmatch(name) \
            or not name.isascii():
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
    if kind != "column" and lower in WINDOWS_DEVICE_NAMES:
        raise InvalidParameterError(f"Invalid {kind} name {shown!r}: it is a reserved device "
                                    "name on Windows and cannot be a directory",
                                    hint="choose another name")
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


def validate_user_id(name: str, *, creating: bool = False) -> str:
    """The case-folded user id (it becomes a partition directory name, and "Alice" and "alice"
    must not be two users on a case-insensitive file system). ``creating`` also refuses the
    reserved ids."""
    hint = f"user ids use letters, digits and _ and have at most {MAX_USER_ID_LENGTH} characters"
    if not isinstance(name, str):
        raise InvalidParameterError(f"A user id must be a string, not {type(name).__name__}",
                                    hint=hint)
    if not name or len(name) > MAX_USER_ID_LENGTH or not NAME_PATTERN.fullmatch(name) \
            or not name.isascii():
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise InvalidParameterError(f"Invalid user id {shown!r}", hint=hint)
    lower = name.lower()
    if lower in WINDOWS_DEVICE_NAMES:
        raise InvalidParameterError(f"Invalid user id {name!r}: it is a reserved device name "
                                    "on Windows and cannot be a directory", hint=hint)
    if creating and lower in RESERVED_USER_IDS:
        raise InvalidParameterError(f"User id '{lower}' is reserved",
                                    hint="choose another user name")
    return lower
