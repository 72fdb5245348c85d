"""Identities and the per-request ExecutionContext.

Everything that belongs to one request travels in an :class:`ExecutionContext`; nothing of it is
ever stored in a provider or in the schema cache.
"""

from __future__ import annotations

import enum
import time
import uuid
from dataclasses import dataclass, field
from typing import NamedTuple


class TableType(enum.Enum):
    USER = "USER"
    SHARED = "SHARED"
    STREAM = "STREAM"
    SYSTEM = "SYSTEM"


class Role(enum.IntEnum):
    """Roles in KalamDB's order: anonymous < user < service < dba < system."""

    ANONYMOUS = 0
    USER = 1
    SERVICE = 2
    DBA = 3
    SYSTEM = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def is_admin(self) -> bool:
        return self >= Role.DBA


class AccessLevel(enum.Enum):
    PUBLIC = "public"
    PRIVATE = "private"
    RESTRICTED = "restricted"
    DBA = "dba"


ROOT_USER = "root"


class TableId(NamedTuple):
    """A table's identity: namespace and table name (both lowercase).

    A NamedTuple: it is a cache key on every request, and tuple hashing is done in C."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}.{self.name}"

    @property
    def key(self) -> str:
        """KalamDB's ``ns:table`` form, used in system.schemas."""
        return f"{self.namespace}:{self.name}"


@dataclass(frozen=True, slots=True)
class ExecutionContext:
    """One request: who asks, with which role, in which namespace, at what time."""

    user_id: str
    role: Role
    namespace: str = "default"
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    started_at: float = field(default_factory=time.time)
    as_user: str | None = None  # set when EXECUTE AS USER switched the identity

    def with_namespace(self, namespace: str) -> ExecutionContext:
        return ExecutionContext(
            self.user_id, self.role, namespace, self.request_id, self.started_at, self.as_user
        )

    def impersonating(self, target: str) -> ExecutionContext:
        """The context for an EXECUTE AS USER body: the target's identity with role user."""
        return ExecutionContext(
            target, Role.USER, self.namespace, self.request_id, self.started_at, target
        )
