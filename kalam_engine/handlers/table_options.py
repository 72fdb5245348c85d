"""The ``WITH (...)`` options of CREATE TABLE, as a table: for each option the table types it
applies to and how its text becomes ``TableOptions`` fields."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kalam_engine.model.context import AccessLevel, TableType
from kalam_engine.model.definitions import TableOptions
from kalam_engine.model.errors import InvalidParameterError
from kalam_engine.sql.storage_commands import validate_storage_id

_USER, _SHARED, _STREAM = TableType.USER, TableType.SHARED, TableType.STREAM
_EVERY_TYPE = frozenset({_USER, _SHARED, _STREAM})


def whole_number(key: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InvalidParameterError(f"{key} must be a whole number, got {text!r}") from None
    if not low <= value <= high:
        raise InvalidParameterError(f"{key}={value} is out of range ({low}..{high})")
    return value


def flush_policy(text: str) -> dict[str, int | None]:
    rows = interval = None
    for part in text.replace(" ", "").lower().split(","):
        kind, _, value = part.partition(":")
        try:
            number = int(value)
        except ValueError:
            number = -1
        if kind == "rows" and 1 <= number <= 999_999:
            rows = number
        elif kind == "interval" and 1 <= number <= 86_399:
            interval = number
        else:
            raise InvalidParameterError(
                f"Invalid FLUSH_POLICY '{text}'",
                hint="use 'rows:N' (1..999999), 'interval:S' (1..86399) or 'rows:N,interval:S'")
    return {"flush_rows": rows, "flush_interval_s": interval}


def access_level(text: str) -> AccessLevel:
    try:
        return AccessLevel(text.strip().lower())
    except ValueError:
        raise InvalidParameterError(
            f"Unknown access level '{text}'",
            hint="use PUBLIC, PRIVATE, RESTRICTED or DBA") from None


@dataclass(frozen=True)
class TableOption:
    """One option: the table types allowed to have it (the message for the others) and the
    ``TableOptions`` fields its text gives."""

    types: frozenset[TableType]
    fields: Callable[[str], dict[str, Any]]
    refused: str = ""


TABLE_OPTIONS: dict[str, TableOption] = {  # read in this order
    "TTL_SECONDS": TableOption(
        frozenset({_STREAM}),
        lambda text: {"ttl_seconds": whole_number("TTL_SECONDS", text, 1, 10 * 365 * 86_400)},
        "TTL_SECONDS is only allowed on STREAM tables"),
    "ACCESS_LEVEL": TableOption(
        frozenset({_SHARED}), lambda text: {"access_level": access_level(text)},
        "ACCESS_LEVEL is only allowed on SHARED tables"),
    "USE_USER_STORAGE": TableOption(
        frozenset({_USER}), lambda text: {"use_user_storage": text.upper() == "TRUE"},
        "USE_USER_STORAGE is only allowed on USER tables"),
    "STORAGE_ID": TableOption(
        _EVERY_TYPE, lambda text: {"storage_id": validate_storage_id(text)}),
    "FLUSH_POLICY": TableOption(
        frozenset({_USER, _SHARED}), flush_policy,
        "FLUSH_POLICY is not allowed on STREAM tables"),
    "DELETED_RETENTION_HOURS": TableOption(
        _EVERY_TYPE, lambda text: {"deleted_retention_hours": whole_number(
            "DELETED_RETENTION_HOURS", text, 0, 100_000)}),
}
KNOWN_OPTIONS = {"TYPE", *TABLE_OPTIONS}
# What a table type gets without the option, or must be given.
_DEFAULTS: dict[TableType, dict[str, Any]] = {_SHARED: {"access_level": AccessLevel.PRIVATE}}
_REQUIRED: dict[TableType, tuple[str, str]] = {
    _STREAM: ("TTL_SECONDS", "e.g. WITH (TTL_SECONDS=3600)")}


def check_known(options: dict[str, str]) -> None:
    unknown = set(options) - KNOWN_OPTIONS
    if unknown:
        raise InvalidParameterError(f"Unknown table option '{sorted(unknown)[0]}'",
                                    hint="known options: " + ", ".join(sorted(KNOWN_OPTIONS)))


def table_options(options: dict[str, str], table_type: TableType) -> TableOptions:
    """The ``TableOptions`` of a new ``table_type`` table from its WITH options (TYPE aside)."""
    required = _REQUIRED.get(table_type)
    if required is not None and required[0] not in options:
        raise InvalidParameterError(f"{table_type.value} tables require {required[0]}",
                                    hint=required[1])
    fields = dict(_DEFAULTS.get(table_type, {}))
    for key, option in TABLE_OPTIONS.items():
        if key not in options:
            continue
        if table_type not in option.types:
            raise InvalidParameterError(option.refused)
        fields.update(option.fields(options[key]))
    return TableOptions(**fields)
