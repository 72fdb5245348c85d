"""``ALTER TABLE t CREATE [VECTOR] INDEX col [USING COSINE]`` and ``ALTER TABLE t DROP [VECTOR]
INDEX col``: the two ALTER TABLE actions on vector indexes, and their parser (after the
``CREATE`` / ``DROP`` word)."""

from __future__ import annotations

from dataclasses import dataclass

from kalam_engine.model.errors import InvalidSqlError, UnsupportedError
from kalam_engine.sql.tokens import TokenCursor

METRICS = ("COSINE", "L2", "DOT")  # KalamDB's; only COSINE has a distance function here


@dataclass(frozen=True, slots=True)
class CreateVectorIndex:
    column: str
    metric: str = "cosine"


@dataclass(frozen=True, slots=True)
class DropVectorIndex:
    column: str


def is_index_action(cur: TokenCursor, *, after_drop: bool = False) -> bool:
    """Whether the cursor is at ``[VECTOR] INDEX`` (with ``after_drop``: at ``DROP [VECTOR]
    INDEX``)."""
    words = ("DROP",) if after_drop else ()
    return cur.is_words(*words, "INDEX") or cur.is_words(*words, "VECTOR", "INDEX")


def parse_index_action(cur: TokenCursor, create: bool) -> CreateVectorIndex | DropVectorIndex:
    """The action after ``ALTER TABLE t CREATE`` (``create``) or ``ALTER TABLE t DROP``."""
    cur.accept("VECTOR")
    cur.expect("INDEX")
    column = cur.word("an EMBEDDING column name").lower()
    if not create:
        return DropVectorIndex(column)
    metric = "COSINE"
    if cur.accept("USING"):
        metric = cur.string_or_word("a metric (COSINE)").upper()
        if metric not in METRICS:
            raise InvalidSqlError(f"Unknown vector index metric {metric!r}",
                                  hint="write USING COSINE")
        if metric != "COSINE":
            raise UnsupportedError(
                f"Vector indexes USING {metric} are not supported",
                hint="use USING COSINE; COSINE_DISTANCE is the distance function")
    return CreateVectorIndex(column, metric.lower())
