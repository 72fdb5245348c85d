"""Live tables in notebooks (``%%kalam --live``): the widget and the ``-o`` frame follow the
writes of other cells and users, Stop closes the subscription; and in a real kernel the widget
updates reach the frontend as comm messages sent from the view's background thread."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from kalam_jupyter.live_view import LiveView
from kalam_jupyter.magics import KalamMagics

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def magics(shell: InteractiveShell) -> Iterator[KalamMagics]:
    m: KalamMagics = shell.magics_manager.registry["KalamMagics"]
    m.connect(":memory:")
    run(shell, "%kalam CREATE NAMESPACE app")
    run(shell, "%kalam CREATE USER TABLE app.m (id BIGINT PRIMARY KEY, body TEXT, score INT)")
    yield m
    m.close()
    shell.user_ns.pop("msgs", None)


def run(shell: InteractiveShell, code: str) -> Any:
    with capture_output() as cap:
        result = shell.run_cell(code, store_history=False)
    assert result.error_in_exec is None and result.error_before_exec is None, \
        (cap.stdout, cap.stderr, result.error_in_exec)
    return cap


def shown_rows(view: LiveView) -> list[tuple[Any, ...]]:
    """The rows the widget's table shows, as text (parsed back from its HTML)."""
    import re

    html = view._widgets["table"].value
    body = html.split("<tbody>", 1)[1]
    return [tuple(re.findall(r"<td>(.*?)</td>", tr)) for tr in body.split("</tr>") if "<td>" in tr]


def test_widget_and_frame_follow_other_cells(shell: InteractiveShell,
                                             magics: KalamMagics) -> None:
    run(shell, "%kalam --user alice INSERT INTO app.m (id, body, score) VALUES (1, 'hi', 1)")
    run(shell, "%kalam --user bob INSERT INTO app.m (id, body, score) VALUES (7, 'bob', 1)")
    run(shell, "%%kalam --live --user alice -o msgs\nSELECT * FROM app.m")
    view = magics.live_views[-1]
    assert view.widget is not None and "kalam-live" in view.widget._dom_classes
    assert shown_rows(view) == [("1", "hi", "1")]
    assert shell.user_ns["msgs"].to_dict("records") == [{"id": 1, "body": "hi", "score": 1}]
    assert "1 row · no change yet" in view._widgets["status"].value

    run(shell, "%kalam --user alice INSERT INTO app.m (id, body, score) VALUES (2, 'yo', 2)")
    assert view.wait_for(lambda v: v.row_count == 2)
    run(shell, "%kalam --user alice UPDATE app.m SET body = 'hey' WHERE id = 1")
    assert view.wait_for(lambda v: v.changes == 2)
    assert shown_rows(view) == [("1", "hey", "1"), ("2", "yo", "2")]  # updated in place
    run(shell, "%kalam --user alice DELETE FROM app.m WHERE id = 2")
    run(shell, "%kalam --user bob INSERT INTO app.m (id, body, score) VALUES (8, 'x', 1)")
    run(shell, "%kalam --user alice INSERT INTO app.m (id, body, score) VALUES (3, '<b>', 3)")
    assert view.wait_for(lambda v: v.changes == 4)  # bob's row is not alice's: no event
    assert shown_rows(view) == [("1", "hey", "1"), ("3", "&lt;b&gt;", "3")]
    assert shell.user_ns["msgs"].to_dict("records") == [
        {"id": 1, "body": "hey", "score": 1}, {"id": 3, "body": "<b>", "score": 3}]
    status = view._widgets["status"].value
    assert status.startswith("2 rows · last change ") and "4 change events" in status
    assert "as alice · active" in status


def test_stop_button_closes_the_subscription(shell: InteractiveShell,
                                             magics: KalamMagics) -> None:
    db = magics.engine()
    run(shell, "%kalam live SELECT id, body FROM app.m WHERE score > 1")
    view = magics.live_views[-1]
    assert len(db.live) == 1
    assert view.columns == ["id", "body"]
    view._widgets["stop"].click()
    assert view.subscription.closed and len(db.live) == 0
    assert view.status == "stopped" and view._widgets["stop"].disabled
    assert "stopped" in view._widgets["status"].value
    run(shell, "%kalam INSERT INTO app.m (id, body, score) VALUES (5, 'late', 9)")
    assert view.row_count == 0 and view.changes == 0
    view._thread.join(timeout=10)
    assert not view._thread.is_alive()


def test_live_stop_and_errors(shell: InteractiveShell, magics: KalamMagics) -> None:
    db = magics.engine()
    run(shell, "%kalam live SELECT * FROM app.m")
    run(shell, "%%kalam --live\nSELECT id FROM app.m WHERE score = 1;")
    assert len(db.live) == 2
    cap = run(shell, "%kalam live stop")
    shown = "".join(o.data.get("text/plain", "") for o in cap.outputs)
    assert "Stopped 2 live queries" in shown and len(db.live) == 0
    for bad, code in (("SELECT count(*) FROM app.m", "UNSUPPORTED"),
                      ("SELECT * FROM app.nope", "NOT_FOUND"),
                      ("SELECT 1 FROM app.m; SELECT 2 FROM app.m", "INVALID_SQL")):
        with capture_output() as cap:
            shell.run_cell(f"%%kalam --live\n{bad}", store_history=False)
        assert code in cap.stderr + cap.stdout, (bad, cap.stderr, cap.stdout)
    assert len(db.live) == 0 and magics.live_views == []


def test_dropped_table_marks_the_view_failed(shell: InteractiveShell,
                                             magics: KalamMagics) -> None:
    run(shell, "%kalam live SELECT * FROM app.m")
    view = magics.live_views[-1]
    run(shell, "%kalam DROP TABLE app.m")
    assert view.wait_for(lambda v: v.status == "failed")
    assert "dropped" in view._widgets["status"].value and view._widgets["stop"].disabled


def test_text_fallback_without_widgets(magics: KalamMagics) -> None:
    db = magics.engine()
    db.execute("INSERT INTO app.m (id, body, score) VALUES (1, 'a', 1)")
    view = LiveView(db, "SELECT id, body FROM app.m", use_widgets=False)
    try:
        assert view.widget is None
        bundle = view._repr_mimebundle_()
        assert "1 row" in bundle["text/plain"] and "a" in bundle["text/plain"]
        assert "kalam-live-table" in bundle["text/html"]
        db.execute("INSERT INTO app.m (id, body, score) VALUES (2, 'b', 1)")
        assert view.wait_for(lambda v: v.row_count == 2)
        assert "2 rows" in repr(view)
    finally:
        view.stop()


def test_updates_run_in_the_creating_cells_context(magics: KalamMagics) -> None:
    """The background thread sees the context of the cell that made the view (ipykernel 7
    keeps a cell's parent message in context variables; 7.0 sends nothing without it)."""
    import contextvars

    cell = contextvars.ContextVar("cell")
    cell.set("cell-7")
    db = magics.engine()
    view = LiveView(db, "SELECT id, body FROM app.m", user="alice", use_widgets=True)
    seen: list[str] = []
    view._widgets["status"].observe(lambda _: seen.append(cell.get("none")), names="value")
    try:
        db.execute("INSERT INTO app.m (id, body, score) VALUES (1, 'a', 1)", user="alice")
        assert view.wait_for(lambda v: v.row_count == 1)
        assert seen and set(seen) == {"cell-7"}, seen
    finally:
        view.stop()


def test_a_failing_display_marks_the_view_failed(magics: KalamMagics) -> None:
    """When updating what the notebook shows fails, the view says so and lets go of its
    subscription instead of dying silently as 'active'."""
    db = magics.engine()
    view = LiveView(db, "SELECT id, body FROM app.m", user="alice", use_widgets=True)

    def refuse(_: Any) -> None:
        raise LookupError("no parent message")

    view._widgets["table"].observe(refuse, names="value")
    db.execute("INSERT INTO app.m (id, body, score) VALUES (1, 'a', 1)", user="alice")
    assert view.wait_for(lambda v: v.status == "failed")
    assert view.error == "LookupError: no parent message"
    view._thread.join(timeout=10)
    assert not view._thread.is_alive()
    assert view.subscription.closed and len(db.live) == 0
    assert "failed · LookupError: no parent message" in view.text()


_ops = st.lists(st.tuples(st.sampled_from(["insert", "update", "delete"]),
                          st.integers(0, 5), st.integers(0, 3)), max_size=25)


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops)
def test_frame_matches_a_query_after_any_writes(magics: KalamMagics, ops: list) -> None:
    """Model: after any sequence of writes the live frame equals a fresh SELECT."""
    db = magics.engine()
    db.execute("DELETE FROM app.m WHERE id >= 0", user="alice")
    view = LiveView(db, "SELECT id, score FROM app.m WHERE score >= 1", user="alice",
                    use_widgets=False)
    try:
        for op, key, score in ops:
            if op == "insert" and not db.execute(
                    f"SELECT id FROM app.m WHERE id = {key}", user="alice").row_count:
                db.execute(f"INSERT INTO app.m (id, body, score) VALUES ({key}, 'b', {score})",
                           user="alice")
            elif op == "update":
                db.execute(f"UPDATE app.m SET score = {score} WHERE id = {key}", user="alice")
            elif op == "delete":
                db.execute(f"DELETE FROM app.m WHERE id = {key}", user="alice")
        want = sorted(db.execute("SELECT id, score FROM app.m WHERE score >= 1",
                                 user="alice").to_pandas().itertuples(index=False, name=None))

        def caught_up(v: LiveView) -> bool:
            return sorted(v.frame.itertuples(index=False, name=None)) == want

        assert view.wait_for(caught_up), (view.frame, want)
    finally:
        view.stop()


# --- a real kernel ---------------------------------------------------------------------------


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    from jupyter_client.manager import start_new_kernel

    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), path) if p))
    km, kc = start_new_kernel(kernel_name=_python3_kernel())
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _python3_kernel() -> str:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        spec = None
    if spec is None or spec.argv[0] not in {"python", "python3", sys.executable}:
        from ipykernel.kernelspec import install

        install(prefix=sys.prefix, kernel_name="python3")
    return "python3"


def _execute(kc: Any, code: str, seen: list[dict[str, Any]], timeout: float = 60) -> str:
    """Run ``code``; return what it printed; every iopub message read goes to ``seen``."""
    msg_id = kc.execute(code)
    shown: list[str] = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        seen.append(msg)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        content = msg["content"]
        if msg["msg_type"] == "stream":
            shown.append(content["text"])
        elif msg["msg_type"] == "error":
            shown.append("\n".join(content["traceback"]))
        elif msg["msg_type"] == "status" and content["execution_state"] == "idle":
            break
    reply = kc.get_shell_msg(timeout=timeout)["content"]
    assert reply["status"] == "ok", "".join(shown)
    return "".join(shown)


def test_insert_in_another_cell_reaches_the_widget_in_a_real_kernel(
        kernel: tuple[Any, Any]) -> None:
    _, kc = kernel
    seen: list[dict[str, Any]] = []
    _execute(kc, "%load_ext kalam_jupyter\n%kalam --connect :memory:\n"
                 "%kalam CREATE NAMESPACE app\n"
                 "%kalam CREATE USER TABLE app.m (id BIGINT PRIMARY KEY, body TEXT)\n"
                 "%kalam --user alice INSERT INTO app.m (id, body) VALUES (1, 'first')", seen)
    _execute(kc, "%%kalam --live --user alice -o msgs\nSELECT * FROM app.m", seen)
    views = [m for m in seen if m["msg_type"] == "display_data"
             and "application/vnd.jupyter.widget-view+json" in m["content"]["data"]]
    assert views, [m["msg_type"] for m in seen]
    out = _execute(kc, "v = get_ipython().magics_manager.registry['KalamMagics'].live_views[-1]\n"
                       "import json; print(json.dumps({'box': v.widget.model_id, "
                       "'table': v._widgets['table'].model_id}))", seen)
    ids = json.loads(out)
    assert views[-1]["content"]["data"]["application/vnd.jupyter.widget-view+json"][
        "model_id"] == ids["box"]
    seen.clear()
    _execute(kc, "%kalam --user alice INSERT INTO app.m (id, body) VALUES (2, 'second cell')",
             seen)

    def table_updates() -> list[str]:
        return [m["content"]["data"]["state"]["value"] for m in seen
                if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == ids["table"]
                and m["content"]["data"].get("method") == "update"
                and "value" in m["content"]["data"].get("state", {})]

    deadline = time.monotonic() + 30
    while not any("second cell" in v for v in table_updates()):
        assert time.monotonic() < deadline, "the widget update never arrived"
        with contextlib.suppress(queue.Empty):  # nothing yet
            seen.append(kc.get_iopub_msg(timeout=1))
    assert "first" in table_updates()[-1]
    out = _execute(kc, "v.wait_for(lambda v: v.row_count == 2)\n"
                       "print(msgs.to_dict('records'), v.status)", seen)
    assert "[{'id': 1, 'body': 'first'}, {'id': 2, 'body': 'second cell'}] active" in out
