"""What a statement does, read from its text without running it (``Engine.classify``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StatementClass"]


@dataclass(frozen=True, slots=True)
class StatementClass:
    """``kind`` is ``"read"`` (every statement only reads: SELECT, SHOW, DESCRIBE, EXPLAIN),
    ``"write"`` (anything else that parses) or ``"invalid"`` (text that does not parse; running
    it reports why). ``namespace`` is the namespace the text's last ``USE`` switches to."""

    kind: str
    namespace: str | None = None

    @property
    def read_only(self) -> bool:
        """Whether running the text changes nothing, so it is safe to retry or interrupt."""
        return self.kind == "read"
