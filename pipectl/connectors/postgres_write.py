"""Postgres writes: the only code that changes rows in the state store (psycopg is imported lazily).

Every write is a compare-and-set on the status column, in short batches that are each their own
transaction, bounded by a local `lock_timeout` and `statement_timeout`, on a connection named
`pipectl-reset` (so an operator can find it in `pg_stat_activity`). Table and column names reach SQL only
through `psycopg.sql.Identifier`; values only as parameters. Errors leave as one line naming
`host:port/dbname`, never the DSN or its password.

Status counts (a read) live here too, so `playbook` and `trigger` count rows the way reset moves them.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pipectl.config import StateTable
from pipectl.connectors.postgres import (
    Target,
    _connect_error,
    _first_line,
    _plain,
    _split,
    _table_ident,
    target,
)
from pipectl.errors import ConnectorError, NotFound, Unauthorized, Unreachable, UsageError

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

APPLICATION_NAME = "pipectl-reset"
BATCH_TIMEOUT_S = 5.0
"""`statement_timeout` and `lock_timeout` of every write batch: no batch holds row locks longer."""
COUNT_TIMEOUT_S = 30.0
"""Counting what is left (a read, no row locks) may take longer than a batch may."""
SAMPLES = 3
_MIN_CONNECT_TIMEOUT = 2
_MIN_BATCH = 100
"""A batch that hits the statement timeout is retried at half the size, down to this many rows."""
_LOCKED_WAIT_S = 5.0
"""How long reset waits for rows other transactions hold locked before it stops and lets verify report."""


@dataclass(frozen=True)
class Filter:
    """Which rows a reset touches: one status, not updated since `cutoff`, and equal on `where` columns."""

    status: str
    cutoff: datetime
    where: Mapping[str, Any] = field(default_factory=dict)
    undated: bool = False
    """The updated column allows NULL: rows without a timestamp count as older than the cutoff."""


@dataclass(frozen=True)
class ResetPlan:
    """What a reset would move, counted in one query against a cutoff fixed on the server's clock."""

    rows: int
    per_group: tuple[tuple[tuple[Any, ...], int], ...]
    """((group values…), rows) per value of the table's group_by columns; ((), rows) without group_by."""
    sample_ids: tuple[tuple[tuple[Any, ...], tuple[Any, ...]], ...]
    """((group values…), (a few ids…)) per group, least recently updated first (none for a NULL group)."""
    cutoff: datetime
    """Rows updated at or after this moment are never touched (computed once, on the server)."""
    undated: bool = False
    """The updated column allows NULL, and rows without a timestamp are counted (their age is unknown)."""


_QUOTED_NAME = ("CASE WHEN %(schema)s::text IS NULL THEN quote_ident(%(name)s)"
                " ELSE quote_ident(%(schema)s) || '.' || quote_ident(%(name)s) END")
"""The table's name as `to_regclass` must see it (quoted: config names are case-sensitive)."""


# --- connections and errors --------------------------------------------------------------------------


@contextlib.contextmanager
def _connection(dsn: str, timeout: float = BATCH_TIMEOUT_S) -> Iterator[psycopg.Connection]:
    """A writing connection, autocommit: every transaction is an explicit, short `conn.transaction()`."""
    import psycopg

    where = _where(dsn)
    try:
        conn = psycopg.connect(
            dsn,
            autocommit=True,
            connect_timeout=max(_MIN_CONNECT_TIMEOUT, math.ceil(timeout)),
            application_name=APPLICATION_NAME,
            prepare_threshold=None,  # poolers in transaction mode lose server-side prepared statements
        )
    except psycopg.Error as exc:
        raise _connect_error(exc, where, dsn) from None
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def _where(dsn: str | None) -> Target:
    if not dsn:
        raise UsageError("no [database] dsn in the config")
    return target(dsn)


def _limits(conn: psycopg.Connection, timeout: float) -> None:
    """Local to the open transaction, so a pooler never hands them to another client's transaction."""
    ms = str(max(1, int(timeout * 1000)))
    conn.execute("SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true)", [ms, ms])


def _mapped(exc: Exception, table: str, where: Target) -> ConnectorError:
    """One line about a failed statement, naming the table; never the DSN."""
    import psycopg
    from psycopg import errors

    if isinstance(exc, errors.UndefinedTable | errors.UndefinedColumn):
        return NotFound(f"{table}: {_first_line(exc)} (in {where})")
    if isinstance(exc, errors.InsufficientPrivilege):
        return Unauthorized(f"{table}: {_first_line(exc)} (in {where})")
    if isinstance(exc, errors.LockNotAvailable):
        return Unreachable(f"{table}: waited longer than the lock timeout for a lock (is a migration or a long "
                           "transaction holding the table?)")
    if isinstance(exc, errors.QueryCanceled):
        return Unreachable(f"{table}: the query did not finish within the statement timeout")
    if isinstance(exc, psycopg.OperationalError):
        return Unreachable(f"lost the connection to {where}: {_first_line(exc)}")
    return ConnectorError(f"{table}: {_first_line(exc)}")


@contextlib.contextmanager
def _about(table: str, where: Target) -> Iterator[None]:
    import psycopg

    try:
        yield
    except psycopg.Error as exc:
        raise _mapped(exc, table, where) from None


def _read(dsn: str | None, table: str, query: Any, params: Any, timeout: float) -> list[tuple]:
    """One bounded read-only transaction on pipectl's read connection (see `postgres.session`)."""
    from pipectl.connectors import postgres

    where = _where(dsn)
    with postgres.session(dsn or "", timeout) as db, _about(table, where):
        return db.fetch(query, params)


def plan_reset(dsn: str, table: StateTable, from_status: str, older_than: timedelta | None,
               where: Mapping[str, Any] | None = None, limit: int | None = None,
               timeout: float = 10.0) -> ResetPlan:
    """Per group, how many rows are in `from_status` and older than the cutoff, with the oldest few ids.

    One query; the cutoff (`now() - older_than`, or `now()`) is computed by that same statement and
    returned, so the reset can move exactly the rows counted here. `limit` does not change the counts.
    """
    from psycopg import sql

    del limit  # the counts are what matches; the caller shows how many of them a limit lets through
    ident = sql.Identifier
    groups = [ident(c) for c in table.group_by]
    alias = [ident(f"pipectl_g{i}") for i in range(len(groups))]
    conditions, params = _conditions(table, dict(where or {}), "w")
    match = [sql.SQL(" AND s.{} = g.{}").format(c, a) for c, a in zip(groups, alias, strict=True)]
    from pipectl.connectors import postgres

    where_ = _where(dsn)
    with postgres.session(dsn, timeout) as db, _about(table.table, where_):
        undated = _undated(db.fetch, table)
        cutoff = sql.SQL("now() - %(age)s::interval")
        query = sql.SQL(
            "SELECT g.*, now() - %(age)s::interval,"
            " ARRAY(SELECT s.{id} FROM {table} AS s WHERE s.{status} = %(from)s AND {sstale}"
            "       {scond}{match} ORDER BY s.{updated} LIMIT %(samples)s)"
            " FROM (SELECT {select}count(*) AS pipectl_rows FROM {table} AS w"
            "       WHERE w.{status} = %(from)s AND {wstale}{cond} {group_by}) AS g"
            " ORDER BY {order}"
        ).format(
            sstale=postgres.older(ident("s", table.updated_column), cutoff, undated),
            wstale=postgres.older(ident("w", table.updated_column), cutoff, undated),
            select=sql.SQL("").join(sql.SQL("w.{} AS {}, ").format(c, a) for c, a in zip(groups, alias, strict=True)),
            table=_table_ident(table.table), status=ident(table.status_column), updated=ident(table.updated_column),
            id=ident(table.id_column), cond=conditions, scond=_conditions(table, dict(where or {}), "s")[0],
            match=sql.Composed(match),
            group_by=sql.SQL("GROUP BY {}").format(sql.SQL(", ").join(groups)) if groups else sql.SQL(""),
            order=sql.SQL(", ").join([sql.SQL("pipectl_rows DESC"), *alias]),
        )
        params.update({"age": older_than or timedelta(0), "from": from_status, "samples": SAMPLES})
        rows = db.fetch(query, params)
        if not rows:  # nothing matches: the cutoff still bounds what verify looks at
            now = db.fetch("SELECT now() - %s::interval", [older_than or timedelta(0)])[0][0]
            return ResetPlan(0, (), (), now, undated)
    n = len(groups)
    per_group = tuple((tuple(_plain(v) for v in r[:n]), int(r[n])) for r in rows)
    samples = tuple((tuple(_plain(v) for v in r[:n]), tuple(_plain(v) for v in r[-1] or ())) for r in rows)
    return ResetPlan(sum(c for _, c in per_group), per_group, samples, rows[0][n + 1], undated)


def _undated(fetch: Callable[..., list[tuple]], table: StateTable) -> bool:
    """Whether the table's updated column allows NULL (so rows may have no timestamp at all)."""
    schema, name = _split(table.table)
    rows = fetch("SELECT NOT a.attnotnull FROM pg_attribute AS a WHERE a.attrelid = to_regclass("
                 + _QUOTED_NAME + ") AND a.attname = %(column)s",
                 {"schema": schema, "name": name, "column": table.updated_column})
    return bool(rows and rows[0][0])


def known_statuses(dsn: str, table: StateTable, limit: int = 200, timeout: float = 10.0) -> list[str]:
    """The statuses the table's rows are in now (at most `limit`, found by walking the status column's index
    when there is one), so a reset can refuse a status nothing uses."""
    from psycopg import sql

    query = sql.SQL("SELECT {status} FROM {table} GROUP BY {status} LIMIT %(limit)s").format(
        status=sql.Identifier(table.status_column), table=_table_ident(table.table))
    return sorted(str(r[0]) for r in _read(dsn, table.table, query, {"limit": limit}, timeout) if r[0] is not None)


def count_matching(dsn: str, table: StateTable, flt: Filter, timeout: float = 10.0) -> int:
    """Rows still in the filter's status and older than its cutoff (what verify expects to be 0)."""
    query, params = _count_query(table, flt)
    return int(_read(dsn, table.table, query, params, timeout)[0][0])


def _count_query(table: StateTable, flt: Filter) -> tuple[sql.Composed, dict[str, Any]]:
    from psycopg import sql

    conditions, params = _conditions(table, flt.where)
    from pipectl.connectors.postgres import older

    query = sql.SQL("SELECT count(*) FROM {table} WHERE {status} = %(from)s AND {stale}{cond}").format(
        table=_table_ident(table.table), status=sql.Identifier(table.status_column), cond=conditions,
        stale=older(sql.Identifier(table.updated_column), sql.SQL("%(cutoff)s"), flt.undated))
    return query, {**params, "from": flt.status, "cutoff": flt.cutoff}


# --- the reset ---------------------------------------------------------------------------------------


def reset_batches(
    dsn: str,
    table: StateTable,
    from_status: str,
    to_status: str,
    older_than: timedelta | None = None,
    where: Mapping[str, Any] | None = None,
    limit: int | None = None,
    batch_size: int = 20_000,
    on_batch: Callable[[list[Any]], None] = lambda ids: None,
    *,
    on_intent: Callable[[list[Any]], None] = lambda ids: None,
    cutoff: datetime | None = None,
    timeout: float = BATCH_TIMEOUT_S,
    timings: list[float] | None = None,
    expected: int | None = None,
) -> int:
    """Move rows `from_status` → `to_status` in batches; returns how many rows were moved.

    Each batch is one short transaction: lock up to `batch_size` matching rows (SKIP LOCKED: rows a worker
    holds are left to it), set them only where they are still `from_status` (compare-and-set), commit,
    then `on_batch(ids)`, so a caller's record only ever holds committed batches; `on_intent(ids)` runs
    inside the transaction just before its commit, so a journal written there holds every batch that may
    have committed, whatever instant the process is killed at. The cutoff is fixed
    once (`cutoff`, else now() - `older_than` on the server), so rows set meanwhile are never picked.
    Batches walk the ids upwards (keyset: no batch rescans the rows before it); if rows that were locked
    when passed still match at the end, a pass from the start picks them up. Stops when nothing matches
    (after waiting up to a few seconds for rows other transactions hold) or at `limit`.
    A lost connection raises ConnectorError saying how many rows the committed batches reset.
    `timings`, when given, receives each committed batch's transaction time (BEGIN to COMMIT) in seconds.
    `expected` is how many rows matched when the caller counted them against the same cutoff: once that
    many are moved, nothing can have been skipped and the final count is left out (verify counts anyway).
    """
    import psycopg
    from psycopg import errors
    from psycopg.rows import scalar_row

    if from_status == to_status:
        raise UsageError(f"the status to set equals the status to reset ({from_status})")
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    where_ = _where(dsn)
    done, batch_no, size = 0, 0, batch_size
    with _connection(dsn, timeout) as conn:
        with _about(table.table, where_):
            if cutoff is None:
                cutoff = conn.execute("SELECT now() - %s::interval", [older_than or timedelta(0)]).fetchone()[0]
            by_ctid = _plain_table(conn, table.table)
            undated = _undated(lambda q, p: conn.execute(q, p).fetchall(), table)
        flt = Filter(from_status, cutoff, dict(where or {}), undated)
        first, keyed = _batch_queries(table, flt.where, by_ctid, undated)
        count_query, count_params = _count_query(table, flt)
        params: dict[str, Any] = {"from": from_status, "to": to_status, "cutoff": cutoff, **_params(flt.where)}
        last: Any = None
        locked_since: float | None = None
        while limit is None or done < limit:
            n = size if limit is None else min(size, limit - done)
            stage = "update"
            began = time.perf_counter()
            try:
                with conn.transaction():
                    _limits(conn, timeout)
                    cursor = conn.cursor(row_factory=scalar_row)
                    ids = cursor.execute(first if last is None else keyed, {**params, "n": n, "last": last}).fetchall()
                    if ids:
                        on_intent(ids)  # write-ahead: journaled before the commit, so kill -9 loses nothing
                    stage = "commit"
            except errors.QueryCanceled as exc:
                if "statement timeout" in _first_line(exc) and size > _MIN_BATCH:
                    size = max(_MIN_BATCH, size // 2)  # rolled back: the same rows again, in smaller bites
                    continue
                raise _stopped(batch_no + 1, done, _mapped(exc, table.table, where_)) from None
            except errors.LockNotAvailable as exc:
                raise _stopped(batch_no + 1, done, _mapped(exc, table.table, where_)) from None
            except psycopg.OperationalError as exc:
                if conn.closed or conn.broken:
                    raise _lost(batch_no + 1, done, stage) from None
                raise _stopped(batch_no + 1, done, _mapped(exc, table.table, where_)) from None
            except psycopg.Error as exc:
                raise _stopped(batch_no + 1, done, _mapped(exc, table.table, where_)) from None
            if ids:
                if timings is not None:
                    timings.append(time.perf_counter() - began)
                batch_no += 1
                done += len(ids)
                # the keyset bound: any id of this batch is a safe one (rows below it that still match are
                # found by the final pass), the highest is the tightest (text ids: Python's order may differ)
                last = max(ids)
                locked_since = None
                on_batch(ids)
                continue
            # nothing unlocked matches from `last` on: done, unless rows were skipped while another
            # transaction held them (then a pass from the start, or a moment's wait for that transaction)
            if expected is not None and done >= expected:
                break
            try:
                with conn.transaction():
                    _limits(conn, max(timeout, COUNT_TIMEOUT_S))  # a read: it holds no row locks
                    left = int(conn.execute(count_query, count_params).fetchone()[0])
            except psycopg.Error as exc:
                if conn.closed or conn.broken:
                    raise _lost(batch_no + 1, done, "update") from None
                raise _stopped(batch_no + 1, done, _mapped(exc, table.table, where_)) from None
            if not left:
                break
            if last is not None:
                last = None
                continue
            # every row left is locked by another transaction right now: give it a moment to finish
            locked_since = locked_since or time.monotonic()
            if time.monotonic() - locked_since > _LOCKED_WAIT_S:
                break  # verify reports what is left
            time.sleep(0.05)
    return done


def _lost(batch: int, done: int, stage: str) -> ConnectorError:
    if stage == "commit":
        return Unreachable(
            f"connection to the database lost while committing batch {batch} (its rows may or may not have been "
            f"reset, and are not journaled); {done} rows were reset in committed batches; run the same command "
            "again to finish")
    return Unreachable(f"connection to the database lost during batch {batch}; {done} rows were reset in committed "
                       "batches; run the same command again to finish")


def _stopped(batch: int, done: int, error: ConnectorError) -> ConnectorError:
    """The batch in flight was rolled back; say so, and what the committed batches did."""
    return type(error)(f"{error}; batch {batch} was rolled back; {done} rows were reset in committed batches; run "
                       "the same command again to finish")


def _batch_queries(table: StateTable, where: Mapping[str, Any], by_ctid: bool,
                   undated: bool = False) -> tuple[sql.Composed, sql.Composed]:
    """The batch UPDATE, from the lowest id and from after `last` (keyset: no batch rescans done rows).

    The subquery locks the rows it picks (FOR NO KEY UPDATE, the lock an UPDATE of non-key columns takes
    anyway; SKIP LOCKED leaves rows a worker holds to the worker), so they cannot change before the
    UPDATE reaches them; the UPDATE checks the whole filter again all the same (compare-and-set). The
    locked rows are found again by their physical address (ctid, a direct heap fetch) in an ordinary
    table, by the id in a partitioned one (a ctid is only unique within one partition). `= ANY(ARRAY(…))`,
    not `IN (…)`: with IN the planner may hash-join the locked rows against a scan of the whole table.
    """
    from psycopg import sql

    from pipectl.connectors.postgres import older

    conditions, _ = _conditions(table, where)
    ident = sql.Identifier
    parts = {"t": _table_ident(table.table), "id": ident(table.id_column), "status": ident(table.status_column),
             "updated": ident(table.updated_column), "cond": conditions,
             "stale": older(ident(table.updated_column), sql.SQL("%(cutoff)s"), undated),
             "key": sql.SQL("ctid") if by_ctid else ident(table.id_column)}
    template = (
        "UPDATE {t} SET {status} = %(to)s, {updated} = now()"
        " WHERE {key} = ANY(ARRAY(SELECT {key} FROM {t} WHERE {status} = %(from)s AND {stale}{cond}"
        "{after} ORDER BY {id} LIMIT %(n)s FOR NO KEY UPDATE SKIP LOCKED))"
        " AND {status} = %(from)s AND {stale}{cond} RETURNING {id}"
    )
    first = sql.SQL(template).format(**parts, after=sql.SQL(""))
    keyed = sql.SQL(template).format(**parts, after=sql.SQL(" AND {} > %(last)s").format(parts["id"]))
    return first, keyed


def _plain_table(conn: psycopg.Connection, table: str) -> bool:
    """An ordinary table (relkind r), where a row's ctid is unique; not a partitioned table or a view."""
    schema, name = _split(table)
    row = conn.execute(
        "SELECT relkind FROM pg_class WHERE oid = to_regclass(" + _QUOTED_NAME + ")", {"schema": schema, "name": name}
    ).fetchone()
    return bool(row) and row[0] == "r"


def _conditions(table: StateTable, where: Mapping[str, Any], alias: str | None = None) -> tuple[sql.Composed, dict]:
    """` AND col = %(w0)s …` for the equality filters (a None value matches NULL)."""
    from psycopg import sql

    parts, params = [], {}
    for i, (column, value) in enumerate(where.items()):
        col = sql.Identifier(alias, column) if alias else sql.Identifier(column)
        if value is None:
            parts.append(sql.SQL(" AND {} IS NULL").format(col))
        else:
            parts.append(sql.SQL(" AND {} = %({})s").format(col, sql.SQL(f"w{i}")))
            params[f"w{i}"] = value
    return sql.Composed(parts), params


def _params(where: Mapping[str, Any]) -> dict[str, Any]:
    return {f"w{i}": v for i, v in enumerate(where.values()) if v is not None}


# --- undo --------------------------------------------------------------------------------------------


def set_status_where(
    dsn: str,
    table: str,
    id_column: str,
    status_column: str,
    ids: Sequence[Any],
    *,
    expected: str,
    new: str,
    updated_column: str | None = None,
    batch_size: int = 20_000,
    timeout: float = BATCH_TIMEOUT_S,
) -> list[Any]:
    """Set `new` on the rows among `ids` still in `expected` (compare-and-set), in short batches.

    Returns the ids that were set; rows someone moved on meanwhile are left alone. Ids may come back from
    the journal as text (uuid, …): they are cast to the id column's type on the server.
    """
    import psycopg
    from psycopg import sql

    if not ids:
        return []
    where_ = _where(dsn)
    ident = sql.Identifier
    changed: list[Any] = []
    with _connection(dsn, timeout) as conn:
        with _about(table, where_):
            id_type = _column_type(conn, table, id_column)
        query = sql.SQL(
            "UPDATE {t} SET {status} = %(new)s{touch} WHERE {id} = ANY(%(ids)s::text[]::{type}[])"
            " AND {status} = %(expected)s RETURNING {id}"
        ).format(
            t=_table_ident(table), status=ident(status_column), id=ident(id_column), type=sql.SQL(id_type),
            touch=sql.SQL(", {} = now()").format(ident(updated_column)) if updated_column else sql.SQL(""),
        )
        step = max(1, batch_size)
        for number, start in enumerate(range(0, len(ids), step), 1):
            chunk = [str(i) for i in ids[start : start + step]]
            try:
                with conn.transaction():
                    _limits(conn, timeout)
                    cursor = conn.execute(query, {"new": new, "expected": expected, "ids": chunk})
                    changed += [_plain(r[0]) for r in cursor.fetchall()]
            except psycopg.Error as exc:
                if conn.closed or conn.broken:
                    raise Unreachable(f"connection to the database lost during batch {number}; {len(changed)} rows "
                                      "were set back in committed batches; run the same command again to finish"
                                      ) from None
                raise _mapped(exc, table, where_) from None
    return changed


def _column_type(conn: psycopg.Connection, table: str, column: str) -> str:
    """The column's SQL type as the catalog prints it (already quoted where it needs to be)."""
    schema, name = _split(table)
    row = conn.execute(
        "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
        " WHERE a.attrelid = to_regclass(" + _QUOTED_NAME + ")"
        " AND a.attname = %(column)s AND a.attnum > 0 AND NOT a.attisdropped",
        {"schema": schema, "name": name, "column": column},
    ).fetchone()
    if row is None:
        raise NotFound(f"{table}: no column {column!r}, or no such table")
    return str(row[0])

