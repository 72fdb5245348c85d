"""A live query's result in a notebook: a table that follows the engine's change events.

``LiveView(engine, sql, user=)`` subscribes (``engine.subscribe``), applies the snapshot in
the calling cell, then applies every insert/update/delete from a background thread of its own,
by primary key. It shows an ipywidgets panel (CSS class ``kalam-live``: a status line with the
row count and the last change's time, the rows, a Stop button) whose widgets are updated from
that thread, which runs in the creating cell's context (ipykernel 7.0 sends no message
from a thread without one; 6.x and 7.1+ send from any thread). Without ipywidgets, a kernel
gets an updated display (``update_display_data``) instead, and a terminal shows the rows once.
With ``target`` the current rows are also kept as a pandas DataFrame in ``namespace[target]``:
a new frame per applied change (never a half-applied one)."""

from __future__ import annotations

import contextlib
import contextvars
import html
import threading
import time
from collections.abc import Callable, MutableMapping
from typing import Any

import pandas as pd
import pyarrow as pa

from kalam_jupyter.display import _cell
from kalam_jupyter.inspector import in_kernel

__all__ = ["LiveView", "widgets_available"]

SEQ_COLUMN = "_seq"
HIDDEN = {SEQ_COLUMN, "_deleted"}
_MAX_DRAIN = 1000  # events applied together before the view is re-rendered


def widgets_available() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


class LiveView:
    """The rows of one live query, kept current by a background thread.

    ``status`` is ``active``, ``stopped`` (Stop, :meth:`stop`, or the engine closed) or
    ``failed`` (``error`` says why, e.g. the table was dropped or altered)."""

    def __init__(self, engine: Any, sql: str, *, user: str | None = None,
                 target: str | None = None, namespace: MutableMapping[str, Any] | None = None,
                 limit: int = 20, use_widgets: bool | None = None) -> None:
        from kalam_engine import parse_live_query

        self.sql = sql
        self.user = user
        self.target = target
        self.limit = max(1, int(limit))
        self._namespace = namespace
        query = parse_live_query(sql)  # raises KalamError for a query a subscription refuses
        self._sub = engine.subscribe(sql, user=user)
        plan = self._sub.plan
        self.key: str | None = plan.key if plan is not None else None
        self._schema: pa.Schema = self._sub.schema
        names = self._schema.names
        shown = list(query.columns) if query.columns is not None else \
            [n for n in names if n not in HIDDEN]
        self.columns: list[str] = shown
        self._shown_schema = pa.schema([self._schema.field(n) for n in shown])
        self._rows: dict[Any, dict[str, Any]] = {}
        self._anon = 0  # keys for rows of a table without one (system tables)
        self._lock = threading.Condition(threading.Lock())
        self.seq = 0
        self.changes = 0
        self.last_change: float | None = None
        self.error: str | None = None
        self._stopped = False
        self._frame: pd.DataFrame = self._build_frame()
        self._widgets: dict[str, Any] = {}
        self._handle: Any = None
        if use_widgets is None:
            use_widgets = widgets_available()
        self.widget: Any = self._build_widget() if use_widgets else None
        try:
            self._load_snapshot()
        except BaseException:
            self._sub.close()
            raise
        self._publish()
        # The thread runs in a copy of this cell's context: ipykernel 7 keeps the parent
        # message in context variables, and 7.0 fails every message sent from a thread that
        # has none (LookupError: shell_parent); 7.1+ and 6.x work either way.
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._follow,),
                                        name="kalam-live-view", daemon=True)
        self._thread.start()

    # -- state ------------------------------------------------------------------------------

    @property
    def status(self) -> str:
        if self.error is not None:
            return "failed"
        return "stopped" if self._stopped else "active"

    @property
    def subscription(self) -> Any:
        return self._sub

    @property
    def row_count(self) -> int:
        return len(self._rows)

    @property
    def frame(self) -> pd.DataFrame:
        """The current rows (a new DataFrame after each applied change)."""
        return self._frame

    def _key_of(self, row: dict[str, Any]) -> Any:
        if self.key is None:
            self._anon += 1
            return self._anon
        return row[self.key]

    def _apply(self, event: Any) -> None:
        kind = event.type
        if kind in ("initial_data_batch", "insert"):
            for row in event.rows.to_pylist():
                self._rows[self._key_of(row)] = row
        elif kind == "update":  # old_values leads with the key; aligned with rows
            old_keys = event.old_values.column(0).to_pylist()
            for old_key, row in zip(old_keys, event.rows.to_pylist(), strict=True):
                key = self._key_of(row)
                if old_key != key:  # a table keyed by _seq: the row gets a new key
                    self._rows.pop(old_key, None)
                self._rows[key] = row  # same key: the row keeps its place
        elif kind == "delete" and self.key is not None:
            for key in event.old_values.column(self.key).to_pylist():
                self._rows.pop(key, None)
        if kind != "initial_data_batch":
            self.changes += 1
            self.last_change = time.time()
        self.seq = max(self.seq, event.seq)

    def _load_snapshot(self) -> None:
        while True:
            event = self._sub.next_event(timeout=0)
            if event is None or event.type != "initial_data_batch":
                if event is not None:
                    self._apply(event)
                return
            self._apply(event)
            if not event.has_more:
                return

    def _follow(self) -> None:
        from kalam_engine.model.errors import KalamError

        try:
            while self._take_events():
                self._publish()
        except KalamError as exc:  # the subscription failed (e.g. the table was dropped)
            with self._lock:
                self.error = f"{exc.code}: {exc}"
        except Exception as exc:  # a view must never take the kernel down, nor die silently
            with self._lock:
                self.error = f"{type(exc).__name__}: {exc}"
            self._sub.close()
        with self._lock:
            self._stopped = True
        with contextlib.suppress(Exception):  # when showing is what failed: status says why
            self._publish()

    def _take_events(self) -> bool:
        """Wait for the next event and apply it with what else is waiting; False once the
        subscription is closed (Stop, or the engine closed)."""
        sub = self._sub
        event = sub.next_event()
        if event is None:
            return False
        with self._lock:
            self._apply(event)
            for _ in range(_MAX_DRAIN):  # take what else is waiting, render once
                more = sub.next_event(timeout=0)
                if more is None:
                    break
                self._apply(more)
        return True

    def _build_frame(self) -> pd.DataFrame:
        table = pa.Table.from_pylist(list(self._rows.values()), schema=self._schema)
        return table.select(self.columns).to_pandas()

    def _publish(self) -> None:
        """Rebuild the frame, store it, update what the notebook shows, wake waiters."""
        with self._lock:
            try:
                frame = self._build_frame()
                self._frame = frame
                if self.target and self._namespace is not None:
                    self._namespace[self.target] = frame
                self._update_display()
            finally:
                self._lock.notify_all()

    def wait_for(self, predicate: Callable[[LiveView], bool], timeout: float = 10.0) -> bool:
        """Wait until ``predicate(self)`` holds (checked after each applied change)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
            return True

    def stop(self) -> None:
        """Close the subscription; the view keeps its last rows."""
        self._sub.close()
        with self._lock:
            self._stopped = True
        self._publish()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    # -- presentation -----------------------------------------------------------------------

    def status_text(self) -> str:
        n = len(self._frame)
        parts = [f"{n} row" + ("" if n == 1 else "s")]
        if self.last_change is not None:
            parts.append("last change " + time.strftime("%H:%M:%S",
                                                        time.localtime(self.last_change)))
        else:
            parts.append("no change yet")
        parts.append(f"{self.changes} change event" + ("" if self.changes == 1 else "s"))
        if self.user:
            parts.append(f"as {self.user}")
        parts.append(self.status)
        if self.error:
            parts.append(self.error)
        return " · ".join(parts)

    def text(self) -> str:
        """The status line and the newest rows as plain text."""
        frame = self._frame
        shown = frame.tail(self.limit)
        body = shown.to_string(index=False) if len(shown) else "(no rows)"
        more = f"\n... {len(frame) - len(shown)} earlier row(s)" if len(frame) > len(shown) \
            else ""
        return f"Live: {self.sql.strip()}\n{self.status_text()}{more}\n{body}"

    def table_html(self) -> str:
        frame = self._frame
        shown = frame.tail(self.limit)
        types = [str(self._shown_schema.field(c).type) for c in self.columns]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{_cell(v, t)}</td>" for v, t in zip(row, types, strict=True))
            + "</tr>"
            for row in shown.itertuples(index=False, name=None))
        more = ""
        if len(frame) > len(shown):
            more = (f"<div class='kalam-live-more' style='font-size:smaller;opacity:.8'>"
                    f"{len(frame) - len(shown)} earlier row(s) not shown</div>")
        return (f"{more}<table class='dataframe kalam-table kalam-live-table'>"
                f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def html(self) -> str:
        return (f"<div class='kalam-live'><div class='kalam-live-status'>"
                f"{html.escape(self.status_text())}</div>{self.table_html()}</div>")

    def _build_widget(self) -> Any:
        import ipywidgets as w

        status = w.HTML()
        status.add_class("kalam-live-status")
        table = w.HTML()
        table.add_class("kalam-live-rows")
        button = w.Button(description="Stop", icon="stop", button_style="warning",
                          tooltip="Close this live query (the rows stay as they are)")
        button.add_class("kalam-live-stop")
        button.on_click(lambda _: self.stop())
        self._widgets = {"status": status, "table": table, "stop": button}
        box = w.VBox([w.HBox([status, button]), table])
        box.add_class("kalam-live")
        return box

    def _update_display(self) -> None:
        if self.widget is not None:
            status = html.escape(self.status_text())
            if self._widgets["status"].value != status:
                self._widgets["status"].value = status
            table = self.table_html()
            if self._widgets["table"].value != table:
                self._widgets["table"].value = table
            if self._stopped or self.error is not None:
                self._widgets["stop"].disabled = True
        elif self._handle is not None:
            self._handle.update(self._bundle(), raw=True)

    def _bundle(self) -> dict[str, Any]:
        return {"text/plain": self.text(), "text/html": self.html()}

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {}
        if self.widget is not None and in_kernel():
            bundle = dict(self.widget._repr_mimebundle_() or {})
            bundle["text/plain"] = self.text()
            return bundle
        return self._bundle()

    def show(self) -> None:
        """Display the view here (a widget; else an output updated in place in a kernel)."""
        from IPython.display import display

        if self.widget is None and in_kernel():
            self._handle = display(self._bundle(), raw=True, display_id=True)
        else:
            display(self)

    def __repr__(self) -> str:
        return self.text()

    def close(self) -> None:
        """Stop and close the widgets."""
        self.stop()
        if self.widget is not None:
            self.widget.close()
