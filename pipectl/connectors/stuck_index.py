"""The index the stuck scan uses, judged from the catalog alone, and the one it asks for when there is none.

`stuck_query` builds its query for the index found here; `db.stuck` prints `suggest_index` as its fix.
psycopg is imported lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipectl.config import StateTable
from pipectl.connectors.pg_names import split_table, table_ident

if TYPE_CHECKING:
    from pipectl.connectors.postgres import TableInfo

WALK_ROWS_PER_GROUP = 10_000
"""Walk the groups (see `walks_groups`) only when the table holds at least this many rows per group. A walk
costs ~10 µs per group and status, reading a status's range ~60 ns per index entry: on 1 M rows (14% of
them in the three watched statuses) the walk took 1 ms against 9 with 6 groups, 7 against 9 with 100, and
35 against 8 with 1 000 (10 000 rows per group is where it still wins several times over)."""


@dataclass(frozen=True)
class IndexFit:
    """Whether the stuck scan can use an index: one whose leading column is the status column."""

    index: str | None
    """The best valid index leading with the status column, if any."""
    ordered: bool
    """That index also holds the updated column, so a group's oldest rows are a short range scan."""
    invalid: tuple[str, ...] = ()
    """Fitting indexes left INVALID by a failed CREATE INDEX CONCURRENTLY."""

    @property
    def fitting(self) -> bool:
        return self.index is not None


def index_fit(info: TableInfo, state_table: StateTable) -> IndexFit:
    """The index the stuck scan will use, judged from the catalog alone."""
    status, updated = state_table.status_column, state_table.updated_column
    leading = [ix for ix in info.indexes if ix.columns and ix.columns[0] == status]
    valid = [ix for ix in leading if ix.valid]
    invalid = tuple(ix.name for ix in leading if not ix.valid)
    if not valid:
        return IndexFit(None, False, invalid)
    # prefer one holding the updated column, then a full one, then the closest to (status, group…, updated)
    wanted = (status, *state_table.group_by, updated)
    best = max(valid, key=lambda ix: (updated in ix.columns, not ix.partial, _prefix_len(ix.columns, wanted)))
    return IndexFit(best.name, updated in best.columns, invalid)


def walks_groups(info: TableInfo, state_table: StateTable) -> bool:
    """Whether the stuck scan can walk each status's groups instead of reading the status's whole range.

    In an index on (status, group…, updated), `status = S AND updated < cutoff` is no range: every entry of
    the status is read to find the stuck ones (at 10 M rows, 450 000 entries for 10 000 stuck rows). Per
    group, `status = S AND group = G AND updated < cutoff` is one, holding the stuck rows only; the groups
    are found one index descent each (a loose index scan). Only for a full valid index on exactly those
    leading columns, all NOT NULL (a row comparison skips NULLs), and few groups for the table's size (the
    planner's statistics; none before ANALYZE, and then the plain range is used).
    """
    key = (state_table.status_column, *state_table.group_by, state_table.updated_column)
    if not state_table.group_by or len(set(key)) < len(key):
        return False
    if not any(ix.valid and not ix.partial and ix.columns[: len(key)] == key for ix in info.indexes):
        return False
    columns = [info.column(name) for name in key[1:]]
    if any(column is None or not column.not_null for column in columns):
        return False
    groups = 1.0
    for column in columns[:-1]:
        if not column or not column.distinct:
            return False
        groups *= column.distinct if column.distinct > 0 else -column.distinct * info.estimated_rows
    return groups * WALK_ROWS_PER_GROUP <= info.estimated_rows


def suggest_index(state_table: StateTable) -> str:
    """The exact statement that makes the stuck scan (and `pipectl reset`) an index range scan."""
    from psycopg import sql

    _, name = split_table(state_table.table)
    columns = list(
        dict.fromkeys([state_table.status_column, *state_table.group_by, state_table.updated_column])
    )
    index_name = "_".join([name, *columns, "idx"])
    if len(index_name.encode()) > 63:  # Postgres would truncate it silently; do it visibly
        index_name = f"{name[:48]}_stuck_idx"
    statement = sql.SQL("CREATE INDEX CONCURRENTLY {} ON {} ({})").format(
        sql.Identifier(index_name),
        table_ident(state_table.table),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
    )
    return statement.as_string()


def _prefix_len(columns: Sequence[str | None], wanted: Sequence[str]) -> int:
    n = 0
    for have, want in zip(columns, wanted, strict=False):
        if have != want:
            break
        n += 1
    return n
