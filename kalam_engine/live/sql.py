"""Subscription options: checked once per subscription. The subscription SQL itself (the
live query and ``SUBSCRIBE TO``) is read by the SQL front end, :mod:`kalam_engine.sql.subscribe`,
whose names are re-exported here."""

from __future__ import annotations

from kalam_engine.model.errors import InvalidParameterError, UnsupportedError
from kalam_engine.sql.subscribe import (
    OPTION_NAMES,
    LiveQuery,
    SubscribeStatement,
    parse_live_query,
    parse_subscribe,
)

__all__ = ["MAX_BATCH_SIZE", "OPTION_NAMES", "LiveQuery", "SubscribeStatement",
           "checked_options", "parse_live_query", "parse_subscribe"]

MAX_BATCH_SIZE = 1000  # KalamDB's default and maximum


def checked_options(batch_size: int | None, last_rows: int | None,
                    from_seq: int | None) -> tuple[int, int | None, int | None]:
    """Validate the options; ``(batch_size, last_rows, from_seq)`` with the default filled."""
    for name, value in (("batch_size", batch_size), ("last_rows", last_rows),
                        ("from_seq", from_seq)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < (0 if name == "from_seq" else 1)):
            raise InvalidParameterError(f"{name} must be a positive whole number, not {value!r}")
    size = MAX_BATCH_SIZE if batch_size is None else batch_size
    if size > MAX_BATCH_SIZE:
        raise InvalidParameterError(f"batch_size {size} is above the maximum {MAX_BATCH_SIZE}",
                                    hint=f"use batch_size <= {MAX_BATCH_SIZE}")
    if last_rows is not None and last_rows > size:
        raise UnsupportedError(f"last_rows {last_rows} is larger than batch_size {size}",
                               hint="ask for at most batch_size last rows")
    return size, last_rows, from_seq
