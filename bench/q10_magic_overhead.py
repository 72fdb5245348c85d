"""Q10: what does a ``%%kalam`` cell add over calling ``db.execute`` directly?

A real ``IPython.core.interactiveshell.InteractiveShell`` loads ``kalam_jupyter`` and its magics
are pointed at the same engine. The cell ``%%kalam --user u0`` / ``SELECT * FROM bench.t WHERE
id < 10`` runs through ``shell.run_cell`` (cell transform, magic dispatch, option parsing,
``:name`` binding, the worker thread, DataFrame building). The baseline is
``db.execute(sql, user="u0")``; the figure is the difference of the two p50s.

- ``q10.cell_overhead``: ``run_cell(..., silent=True)``: everything but rendering the result,
  with the default settings (a read runs in the kernel's thread; writes would go to the
  worker). Target: +0.5 ms.
- ``q10.cell_display``: the same cell with the result rendered by the shell's display hook
  (output captured), for information: that is what any cell returning a DataFrame pays.
"""

from __future__ import annotations

from typing import Any

from bench import remote_notebook
from bench.common import (
    Config,
    Row,
    compare_latency,
    create_table,
    engine,
    fmt_delta_ns,
    fmt_ns,
    jupyter_layer_missing,
    load_users,
    na_row,
    profile,
    sample,
)

QUESTION = "%%kalam cell overhead in a real InteractiveShell vs db.execute"
ROWS = ("q10.cell_overhead", "q10.cell_display", *remote_notebook.ROWS)
TARGET_NS = 500_000


def run(cfg: Config) -> list[Row]:
    missing = jupyter_layer_missing()
    if missing is not None:
        return [na_row("q10.cell_overhead", "%%kalam cell overhead", missing, "<= +0.5 ms"),
                na_row("q10.cell_display", "%%kalam cell incl. display", missing),
                *(na_row(key, key, missing) for key in remote_notebook.ROWS)]
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "kalam_jupyter")
    try:
        magics = shell.magics_manager.registry["KalamMagics"]
        with engine() as db:
            table = create_table(db, "t")
            load_users(db, table, 2, cfg.size(1_000, 20))
            magics.connect(db)
            sql = f"SELECT * FROM {table} WHERE id < 10"
            cell = f"%%kalam --user u0\n{sql}\n"

            def direct() -> object:
                return db.execute(sql, user="u0")

            def magic_silent() -> object:
                res = shell.run_cell(cell, silent=True)
                if not res.success:
                    res.raise_error()
                return res

            def magic_shown() -> object:
                with capture_output():
                    res = shell.run_cell(cell, store_history=False)
                if not res.success:
                    res.raise_error()
                return res

            shown = magic_shown().result
            assert shown is not None and len(shown) == 10, shown
            n = cfg.size(1_000, 3)
            a, b = compare_latency(cfg, magic_silent, direct, n=n)
            c = sample(magic_shown, n=cfg.size(300, 1), warmup=cfg.warmup, max_seconds=10)
            # the statement and the frame alone, without IPython's cell machinery
            d = sample(lambda: magics.run(sql, user="u0"), n=cfg.size(500, 1),
                       warmup=cfg.warmup, max_seconds=10)
            # Where the added time goes: IPython's own cost of any cell, and Arrow -> pandas.
            empty = sample(lambda: shell.run_cell("pass", silent=True), n=cfg.size(500, 1),
                           warmup=cfg.warmup, max_seconds=5)
            fetched = direct()
            frame = sample(fetched.to_pandas, n=cfg.size(500, 1),  # type: ignore[attr-defined]
                           warmup=cfg.warmup, max_seconds=5)
            over, over_shown = a.p50 - b.p50, c.p50 - b.p50
            over_inline = d.p50 - b.p50
            met = over <= TARGET_NS
            profile(cfg, "q10_magic_overhead", magic_silent, cfg.size(300, 1))
            magics.close()
    finally:
        shell.run_line_magic("unload_ext", "kalam_jupyter")
    return [*_local_rows(a, b, c, over, over_shown, over_inline, empty, frame, met),
            *remote_notebook.run(cfg)]


def _local_rows(a: Any, b: Any, c: Any, over: float, over_shown: float, over_inline: float,
                empty: Any, frame: Any, met: bool) -> list[Row]:
    return [
        Row("q10.cell_overhead", "%%kalam cell (10 rows), not rendered: added p50",
            fmt_delta_ns(over), f"db.execute {fmt_ns(b.p50)}", a.p50 / b.p50, "<= +0.5 ms",
            met, value=over, unit="ns", baseline_value=b.p50,
            note=f"cell {a.summary()}; db.execute {b.summary()}; magics.run() alone (no "
                 f"IPython cell) adds {fmt_delta_ns(over_inline)}; of the added time, an "
                 f"empty IPython cell costs {fmt_ns(empty.p50)} and .to_pandas() "
                 f"{fmt_ns(frame.p50)}",
            extra={"cell_p50_ns": a.p50, "magics_run_overhead_ns": over_inline,
                   "empty_cell_p50_ns": empty.p50, "to_pandas_ns": frame.p50}),
        Row("q10.cell_display", "%%kalam cell (10 rows), rendered: added p50",
            fmt_delta_ns(over_shown), f"db.execute {fmt_ns(b.p50)}", c.p50 / b.p50,
            "(reported, no target)", None, value=over_shown, unit="ns", baseline_value=b.p50,
            note=f"cell incl. display hook {c.summary()}"),
    ]
