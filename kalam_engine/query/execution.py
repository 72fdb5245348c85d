"""Run a planned DataFusion query under its statement's limits: a deadline and a memory budget.

The rows come from ``DataFrame.execute_stream()`` batch by batch, and every batch is charged to
the statement's :class:`Budget` before it is kept (DataFusion's memory pool does not see the
result handed to Python).

The batches are read in the calling thread, as DataFusion always did: while it waits,
DataFusion checks Python's signals, so Ctrl-C stops it, and dropping the stream stops the
query's work. A deadline uses the same door in the main thread: a watchdog thread sends
``SIGUSR2`` at the deadline, whose handler raises if that statement is still running; the
stream is dropped and its work stops (measured: no CPU used after the stop). In other threads,
where no signal is delivered, the batches are awaited through DataFusion's async stream on one
private event loop thread: the wait times out, and cancelling it drops DataFusion's future,
which stops the work too. That costs about 0.5 ms a statement more, so it is only the path for
statements with a deadline run outside the main thread (or when ``SIGUSR2`` is taken).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import itertools
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
from datafusion import DataFrame

from kalam_engine.model.errors import ResourceLimitError

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


class _Expired(BaseException):
    """Raised in the main thread by the watchdog's signal (internal; never leaves collect)."""


class _MainThreadWatchdog:
    """Stops the main thread's running statement at its deadline through a signal (see the
    module docstring). One daemon thread, started on first use; a statement arms it with its
    deadline and disarms it when done, so a late signal raises in no other code."""

    SIGNAL = signal.SIGUSR2

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._tokens = itertools.count(1)
        self._running: int | None = None  # the armed statement's token
        self._deadline: float | None = None
        self._fired: int | None = None
        self._wake_at: float | None = None  # when the watchdog wakes next (None: when told)
        self._thread: threading.Thread | None = None
        self._installed: bool | None = None

    def usable(self) -> bool:
        """Whether this thread's statements can be stopped by the watchdog: the main thread,
        with ``SIGUSR2`` free (or already ours)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        if self._installed is None:
            try:
                if signal.getsignal(self.SIGNAL) in (signal.SIG_DFL, None):
                    signal.signal(self.SIGNAL, self._on_signal)
                    self._installed = True
                else:
                    self._installed = False
            except (ValueError, OSError):
                self._installed = False
        return self._installed

    @contextlib.contextmanager
    def armed(self, deadline: float) -> Iterator[None]:
        with self._cond:
            token = next(self._tokens)
            self._running, self._deadline = token, deadline
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="kalam-deadlines",
                                                daemon=True)
                self._thread.start()
            if self._wake_at is None or deadline < self._wake_at:
                self._cond.notify()  # else it wakes in time and finds the new deadline
        try:
            yield
        finally:
            with self._cond:
                self._running = self._deadline = None

    def _on_signal(self, _signum: int, _frame: object) -> None:
        running = self._running
        if running is not None and self._fired == running:
            raise _Expired()

    def _watch(self) -> None:
        with self._cond:
            while True:
                if self._deadline is None:
                    self._wake_at = None
                    self._cond.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._wake_at = self._deadline
                    self._cond.wait(left)
                    continue
                self._fired, self._deadline = self._running, None
                signal.pthread_kill(threading.main_thread().ident or 0, self.SIGNAL)


_WATCHDOG = _MainThreadWatchdog()


def _gather(frame: DataFrame, budget: Budget) -> pa.Table:
    """Every batch of ``frame``, read in this thread and charged to ``budget``."""
    stream = frame.execute_stream()
    try:
        batches = []
        for batch in stream:
            rows = batch.to_pyarrow()
            budget.charge(rows.get_total_buffer_size(), "its result")
            batches.append(rows)
    finally:
        del stream  # not kept alive by a traceback: dropping it stops DataFusion's work
    if batches:
        return pa.Table.from_batches(batches)
    return frame.schema().empty_table()


def collect(frame: DataFrame, timeout: StatementTimeout, budget: Budget) -> pa.Table:
    """All rows of ``frame``, within ``timeout`` and ``budget``."""
    timeout.remaining()  # planning may have used it up already
    if timeout.deadline is None:
        return _gather(frame, budget)
    if _WATCHDOG.usable():
        try:
            with _WATCHDOG.armed(timeout.deadline):
                return _gather(frame, budget)
        except _Expired:
            raise timeout.error() from None
    stream = frame.execute_stream()
    batches: list[pa.RecordBatch] = []
    while True:
        batch = _await_batch(stream.rbs, timeout)
        if batch is None:
            break
        rows = batch.to_pyarrow()
        budget.charge(rows.get_total_buffer_size(), "its result")
        batches.append(rows)
    if batches:
        return pa.Table.from_batches(batches)
    return frame.schema().empty_table()
