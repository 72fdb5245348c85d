"""Fuzz the statement limits: seeded deep, long and huge statements run as role user.

    python -m bench.fuzz_limits --trials 2000 --seed 1

Run it as its own process: a crash shows as the process dying (tests/test_limits.py checks the
exit code). Prints one JSON line: trials, answered, refused (by error class), failures (any
non-Kalam exception, or an engine that no longer answers), seconds.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter

import kalam_engine
from kalam_engine.model.errors import KalamError

_ATOMS = ["1", "2.5", "'x'", "NULL", "TRUE", "a", "-a", "abs(a)"]
_OPS = ["+", "-", "*", "/", "%", " AND ", " OR ", " = ", " < ", " || ", " IS NOT ", "::BIGINT"]


def _chain(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(_ATOMS) + rng.choice(_OPS) for _ in range(n)) + "1"


def _statement(rng: random.Random) -> str:
    shape = rng.choice(["nest", "chain", "case", "fn", "union", "literal", "bomb", "mixed",
                        "unary", "in"])
    n = int(10 ** rng.uniform(0.5, 4.2))
    if shape == "nest":
        return "SELECT " + "(" * n + "1" + ")" * n
    if shape == "chain":
        return f"SELECT {_chain(rng, n)} FROM (VALUES (1)) t(a)"
    if shape == "case":
        return "SELECT " + "CASE WHEN a > 0 THEN " * n + "1" + " END" * n + \
            " FROM (VALUES (1)) t(a)"
    if shape == "fn":
        fn = rng.choice(["abs(", "coalesce(", "upper(", "length("])
        return "SELECT " + fn * n + "1" + ")" * n
    if shape == "union":
        return " UNION ALL ".join(f"SELECT {i}" for i in range(n))
    if shape == "literal":
        return "SELECT length('" + "x" * (n * 100) + "')"
    if shape == "bomb":
        fn = rng.choice(["repeat('ab', {})", "length(repeat('x', {}))",
                         "length(repeat(repeat('x', 1000), {}))"])
        return "SELECT " + fn.format(rng.choice([10, 10**6, 10**9, 2 * 10**9, -1]))
    if shape == "unary":
        return "SELECT " + rng.choice(["NOT ", "- ", "~"]) * n + "1"
    if shape == "in":
        return "SELECT 1 IN (" + ", ".join(str(i) for i in range(n)) + ")"
    parts = [f"({_chain(rng, rng.randint(1, 50))})" for _ in range(rng.randint(1, 60))]
    return "SELECT " + rng.choice(["+", " AND ", ", "]).join(parts) + " FROM (VALUES (1)) t(a)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    db = kalam_engine.connect(":memory:", statement_timeout=10)
    refused: Counter[str] = Counter()
    answered, failures = 0, []
    started = time.perf_counter()
    for trial in range(args.trials):
        sql = _statement(rng)
        try:
            db.execute(sql, user="mallory")
            answered += 1
        except KalamError as exc:
            refused[type(exc).__name__] += 1
        except BaseException as exc:  # any other outcome is a finding
            failures.append({"trial": trial, "sql": sql[:200], "error": repr(exc)[:300]})
        try:
            assert db.execute("SELECT 1 AS x", user="mallory").row_count == 1
        except BaseException as exc:
            failures.append({"trial": trial, "sql": sql[:200], "after": repr(exc)[:300]})
    print(json.dumps({"trials": args.trials, "seed": args.seed, "answered": answered,
                      "refused": dict(refused), "failures": failures,
                      "seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
