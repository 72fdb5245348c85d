"""STREAM table TTL: the ``_seq`` floor below which rows are expired, and the background job
that removes expired rows from memory and from the hot log."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from kalam_engine.model.ids import ms_to_snowflake_floor

log = logging.getLogger(__name__)
DEFAULT_EVICTION_INTERVAL_S = 5.0


def ttl_seq_floor(ttl_seconds: int, now: float | None = None) -> int:
    """The smallest ``_seq`` of a row still alive at ``now`` (default: the current time)."""
    now_ms = int((time.time() if now is None else now) * 1000)
    return ms_to_snowflake_floor(now_ms - ttl_seconds * 1000)


class StreamEvictor:
    """A daemon thread calling ``evict`` every ``interval`` seconds until stopped."""

    __slots__ = ("_evict", "_interval", "_stop", "_thread")

    def __init__(self, evict: Callable[[], int], interval: float) -> None:
        self._evict = evict
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kalam-stream-eviction",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._evict()
            except Exception:  # keep evicting later; a closed engine stops the thread
                if self._stop.is_set():
                    return
                log.exception("stream eviction failed")
