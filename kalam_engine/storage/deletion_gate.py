"""Segment files a backup may still copy are not deleted under it.

A backup copies the segment files its snapshot of the manifest names. Segments are immutable
once named, but compaction and DROP TABLE delete the files they replace after their catalog
commit. While a backup holds the gate, those deletions are queued instead (their
``pending_files`` records stay, so a crash meanwhile leaves them to the next open's recovery)
and run when the last backup lets go.

Why this is enough: a deleter commits its catalog change first and asks the gate second; a
backup holds the gate first and takes its snapshot second. Either the deleter asked before the
backup held the gate (then its commit precedes the snapshot, which does not name the files), or
it asked after (then its deletion waits).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)


class DeletionGate:
    __slots__ = ("_holders", "_lock", "_queued")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._queued: list[Callable[[], None]] = []

    def run_or_defer(self, delete: Callable[[], None]) -> bool:
        """Run ``delete`` now (True), or queue it while a backup holds the gate (False)."""
        with self._lock:
            if self._holders:
                self._queued.append(delete)
                return False
        delete()
        return True

    @property
    def queued(self) -> int:
        return len(self._queued)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Defer deletions for the duration of the block (nested holders are counted)."""
        with self._lock:
            self._holders += 1
        try:
            yield
        finally:
            with self._lock:
                self._holders -= 1
                run = self._queued if self._holders == 0 else []
                if not self._holders:
                    self._queued = []
            for delete in run:
                try:
                    delete()
                except Exception:  # the pending_files record stays: the next open deletes it
                    log.exception("a deferred segment deletion failed")
