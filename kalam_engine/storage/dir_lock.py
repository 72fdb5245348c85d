"""One writing engine per data directory: an exclusive OS lock on ``<data_dir>/kalam.lock``.

``fcntl.flock`` locks belong to an open file description, so a second ``Engine`` in the same
process is refused like one in another process (POSIX ``lockf`` locks are per process and
would let it in). The OS releases the lock when the holder closes it or dies, even by SIGKILL:
there is never a stale lock to clean up by hand. The file is never deleted (deleting a lock
file lets two processes lock two different files); it holds the holder's pid, host and start
time, read only to say who holds the directory.

Read-only engines take no lock: they never change the directory and must not keep a writer out.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from kalam_engine.model.errors import DataDirectoryLockedError

LOCK_FILE = "kalam.lock"


def _holder_text(info: dict) -> str:
    pid = info.get("pid")
    if not isinstance(pid, int):
        return "another process (pid unknown)"
    same_host = info.get("host") == socket.gethostname()
    where = "" if same_host or not info.get("host") else f" on host {info['host']}"
    since = info.get("started_at")
    when = ""
    if isinstance(since, (int, float)):
        when = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(since))
    if pid == os.getpid() and same_host:
        return f"this process (pid {pid}){when}"
    return f"process {pid}{where}{when}"


def read_holder(fd: int) -> dict:
    """What the lock file says about its holder ({} when it says nothing readable)."""
    try:
        raw = os.pread(fd, 4096, 0)
        info = json.loads(raw.decode()) if raw else {}
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


class DirectoryLock:
    """The exclusive lock of one data directory, held from ``acquire`` until ``release``."""

    __slots__ = ("_fd", "directory")

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise DataDirectoryLockedError naming the holder. OSError (the
        directory cannot hold the lock file) is left to the caller."""
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = read_holder(fd)
            os.close(fd)
            raise self._locked_error(info) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started_at": time.time()}).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, record, 0)
        except BaseException:
            os.close(fd)  # closing the only descriptor releases the lock
            raise
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (idempotent). The holder record is cleared first, while held."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)

    def _locked_error(self, info: dict) -> DataDirectoryLockedError:
        holder = _holder_text(info)
        if holder.startswith("this process"):
            hint = ("one Engine per data directory: close the open one first with db.close(), or "
                    "reuse it; a read-only view is connect(path, read_only=True)")
        else:
            hint = ("close the other engine with db.close() or shut its notebook kernel "
                    "down; or open this directory with connect(path, read_only=True) for a "
                    "read-only view; or share it through a server (`kalam serve`)")
        return DataDirectoryLockedError(
            f"Data directory '{self.directory}' is in use by {holder}: only one engine may "
            "write it", hint=hint)
