"""Parsed forms of KalamDB statements (everything that is not plain DataFusion SQL)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kalam_engine.model.definitions import ColumnDefault
from kalam_engine.sql.parsed import ParsedStatement
from kalam_engine.sql.vector_index import CreateVectorIndex, DropVectorIndex


@dataclass(frozen=True, slots=True)
class TableRef:
    namespace: str | None
    name: str


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    name: str
    type_text: str
    nullable: bool | None = None  # None: not said
    primary_key: bool = False
    default: ColumnDefault | None = None
    auto_increment: bool = False
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class CreateNamespace:
    name: str
    if_not_exists: bool = False


@dataclass(frozen=True, slots=True)
class DropNamespace:
    name: str
    if_exists: bool = False
    cascade: bool = False


@dataclass(frozen=True, slots=True)
class AlterNamespace:
    name: str
    options: dict[str, object]


@dataclass(frozen=True, slots=True)
class UseNamespace:
    name: str


@dataclass(frozen=True, slots=True)
class ShowNamespaces:
    pass


@dataclass(frozen=True, slots=True)
class CreateTable:
    table: TableRef
    type_prefix: str | None
    if_not_exists: bool
    columns: tuple[ColumnSpec, ...]
    table_primary_key: tuple[str, ...] = ()
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DropTable:
    table: TableRef
    if_exists: bool = False
    type_prefix: str | None = None


@dataclass(frozen=True, slots=True)
class AddColumn:
    column: ColumnSpec


@dataclass(frozen=True, slots=True)
class DropColumn:
    name: str


@dataclass(frozen=True, slots=True)
class ModifyColumn:
    column: ColumnSpec


@dataclass(frozen=True, slots=True)
class SetNullability:
    name: str
    nullable: bool


@dataclass(frozen=True, slots=True)
class SetColumnDefault:
    name: str
    default: ColumnDefault | None


@dataclass(frozen=True, slots=True)
class RenameColumn:
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class SetAccessLevel:
    level: str


AlterAction = (AddColumn | DropColumn | ModifyColumn | SetNullability | SetColumnDefault
               | RenameColumn | SetAccessLevel | CreateVectorIndex | DropVectorIndex)


@dataclass(frozen=True, slots=True)
class AlterTable:
    table: TableRef
    action: AlterAction


@dataclass(frozen=True, slots=True)
class ShowTables:
    namespace: str | None = None


@dataclass(frozen=True, slots=True)
class DescribeTable:
    table: TableRef
    history: bool = False


@dataclass(frozen=True, slots=True)
class ShowStats:
    table: TableRef


@dataclass(frozen=True, slots=True)
class StorageFlush:
    table: TableRef | None = None  # None: FLUSH ALL
    namespace: str | None = None  # FLUSH ALL IN ns


@dataclass(frozen=True, slots=True)
class StorageCompact:
    table: TableRef | None = None
    namespace: str | None = None


@dataclass(frozen=True, slots=True)
class InsertStatement:
    table: TableRef
    columns: tuple[str, ...] | None
    source_sql: str  # "VALUES (...), (...)" or a SELECT, evaluated by DataFusion


@dataclass(frozen=True, slots=True)
class UpdateStatement:
    table: TableRef
    assignments: tuple[tuple[str, str], ...]  # (column, expression text)
    where_sql: str  # one parenthesised expression (brackets balanced)


@dataclass(frozen=True, slots=True)
class DeleteStatement:
    table: TableRef
    where_sql: str  # one parenthesised expression (brackets balanced)


@dataclass(frozen=True, slots=True)
class QueryStatement:
    """SELECT / WITH / VALUES / EXPLAIN and other statements DataFusion runs itself."""

    parsed: ParsedStatement  # the statement as read once (its tokens and sqlglot tree)
    verb: str  # the first word, comments skipped: SELECT, WITH, EXPLAIN, SHOW, ...

    @property
    def sql(self) -> str:
        return self.parsed.text


@dataclass(frozen=True, slots=True)
class TransactionStatement:
    verb: str  # BEGIN | COMMIT | ROLLBACK
