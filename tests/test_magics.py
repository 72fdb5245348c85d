"""The %kalam / %%kalam magics in a real IPython shell, on a real in-memory engine."""

from __future__ import annotations

import _thread
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.completer import provisionalcompleter
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from kalam_jupyter.display import KalamFrame
from kalam_jupyter.magics import KalamMagics, _Interrupted, run_with_progress


@pytest.fixture
def magics(shell: InteractiveShell) -> Iterator[KalamMagics]:
    m: KalamMagics = shell.magics_manager.registry["KalamMagics"]
    m.connect(":memory:")
    m.settings.display_limit = 10
    m.settings.default_user = None
    yield m
    m.close()


class Run:
    """One cell's outcome: the value, stdout, stderr and rich outputs."""

    def __init__(self, shell: InteractiveShell, code: str) -> None:
        with capture_output() as cap:
            self.result = shell.run_cell(code, store_history=False)
        self.value = self.result.result
        self.stdout = cap.stdout
        self.stderr = cap.stderr
        self.outputs = cap.outputs
        self.error = self.result.error_in_exec or self.result.error_before_exec

    @property
    def text(self) -> str:
        shown = "\n".join(o.data.get("text/plain", "") for o in self.outputs)
        return "\n".join([self.stdout, self.stderr, shown])


def run(shell: InteractiveShell, code: str) -> Run:
    return Run(shell, code)


SETUP = """%%kalam
CREATE NAMESPACE app;
CREATE USER TABLE app.messages (
    id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(),
    body TEXT NOT NULL,
    n BIGINT
);
CREATE SHARED TABLE app.cfg (name TEXT PRIMARY KEY, value TEXT) WITH (ACCESS_LEVEL='PUBLIC');
"""


def setup_tables(shell: InteractiveShell) -> Run:
    r = run(shell, SETUP)
    assert r.error is None, r.text
    return r


def test_extension_registers_magics_config_and_settings(
    shell: InteractiveShell, magics: KalamMagics
) -> None:
    assert "kalam" in shell.magics_manager.magics["line"]
    assert "kalam" in shell.magics_manager.magics["cell"]
    assert magics.settings in shell.configurables
    run(shell, "%config Kalam.display_limit = 3")
    assert magics.settings.display_limit == 3
    doc = shell.magics_manager.magics["line"]["kalam"].__doc__ or ""
    assert "--user" in doc and "--connect" in doc
    help_run = run(shell, "%kalam --help")
    assert help_run.error is None and "--user" in help_run.stdout
    bad = run(shell, "%kalam --bogus SELECT 1")
    assert bad.error is not None and "unknown option --bogus" in bad.stderr


def test_multi_statement_cell_shows_one_line_per_statement(
    shell: InteractiveShell, magics: KalamMagics
) -> None:
    r = setup_tables(shell)
    lines = [o.data["text/plain"] for o in r.outputs]
    assert len(lines) == 3, lines
    assert all("as root" in line and " ms" in line for line in lines), lines
    assert any("app.messages" in line for line in lines)
    r = run(shell, "%kalam -u alice INSERT INTO app.messages (body, n) VALUES ('a', 1), ('b', 2)")
    assert r.error is None, r.text
    line = r.outputs[-1].data["text/plain"]
    assert "2 row" in line and "as alice" in line, line


def test_cell_returns_last_result_as_dataframe(
    shell: InteractiveShell, magics: KalamMagics
) -> None:
    setup_tables(shell)
    r = run(
        shell,
        "%%kalam --user alice\n"
        "INSERT INTO app.messages (body, n) VALUES ('x', 1), ('y', 2), ('z', 3);\n"
        "SELECT body, n FROM app.messages ORDER BY n",
    )
    assert r.error is None, r.text
    df = r.value
    assert isinstance(df, pd.DataFrame) and isinstance(df, KalamFrame)
    assert df["body"].tolist() == ["x", "y", "z"]
    derived = df[df.n > 1]
    assert type(derived) is pd.DataFrame  # derived frames are ordinary DataFrames
    assert len(derived) == 2


def test_users_see_only_their_own_rows(shell: InteractiveShell, magics: KalamMagics) -> None:
    setup_tables(shell)
    run(shell, "%kalam --user alice INSERT INTO app.messages (body) VALUES ('alice secret')")
    run(shell, "%kalam --user bob INSERT INTO app.messages (body) VALUES ('bob note')")
    bob = run(shell, "%kalam --user bob SELECT body FROM app.messages").value
    alice = run(shell, "%kalam -u alice SELECT body FROM app.messages").value
    assert bob["body"].tolist() == ["bob note"]
    assert alice["body"].tolist() == ["alice secret"]
    magics.settings.default_user = "bob"
    assert run(shell, "%kalam SELECT body FROM app.messages").value["body"].tolist() == [
        "bob note"
    ]


def test_assignment_forms(shell: InteractiveShell, magics: KalamMagics) -> None:
    setup_tables(shell)
    run(shell, "%kalam --user alice INSERT INTO app.messages (body, n) VALUES ('q', 7)")
    r = run(shell, "x = %kalam --user alice SELECT body, n FROM app.messages")
    assert r.error is None, r.text
    assert shell.user_ns["x"]["n"].tolist() == [7]
    r = run(shell, "%%kalam --user alice -o out\nSELECT body FROM app.messages")
    assert r.value is None and shell.user_ns["out"]["body"].tolist() == ["q"]
    assert "Stored 1 row(s)" in r.text
    r = run(shell, "%kalam --user alice got << SELECT n FROM app.messages")
    assert r.error is None, r.text
    assert shell.user_ns["got"]["n"].tolist() == [7]
    r = run(shell, "%%kalam --user alice cell_var <<\nSELECT body FROM app.messages")
    assert shell.user_ns["cell_var"]["body"].tolist() == ["q"]


HOSTILE = [
    "O'Brien",
    "'; DROP TABLE app.messages; --",
    "{braces} and {{double}}",
    "$1",
    'he said "hi"',
    ":body",
    "line\nbreak\t\\backslash",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_named_parameters_bind_hostile_values(
    shell: InteractiveShell, magics: KalamMagics, value: str
) -> None:
    setup_tables(shell)
    shell.user_ns["v"] = value
    shell.user_ns["k"] = 41
    r = run(
        shell,
        "%%kalam --user alice\n"
        "INSERT INTO app.messages (body, n) VALUES (:v, :k);\n"
        "SELECT body, n FROM app.messages WHERE body = :v AND n = :k",
    )
    assert r.error is None, r.text
    assert r.value["body"].tolist() == [value]
    assert r.value["n"].tolist() == [41]
    tables = run(shell, "%kalam SHOW TABLES").value
    assert "messages" in " ".join(map(str, tables.to_numpy().ravel()))


def test_colon_inside_literals_and_casts_is_not_a_parameter(
    shell: InteractiveShell, magics: KalamMagics
) -> None:
    shell.user_ns.pop("nope", None)
    r = run(shell, "%kalam SELECT ':nope' AS s, CAST('5' AS BIGINT)::BIGINT AS n")
    assert r.error is None, r.text
    assert r.value["s"].tolist() == [":nope"]
    assert r.value["n"].tolist() == [5]


def test_unbound_variable_is_a_short_error(shell: InteractiveShell, magics: KalamMagics) -> None:
    shell.user_ns.pop("missing_var", None)
    r = run(shell, "%kalam SELECT :missing_var")
    assert r.error is not None
    assert "missing_var" in r.stderr
    assert "Traceback" not in r.text


def test_unknown_table_error_has_code_and_hint_without_traceback(
    shell: InteractiveShell, magics: KalamMagics
) -> None:
    setup_tables(shell)
    r = run(shell, "%kalam SELECT * FROM app.mesages")
    assert r.error is not None
    assert "TABLE_NOT_FOUND" in r.stderr
    assert "app.messages" in r.stderr  # the did-you-mean hint
    assert "Traceback" not in r.text
    assert len([ln for ln in r.stderr.strip().splitlines() if ln.strip()]) <= 2, r.stderr
    bad = run(shell, "%kalam SELEC 1")
    assert bad.error is not None and "Traceback" not in bad.text
    assert "INVALID_SQL" in bad.stderr or "SQL" in bad.stderr, bad.stderr


def test_failing_statement_reports_its_position(
    shell: InteractiveShell, magics: KalamMagics
) -> None:
    setup_tables(shell)
    r = run(
        shell,
        "%%kalam --user alice\nINSERT INTO app.messages (body) VALUES ('ok');\n"
        "SELECT * FROM app.nothing_here",
    )
    assert "statement 2 of 2" in r.stderr
    assert "Traceback" not in r.text


def test_html_shows_limit_total_types_and_escapes(
    shell: InteractiveShell, magics: KalamMagics
) -> None:
    setup_tables(shell)
    rows = ", ".join(f"('<b>row {i}</b>', {i})" for i in range(25))
    run(shell, f"%kalam --user alice INSERT INTO app.messages (body, n) VALUES {rows}")
    run(shell, "%config Kalam.display_limit = 4")
    df = run(shell, "%kalam --user alice SELECT body, n FROM app.messages ORDER BY n").value
    assert len(df) == 25  # the frame keeps every row; only the view is limited
    page = df._repr_html_()
    assert page.count("<tr>") == 1 + 4
    assert "25 rows" in page
    assert "&lt;b&gt;row 0&lt;/b&gt;" in page and "<b>row 0</b>" not in page
    assert "int64" in page and ("string" in page or "utf8" in page)
    assert "as alice" in page


def test_connect_and_data_dir(
    shell: InteractiveShell, magics: KalamMagics, tmp_path: Path, monkeypatch: Any
) -> None:
    target = tmp_path / "db1"
    r = run(shell, f"%kalam --connect {target}")
    assert r.error is None, r.text
    assert "Connected" in r.text
    assert str(target) in run(shell, "%kalam").text
    run(shell, "%kalam CREATE NAMESPACE disk")
    assert target.is_dir() and any(target.iterdir())
    magics.close()
    magics._explicit_path = None
    other = tmp_path / "configured"
    run(shell, f"%config Kalam.data_dir = {str(other)!r}")
    run(shell, "%kalam CREATE NAMESPACE viaconfig")
    assert other.is_dir() and any(other.iterdir())
    magics.close()
    monkeypatch.setenv("KALAM_DATA_DIR", str(tmp_path / "fromenv"))
    from kalam_jupyter.magics import Kalam

    assert Kalam().data_dir == str(tmp_path / "fromenv")
    monkeypatch.delenv("KALAM_DATA_DIR")
    assert Kalam().data_dir.endswith(".kalam")


def _complete(shell: InteractiveShell, text: str) -> list[str]:
    with provisionalcompleter():
        return [c.text for c in shell.Completer.completions(text, len(text))]


def test_completion_of_namespaces_tables_and_columns(
    shell: InteractiveShell, magics: KalamMagics
) -> None:
    setup_tables(shell)
    assert "app.messages" in _complete(shell, "%%kalam\nSELECT * FROM app.me")
    tables = _complete(shell, "%%kalam --user bob\nSELECT *\nFROM ap")
    assert "app." in tables and "app.cfg" in tables
    cols = _complete(shell, "%%kalam\nSELECT app.messages.bo")
    assert cols == ["app.messages.body"]
    aliased = _complete(shell, "%%kalam\nSELECT m.")
    assert aliased == []  # no alias known yet
    text = "%%kalam\nSELECT m.b\nFROM app.messages m"
    cursor = text.index("m.b") + 3
    with provisionalcompleter():
        mid = [c.text for c in shell.Completer.completions(text, cursor)]
    assert mid == ["m.body"]  # the alias is defined after the cursor
    line = _complete(shell, "%kalam SELECT * FROM app.c")
    assert "app.cfg" in line
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # the legacy API still works
        _text, matches = shell.complete("", "%kalam SELECT * FROM app.m", 26)
    assert "app.messages" in matches
    # outside kalam cells Python completion is untouched
    assert "print" in _complete(shell, "pri")


def test_run_with_progress_shows_elapsed_time() -> None:
    with capture_output() as cap:
        value = run_with_progress(lambda: time.sleep(1.3) or 42, progress_after=0.2)
    assert value == 42
    shown = " ".join(o.data.get("text/plain", "") for o in cap.outputs) + cap.stdout
    assert "elapsed" in shown


def test_interrupt_stops_waiting_promptly() -> None:
    release = threading.Event()
    timer = threading.Timer(0.3, _thread.interrupt_main)
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(_Interrupted), capture_output():
            run_with_progress(lambda: release.wait(10), progress_after=5)
    finally:
        release.set()
        timer.cancel()
    assert time.monotonic() - start < 3


def test_errors_raised_by_the_statement_reach_the_cell() -> None:
    def boom() -> None:
        raise ValueError("from the worker")

    with pytest.raises(ValueError, match="from the worker"):
        run_with_progress(boom)


def test_current_engine_is_the_magics_engine(shell: InteractiveShell, magics: KalamMagics) -> None:
    from kalam_jupyter import current_engine

    assert current_engine() is magics.engine()
    setup_tables(shell)
    frame = pd.DataFrame({"body": ["one", "two"], "n": [1, 2]})
    assert frame.kalam.insert("app.messages", user="carol") == 2
    got = run(shell, "%kalam --user carol SELECT count(*) AS c FROM app.messages").value
    assert int(got["c"].iloc[0]) == 2


def test_binding_never_splices_values_into_the_text() -> None:
    from kalam_jupyter.sqltext import bind_parameters, split_statements

    ns = {"a": "x'; DROP TABLE t; --", "b": 2}
    bound = bind_parameters(
        "SELECT ':a', \"col:a\", x::INT, :a, :b, :a -- :zzz\nFROM t /* :zzz */ WHERE y = $$:a$$",
        ns,
    )
    assert bound.sql == (
        "SELECT ':a', \"col:a\", x::INT, $1, $2, $1 -- :zzz\nFROM t /* :zzz */ WHERE y = $$:a$$"
    )
    assert bound.params == [ns["a"], 2]
    assert split_statements("SELECT ';'; -- c;\nSELECT 2;  ;EXECUTE AS USER 'u' (SELECT 1; )") == [
        "SELECT ';'",
        "-- c;\nSELECT 2",
        "EXECUTE AS USER 'u' (SELECT 1; )",
    ]


SLOW = "SELECT sum(length(CAST(value AS VARCHAR))) AS s FROM generate_series(1, {n})"


def _slow_query(db: Any, seconds: float) -> str:
    """A CPU-bound query that takes about ``seconds`` here (calibrated on this machine)."""
    n = 5_000_000
    start = time.monotonic()
    db.execute(SLOW.format(n=n))
    took = max(time.monotonic() - start, 0.01)
    return SLOW.format(n=int(n * seconds / took))


def test_interrupting_a_long_query_reports_and_keeps_the_engine_usable(
    shell: InteractiveShell, magics: KalamMagics
) -> None:
    setup_tables(shell)
    slow = _slow_query(magics.engine(), 4.0)
    magics.settings.progress_after = 0.3
    timer = threading.Timer(1.2, _thread.interrupt_main)
    timer.start()
    start = time.monotonic()
    try:
        r = run(shell, f"%kalam {slow}")
    finally:
        timer.cancel()
        magics.settings.progress_after = 1.0
    assert time.monotonic() - start < 3.5
    assert r.error is not None
    assert "Interrupted after" in r.stderr and "Traceback" not in r.text
    assert "stopped and changed nothing" in r.stderr  # a read runs here; DataFusion stopped
    assert not magics._worker.busy
    assert "elapsed" in r.text  # the elapsed-time line was shown while it ran
    # the engine is consistent and usable; the next statement waits for the abandoned one
    ok = run(shell, "%kalam --user alice INSERT INTO app.messages (body) VALUES ('after')")
    assert ok.error is None, ok.text
    after = run(shell, "%kalam --user alice SELECT body FROM app.messages").value
    assert after["body"].tolist() == ["after"]


def test_line_text_is_never_expanded_by_ipython(
    shell: InteractiveShell, magics: KalamMagics
) -> None:
    shell.user_ns["v"] = "INJECTED"
    r = run(shell, "%kalam SELECT '{v}' AS a, '$v' AS b")
    assert r.error is None, r.text
    assert r.value["a"].tolist() == ["{v}"] and r.value["b"].tolist() == ["$v"]


@pytest.mark.parametrize(("sql", "read_only"), [
    ("SELECT 1", True), ("  with x AS (SELECT 1) SELECT * FROM x", True),
    ("-- note\nSHOW TABLES", True), ("/* c */ DESCRIBE TABLE app.t", True),
    ("EXPLAIN SELECT 1", True), ("INSERT INTO t VALUES (1)", False),
    ("UPDATE t SET a = 1 WHERE b IN (SELECT 1)", False), ("selected", False),
    ("EXECUTE AS USER 'u' (SELECT 1)", False), ("STORAGE FLUSH ALL", False),
])
def test_reads_are_told_from_writes(sql: str, read_only: bool) -> None:
    from kalam_engine.sql.parser import is_read_only

    assert is_read_only(sql) is read_only


def test_writes_run_on_the_worker_and_reads_in_the_kernel_thread(
    shell: InteractiveShell, magics: KalamMagics
) -> None:
    setup_tables(shell)
    threads: list[str] = []
    db = magics.engine()
    real_execute = db.execute

    def recording(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real_execute(*args, **kwargs)

    db.execute = recording
    try:
        run(shell, "%kalam --user alice INSERT INTO app.messages (body) VALUES ('x')")
        run(shell, "%kalam --user alice SELECT body FROM app.messages")
    finally:
        del db.execute
    assert threads == ["kalam-statement", threading.main_thread().name]
