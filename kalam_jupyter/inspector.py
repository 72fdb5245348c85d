"""The inspector: providers, the schema cache and data sizes of one engine, live in a notebook.

``Inspector(engine)`` builds an ipywidgets panel (CSS class ``kalam-inspector``; each figure is a
``span.kalam-figure`` whose text reads e.g. ``Live providers: 10``). Every displayed inspector
refreshes after each cell runs (IPython's ``post_run_cell`` event). Without ipywidgets, or in a
terminal, it shows the same figures as a text table.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from kalam_engine.model.errors import PermissionDeniedError
from kalam_jupyter.backend import KalamBackend
from kalam_jupyter.display import human_bytes

__all__ = ["FIGURES", "Inspector", "ensure_refresh_hook", "refresh_all", "remove_refresh_hook"]

#: (key, label, kind) of every headline figure, in display order.
FIGURES: tuple[tuple[str, str, str], ...] = (
    ("tables", "Tables", "count"),
    ("users", "Users", "count"),
    ("providers_built", "Providers built", "count"),
    ("live_providers", "Live providers", "count"),
    ("per_user_design", "Per-user design would build", "count"),
    ("cache_entries", "Cache entries", "count"),
    ("cache_capacity", "Cache capacity", "count"),
    ("cache_hits", "Cache hits", "count"),
    ("cache_misses", "Cache misses", "count"),
    ("cache_evictions", "Evictions", "count"),
    ("cache_revived", "Revivals", "count"),
    ("cache_memory_bytes", "Cache memory", "bytes"),
    ("hot_rows", "Hot rows", "count"),
    ("hot_bytes", "Hot data", "bytes"),
    ("cold_rows", "Cold rows", "count"),
    ("cold_bytes", "Cold data", "bytes"),
)

_TABLE_COLUMNS = (
    ("table", "Table"),
    ("type", "Type"),
    ("provider_id", "Provider"),
    ("users", "Users"),
    ("hot_rows", "Hot rows"),
    ("hot_bytes", "Hot data"),
    ("cold_rows", "Cold rows"),
    ("cold_bytes", "Cold data"),
)

_DISPLAYED: list[Inspector] = []
_MAX_DISPLAYED = 16


NOT_REPORTED = "not reported by this server"
_CACHE_FIGURES = (
    ("providers_built", "built"), ("live_providers", "live_providers"),
    ("cache_entries", "entries"), ("cache_capacity", "capacity"), ("cache_hits", "hits"),
    ("cache_misses", "misses"), ("cache_evictions", "evictions"),
    ("cache_revived", "revived"), ("cache_memory_bytes", "memory_bytes"),
)
_SIZES = ("hot_rows", "hot_bytes", "cold_rows", "cold_bytes")


def _fmt(value: Any, kind: str) -> str:
    if value is None and kind != "id":
        return NOT_REPORTED
    if kind == "id":
        return "#" + f"{value:x}"[-6:] if isinstance(value, int) else str(value)
    if kind == "bytes":
        return human_bytes(value)
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _number(value: Any) -> int | None:
    return None if value is None else int(value)


def _cache_figures(engine: KalamBackend) -> tuple[dict[str, int | None], str | None]:
    """The cache counters, or all None and why (a server may refuse system.stats)."""
    try:
        stats = engine.cache.stats()
    except PermissionDeniedError as exc:
        return {key: None for key, _ in _CACHE_FIGURES}, f"{exc.code}: {exc}"
    return {key: _number(getattr(stats, field)) for key, field in _CACHE_FIGURES}, None


def _sizes(engine: KalamBackend, tables: list[dict[str, Any]]) -> dict[str, int | None]:
    """Hot/cold totals: summed per table where every table reports them, else the backend's."""
    if all(all(k in t for k in _SIZES) for t in tables):
        return {k: sum(int(t[k]) for t in tables) for k in _SIZES}
    try:
        sizes = engine.data_sizes()
    except PermissionDeniedError:
        return dict.fromkeys(_SIZES)
    return {k: _number(sizes.get(k)) for k in _SIZES}


def collect(engine: KalamBackend) -> dict[str, Any]:
    """All figures of ``engine`` right now (``per_table`` holds one dict per table); a
    figure the backend does not report is None, and ``note`` says why when it refused."""
    tables = list(engine.table_stats())
    cache, note = _cache_figures(engine)
    users = engine.user_count()
    return {
        "tables": len(tables),
        "users": users,
        "per_user_design": None if users is None else int(users) * len(tables),
        **cache,
        **_sizes(engine, tables),
        "per_table": tables,
        "note": note,
    }


def _column_kind(key: str) -> str:
    if key == "provider_id":
        return "id"
    return "bytes" if key.endswith("_bytes") else "count"


def _table_cell(table: dict[str, Any], key: str) -> str:
    return _fmt(table[key], _column_kind(key)) if key in table else "\u2014"


def notes(figures: dict[str, Any]) -> list[str]:
    """Why figures are missing: a refusal of the backend, per-table columns not reported."""
    out = [figures["note"]] if figures.get("note") else []
    if any(k not in t for t in figures["per_table"] for k, _ in _TABLE_COLUMNS):
        out.append(f"\u2014 in the table: {NOT_REPORTED}")
    return out


def figure_text(key: str, figures: dict[str, Any]) -> str:
    """``'Live providers: 10'`` — the text a figure shows (stable, for tests and browsers)."""
    for k, label, kind in FIGURES:
        if k == key:
            text = f"{label}: {_fmt(figures[k], kind)}"
            if k == "per_user_design" and figures[k] is not None:
                text += f" ({figures['users']} users x {figures['tables']} tables)"
            return text
    raise KeyError(key)


def text_table(figures: dict[str, Any]) -> str:
    """The figures as plain text: headline figures, then one row per table."""
    lines = ["Kalam inspector"]
    lines.extend("  " + figure_text(k, figures) for k, _, _ in FIGURES)
    rows = [[label for _, label in _TABLE_COLUMNS]]
    for t in figures["per_table"]:
        rows.append(
            [
                _table_cell(t, k)
                for k, _ in _TABLE_COLUMNS
            ]
        )
    if len(rows) > 1:
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines.append("")
        for r in rows:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    lines.extend(f"  ({n})" for n in notes(figures))
    return "\n".join(lines)


def _table_html(figures: dict[str, Any]) -> str:
    cell = "padding:2px 10px;text-align:left"
    head = "".join(
        f"<th style='{cell}'>{html.escape(label)}</th>" for _, label in _TABLE_COLUMNS
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td style='{cell}'>"
            + html.escape(_table_cell(t, k))
            + "</td>"
            for k, _ in _TABLE_COLUMNS
        )
        + "</tr>"
        for t in figures["per_table"]
    )
    return (
        "<table class='kalam-inspector-tables' style='border-collapse:collapse'>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


class Inspector:
    """A live panel of an engine's providers, schema cache and data sizes.

    ``engine`` is an engine or a callable returning the current one (the magics pass theirs,
    so the inspector follows ``%kalam --connect``).
    """

    def __init__(self, engine: KalamBackend | Callable[[], KalamBackend]) -> None:
        if callable(engine) and not hasattr(engine, "execute"):
            self._get_engine: Callable[[], KalamBackend] = engine
        else:
            self._get_engine = lambda: engine
        self.figures: dict[str, Any] = {}
        self.error: str | None = None
        self._labels: dict[str, Any] = {}
        self._tables: Any = None
        self._status: Any = None
        self._sidecar: Any = None
        self.widget: Any = self._build_widget()
        self.refresh()
        ensure_refresh_hook()

    # -- state ------------------------------------------------------------------------------

    def refresh(self) -> dict[str, Any]:
        """Read the figures again and update the widget; returns the figures."""
        try:
            self.figures = collect(self._get_engine())
            self.error = None
        except Exception as exc:  # a closed or switched engine must not break the kernel
            self.error = f"{getattr(exc, 'code', type(exc).__name__)}: {exc}"
        self._update_widget()
        return self.figures

    def text(self) -> str:
        """The figures as a plain-text table."""
        if not self.figures:
            return f"Kalam inspector: {self.error or 'no data'}"
        out = text_table(self.figures)
        if self.error:
            out += f"\n  ({self.error})"
        return out

    def __repr__(self) -> str:
        return self.text()

    # -- widget -----------------------------------------------------------------------------

    def _build_widget(self) -> Any:
        try:
            import ipywidgets as w
        except ImportError:
            return None
        title = w.HTML("<b>Kalam inspector</b>")
        for key, _, _ in FIGURES:
            label = w.HTML()
            label.add_class("kalam-figure-box")
            self._labels[key] = label
        grid = w.GridBox(
            list(self._labels.values()),
            layout=w.Layout(grid_template_columns="repeat(auto-fill, minmax(240px, 1fr))"),
        )
        self._tables = w.HTML()
        self._status = w.HTML()
        box = w.VBox([title, grid, self._tables, self._status])
        box.add_class("kalam-inspector")
        return box

    def _update_widget(self) -> None:
        if self.widget is None:
            return
        if self.figures:
            for key, label in self._labels.items():
                value = (
                    f"<span class='kalam-figure' data-key='{key}'>"
                    f"{html.escape(figure_text(key, self.figures))}</span>"
                )
                if label.value != value:
                    label.value = value
            tables = _table_html(self.figures)
            if self._tables.value != tables:
                self._tables.value = tables
        lines = [*(notes(self.figures) if self.figures else []), *([self.error] * bool(self.error))]
        status = "<br>".join(f"<i>{html.escape(line)}</i>" for line in lines)
        if self._status.value != status:
            self._status.value = status

    def figure_texts(self) -> dict[str, str]:
        """What each figure widget shows as text right now (for tests)."""
        return {key: _strip_tags(label.value) for key, label in self._labels.items()}

    # -- display ----------------------------------------------------------------------------

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        _remember(self)
        bundle: dict[str, Any] = {}
        if self.widget is not None and in_kernel():
            bundle = dict(self.widget._repr_mimebundle_() or {})
        bundle["text/plain"] = self.text()
        return bundle

    def show(self, side: bool = False) -> None:
        """Display the inspector here, or in JupyterLab's side panel with ``side=True``."""
        from IPython.display import display

        _remember(self)
        if side and self.widget is not None and in_kernel():
            try:
                from sidecar import Sidecar
            except ImportError:
                print("sidecar is not installed; showing the inspector inline")
            else:
                panel = Sidecar(title="Kalam inspector")
                with panel:
                    display(self.widget)
                self._sidecar = panel
                return
        display(self)

    def close(self) -> None:
        """Stop refreshing and close the widget."""
        if self in _DISPLAYED:
            _DISPLAYED.remove(self)
        if self.widget is not None:
            self.widget.close()


def _strip_tags(value: str) -> str:
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", value))


def _remember(inspector: Inspector) -> None:
    if inspector not in _DISPLAYED:
        _DISPLAYED.append(inspector)
        del _DISPLAYED[:-_MAX_DISPLAYED]


def in_kernel() -> bool:
    """Whether this runs in a Jupyter kernel (where widgets and display updates reach a page)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def refresh_all(*_: Any) -> None:
    """Refresh every displayed inspector (registered as IPython's ``post_run_cell``)."""
    for inspector in list(_DISPLAYED):
        inspector.refresh()


def ensure_refresh_hook() -> None:
    """Register :func:`refresh_all` as IPython's ``post_run_cell`` callback (once)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return
    shell = get_ipython()
    if shell is None:
        return
    callbacks = shell.events.callbacks.get("post_run_cell", [])
    if refresh_all not in callbacks:
        shell.events.register("post_run_cell", refresh_all)


def remove_refresh_hook() -> None:
    """Unregister the refresh hook (used when the extension is unloaded)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return
    shell = get_ipython()
    if shell is not None and refresh_all in shell.events.callbacks.get("post_run_cell", []):
        shell.events.unregister("post_run_cell", refresh_all)
    _DISPLAYED.clear()
