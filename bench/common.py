"""Shared pieces of the benchmarks: configuration, timing, result rows, fixtures, profiling.

Every ``bench/qNN_*.py`` module exposes

- ``QUESTION``: one line saying what it measures,
- ``ROWS``: the keys of the rows it always produces (also in ``--tiny`` mode),
- ``run(cfg: Config) -> list[Row]``.

Timing uses ``time.perf_counter_ns`` with warm-up calls first. Latencies are reported as p50
(and p99 where it matters); throughputs as the median over repeats.
"""

from __future__ import annotations

import contextlib
import cProfile
import gc
import importlib
import io
import pstats
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

RESULTS_DIR = Path(__file__).resolve().parent / "results"
NS = "bench"


# --- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """How big and how careful a run is. ``tiny`` runs every step once at a tiny size."""

    tiny: bool = False
    profile: bool = False  # also write a cProfile report of each measured operation
    results_dir: Path = RESULTS_DIR

    def size(self, full: int, tiny: int) -> int:
        return tiny if self.tiny else full

    @property
    def warmup(self) -> int:
        return 1 if self.tiny else 20


# --- result rows -----------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table.

    ``ratio`` is always figure / baseline in the figure's own unit: above 1 means "bigger"
    (slower for a latency, faster for a throughput). ``met`` is None when a row has no target
    or could not be measured ("n/a").
    """

    key: str
    label: str
    figure: str
    baseline: str
    ratio: float | None
    target: str
    met: bool | None
    value: float | None = None
    unit: str = ""
    baseline_value: float | None = None
    note: str = ""
    status: str = "ok"  # ok | n/a | error
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def na_row(key: str, label: str, why: str, target: str = "") -> Row:
    """A row that could not be measured in this build (for example a feature not there yet)."""
    return Row(key=key, label=label, figure=f"n/a: {why}", baseline="n/a", ratio=None,
               target=target, met=None, status="n/a", note=why)


def ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return value / base


# --- number formatting -----------------------------------------------------------------------


def fmt_ns(ns: float) -> str:
    """A duration in ns as a short human string (ns, µs, ms or s)."""
    if ns < 0:
        return "-" + fmt_ns(-ns)
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.2f} µs" if ns < 10_000 else f"{ns / 1_000:.1f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:.2f} ms"
    return f"{ns / 1_000_000_000:.2f} s"


def fmt_delta_ns(ns: float) -> str:
    """A signed difference of durations: ``+1.20 ms`` or ``-35 µs``."""
    return fmt_ns(ns) if ns < 0 else "+" + fmt_ns(ns)


def fmt_rate(per_s: float, unit: str) -> str:
    if per_s >= 1_000_000:
        return f"{per_s / 1_000_000:.2f} M {unit}"
    if per_s >= 10_000:
        return f"{per_s / 1_000:.0f} k {unit}"
    return f"{per_s:,.0f} {unit}"


def fmt_bytes(n: float) -> str:
    if abs(n) < 10_000:
        return f"{n:,.0f} B"
    if abs(n) < 10_000_000:
        return f"{n / 1024:,.1f} KiB"
    return f"{n / 1024 / 1024:,.1f} MiB"


# --- timing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """Per-call samples in nanoseconds."""

    samples: tuple[int, ...]

    @property
    def p50(self) -> float:
        return percentile(self.samples, 50)

    @property
    def p99(self) -> float:
        return percentile(self.samples, 99)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples)

    def summary(self) -> str:
        return f"p50 {fmt_ns(self.p50)}, p99 {fmt_ns(self.p99)}, n={len(self.samples)}"


def percentile(samples: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile by linear interpolation between closest ranks."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    if len(ordered) == 1:
        return float(ordered[0])
    pos = (len(ordered) - 1) * pct / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic GC inside a timed loop (it would land on random samples)."""
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def sample(fn: Callable[[], object], *, n: int, warmup: int, max_seconds: float = 30.0,
           min_samples: int = 1) -> Timing:
    """Time ``fn()`` call by call: ``warmup`` untimed calls, then up to ``n`` timed ones (fewer if
    ``max_seconds`` runs out, but at least ``min_samples``)."""
    for _ in range(warmup):
        fn()
    out: list[int] = []
    clock = time.perf_counter_ns
    deadline = clock() + int(max_seconds * 1e9)
    with gc_paused():
        for i in range(n):
            t0 = clock()
            fn()
            t1 = clock()
            out.append(t1 - t0)
            if t1 > deadline and i + 1 >= min_samples:
                break
    return Timing(tuple(out))


def timer_overhead_ns(n: int = 20_000) -> float:
    """The median cost of one empty ``perf_counter_ns`` pair (subtracted from sub-µs samples)."""
    clock = time.perf_counter_ns
    out = []
    for _ in range(n):
        t0 = clock()
        t1 = clock()
        out.append(t1 - t0)
    return percentile(out, 50)


def time_once_ns(fn: Callable[[], object]) -> int:
    with gc_paused():
        t0 = time.perf_counter_ns()
        fn()
        return time.perf_counter_ns() - t0


# --- fixtures --------------------------------------------------------------------------------


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"kalam-bench-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def engine(path: Path | str = ":memory:", **options: Any) -> Iterator[Any]:
    """A Kalam engine with the ``bench`` namespace, closed afterwards."""
    import kalam_engine

    db = kalam_engine.connect(path, **options)
    try:
        db.execute(f"CREATE NAMESPACE {NS}")
        yield db
    finally:
        db.close()


TABLE_COLUMNS = "id BIGINT PRIMARY KEY, cat TEXT, amount DOUBLE, note TEXT"
CATEGORIES = 10


def create_table(db: Any, name: str, kind: str = "USER") -> str:
    """Create ``bench.<name>`` with the benchmark's four columns; return its full name."""
    full = f"{NS}.{name}"
    db.execute(f"CREATE {kind} TABLE {full} ({TABLE_COLUMNS})")
    return full


def make_rows(n: int, start: int = 0) -> pa.Table:
    """``n`` rows with ids ``start..start+n-1``: a category out of 10, an amount and a note."""
    ids = pa.array(range(start, start + n), pa.int64())
    cats = pa.array([f"c{i % CATEGORIES}" for i in range(start, start + n)], pa.string())
    amounts = pa.array([(i * 37 % 1000) / 10 for i in range(start, start + n)], pa.float64())
    notes = pa.array([f"note {i}" for i in range(start, start + n)], pa.string())
    return pa.table({"id": ids, "cat": cats, "amount": amounts, "note": notes})


def sqlite_connect(path: Path) -> Any:
    """A stdlib sqlite3 connection with the engine's own durability: WAL, synchronous=FULL."""
    import sqlite3

    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, cat TEXT, amount REAL, note TEXT)")
    return conn


def datafusion_ctx(tables: dict[str, pa.Table]) -> Any:
    """A plain DataFusion SessionContext with each Arrow table registered as an in-memory table
    (what someone using DataFusion directly would write)."""
    from datafusion import SessionContext

    ctx = SessionContext()
    for name, table in tables.items():
        ctx.register_record_batches(name, [table.to_batches()])
    return ctx


def datafusion_dataset_ctx(tables: dict[str, pa.Table]) -> Any:
    """Like :func:`datafusion_ctx`, but each table is served as a ``pyarrow.dataset`` (the way
    the engine's providers hand rows to DataFusion)."""
    import pyarrow.dataset as pds
    from datafusion import SessionContext

    ctx = SessionContext()
    for name, table in tables.items():
        ctx.register_dataset(name, pds.dataset(table))
    return ctx


def jupyter_layer_missing() -> str | None:
    """None when ``kalam_jupyter`` (magics and accessor) imports, else why not."""
    try:
        for module in ("kalam_jupyter.accessor", "kalam_jupyter.magics"):
            importlib.import_module(module)
    except Exception as exc:  # the notebook layer is optional for the engine's benchmarks
        return f"kalam_jupyter not importable ({type(exc).__name__}: {exc})"
    return None


# --- profiling -------------------------------------------------------------------------------


def profile(cfg: Config, label: str, fn: Callable[[], object], calls: int,
            top: int = 25) -> Path | None:
    """With ``cfg.profile``: run ``fn`` ``calls`` times under cProfile and write the top
    functions (by cumulative and by own time) to ``results/profile-<label>.txt``."""
    if not cfg.profile:
        return None
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    buf.write(f"# {label}: {calls} call(s)\n\n## by cumulative time\n")
    stats.sort_stats("cumulative").print_stats(top)
    buf.write("\n## by own time\n")
    stats.sort_stats("tottime").print_stats(top)
    cfg.results_dir.mkdir(parents=True, exist_ok=True)
    out = cfg.results_dir / f"profile-{label}.txt"
    out.write_text(buf.getvalue())
    return out


# --- query fixtures --------------------------------------------------------------------------


def load_users(db: Any, table: str, users: int, rows_per_user: int,
               big_user: tuple[str, int] | None = None) -> None:
    """Give users ``u0..u{users-1}`` ``rows_per_user`` rows each (one bulk insert per user);
    ``big_user`` = (name, rows) gives one of them a different number of rows."""
    import pyarrow.compute as pc

    template = make_rows(rows_per_user)
    for i in range(users):
        name = f"u{i}"
        if big_user is not None and big_user[0] == name:
            rows = make_rows(big_user[1], start=i * 1_000_000)
        else:  # the template with this user's own ids (building rows in Python is slow)
            ids = pc.add(template["id"], pa.scalar(i * 1_000_000, pa.int64()))
            rows = template.set_column(0, "id", ids)
        db.insert_arrow(table, rows, user=name)


def visible_rows(db: Any, table: str, user: str) -> pa.Table:
    """The exact Arrow table the engine serves ``user`` for ``table`` (what a raw DataFusion or
    DuckDB baseline is given, so that both sides query the same data)."""
    from kalam_engine import TableId

    ns, _, name = table.partition(".")
    return db.cache.get_provider(TableId(ns, name)).visible_rows(db.context(user))


def compare_latency(cfg: Config, ours: Callable[[], object], theirs: Callable[[], object], *,
                    n: int, max_seconds: float = 20.0) -> tuple[Timing, Timing]:
    """Time two ways of answering the same question, interleaved in blocks so that neither gets
    a quieter stretch of the machine. Returns (ours, theirs)."""
    a: list[int] = []
    b: list[int] = []
    block = max(1, n // 10)
    for _ in range(cfg.warmup):
        ours()
        theirs()
    per = max_seconds / 2 / 10
    for _ in range(10 if not cfg.tiny else 1):
        a.extend(sample(ours, n=block, warmup=0, max_seconds=per).samples)
        b.extend(sample(theirs, n=block, warmup=0, max_seconds=per).samples)
    return Timing(tuple(a)), Timing(tuple(b))


def duckdb_arrow(con: Any, sql: str) -> pa.Table:
    """Run ``sql`` on a DuckDB connection and fetch a pyarrow.Table (DuckDB 1.x and 2.x)."""
    res = con.execute(sql)
    fetch = getattr(res, "to_arrow_table", None) or res.fetch_arrow_table
    return fetch()
