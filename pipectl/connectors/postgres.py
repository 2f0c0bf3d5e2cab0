"""Postgres: the state store's read connection, and what the catalog says about a table.

Every connection has a bounded connect; every query runs in its own READ ONLY transaction with a local
`statement_timeout` (nothing is SET on the session, so a transaction-mode pooler never passes our settings
on to the application). Table and column names from the config reach SQL only through
`psycopg.sql.Identifier`; values only as parameters. Errors leave as one line naming `host:port/dbname`
(or the socket directory), never the DSN or password (`pg_connect`). The stuck scan's SQL is built in
`stuck_query`, writes live in `postgres_write`. psycopg is imported lazily.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipectl.config import StateTable
from pipectl.connectors import stuck_index, stuck_query
from pipectl.connectors.pg_connect import Target, connect, statement_errors, target
from pipectl.connectors.pg_names import split_table, table_ident
from pipectl.connectors.stuck_index import IndexFit
from pipectl.connectors.stuck_query import StuckGroup
from pipectl.deadline import waiting_on
from pipectl.errors import NotFound

if TYPE_CHECKING:
    import psycopg

TIME_TYPES = ("timestamp with time zone", "timestamp without time zone", "date")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    not_null: bool
    distinct: float | None = None
    """The planner's estimate of distinct values (`pg_stats.n_distinct`: below 0, minus a fraction of the
    rows); None before ANALYZE."""


@dataclass(frozen=True)
class IndexInfo:
    name: str
    columns: tuple[str | None, ...]
    """Key columns in order; None for an expression."""
    valid: bool
    """False for an index left INVALID by a failed CREATE INDEX CONCURRENTLY: the planner ignores it."""
    partial: bool


@dataclass(frozen=True)
class TableInfo:
    """A table (or view) as the catalog describes it: read in one round trip."""

    schema: str
    name: str
    columns: tuple[Column, ...]
    indexes: tuple[IndexInfo, ...]
    estimated_rows: int
    """`pg_class.reltuples`: -1 when never analyzed."""
    can_select: bool

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def missing(self, names: Sequence[str]) -> list[str]:
        return [n for n in dict.fromkeys(names) if self.column(n) is None]

    def near_miss(self, name: str) -> str | None:
        """A column whose name differs from `name` only in case (config names are case-sensitive)."""
        return next((c.name for c in self.columns if c.name.lower() == name.lower() and c.name != name), None)


_DESCRIBE = """
SELECT n.nspname, c.relname, c.reltuples::float8, has_table_privilege(c.oid, 'SELECT'),
       (SELECT json_agg(json_build_array(a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull)
                        ORDER BY a.attnum)
        FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
       (SELECT json_object_agg(s.attname, s.n_distinct) FROM pg_stats s
        WHERE s.schemaname = n.nspname AND s.tablename = c.relname AND s.inherited = c.relhassubclass),
       (SELECT json_agg(json_build_array(i.relname, x.indisvalid AND x.indisready, x.indpred IS NOT NULL,
                          ARRAY(SELECT a.attname
                                FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                                LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
                                WHERE k.ord <= x.indnkeyatts ORDER BY k.ord)) ORDER BY i.relname)
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relname = %(name)s
  AND CASE WHEN %(schema)s::text IS NULL THEN pg_table_is_visible(c.oid) ELSE n.nspname = %(schema)s END
"""


class Session:
    """One bounded, read-only connection. `describe_table` and `stuck_rows` are one round trip each.

    Run your own queries with `fetch(query, params)`: it adds the statement timeout. `conn.execute` works
    (read-only) but is not bounded, since the timeout is set per transaction, never on the session.
    """

    def __init__(self, conn: psycopg.Connection, where: Target, timeout: float) -> None:
        self.conn = conn
        self.where = where
        self.timeout_ms = max(1, int(timeout * 1000))

    def server_version(self) -> str:
        number = self.conn.info.server_version  # e.g. 160002
        if number >= 100000:
            return f"{number // 10000}.{number % 10000}"
        return f"{number // 10000}.{number // 100 % 100}.{number % 100}"

    def describe_table(self, table: str) -> TableInfo | None:
        """Columns, indexes and privilege of exactly that table (case-sensitive), or None when not visible."""
        schema, name = split_table(table)
        with self.about(table):
            rows = self.fetch(_DESCRIBE, {"name": name, "schema": schema})
        if not rows:
            return None
        nspname, relname, reltuples, can_select, columns, distinct, indexes = rows[0]
        distinct = distinct or {}
        return TableInfo(
            schema=str(nspname),
            name=str(relname),
            columns=tuple(
                Column(str(n), str(t), bool(nn), None if distinct.get(n) is None else float(distinct[n]))
                for n, t, nn in columns or ()
            ),
            indexes=tuple(
                IndexInfo(str(n), tuple(cols), bool(v), bool(p)) for n, v, p, cols in indexes or ()
            ),
            estimated_rows=int(reltuples),
            can_select=bool(can_select),
        )

    def near_miss_table(self, table: str) -> str | None:
        """A visible table whose name differs only in case, for a "did you mean" hint."""
        schema, name = split_table(table)
        with self.about(table):
            rows = self.fetch(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND lower(c.relname) = lower(%(name)s)"
                " AND c.relname <> %(name)s AND CASE WHEN %(schema)s::text IS NULL"
                " THEN pg_table_is_visible(c.oid) ELSE n.nspname = %(schema)s END ORDER BY 1 LIMIT 1",
                {"name": name, "schema": schema},
            )
        if not rows:
            return None
        return f"{schema}.{rows[0][0]}" if schema else str(rows[0][0])

    def index_fit(self, state_table: StateTable) -> IndexFit:
        return stuck_index.index_fit(self._require(state_table.table), state_table)

    def has_fitting_index(self, state_table: StateTable) -> bool:
        return self.index_fit(state_table).fitting

    def stuck_rows(
        self, state_table: StateTable, samples: int = 3, info: TableInfo | None = None
    ) -> list[StuckGroup]:
        """Per status in `stuck_after` and per group, the rows older than the threshold: one query.

        Pass the table's `info` (from `describe_table`) to save the catalog round trip.
        """
        if not state_table.stuck_after:
            return []
        info = info or self._require(state_table.table)
        query, params, settings = stuck_query.stuck_query(info, state_table, samples)
        with self.about(state_table.table):
            rows = self.fetch(query, params, settings)
        return stuck_query.stuck_groups(state_table, rows)

    def stuck_query_plan(
        self, state_table: StateTable, samples: int = 3, analyze: bool = False, info: TableInfo | None = None
    ) -> str:
        """EXPLAIN of exactly the query `stuck_rows` runs (ANALYZE executes it; it only reads)."""
        from psycopg import sql

        info = info or self._require(state_table.table)
        query, params, settings = stuck_query.stuck_query(info, state_table, samples)
        prefix = sql.SQL("EXPLAIN (ANALYZE, BUFFERS) ") if analyze else sql.SQL("EXPLAIN ")
        with self.about(state_table.table):
            rows = self.fetch(prefix + query, params, settings)
        return "\n".join(str(r[0]) for r in rows)

    def item_rows(self, state_table: StateTable, item_id: str) -> list[tuple[Any, ...]]:
        """(status, updated, created_at) of the table's rows whose id is `item_id` (at most 5), for `trace`.

        The id is sent untyped, so Postgres reads it as the id column's type and its index serves; an id
        that is no value of that type ("abc" for a bigint) matches no row. Columns the table lacks read
        as None; a missing table, id or status column is NotFound.
        """
        from psycopg import errors, sql

        info = self.describe_table(state_table.table)
        if info is None:
            raise NotFound(f"table not found in {self.where}")
        missing = info.missing([state_table.id_column, state_table.status_column])
        if missing:
            raise NotFound(f"no column {', '.join(missing)} in {self.where}")
        shown = [sql.Identifier(c) if info.column(c) else sql.NULL
                 for c in (state_table.status_column, state_table.updated_column, "created_at")]
        query = sql.SQL("SELECT {} FROM {} WHERE {} = %s LIMIT 5").format(
            sql.SQL(", ").join(shown), table_ident(state_table.table), sql.Identifier(state_table.id_column))
        try:
            return [tuple(row) for row in self.fetch(query, [item_id])]
        except errors.DataError:
            return []

    def fetch(self, query: Any, params: Any = None, settings: Mapping[str, str] | None = None) -> list[tuple]:
        """One read-only transaction with a local statement timeout, sent as one pipeline (one round trip).

        Nothing is SET on the session, so a transaction-mode pooler (pgbouncer, Supavisor) never hands
        our timeout or read-only flag to another client's transaction. `settings` are local to it too.
        """
        names = ["statement_timeout", *(settings or {})]
        values = [str(self.timeout_ms), *(settings or {}).values()]
        with waiting_on(str(self.where), "a query"), self.conn.pipeline(), self.conn.transaction():
            self.conn.execute(
                "SELECT set_config(name, value, true) FROM unnest(%s::text[], %s::text[]) AS s(name, value)",
                [names, values],
            )
            cursor = self.conn.execute(query, params)
        return cursor.fetchall()

    def about(self, table: str) -> contextlib.AbstractContextManager[None]:
        """Name the table in errors about it: missing table or column, no permission, too slow."""
        return statement_errors(table, self.where, self.timeout_ms / 1000)

    def _require(self, table: str) -> TableInfo:
        info = self.describe_table(table)
        if info is None:
            raise NotFound(f"table {table} not found in {self.where}")
        return info


@contextlib.contextmanager
def session(dsn: str, timeout: float, connect_timeout: float | None = None) -> Iterator[Session]:
    """A read-only connection whose connect and every query are bounded by `timeout` seconds."""
    where = target(dsn)
    limit = min(timeout, connect_timeout) if connect_timeout else timeout
    with waiting_on(str(where), "connect"):
        # autocommit off, so even a direct `conn.execute` runs in a BEGIN READ ONLY transaction
        conn = connect(dsn, where, limit, autocommit=False, application_name="pipectl")
    try:
        conn.read_only = True
        yield Session(conn, where, timeout)
    finally:
        with contextlib.suppress(Exception):
            conn.close()


# --- one call, one connection ------------------------------------------------------------------------


def describe_table(dsn: str, table: str, timeout: float) -> TableInfo | None:
    with session(dsn, timeout) as db:
        return db.describe_table(table)


def stuck_rows(dsn: str, state_table: StateTable, timeout: float, samples: int = 3) -> list[StuckGroup]:
    with session(dsn, timeout) as db:
        return db.stuck_rows(state_table, samples)


def stuck_query_plan(dsn: str, state_table: StateTable, timeout: float, analyze: bool = False) -> str:
    with session(dsn, timeout) as db:
        return db.stuck_query_plan(state_table, analyze=analyze)


def has_fitting_index(dsn: str, state_table: StateTable, timeout: float = 5.0) -> bool:
    with session(dsn, timeout) as db:
        return db.has_fitting_index(state_table)


def status_counts(
    dsn: str, table: StateTable | str, status_column: str | None = None, timeout: float = 5.0
) -> dict[str, int]:
    """Rows per status (per group value and status, `group/STATUS`, for a StateTable with group_by).

    For before/after counts around a repair. One GROUP BY; every status, not only the stuck ones.
    """
    from psycopg import sql

    if isinstance(table, StateTable):
        name, status, groups = table.table, status_column or table.status_column, list(table.group_by)
    else:
        name, status, groups = table, status_column or "status", []
    keys = [sql.Identifier(c) for c in (*groups, status)]
    query = sql.SQL("SELECT {keys}, count(*) FROM {table} GROUP BY {keys}").format(
        keys=sql.SQL(", ").join(keys), table=table_ident(name)
    )
    with session(dsn, timeout) as db, db.about(name):
        rows = db.fetch(query)
    return {
        "/".join(_shown(v) for v in row[:-1]): int(row[-1])
        for row in sorted(rows, key=lambda r: [_shown(v) for v in r[:-1]])
    }


def _shown(value: Any) -> str:
    return "(null)" if value is None else str(value)
