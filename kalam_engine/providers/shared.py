"""SHARED tables: one row set for everyone, guarded by the table's access level."""

from __future__ import annotations

from kalam_engine.model.context import AccessLevel, ExecutionContext, Role
from kalam_engine.model.errors import PermissionDeniedError
from kalam_engine.providers.core import BaseTableProvider
from kalam_engine.storage.table_store import SHARED_SCOPE

# (access level) -> (lowest role that may read, lowest role that may write); section 2.
ACCESS_RULES: dict[AccessLevel, tuple[Role, Role]] = {
    AccessLevel.PUBLIC: (Role.USER, Role.SERVICE),
    AccessLevel.PRIVATE: (Role.SERVICE, Role.SERVICE),
    AccessLevel.RESTRICTED: (Role.SERVICE, Role.SERVICE),
    AccessLevel.DBA: (Role.DBA, Role.DBA),
}


class SharedTableProvider(BaseTableProvider):
    __slots__ = ()

    def scope(self, ctx: ExecutionContext) -> str:
        return SHARED_SCOPE

    @property
    def access_level(self) -> AccessLevel:
        return self.core.definition.options.access_level or AccessLevel.PRIVATE

    def _check(self, ctx: ExecutionContext, write: bool) -> None:
        level = self.access_level
        needed = ACCESS_RULES[level][1 if write else 0]
        if ctx.as_user is not None:
            raise PermissionDeniedError(
                f"EXECUTE AS USER is not allowed on SHARED tables (table '{self.table_id}'). "
                "AS USER impersonation is only supported for USER and STREAM tables.")
        if ctx.role < needed:
            verb = "write" if write else "read"
            raise PermissionDeniedError(
                f"Role '{ctx.role.label}' may not {verb} SHARED table {self.table_id} "
                f"(access level {level.value}: {verb} needs role {needed.label} or higher)",
                hint="ask a dba to change the ACCESS_LEVEL or your role")

    def check_read(self, ctx: ExecutionContext) -> None:
        self._check(ctx, write=False)

    def check_write(self, ctx: ExecutionContext) -> None:
        self._check(ctx, write=True)
