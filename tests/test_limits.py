"""No query kills the engine: statement shape limits, memory budget, statement timeout.

The statements that used to crash the process (segfault, allocation abort) run in a
subprocess, so a crash fails the test instead of killing pytest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kalam_engine
from kalam_engine.model.errors import InvalidParameterError, InvalidSqlError, ResourceLimitError
from kalam_engine.sql.limits import DEFAULT_LIMITS, check_statement_shape, measure

ROOT = Path(__file__).resolve().parents[1]

# Each statement runs as role user in a fresh process; the child prints the error class, then
# checks the engine still answers.
_CHILD = textwrap.dedent("""
    import json, sys
    import kalam_engine
    from kalam_engine.model.errors import KalamError
    db = kalam_engine.connect(":memory:", statement_timeout=float(sys.argv[2]))
    out = []
    for sql in json.loads(sys.argv[1]):
        try:
            db.execute(sql, user="mallory")
            out.append("ok")
        except KalamError as exc:
            out.append(type(exc).__name__)
        out.append(db.execute("SELECT 41 + 1 AS x", user="mallory").table.column(0)[0].as_py())
    print(json.dumps(out))
""")


def _run_in_child(statements: list[str], timeout: float = 10.0) -> list:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(statements), str(timeout)],
                          capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, f"child died ({proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_long_operator_chain_is_rejected_not_a_crash():
    # 10,000 terms (20 KB) segfaulted DataFusion's planner.
    assert _run_in_child(["SELECT " + "+".join(["1"] * 10_000)]) == ["InvalidSqlError", 42]


def test_long_union_chain_is_rejected_not_a_crash():
    assert _run_in_child([" UNION ALL ".join(f"SELECT {i}" for i in range(6_000))]) == \
        ["InvalidSqlError", 42]


def test_huge_repeat_is_refused_before_allocating():
    # repeat('x', 2e9) grew the process by gigabytes or aborted it.
    assert _run_in_child(["SELECT length(repeat('x', 2000000000))"]) == \
        ["ResourceLimitError", 42]


def test_nested_parentheses_raise_a_kalam_error():
    db = kalam_engine.connect(":memory:")
    for sql in ("SELECT " + "(" * 50 + "1" + ")" * 50,
                "SELECT " + "abs(" * 45 + "1" + ")" * 45):
        with pytest.raises(InvalidSqlError, match="32 levels"):
            db.execute(sql, user="mallory")
    assert db.execute("SELECT " + "(" * 20 + "1" + ")" * 20, user="mallory").row_count == 1


def test_four_thousand_terms_are_rejected_at_once():
    db = kalam_engine.connect(":memory:")
    with pytest.raises(InvalidSqlError, match="more than 1000 operators") as info:
        db.execute("SELECT " + "+".join(["1"] * 4_000), user="mallory")
    assert info.value.hint
    assert db.execute("SELECT " + "+".join(["1"] * 200), user="mallory").table \
        .column(0)[0].as_py() == 200


def test_unbounded_generate_series_stops_at_the_statement_timeout():
    db = kalam_engine.connect(":memory:", statement_timeout=1)
    with pytest.raises(ResourceLimitError, match="statement timeout of 1 s") as info:
        db.execute("SELECT count(*) FROM generate_series(1, 100000000000)", user="mallory")
    assert "statement_timeout" in info.value.hint
    assert db.execute("SELECT 1 + 1 AS x", user="mallory").table.column(0)[0].as_py() == 2


def test_statement_timeout_works_from_a_worker_thread_and_stops_the_work():
    # A thread cannot receive signals: the deadline itself must cancel DataFusion's work.
    from concurrent.futures import ThreadPoolExecutor

    db = kalam_engine.connect(":memory:")
    db.statement_timeout = 0.5
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(db.execute, "SELECT sum(value) FROM generate_series(1, 1000000000000)",
                             "mallory")
        with pytest.raises(ResourceLimitError):
            future.result(timeout=120)
    db.statement_timeout = None
    assert db.statement_timeout is None
    assert db.execute("SELECT 3 AS x", user="mallory").table.column(0)[0].as_py() == 3


def test_memory_limit_bounds_operators_and_results():
    db = kalam_engine.connect(":memory:", memory_limit=8 << 20)
    with pytest.raises(ResourceLimitError, match="memory budget of 8 MiB"):
        db.execute("SELECT array_agg(value) FROM generate_series(1, 10000000)", user="mallory")
    with pytest.raises(ResourceLimitError, match="its result"):
        db.execute("SELECT value FROM generate_series(1, 10000000)", user="mallory")
    assert db.execute("SELECT count(*) AS n FROM generate_series(1, 10000000)",
                      user="mallory").table.column(0)[0].as_py() == 10_000_000


def test_limit_options_are_validated():
    for bad in ({"memory_limit": -1}, {"statement_timeout": 0}, {"statement_timeout": "1"}):
        with pytest.raises(InvalidParameterError):
            kalam_engine.connect(":memory:", **bad)
    db = kalam_engine.connect(":memory:")
    with pytest.raises(InvalidParameterError):
        db.statement_timeout = -5


def test_repeat_keeps_datafusion_results():
    db = kalam_engine.connect(":memory:")
    row = db.execute("SELECT repeat('ab', 3) AS a, repeat(NULL, 2) AS b, repeat('x', -1) AS c",
                     user="mallory").table.to_pylist()[0]
    assert row == {"a": "ababab", "b": None, "c": ""}


def test_strings_and_comments_cannot_hide_or_fake_shape():
    assert measure("SELECT '" + "(" * 100 + "' -- " + "+" * 100).depth == 0
    # Under backslash escapes the string ends later; under SQL escapes the brackets are code.
    assert measure("SELECT 'a\\' " + "(" * 20 + " '").depth == 20
    # Nested block comments: one reading ends the comment early and sees the brackets.
    assert measure("/* /* */ " + "(" * 20 + " */ SELECT 1").depth == 20
    assert measure("SELECT x IN (" + ", ".join(f"-{i}" for i in range(5000)) + ")").terms == 1


_atoms = st.sampled_from(["1", "a", "'s'", "NULL", "$1", "x.y", "-2", "abs(1)"])
_ops = st.sampled_from(["+", " - ", "*", "/", " AND ", " OR ", " = ", " || ", "::INT", " IS "])


@st.composite
def _expressions(draw, depth=0):
    terms = [draw(_atoms)]
    for _ in range(draw(st.integers(0, 6))):
        terms.append(draw(_ops))
        if depth < 4 and draw(st.booleans()):
            terms.append("(" + draw(_expressions(depth + 1)) + ")")
        else:
            terms.append(draw(_atoms))
    return "".join(terms)


@settings(max_examples=200, deadline=None)
@given(_expressions())
def test_measured_terms_bound_the_operators_written(expr):
    # Model: every binary operator (and cast) the generator wrote is counted once.
    written = sum(expr.count(op.strip()) for op in ["+", "*", "/", " AND ", " OR ", "=",
                                                    "||", "::", " IS "])
    shape = measure("SELECT " + expr)
    assert shape.operators >= written - expr.count("-")  # a '-' may be a sign
    assert shape.depth == max((expr[:i].count("(") - expr[:i].count(")")
                               for i in range(len(expr) + 1)), default=0)
    check_statement_shape("SELECT " + expr)  # small shapes pass


def test_fuzz_run_in_subprocess():
    """A seeded run of deep, long and huge statements (bench/fuzz_limits.py runs a larger one):
    no crash, every statement answered or refused with a KalamError."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "bench.fuzz_limits", "--trials", "40",
                           "--seed", "7"], capture_output=True, text=True, env=env,
                          timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["trials"] == 40 and report["failures"] == []


def test_default_limits_are_documented_values():
    assert (DEFAULT_LIMITS.max_depth, DEFAULT_LIMITS.max_terms) == (32, 1000)
    db = kalam_engine.connect(":memory:")
    assert db.statement_timeout == 300.0
