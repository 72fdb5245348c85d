"""What segment checksums cost: SHA-256 over a flushed segment's bytes, and a verified read
(SegmentFiles.read: read bytes, check size and checksum, decode) against pyarrow reading the file
unverified, for segments of 10k and 1M chat messages.

    .venv/bin/python bench/checksum_cost.py [--sizes 10000,1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

import kalam_engine
from bench.storage_figures import chat_messages
from kalam_engine.storage.checksums import segment_checksum


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def measure(rows: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data"
        with kalam_engine.connect(path) as db:
            db.execute("CREATE NAMESPACE app")
            db.execute("CREATE SHARED TABLE app.m (id BIGINT PRIMARY KEY, room TEXT, "
                       "author TEXT, body TEXT, created_at TIMESTAMP)")
            data = chat_messages(rows)
            db.insert_arrow("app.m", data.select(["id", "room", "author", "body", "created_at"]))
            db.execute("STORAGE FLUSH TABLE app.m")
            segment = db.storage.manifest.segments()[0]
            files = db.storage.files
            raw = (path / segment.path).read_bytes()
            mb = len(raw) / 1e6
            hashing = best(lambda: segment_checksum(segment.table_key, segment.scope,
                                                    segment.path, raw), repeat)
            verified = best(lambda: files.read(segment), repeat)
            plain = best(lambda: pq.read_table(path / segment.path, use_threads=False), repeat)
        print(f"{rows:>9} rows  {mb:7.2f} MB  checksum {hashing * 1e3:7.2f} ms "
              f"({hashing * 1e3 / mb:.2f} ms/MB)  verified read {verified * 1e3:7.2f} ms  "
              f"unverified pyarrow read {plain * 1e3:7.2f} ms  "
              f"(+{(verified / plain - 1) * 100:.0f}%)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for rows in (int(s) for s in args.sizes.split(",")):
        measure(rows, args.repeat)


if __name__ == "__main__":
    main()
