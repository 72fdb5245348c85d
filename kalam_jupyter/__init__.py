"""Kalam for notebooks: ``%kalam`` magics, the ``df.kalam`` accessor and the inspector.

Load with ``%load_ext kalam_jupyter``.
"""

from __future__ import annotations

from typing import Any

from kalam_jupyter.accessor import KalamAccessor  # importing it registers df.kalam
from kalam_jupyter.inspector import Inspector
from kalam_jupyter.magics import Kalam, KalamMagics, activate, current_engine

__all__ = [
    "Inspector",
    "Kalam",
    "KalamAccessor",
    "KalamMagics",
    "current_engine",
    "load_ipython_extension",
    "unload_ipython_extension",
]

_LOADED: dict[int, tuple[KalamMagics, Any]] = {}


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics, the ``Kalam`` settings, completion and the inspector refresh."""
    from kalam_jupyter.completion import make_matcher
    from kalam_jupyter.inspector import ensure_refresh_hook

    if id(ipython) in _LOADED:
        return
    settings = Kalam(parent=ipython)
    magics = KalamMagics(ipython, settings)
    ipython.register_magics(magics)
    ipython.configurables.append(settings)

    def snapshot() -> Any:
        if not magics.is_open:  # pressing Tab must not create a data directory
            return None
        try:
            return magics.engine().catalog_snapshot()
        except Exception:
            return None

    matcher = make_matcher(snapshot)
    ipython.Completer.custom_matchers.append(matcher)
    ensure_refresh_hook()
    activate(magics)
    _LOADED[id(ipython)] = (magics, matcher)


def unload_ipython_extension(ipython: Any) -> None:
    """Undo :func:`load_ipython_extension` and close the engine it opened."""
    from kalam_jupyter.inspector import remove_refresh_hook

    entry = _LOADED.pop(id(ipython), None)
    if entry is None:
        return
    magics, matcher = entry
    if matcher in ipython.Completer.custom_matchers:
        ipython.Completer.custom_matchers.remove(matcher)
    if magics.settings in ipython.configurables:
        ipython.configurables.remove(magics.settings)
    ipython.magics_manager.magics["line"].pop("kalam", None)
    ipython.magics_manager.magics["cell"].pop("kalam", None)
    remove_refresh_hook()
    magics.close()
    activate(None)
