"""One subscription: its snapshot in batches, then its change events, through a bounded queue.

Writers only append to the queue (never wait on a reader); a subscription whose queue is full
ends with a ResourceLimitError that its reader gets after the events queued before it."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from kalam_engine.live.events import ERROR, INITIAL_BATCH, LiveEvent, LivePlan
from kalam_engine.model.context import TableId
from kalam_engine.model.definitions import SEQ_COLUMN
from kalam_engine.model.errors import InvalidParameterError, KalamError, ResourceLimitError

log = logging.getLogger(__name__)
DEFAULT_MAX_QUEUE = 10_000  # change events waiting for the reader


class Subscription:
    """A live query. Read it with ``next_event(timeout=)`` or by iterating (thread-safe), or
    give ``callback`` to ``subscribe`` (called on a thread of its own). ``close()`` (or leaving
    a ``with`` block) ends it; iteration then stops."""

    def __init__(self, *, live_id: str, subscription_id: str, connection_id: str,
                 table_id: TableId, scope: str | None, user_id: str, sql: str,
                 options: dict[str, Any], plan: LivePlan | None, snapshot: pa.Table,
                 last_seq: int, batch_size: int, max_queue: int,
                 on_close: Callable[[Subscription], None]) -> None:
        self.live_id = live_id
        self.subscription_id = subscription_id
        self.connection_id = connection_id
        self.table_id = table_id
        self.scope = scope  # the partition it watches (None: a system table, no changes)
        self.user_id = user_id
        self.sql = sql
        self.options = options
        self.plan = plan
        self.schema = snapshot.schema
        self.total_rows = snapshot.num_rows
        self.last_seq = last_seq  # changes after this _seq are events; the snapshot is before
        self.created_at = time.time()
        self.last_update = self.created_at
        self.changes = 0
        self._snapshot = snapshot
        self._batch_size = batch_size
        self._snap_pos = 0
        self._batch_num = 0
        self._snapshot_done = False
        self._queue: deque[LiveEvent] = deque()
        self._max_queue = max_queue
        self._error: LiveEvent | None = None
        self._closed = False
        self._cond = threading.Condition(threading.Lock())
        self._on_close = on_close
        self._callback_thread: threading.Thread | None = None

    # --- state
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def status(self) -> str:
        if self._closed:
            return "closed"
        if self._error is not None:
            return "failed"
        return "loading" if not self._snapshot_done else "active"

    @property
    def error(self) -> KalamError | None:
        return self._error.error if self._error is not None else None

    # --- the write path's side (called under the table's write lock: never blocks)
    def push(self, events: list[LiveEvent]) -> None:
        if not events:
            return
        with self._cond:
            if self._closed or self._error is not None:
                return
            if len(self._queue) + len(events) > self._max_queue:
                self._fail_locked(ResourceLimitError(
                    f"Subscription {self.subscription_id} fell behind: more than "
                    f"{self._max_queue} change events waited to be read",
                    hint="read events faster (or give a larger max_queue) and subscribe again; "
                         "from_seq=<last _seq read> resumes after the last event read"))
            else:
                self._queue.extend(events)
                self.changes += len(events)
                self.last_update = time.time()
                self._cond.notify_all()
        if self._error is not None:
            self._on_close(self)

    def fail(self, error: KalamError) -> None:
        """End the subscription with ``error`` (after the events already queued)."""
        with self._cond:
            if self._closed or self._error is not None:
                return
            self._fail_locked(error)
        self._on_close(self)

    def _fail_locked(self, error: KalamError) -> None:
        self._error = LiveEvent(ERROR, error=error, seq=self.last_seq)
        self._cond.notify_all()

    # --- the reader's side
    def next_event(self, timeout: float | None = None) -> LiveEvent | None:
        """The next event: snapshot batches first, then changes in commit order. Waits up to
        ``timeout`` seconds (None: until one comes); returns None on timeout or once closed.
        Raises the subscription's error (e.g. ResourceLimitError on overflow) after the
        events queued before it."""
        if self._callback_thread is not None \
                and threading.current_thread() is not self._callback_thread:
            raise InvalidParameterError("This subscription delivers to its callback",
                                        hint="subscribe without callback= to read events")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closed:
                    return None
                if not self._snapshot_done:
                    return self._next_batch()
                if self._queue:
                    return self._queue.popleft()
                if self._error is not None:
                    assert self._error.error is not None
                    raise self._error.error
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def _next_batch(self) -> LiveEvent:
        start = self._snap_pos
        rows = self._snapshot.slice(start, self._batch_size)
        self._snap_pos = start + rows.num_rows
        has_more = self._snap_pos < self.total_rows
        seq = pc.max(rows[SEQ_COLUMN]).as_py() \
            if rows.num_rows and SEQ_COLUMN in rows.column_names else self.last_seq
        event = LiveEvent(INITIAL_BATCH, rows=rows, seq=seq or 0, batch_num=self._batch_num,
                          has_more=has_more)
        self._batch_num += 1
        if not has_more:
            self._snapshot_done = True
            self._snapshot = self._snapshot.slice(0, 0)
        return event

    def __iter__(self) -> Iterator[LiveEvent]:
        while True:
            event = self.next_event()
            if event is None:
                return
            yield event

    def close(self) -> None:
        """Stop receiving changes; a reader waiting in ``next_event`` gets None."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()
        self._on_close(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<Subscription {self.subscription_id} on {self.table_id} as {self.user_id}: "
                f"{self.status}, {self.changes} change event(s)>")

    # --- callback delivery
    def start_callback(self, callback: Callable[[LiveEvent], object]) -> None:
        def run() -> None:
            while True:
                try:
                    event = self.next_event()
                except KalamError as exc:
                    event = self._error or LiveEvent(ERROR, error=exc)
                if event is None:
                    return
                try:
                    callback(event)
                except Exception:
                    log.exception("live query callback of %s failed", self.subscription_id)
                if event.type == ERROR:
                    return

        self._callback_thread = threading.Thread(
            target=run, name=f"kalam-live-{self.subscription_id}", daemon=True)
        self._callback_thread.start()
