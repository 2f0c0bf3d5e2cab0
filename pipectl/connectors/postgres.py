"""Postgres: the state store. The only place pipectl talks to Postgres (psycopg is imported lazily).

Every connection has a bounded connect; every query runs in its own READ ONLY transaction with a local
`statement_timeout` (nothing is SET on the session, so a transaction-mode pooler never passes our settings
on to the application). Table and column names from the config reach SQL only through
`psycopg.sql.Identifier`; values only as parameters. Errors leave as one line naming `host:port/dbname`
(or the socket directory), never the DSN or password.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pipectl.config import StateTable
from pipectl.deadline import waiting_on
from pipectl.durations import whole_seconds
from pipectl.errors import ConnectorError, NotFound, Unauthorized, Unreachable, UsageError

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

_MIN_CONNECT_TIMEOUT = 2  # libpq treats anything lower as 2 seconds
TIME_TYPES = ("timestamp with time zone", "timestamp without time zone", "date")
_AUTH_MESSAGES = (
    "password authentication failed", "no password supplied", "pg_hba.conf", "authentication failed",
    "role \"", "permission denied for database", "must be superuser", "sasl authentication",
)  # fmt: skip


@dataclass(frozen=True)
class Target:
    """Where a DSN points, safe to print: host (or socket directory), port, database; no user, no password."""

    host: str
    port: str
    dbname: str
    socket: bool

    def __str__(self) -> str:
        if self.socket:
            return f"{self.dbname} via socket {self.host}"
        return f"{self.host}:{self.port}/{self.dbname}"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    not_null: bool


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


@dataclass(frozen=True)
class StuckGroup:
    """Rows of one status (and one value of each group_by column) not updated for longer than allowed."""

    status: str
    """The status exactly as configured in `stuck_after` (and as stored in the table)."""
    group: Mapping[str, Any]
    rows: int
    oldest_s: float
    threshold: timedelta
    sample_ids: tuple[Any, ...] = field(default=())


def target(dsn: str) -> Target:
    """The printable part of a DSN; a DSN that cannot be parsed is a usage error that does not quote it."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:  # the parser's message may quote the DSN
        raise UsageError("database.dsn is not a valid Postgres connection string") from None
    host = str(params.get("host") or params.get("hostaddr") or "")
    socket = not host or host.startswith(("/", "@"))
    return Target(
        host=host or "default socket",
        port=str(params.get("port") or "5432"),
        dbname=str(params.get("dbname") or params.get("user") or "postgres"),
        socket=socket,
    )


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


_DESCRIBE = """
SELECT n.nspname, c.relname, c.reltuples::float8, has_table_privilege(c.oid, 'SELECT'),
       (SELECT json_agg(json_build_array(a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull)
                        ORDER BY a.attnum)
        FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
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
        schema, name = _split(table)
        with self._about(table):
            rows = self.fetch(_DESCRIBE, {"name": name, "schema": schema})
        if not rows:
            return None
        nspname, relname, reltuples, can_select, columns, indexes = rows[0]
        return TableInfo(
            schema=str(nspname),
            name=str(relname),
            columns=tuple(Column(str(n), str(t), bool(nn)) for n, t, nn in columns or ()),
            indexes=tuple(
                IndexInfo(str(n), tuple(cols), bool(v), bool(p)) for n, v, p, cols in indexes or ()
            ),
            estimated_rows=int(reltuples),
            can_select=bool(can_select),
        )

    def near_miss_table(self, table: str) -> str | None:
        """A visible table whose name differs only in case, for a "did you mean" hint."""
        schema, name = _split(table)
        with self._about(table):
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
        return index_fit(self._require(state_table.table), state_table)

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
        query, params, settings = self._stuck_query(state_table, samples, info)
        with self._about(state_table.table):
            rows = self.fetch(query, params, settings)
        n = len(state_table.group_by)
        groups = []
        for row in rows:
            status = _configured_status(state_table, row[0])
            groups.append(StuckGroup(
                status=status,
                group=dict(zip(state_table.group_by, (_plain(v) for v in row[1 : 1 + n]), strict=True)),
                rows=int(row[1 + n]),
                oldest_s=math.inf if row[2 + n] is None else float(row[2 + n]),
                threshold=state_table.stuck_after[status],
                sample_ids=tuple(_plain(v) for v in (row[3 + n] or ())),
            ))  # fmt: skip
        order = {status: i for i, status in enumerate(state_table.stuck_after)}
        return sorted(groups, key=lambda g: (order.get(g.status, len(order)), -g.rows, _sort_key(g.group)))

    def _stuck_query(
        self, state_table: StateTable, samples: int, info: TableInfo | None
    ) -> tuple[sql.Composed, list, dict[str, str]]:
        info = info or self._require(state_table.table)
        nullable = {c.name for c in info.columns if not c.not_null}
        if index_fit(info, state_table).ordered:
            query, params = build_indexed_stuck_query(state_table, samples, nullable)
            # a few short index ranges: parallel workers only add their start-up time (and load the server)
            return query, params, {"max_parallel_workers_per_gather": "0", "jit": "off"}
        query, params = build_scan_stuck_query(state_table, samples, nullable)
        return query, params, {"jit": "off"}  # a one-off scan does not repay JIT compilation

    def stuck_query_plan(
        self, state_table: StateTable, samples: int = 3, analyze: bool = False, info: TableInfo | None = None
    ) -> str:
        """EXPLAIN of exactly the query `stuck_rows` runs (ANALYZE executes it; it only reads)."""
        from psycopg import sql

        query, params, settings = self._stuck_query(state_table, samples, info)
        prefix = sql.SQL("EXPLAIN (ANALYZE, BUFFERS) ") if analyze else sql.SQL("EXPLAIN ")
        with self._about(state_table.table):
            rows = self.fetch(prefix + query, params, settings)
        return "\n".join(str(r[0]) for r in rows)

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

    def _require(self, table: str) -> TableInfo:
        info = self.describe_table(table)
        if info is None:
            raise NotFound(f"table {table} not found in {self.where}")
        return info

    @contextlib.contextmanager
    def _about(self, table: str) -> Iterator[None]:
        """Name the table in errors about it: missing table or column, no permission, too slow."""
        import psycopg
        from psycopg import errors

        try:
            yield
        except (errors.UndefinedTable, errors.UndefinedColumn) as exc:
            raise NotFound(f"{table}: {_first_line(exc)} (in {self.where})") from None
        except errors.InsufficientPrivilege as exc:
            raise Unauthorized(f"{table}: {_first_line(exc)} (in {self.where})") from None
        except errors.QueryCanceled:
            raise Unreachable(
                f"{table}: the query did not finish within {whole_seconds(self.timeout_ms / 1000)}"
            ) from None
        except psycopg.OperationalError as exc:
            raise Unreachable(f"lost the connection to {self.where}: {_first_line(exc)}") from None
        except psycopg.Error as exc:
            raise ConnectorError(f"{table}: {_first_line(exc)}") from None


@contextlib.contextmanager
def session(dsn: str, timeout: float, connect_timeout: float | None = None) -> Iterator[Session]:
    """A read-only connection whose connect and every query are bounded by `timeout` seconds."""
    import psycopg

    where = target(dsn)
    limit = min(timeout, connect_timeout) if connect_timeout else timeout
    try:
        with waiting_on(str(where), "connect"):
            conn = psycopg.connect(
                dsn,
                autocommit=False,  # so even a direct `conn.execute` runs in a BEGIN READ ONLY transaction
                connect_timeout=max(_MIN_CONNECT_TIMEOUT, math.ceil(limit)),
                application_name="pipectl",
                prepare_threshold=None,  # no server-side prepared statements: transaction poolers lose them
            )
    except psycopg.Error as exc:
        raise _connect_error(exc, where, dsn) from None
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
        keys=sql.SQL(", ").join(keys), table=_table_ident(name)
    )
    with session(dsn, timeout) as db, db._about(name):
        rows = db.fetch(query)
    return {
        "/".join(_shown(v) for v in row[:-1]): int(row[-1])
        for row in sorted(rows, key=lambda r: [_shown(v) for v in r[:-1]])
    }


def suggest_index(state_table: StateTable) -> str:
    """The exact statement that makes the stuck scan (and `pipectl reset`) an index range scan."""
    from psycopg import sql

    _, name = _split(state_table.table)
    columns = list(
        dict.fromkeys([state_table.status_column, *state_table.group_by, state_table.updated_column])
    )
    index_name = "_".join([name, *columns, "idx"])
    if len(index_name.encode()) > 63:  # Postgres would truncate it silently; do it visibly
        index_name = f"{name[:48]}_stuck_idx"
    statement = sql.SQL("CREATE INDEX CONCURRENTLY {} ON {} ({})").format(
        sql.Identifier(index_name),
        _table_ident(state_table.table),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
    )
    return statement.as_string()


# --- the stuck query ---------------------------------------------------------------------------------


def older(updated: Any, bound: Any, undated: bool) -> Any:
    """`updated < bound`; with `undated` (the column allows NULL) also the rows with no timestamp at all:
    their age is unknown, so they count as older than any cutoff instead of silently never matching."""
    from psycopg import sql

    if not undated:
        return sql.SQL("{} < {}").format(updated, bound)
    return sql.SQL("({u} < {b} OR {u} IS NULL)").format(u=updated, b=bound)


def build_indexed_stuck_query(
    state_table: StateTable, samples: int, nullable: set[str] | frozenset[str] = frozenset()
) -> tuple[sql.Composed, list]:
    """For a table with an index leading (status, …, updated): one aggregate branch per status, UNION ALL.

    Each branch is `status = S AND updated < now() - T`, an index range (index-only when the index holds
    the group columns); the sample ids are then read per group with a LIMIT, so no stuck row but the
    few shown is fetched from the heap. An OR of the statuses would force a bitmap scan instead.
    """
    from psycopg import sql

    table = _table_ident(state_table.table)
    status, updated = sql.Identifier(state_table.status_column), sql.Identifier(state_table.updated_column)
    group_cols = [sql.Identifier(c) for c in state_table.group_by]
    group_alias = [sql.Identifier(f"pipectl_g{i}") for i in range(len(group_cols))]
    undated = state_table.updated_column in nullable
    cutoff = sql.SQL("now() - %s::interval")
    branches, params = [], []
    for status_value, threshold in state_table.stuck_after.items():
        select = [sql.SQL("{} AS pipectl_status").format(status)]
        select += [sql.SQL("{} AS {}").format(c, a) for c, a in zip(group_cols, group_alias, strict=True)]
        branches.append(sql.SQL(
            "SELECT {select}, count(*) AS pipectl_rows, {oldest} AS pipectl_oldest,"
            " now() - %s::interval AS pipectl_cutoff"
            " FROM {table} WHERE {status} = %s AND {stale}"
            " GROUP BY {group}"
        ).format(
            select=sql.SQL(", ").join(select), updated=updated, table=table, status=status,
            group=sql.SQL(", ").join([status, *group_cols]), stale=older(updated, cutoff, undated),
            oldest=_oldest(updated, undated),
        ))  # fmt: skip
        params += [threshold, status_value, threshold]
    outer = [sql.SQL("g.pipectl_status")] + [sql.SQL("g.{}").format(a) for a in group_alias]
    outer += [sql.SQL("g.pipectl_rows"), sql.SQL("extract(epoch FROM now() - g.pipectl_oldest)::float8")]
    if samples > 0:
        match = [sql.SQL("w.{} = g.pipectl_status").format(status)]
        for col, alias, name in zip(group_cols, group_alias, state_table.group_by, strict=True):
            if name in nullable:
                match.append(
                    sql.SQL("(w.{c} = g.{a} OR (w.{c} IS NULL AND g.{a} IS NULL))").format(c=col, a=alias)
                )
            else:
                match.append(sql.SQL("w.{} = g.{}").format(col, alias))
        match.append(older(sql.SQL("w.{}").format(updated), sql.SQL("g.pipectl_cutoff"), undated))
        sample = "ARRAY(SELECT w.{id} FROM {table} AS w WHERE {match} ORDER BY w.{updated} LIMIT %s)"
        outer.append(
            sql.SQL(sample).format(
                id=sql.Identifier(state_table.id_column),
                table=table,
                match=sql.SQL(" AND ").join(match),
                updated=updated,
            )
        )
        params = [samples, *params]  # the select list comes before the branches in the text
    else:
        outer.append(sql.SQL("NULL"))
    query = sql.SQL("SELECT {outer} FROM ({branches}) AS g").format(
        outer=sql.SQL(", ").join(outer), branches=sql.SQL(" UNION ALL ").join(branches)
    )
    return query, params


def build_scan_stuck_query(
    state_table: StateTable, samples: int, nullable: set[str] | frozenset[str] = frozenset()
) -> tuple[sql.Composed, list]:
    """Without a usable index: one pass, an OR of the statuses, the samples by an ordered array_agg."""
    from psycopg import sql

    undated = state_table.updated_column in nullable

    table = _table_ident(state_table.table)
    status, updated = sql.Identifier(state_table.status_column), sql.Identifier(state_table.updated_column)
    group_cols = [sql.Identifier(c) for c in state_table.group_by]
    conditions, params = [], []
    for status_value, threshold in state_table.stuck_after.items():
        conditions.append(sql.SQL("({} = %s AND {})").format(
            status, older(updated, sql.SQL("now() - %s::interval"), undated)))
        params += [status_value, threshold]
    sample = (
        sql.SQL("(array_agg({} ORDER BY {}))[1:%s]").format(sql.Identifier(state_table.id_column), updated)
        if samples > 0 else sql.SQL("NULL")
    )  # fmt: skip
    query = sql.SQL(
        "SELECT {keys}, count(*), extract(epoch FROM now() - {oldest})::float8, {sample}"
        " FROM {table} WHERE {where} GROUP BY {keys}"
    ).format(
        keys=sql.SQL(", ").join([status, *group_cols]), oldest=_oldest(updated, undated), sample=sample, table=table,
        where=sql.SQL(" OR ").join(conditions),
    )  # fmt: skip
    if samples > 0:
        params = [samples, *params]
    return query, params


def _oldest(updated: Any, undated: bool) -> Any:
    """The group's oldest timestamp; NULL when a row has none (its age is unknown; read as infinitely old)."""
    from psycopg import sql

    if not undated:
        return sql.SQL("min({})").format(updated)
    return sql.SQL("CASE WHEN bool_or({u} IS NULL) THEN NULL ELSE min({u}) END").format(u=updated)


# --- helpers -----------------------------------------------------------------------------------------


def _split(table: str) -> tuple[str | None, str]:
    schema, _, name = table.rpartition(".")
    return (schema or None), name


def _table_ident(table: str) -> sql.Identifier:
    from psycopg import sql

    schema, name = _split(table)
    return sql.Identifier(schema, name) if schema else sql.Identifier(name)


def _prefix_len(columns: Sequence[str | None], wanted: Sequence[str]) -> int:
    n = 0
    for have, want in zip(columns, wanted, strict=False):
        if have != want:
            break
        n += 1
    return n


def _configured_status(state_table: StateTable, value: Any) -> str:
    """The `stuck_after` key a returned status matched: the same string, unless a char(n) column pads it."""
    text = str(value)
    if text in state_table.stuck_after:
        return text
    return next((s for s in state_table.stuck_after if s.strip() == text.strip()), text)


def _plain(value: Any) -> Any:
    """Evidence holds names and numbers: keep str/int/float/bool/None, print anything else."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _shown(value: Any) -> str:
    return "(null)" if value is None else str(value)


def _sort_key(group: Mapping[str, Any]) -> tuple:
    return tuple((v is None, str(v)) for v in group.values())


def _first_line(exc: BaseException) -> str:
    """The server's primary message: one line, no DETAIL/HINT, no DSN."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    text = primary or str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _connect_error(exc: Exception, where: Target, dsn: str) -> ConnectorError:
    """Sort a failed connect into Unauthorized / NotFound / Unreachable, with a one-line reason."""
    text = str(exc)
    low = text.lower()
    sqlstate = getattr(exc, "sqlstate", None) or ""
    if sqlstate in ("28P01", "28000") or any(m in low for m in _AUTH_MESSAGES):
        if "does not exist" in low and "role" in low:
            reason = "the role does not exist"
        elif "no password supplied" in low:
            reason = "no password supplied"
        elif "pg_hba.conf" in low:
            reason = "no pg_hba.conf entry allows this host/user/database"
        else:
            reason = "password authentication failed"
        return Unauthorized(f"Postgres at {where} refused the credentials: {reason}")
    if sqlstate == "3D000" or re.search(r'database "[^"]*" does not exist', text):
        return NotFound(f"Postgres at {where} has no database {where.dbname!r}")
    if "connection refused" in low:
        reason = "connection refused (is the server running and listening on that port?)"
    elif "timeout" in low or "timed out" in low:
        reason = "no answer within the connect timeout"
    elif "resolve host" in low or "translate host name" in low or "name or service not known" in low:
        reason = "the host name does not resolve"
    elif "no such file or directory" in low:
        reason = "no server is listening on that socket"
    elif "ssl" in low:
        reason = "the TLS handshake failed (check sslmode and that this is a Postgres port)"
    elif "too many" in low and "connections" in low:
        reason = "the server has too many connections"
    elif "starting up" in low or "shutting down" in low or "recovery" in low:
        reason = "the server is starting up, shutting down or in recovery"
    else:
        reason = _scrub(_last_line(text), dsn)
    return Unreachable(f"cannot reach Postgres at {where}: {reason}")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[0] if lines else "connection failed"
    return line.rsplit("failed: ", 1)[-1][:160]


def _scrub(text: str, dsn: str) -> str:
    """Belt and braces: a reason never carries the DSN or its password, even if libpq ever quoted them."""
    from pipectl.secrets import embedded_secrets

    for secret in (dsn, *embedded_secrets(dsn)):
        if secret and len(secret) >= 2:
            text = text.replace(secret, "****")
    return text
