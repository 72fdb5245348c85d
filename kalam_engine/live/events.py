"""What a subscription delivers, and how one committed change becomes events for one query.

The WHERE condition is evaluated by DataFusion over all the changed rows at once (and over
their previous versions for an UPDATE), never row by row in Python."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datafusion import SessionConfig, SessionContext

from kalam_engine.model.definitions import SEQ_COLUMN
from kalam_engine.model.errors import InvalidSqlError, KalamError

INITIAL_BATCH = "initial_data_batch"
INSERT, UPDATE, DELETE, ERROR = "insert", "update", "delete", "error"
_KIND_CODE = {INSERT: 1, UPDATE: 2, DELETE: 3}
_CODE_KIND = {1: INSERT, 2: UPDATE, 3: DELETE}


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One delivery. ``type`` is ``initial_data_batch`` (``rows`` = a batch of the snapshot,
    ``batch_num``, ``has_more``), ``insert`` (``rows``), ``update`` (``rows`` = the new rows,
    ``old_values`` = key, previous ``_seq`` and the changed columns), ``delete``
    (``old_values`` = the removed rows, ``_seq`` = the delete's) or ``error`` (``error``; the
    subscription ended). ``seq`` is the largest ``_seq`` in the event: changes arrive in
    commit order, so it only grows."""

    type: str
    rows: pa.Table | None = None
    old_values: pa.Table | None = None
    seq: int = 0
    batch_num: int = 0
    has_more: bool = False
    error: KalamError | None = None


_local = threading.local()


def _session() -> SessionContext:
    """A DataFusion session per thread (writers of different tables evaluate at once)."""
    ctx = getattr(_local, "ctx", None)
    if ctx is None:
        ctx = _local.ctx = SessionContext(SessionConfig().with_target_partitions(1))
    return ctx


class LivePlan:
    """One distinct query on one table version: the columns events carry and the condition.
    Shared by every subscription with the same query (events are computed once for all)."""

    __slots__ = ("columns", "key", "schema_version", "where")

    def __init__(self, columns: list[str], key: str, where: str | None,
                 schema_version: int, table_schema: pa.Schema) -> None:
        self.columns = columns  # the selected columns, then the key and _seq when not selected
        self.key = key
        self.where = where
        self.schema_version = schema_version
        self.mask(table_schema.empty_table())  # a condition DataFusion cannot run fails here

    def mask(self, rows: pa.Table) -> np.ndarray:
        """Which of ``rows`` match the condition (NULL counts as no match)."""
        n = rows.num_rows
        if self.where is None:
            return np.ones(n, dtype=bool)
        try:
            df = _session().from_arrow(rows.combine_chunks() if n else rows)
            out = df.select(df.parse_sql_expr(self.where).alias("m")).to_arrow_table()
        except Exception as exc:  # DataFusion raises plain exceptions with its message
            raise InvalidSqlError(
                f"The subscription's WHERE cannot be evaluated on changed rows: "
                f"{str(exc).splitlines()[0][:300]}",
                hint="use comparisons, AND/OR/NOT, LIKE and IN on the table's columns") from None
        col = out.column(0)
        if out.num_rows != n or not pa.types.is_boolean(col.type):
            raise InvalidSqlError("The subscription's WHERE must be a true/false condition",
                                  hint="e.g. WHERE status = 'open'")
        return pc.fill_null(col, False).to_numpy(zero_copy_only=False).astype(bool, copy=False)

    def events(self, kind: str, rows: pa.Table, old: pa.Table | None) -> list[LiveEvent]:
        """The events one committed write of ``rows`` (``kind`` insert/update/delete) gives
        this query; ``old`` holds the previous version of each updated row, aligned."""
        new_match = self.mask(rows)
        if kind == UPDATE and old is not None:
            old_match = self.mask(old)
            code = np.where(new_match & old_match, 2,
                            np.where(new_match, 1, np.where(old_match, 3, 0)))
        else:
            code = np.where(new_match, _KIND_CODE[kind], 0)
        if not code.any():
            return []
        changed = self._changed(rows, old) if kind == UPDATE and old is not None else None
        run_key = code.astype(np.int64)
        if changed is not None:  # updates of a different set of columns go apart
            weights = np.left_shift(1, np.arange(changed.shape[1], dtype=np.int64))
            run_key = run_key + (changed @ weights) * 4
        starts = np.flatnonzero(np.r_[True, run_key[1:] != run_key[:-1]])
        ends = np.r_[starts[1:], len(run_key)]
        seqs = rows[SEQ_COLUMN].to_numpy()
        out = []
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            c = int(code[start])
            if c == 0:
                continue
            seq = int(seqs[end - 1])  # _seq grows within one write
            length = end - start
            if c == 1:
                out.append(LiveEvent(INSERT, rows=self._project(rows.slice(start, length)),
                                     seq=seq))
            elif c == 3 and kind == DELETE:
                out.append(LiveEvent(DELETE, old_values=self._project(rows.slice(start, length)),
                                     seq=seq))
            elif c == 3:  # an update moved the rows out of the condition
                assert old is not None
                gone = self._project(old.slice(start, length))
                gone = gone.set_column(gone.schema.get_field_index(SEQ_COLUMN), SEQ_COLUMN,
                                       rows[SEQ_COLUMN].slice(start, length))
                out.append(LiveEvent(DELETE, old_values=gone, seq=seq))
            else:
                assert old is not None and changed is not None
                names = [n for n, flag in zip(self._value_columns(), changed[start], strict=True)
                         if flag]
                old_part = old.slice(start, length).select([self.key, SEQ_COLUMN, *names])
                out.append(LiveEvent(UPDATE, rows=self._project(rows.slice(start, length)),
                                     old_values=old_part, seq=seq))
        return out

    def _value_columns(self) -> list[str]:
        return [c for c in self.columns if c not in (self.key, SEQ_COLUMN)]

    def _changed(self, rows: pa.Table, old: pa.Table) -> np.ndarray:
        """(rows x value columns) booleans: which selected columns each update changed."""
        cols = self._value_columns()
        out = np.zeros((rows.num_rows, len(cols)), dtype=bool)
        for i, name in enumerate(cols):
            a, b = rows[name], old[name]
            try:
                same = pc.or_(pc.fill_null(pc.equal(a, b), False),
                              pc.and_(pc.is_null(a), pc.is_null(b)))
            except pa.ArrowNotImplementedError:  # a type Arrow cannot compare: say changed
                out[:, i] = True
                continue
            out[:, i] = ~same.to_numpy(zero_copy_only=False).astype(bool)
        return out

    def _project(self, rows: pa.Table) -> pa.Table:
        return rows.select(self.columns)
