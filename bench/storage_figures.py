"""Storage figures on this machine: durable single-row INSERTs per second, bulk insert rows per
second (insert_arrow), flush rows per second, and size on disk per million chat messages.

    .venv/bin/python bench/storage_figures.py [--rows 1000000] [--singles 2000]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import pyarrow as pa

import kalam_engine

WORDS = ("hello", "meeting", "tomorrow", "ship", "the", "release", "thanks", "lunch", "bug",
         "fixed", "review", "please", "coffee", "deploy", "great", "idea", "notebook", "data")


def chat_messages(n: int, first_id: int = 1, seed: int = 7) -> pa.Table:
    rng = random.Random(seed)
    bodies = [" ".join(rng.choices(WORDS, k=rng.randint(4, 16))) for _ in range(min(n, 50_000))]
    start_us = 1_714_521_600_000_000
    return pa.table({
        "id": pa.array(range(first_id, first_id + n), pa.int64()),
        "room": pa.array([f"room-{rng.randint(1, 200)}" for _ in range(n)], pa.string()),
        "author": pa.array([f"user{rng.randint(1, 5000)}" for _ in range(n)], pa.string()),
        "body": pa.array([bodies[i % len(bodies)] for i in range(n)], pa.string()),
        "created_at": pa.array([start_us + i * 1_000 for i in range(n)], pa.int64())
        .cast(pa.timestamp("us", tz="UTC")),
    })


def dir_size(path: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in path.rglob(pattern) if p.is_file())


def create(db: kalam_engine.Engine) -> None:
    db.execute("CREATE NAMESPACE chat")
    db.execute("CREATE USER TABLE chat.messages (id BIGINT PRIMARY KEY, room TEXT NOT NULL, "
               "author TEXT NOT NULL, body TEXT, created_at DATETIME)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--singles", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kalam-bench-") as tmp:
        data = Path(tmp) / "data"
        with kalam_engine.connect(data) as db:  # durability='full' (the default)
            create(db)
            started = time.perf_counter()
            for i in range(args.singles):
                db.execute(f"INSERT INTO chat.messages VALUES ({i + 1}, 'room-1', 'alice', "
                           f"'message number {i}', '2024-05-01T12:00:00Z')", user="alice")
            single = args.singles / (time.perf_counter() - started)
            rows = chat_messages(args.rows, first_id=10_000_000)
            started = time.perf_counter()
            db.insert_arrow("chat.messages", rows, user="bob")
            bulk = args.rows / (time.perf_counter() - started)
            hot_log_bytes = dir_size(data, "kalam.sqlite*")
            started = time.perf_counter()
            db.execute("STORAGE FLUSH TABLE chat.messages")
            flush = (args.rows + args.singles) / (time.perf_counter() - started)
            parquet = dir_size(data / "storage" / "chat" / "messages" / "bob", "*.parquet")
            started = time.perf_counter()
            count = db.execute("SELECT COUNT(*) AS n FROM chat.messages", user="bob")
            assert count.to_arrow()["n"][0].as_py() == args.rows
            cold_scan = time.perf_counter() - started
        per_million = 1_000_000 / args.rows
        print(f"single-row durable INSERT statements/s : {single:,.0f}")
        print(f"bulk insert_arrow rows/s              : {bulk:,.0f}")
        print(f"flush rows/s                           : {flush:,.0f}")
        print(f"hot log (SQLite) MB per 1M rows        : "
              f"{hot_log_bytes * per_million / 1e6:,.1f}")
        print(f"Parquet MB per 1M rows                 : {parquet * per_million / 1e6:,.1f}")
        print(f"first COUNT(*) over cold rows (s)      : {cold_scan:.2f}")


if __name__ == "__main__":
    main()
