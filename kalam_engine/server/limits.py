"""KalamDB's request limits: token buckets per key and the per-IP guard with escalating bans.

- ``KeyedBuckets``: one token bucket (capacity = rate, refilled at rate per second) per key,
  e.g. per client IP for authentication attempts or per user for SQL requests.
- ``IpGuard``: requests per IP before authentication. Loopback addresses are exempt (as in
  KalamDB). Each refused request is a violation; from the 10th on the IP is banned for
  ``ban_seconds`` x (violations // 10), at most 6x.

State lives in memory; idle keys are dropped so a flood of addresses cannot grow it without
bound."""

from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import dataclass, field

MAX_KEYS = 100_000
IDLE_SECONDS = 600.0
BAN_AFTER_VIOLATIONS = 10
MAX_BAN_MULTIPLIER = 6


@dataclass(slots=True)
class TokenBucket:
    rate: float
    tokens: float
    stamp: float = field(default_factory=time.monotonic)

    def take(self, now: float) -> bool:
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class KeyedBuckets:
    """A token bucket per key; ``rate`` 0 allows everything."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.buckets: dict[str, TokenBucket] = {}
        self.lock = threading.Lock()  # SQL requests are checked on worker threads

    def allow(self, key: str) -> bool:
        if self.rate <= 0:
            return True
        with self.lock:
            now = time.monotonic()
            bucket = self.buckets.get(key)
            if bucket is None:
                _prune(self.buckets, now)
                bucket = self.buckets[key] = TokenBucket(float(self.rate), float(self.rate),
                                                         now)
            return bucket.take(now)


def _prune(entries: dict[str, TokenBucket], now: float) -> None:
    if len(entries) < MAX_KEYS:
        return
    for key in [k for k, b in entries.items() if now - b.stamp > IDLE_SECONDS]:
        del entries[key]
    if len(entries) >= MAX_KEYS:  # all busy: forget the oldest half rather than grow
        for key in sorted(entries, key=lambda k: entries[k].stamp)[:MAX_KEYS // 2]:
            del entries[key]


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class IpGuard:
    """Requests per IP before authentication: None (go on), or (status, body, retry-after)."""

    def __init__(self, rate: int, ban_seconds: float) -> None:
        self.buckets = KeyedBuckets(rate)
        self.ban_seconds = ban_seconds
        self.violations: dict[str, int] = {}
        self.banned_until: dict[str, float] = {}

    def check(self, host: str) -> tuple[int, dict[str, object], int] | None:
        if self.buckets.rate <= 0 or is_loopback(host):
            return None
        now = time.monotonic()
        until = self.banned_until.get(host)
        if until is not None and now < until:
            wait = max(1, round(until - now))
            return 429, {"error": "IP_BANNED", "message": "Your IP has been temporarily "
                         "banned due to excessive requests; wait before retrying",
                         "retry_after_seconds": wait}, wait
        if self.buckets.allow(host):
            return None
        count = self.violations.get(host, 0) + 1
        if len(self.violations) >= MAX_KEYS:
            self.violations.clear()
        self.violations[host] = count
        if count >= BAN_AFTER_VIOLATIONS:
            multiplier = min(count // BAN_AFTER_VIOLATIONS, MAX_BAN_MULTIPLIER)
            if len(self.banned_until) >= MAX_KEYS:
                self.banned_until = {h: t for h, t in self.banned_until.items() if t > now}
            self.banned_until[host] = now + self.ban_seconds * multiplier
        return 429, {"error": "RATE_LIMIT_EXCEEDED", "message": "Too many requests from your "
                     "IP address; retry after a second", "retry_after_seconds": 1}, 1
