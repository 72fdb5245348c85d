"""Run a statement with the engine's fast paths on and off, to compare the two answers."""

from __future__ import annotations

from typing import Any

from kalam_engine import KalamError


def answers_both_ways(db: Any, sql: str, user: str | None, params: Any = None) -> list[Any]:
    """[answer with fast paths, answer without]; each a pyarrow.Table or the error code."""
    out: list[Any] = []
    for fast in (True, False):
        db.fast_paths = fast
        try:
            out.append(db.execute(sql, user=user, params=params).to_arrow())
        except KalamError as exc:
            out.append(exc.code)
    db.fast_paths = True
    return out
