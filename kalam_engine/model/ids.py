"""Id generators used by DEFAULT expressions and by every write (_seq).

- SNOWFLAKE_ID(): 41-bit milliseconds since 2024-01-01 | 10-bit node | 12-bit sequence, strictly
  increasing within one process.
- UUID_V7(): RFC 9562 version-7 UUID (time-ordered), hyphenated.
- ULID(): 26 characters of Crockford base32 (48-bit ms timestamp + 80 random bits).
"""

from __future__ import annotations

import os
import threading
import time
import uuid

SNOWFLAKE_EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
_NODE_BITS = 10
_SEQ_BITS = 12
_TIME_SHIFT = _NODE_BITS + _SEQ_BITS  # 22
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class SnowflakeGenerator:
    """Strictly increasing 64-bit ids; thread-safe; hands out ranges for bulk writes."""

    __slots__ = ("_last", "_lock", "_node")

    def __init__(self, node_id: int = 0) -> None:
        self._node = (node_id & ((1 << _NODE_BITS) - 1)) << _SEQ_BITS
        self._last = 0
        self._lock = threading.Lock()

    def observe(self, seen: int) -> None:
        """Never hand out an id at or below ``seen`` (used after reopening a database)."""
        with self._lock:
            self._last = max(self._last, seen)

    def next_range(self, count: int) -> int:
        """Reserve ``count`` consecutive ids and return the first one."""
        with self._lock:
            now = (int(time.time() * 1000) - SNOWFLAKE_EPOCH_MS) << _TIME_SHIFT | self._node
            first = max(now, self._last + 1)
            self._last = first + count - 1
            return first

    def next_id(self) -> int:
        return self.next_range(1)


def snowflake_to_ms(seq: int) -> int:
    """Unix milliseconds encoded in a snowflake id."""
    return (seq >> _TIME_SHIFT) + SNOWFLAKE_EPOCH_MS


def ms_to_snowflake_floor(unix_ms: int) -> int:
    """The smallest snowflake id issued at or after ``unix_ms``."""
    return max(0, unix_ms - SNOWFLAKE_EPOCH_MS) << _TIME_SHIFT


def uuid_v7() -> str:
    ms = int(time.time() * 1000)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b
    return str(uuid.UUID(int=value))


def ulid() -> str:
    ms = int(time.time() * 1000) & ((1 << 48) - 1)
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))
