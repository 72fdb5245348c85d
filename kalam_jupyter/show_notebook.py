"""Print an executed notebook's cells and outputs as text.

    python -m kalam_jupyter.show_notebook FILE.ipynb

Used by ``make demo``. Prefers each output's ``text/plain``; HTML-only outputs are reduced to
their text; errors are shown as ``ename: evalue``. Exit status 1 if any cell had an error.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
from typing import Any

__all__ = ["main", "render"]


def _html_to_text(value: str) -> str:
    value = re.sub(r"(?i)<br\s*/?>|</tr>|</p>|</div>", "\n", value)
    value = re.sub(r"(?i)</t[hd]>", "\t", value)
    value = re.sub(r"<[^>]+>", "", value)
    lines = [" ".join(line.split("\t")).rstrip() for line in html.unescape(value).splitlines()]
    return "\n".join(line for line in lines if line.strip())


def _join(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _output_text(output: dict[str, Any]) -> tuple[str, bool]:
    kind = output.get("output_type")
    if kind == "stream":
        return _join(output.get("text", "")).rstrip("\n"), False
    if kind == "error":
        return f"{output.get('ename')}: {output.get('evalue')}", True
    data = output.get("data", {})
    if "text/plain" in data and not (
        "text/html" in data and _join(data["text/plain"]).startswith("<")
    ):
        return _join(data["text/plain"]).rstrip("\n"), False
    if "text/html" in data:
        return _html_to_text(_join(data["text/html"])), False
    if "application/vnd.jupyter.widget-view+json" in data:
        return "[widget]", False
    return "[" + ", ".join(sorted(data)) + "]", False


def render(nb: dict[str, Any]) -> tuple[str, int]:
    """The notebook as text, and the number of error outputs in it."""
    out: list[str] = []
    errors = 0
    for cell in nb.get("cells", []):
        source = _join(cell.get("source", "")).rstrip()
        if cell.get("cell_type") == "markdown":
            out.append("\n".join("# " + line for line in source.splitlines()))
            out.append("")
            continue
        if cell.get("cell_type") != "code":
            continue
        n = cell.get("execution_count")
        out.append(f"In [{n if n is not None else ' '}]:")
        out.extend("    " + line for line in source.splitlines())
        for output in cell.get("outputs", []):
            text, is_error = _output_text(output)
            errors += is_error
            if text:
                prefix = f"Out[{n}]: " if output.get("output_type") == "execute_result" else ""
                out.append(prefix + text)
        out.append("")
    return "\n".join(out), errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", help="an executed .ipynb file")
    args = parser.parse_args(argv)
    with open(args.notebook, encoding="utf-8") as fh:
        nb = json.load(fh)
    text, errors = render(nb)
    sys.stdout.write(text + "\n")
    if errors:
        sys.stderr.write(f"{errors} cell(s) raised an error\n")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
