"""USER tables: each user's rows live in their own partition; no role reads across users."""

from __future__ import annotations

from kalam_engine.model.context import ExecutionContext
from kalam_engine.providers.core import BaseTableProvider


class UserTableProvider(BaseTableProvider):
    __slots__ = ()

    def scope(self, ctx: ExecutionContext) -> str:
        return ctx.user_id
