"""Fuzz the front end with texts built from bypass pieces: comment wrappers (nested, unclosed),
quoting, unicode look-alikes, brackets, statement separators, and DataFusion statements that
write files or change a session. Run as role user, every text either runs as a query or fails
with a KalamError; no file appears outside the data directory, alice's rows stay hers and
unchanged, and the pooled sessions stay as fresh ones.

``KALAM_FUZZ_EXAMPLES`` sets the number of texts (CI runs a few hundred; the README gives the
figures of a long run).
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kalam_engine
from kalam_engine import KalamError

EXAMPLES = int(os.environ.get("KALAM_FUZZ_EXAMPLES", "300"))

WRAPPERS = ["", "/* {x} */ ", "/* /* */ {x} */ ", "/*/**/{x}*/", "-- {x}\n", "/* {x}",
            "/* /* {x} */ ", "( ", "((", "\u200b", "\ufeff", "\u00a0", " \t\r\n", "E'{x}' ",
            "$${x}$$ ", "$t${x}$t$ ", "'{x}' ", "\"{x}\" ", "`{x}` "]
WORDS = ["SELECT", "sElEcT", "WITH", "VALUES", "TABLE", "EXPLAIN", "(",
         "S\u0435LECT", "\uff33\uff25\uff2c\uff25\uff23\uff34"]
PREFIXES = ["", "", "EXPLAIN ", "EXPLAIN ANALYZE ", "(", "WITH a AS (SELECT 1) ", "VALUES (1); "]
PAYLOADS = [
    "COPY (SELECT 1) TO '{out}' STORED AS CSV",
    "COPY (SELECT 'forged' AS body) TO '{seg}' STORED AS PARQUET",
    "CREATE EXTERNAL TABLE s STORED AS PARQUET LOCATION '{seg_dir}'",
    "CREATE VIEW app.messages AS SELECT 1 AS id, 'forged' AS body",
    "CREATE DATABASE evil", "CREATE SCHEMA evil",
    "SET datafusion.catalog.default_catalog = 'datafusion'",
    "SET datafusion.execution.batch_size = 1",
    "SELECT 1 INTO evil", "PREPARE p AS SELECT 1",
    "SELECT * FROM '{seg}'", "SELECT body FROM app.messages",
    "SELECT 1", "SELECT 1 AS a", "VALUES (1)", "SELECT count(*) FROM app.messages",
]
SEPARATORS = ["; ", ";", " ;\n", "; -- x\n", " ", ") ", " UNION ALL "]

def _mostly(common: str, others: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.just(common), st.sampled_from(others))


pieces = st.lists(
    st.tuples(_mostly("", WRAPPERS), st.sampled_from(WORDS), _mostly("", PREFIXES),
              st.sampled_from(PAYLOADS), _mostly("; ", SEPARATORS)),
    min_size=1, max_size=4)


Parts = list[tuple[str, str, str, str, str]]


def _text(parts: Parts, fill: dict[str, str]) -> str:
    out = []
    for i, (wrapper, word, prefix, payload, sep) in enumerate(parts):
        out.append(wrapper.format(x=word) if "{x}" in wrapper else wrapper)
        out.append(prefix + payload.format(**fill) + (sep if i < len(parts) - 1 else ""))
    return "".join(out)


def test_fuzzed_texts_never_escape(tmp_path: Path) -> None:
    data, outside = tmp_path / "data", tmp_path / "outside"
    outside.mkdir()
    db = kalam_engine.connect(data)
    try:
        db.execute("CREATE NAMESPACE app")
        db.execute("CREATE USER TABLE app.messages (id BIGINT PRIMARY KEY, body TEXT)")
        db.execute("INSERT INTO app.messages VALUES (1, 'alice secret')", user="alice")
        db.execute("STORAGE FLUSH TABLE app.messages")
        seg_dir = data / "storage" / "app" / "messages" / "alice"
        seg = sorted(seg_dir.glob("*.parquet"))[0]
        fill = {"out": str(outside / "x.csv"), "seg": str(seg), "seg_dir": f"{seg_dir}/"}
        seg_bytes = seg.read_bytes()
        outcomes = {"ran": 0, "refused": 0}

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(pieces)
        def run(parts: Parts) -> None:
            sql = _text(parts, fill)
            try:
                db.execute(sql, user="mallory")
                outcomes["ran"] += 1
            except KalamError as exc:
                assert exc.code
                outcomes["refused"] += 1
            assert not any(outside.iterdir()), sql

        run()
        assert seg.read_bytes() == seg_bytes
        assert db.execute("SELECT id, body FROM app.messages", user="alice").to_arrow() \
            .to_pylist() == [{"id": 1, "body": "alice secret"}]
        assert db.execute("SELECT count(*) AS n FROM app.messages", user="mallory") \
            .to_arrow().to_pylist() == [{"n": 0}]
        print(f"fuzz: {EXAMPLES} texts, {outcomes['ran']} ran as queries, "
              f"{outcomes['refused']} refused with a KalamError, 0 escapes")
    finally:
        db.close()
