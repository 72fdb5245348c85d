"""Run a planned DataFusion query under its statement's limits: a deadline and a memory budget.

The rows come from ``DataFrame.execute_stream()`` batch by batch, and every batch is charged to
the statement's :class:`Budget` before it is kept (DataFusion's memory pool does not see the
result handed to Python).

With a deadline the batches are awaited through DataFusion's async stream on one private event
loop thread: waiting for a batch times out in any thread (not only the main thread, where
signals are delivered), and cancelling the wait drops DataFusion's future, which stops the
query's work at its next yield point instead of leaving it running. Ctrl-C while waiting
cancels it the same way. Without a deadline the batches are read in the calling thread as
DataFusion always did (Ctrl-C reaches DataFusion's own signal check).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import threading
import time
from typing import Any

import pyarrow as pa
from datafusion import DataFrame

from kalam_engine.errors import ResourceLimitError

__all__ = ["Budget", "StatementTimeout", "collect", "describe_bytes"]


def describe_bytes(nbytes: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= size:
            return f"{nbytes / size:.4g} {unit}"
    return f"{nbytes} bytes"


class Budget:
    """Bytes one statement may still make outside DataFusion's memory pool (its result, and
    strings built by the checked functions); ``limit`` None is no limit."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.used = 0

    def charge(self, nbytes: int, what: str) -> None:
        """Count ``nbytes`` more, or raise ResourceLimitError (counting nothing) if that goes
        over the limit."""
        if self.limit is not None and self.used + nbytes > self.limit:
            raise ResourceLimitError(
                f"The statement needs more than its memory budget of "
                f"{describe_bytes(self.limit)} ({what})",
                hint="select fewer rows or columns (LIMIT, WHERE), or connect with a larger "
                     "memory_limit")
        self.used += nbytes


class StatementTimeout:
    """The statement's deadline (``time.monotonic()``), from its ``timeout`` in seconds."""

    __slots__ = ("deadline", "seconds")

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.deadline = None if seconds is None else time.monotonic() + seconds

    def remaining(self) -> float | None:
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.error()
        return left

    def error(self) -> ResourceLimitError:
        return ResourceLimitError(
            f"The statement ran longer than the statement timeout of {self.seconds:g} s and "
            f"was stopped",
            hint="narrow the query (WHERE, LIMIT), or raise db.statement_timeout "
                 "(None: no limit)")


class _LoopThread:
    """One daemon thread running an asyncio loop, started on first use, stopped at exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="kalam-statements",
                                          daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
                atexit.register(self.stop)
            return self._loop

    def stop(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)


_LOOP = _LoopThread()


async def _next_batch(stream: Any) -> Any:
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return None


def _await_batch(stream: Any, timeout: StatementTimeout) -> Any:
    """The stream's next batch (None at its end), or raise at the deadline, having cancelled
    DataFusion's work for it."""
    future = asyncio.run_coroutine_threadsafe(_next_batch(stream), _LOOP.loop())
    try:
        return future.result(timeout=timeout.remaining())
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise timeout.error() from None
    except BaseException:  # Ctrl-C while waiting: stop DataFusion's work as well
        future.cancel()
        raise


def collect(frame: DataFrame, timeout: StatementTimeout, budget: Budget) -> pa.Table:
    """All rows of ``frame``, within ``timeout`` and ``budget``."""
    timeout.remaining()  # planning may have used it up already
    stream = frame.execute_stream()
    batches: list[pa.RecordBatch] = []
    while True:
        if timeout.deadline is None:
            batch = next(stream.rbs, None)
        else:
            batch = _await_batch(stream.rbs, timeout)
        if batch is None:
            break
        rows = batch.to_pyarrow()
        budget.charge(rows.get_total_buffer_size(), "its result")
        batches.append(rows)
    if batches:
        return pa.Table.from_batches(batches)
    return frame.schema().empty_table()
