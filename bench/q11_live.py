"""Q11: live query change latency, from INSERT returning to the event delivered.

A reader thread waits in ``Subscription.next_event()``; the main thread runs one single-row
``INSERT`` through ``db.execute`` (real data directory, default durability) and then waits for
the reader to get the event. Latency = delivery time - the time ``execute`` returned (0 when
the event was already delivered before it returned: events are queued under the write lock,
before the statement returns). Three set-ups: 1 subscription; 1,000 subscriptions with the
same query on a SHARED table (events computed once per distinct query, then fanned out); and
1,000 users each subscribed to their own partition of a USER table (a write only concerns the
writer's subscriptions). KalamDB's published figure is 51 ms over WebSocket (not the same
measurement: it includes the network and JSON; ours is in-process).
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from bench.common import Config, Row, Timing, create_table, engine, fmt_ns, temp_dir

QUESTION = "live query change latency: INSERT returned -> event delivered (p50/p99)"
ROWS = ("q11.latency_1_sub", "q11.latency_1000_shared", "q11.latency_1000_users")
KALAMDB_MS = 51.0


def _measure(db: Any, table: str, probe: Any, n: int, warmup: int,
             user: str | None) -> tuple[Timing, Timing]:
    """(returned -> delivered, started -> delivered) over ``n`` inserts."""
    delivered: queue.Queue[int] = queue.Queue()

    def read() -> None:
        for event in probe:
            if event.type == "insert":
                delivered.put(time.perf_counter_ns())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    after, total = [], []
    sql = f"INSERT INTO {table} (id, cat, amount, note) VALUES ($1, 'c', 1.0, 'live')"
    for i in range(warmup + n):
        t0 = time.perf_counter_ns()
        db.execute(sql, user=user, params=[i])
        t1 = time.perf_counter_ns()
        got = delivered.get(timeout=60)
        if i >= warmup:
            after.append(max(0, got - t1))
            total.append(got - t0)
    probe.close()
    reader.join(10)
    return Timing(tuple(after)), Timing(tuple(total))


def _row(key: str, label: str, subs: int, a: Timing, b: Timing) -> Row:
    met = a.p99 / 1e6 <= KALAMDB_MS
    return Row(key, label, f"p50 {fmt_ns(a.p50)} / p99 {fmt_ns(a.p99)}",
               f"KalamDB {KALAMDB_MS:.0f} ms (WebSocket)", None, f"p99 <= {KALAMDB_MS:.0f} ms",
               met, value=a.p50, unit="ns",
               note=f"{subs} subscription(s); INSERT start -> delivered p50 {fmt_ns(b.p50)}, "
                    f"p99 {fmt_ns(b.p99)}; {len(a.samples)} inserts",
               extra={"p50_ns": a.p50, "p99_ns": a.p99, "total_p50_ns": b.p50,
                      "total_p99_ns": b.p99, "subscriptions": subs})


def run(cfg: Config) -> list[Row]:
    n = cfg.size(300, 3)
    many = cfg.size(1_000, 3)
    rows = []
    with temp_dir("q11") as d, engine(d / "data") as db:
        table = create_table(db, "one", "SHARED")
        probe = db.subscribe(f"SELECT id, cat FROM {table} WHERE amount > 0")
        a, b = _measure(db, table, probe, n, cfg.warmup, None)
        rows.append(_row("q11.latency_1_sub", "live change latency, 1 subscription", 1, a, b))

        table = create_table(db, "shared", "SHARED")
        query = f"SELECT id, cat FROM {table} WHERE amount > 0"
        others = [db.subscribe(query, max_queue=10**6) for _ in range(many - 1)]
        probe = db.subscribe(query)
        a, b = _measure(db, table, probe, n, cfg.warmup, None)
        rows.append(_row("q11.latency_1000_shared",
                         f"live change latency, {many:,} subscriptions (SHARED, one query)",
                         many, a, b))
        for sub in others:
            sub.close()

        table = create_table(db, "per_user", "USER")
        query = f"SELECT id, cat FROM {table} WHERE amount > 0"
        others = [db.subscribe(query, user=f"u{i}") for i in range(many - 1)]
        probe = db.subscribe(query, user="writer")
        a, b = _measure(db, table, probe, n, cfg.warmup, "writer")
        rows.append(_row("q11.latency_1000_users",
                         f"live change latency, {many:,} subscriptions (USER, one per user)",
                         many, a, b))
        for sub in others:
            sub.close()
    return rows
