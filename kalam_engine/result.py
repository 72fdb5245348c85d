"""The result of one statement."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa


@dataclass(slots=True)
class Result:
    """What a statement produced: rows (queries, SHOW, DESCRIBE) and/or a message (DDL, DML)."""

    kind: str  # "query" | "dml" | "ddl" | "command"
    table: pa.Table | None = None
    message: str | None = None
    row_count: int = 0
    as_user: str = "root"
    took_ms: float = 0.0
    statement: str = field(default="", repr=False)
    # SUBSCRIBE TO: the kalam_engine.live.Subscription it started (read it, then close it)
    subscription: Any = field(default=None, repr=False)

    def to_arrow(self) -> pa.Table:
        """The rows as a pyarrow.Table (empty with no columns for DDL/DML)."""
        return self.table if self.table is not None else pa.table({})

    def to_pandas(self) -> pd.DataFrame:
        """The rows as a pandas.DataFrame. One block per column (``split_blocks``): half the
        conversion time of a consolidated frame for small results, and no copy to consolidate
        large ones."""
        return self.to_arrow().to_pandas(split_blocks=True)

    def __repr__(self) -> str:
        what = self.message or f"{self.row_count} row(s)"
        return f"<Result {self.kind}: {what} as {self.as_user} in {self.took_ms:.2f} ms>"
