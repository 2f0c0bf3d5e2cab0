"""Postgres writes: the only code that changes rows in the state store (psycopg is imported lazily).

Every write is a compare-and-set on the status column, in short batches that are each their own
transaction, bounded by a local `lock_timeout` and `statement_timeout`, on a connection named
`pipectl-reset` (so an operator can find it in `pg_stat_activity`). Table and column names reach SQL only
through `psycopg.sql.Identifier`; values only as parameters. Errors leave as one line naming
`host:port/dbname`, never the DSN or its password (`pg_connect`).

What a reset may move, and the SQL that moves it, are built in `reset_query`; this module sends them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pipectl.config import StateTable
from pipectl.connectors.pg_connect import (
    configured_target,
    connect,
    first_line,
    statement_error,
    statement_errors,
)
from pipectl.connectors.pg_names import QUOTED_NAME, plain, split_table, table_ident
from pipectl.connectors.reset_query import Filter, batch_queries, conditions, count_query, undated
from pipectl.errors import ConnectorError, NotFound, Unreachable, UsageError

if TYPE_CHECKING:
    import psycopg

APPLICATION_NAME = "pipectl-reset"
BATCH_TIMEOUT_S = 5.0
"""`statement_timeout` and `lock_timeout` of every write batch: no batch holds row locks longer."""
COUNT_TIMEOUT_S = 30.0
"""Counting what is left (a read, no row locks) may take longer than a batch may."""
_MIN_BATCH = 100
"""A batch that hits the statement timeout is retried at half the size, down to this many rows."""
_LOCKED_WAIT_S = 5.0
"""How long reset waits for rows other transactions hold locked before it stops and lets verify report."""


# --- connections -------------------------------------------------------------------------------------


@contextlib.contextmanager
def connection(dsn: str, timeout: float = BATCH_TIMEOUT_S) -> Iterator[psycopg.Connection]:
    """A writing connection, autocommit: every transaction is an explicit, short `conn.transaction()`."""
    conn = connect(dsn, configured_target(dsn), timeout, autocommit=True, application_name=APPLICATION_NAME)
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            conn.close()


@contextlib.contextmanager
def transaction(dsn: str, table: str, timeout: float = BATCH_TIMEOUT_S) -> Iterator[psycopg.Connection]:
    """One bounded write transaction on a connection of its own, for a single statement on `table` (the
    probe's insert and delete): committed on leaving, rolled back on an error, which leaves as one line."""
    with connection(dsn, timeout) as conn, statement_errors(table, configured_target(dsn)), conn.transaction():
        set_limits(conn, timeout)
        yield conn


def set_limits(conn: psycopg.Connection, timeout: float) -> None:
    """Local to the open transaction, so a pooler never hands them to another client's transaction."""
    ms = str(max(1, int(timeout * 1000)))
    conn.execute("SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true)", [ms, ms])


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
    where_ = configured_target(dsn)
    done, batch_no, size = 0, 0, batch_size
    with connection(dsn, timeout) as conn:
        with statement_errors(table.table, where_):
            if cutoff is None:
                cutoff = conn.execute("SELECT now() - %s::interval", [older_than or timedelta(0)]).fetchone()[0]
            by_ctid = _plain_table(conn, table.table)
            is_undated = undated(lambda q, p: conn.execute(q, p).fetchall(), table)
        flt = Filter(from_status, cutoff, dict(where or {}), is_undated)
        first, keyed = batch_queries(table, flt.where, by_ctid, is_undated)
        count, count_params = count_query(table, flt)
        params: dict[str, Any] = {"from": from_status, "to": to_status, "cutoff": cutoff,
                                  **conditions(table, flt.where)[1]}
        last: Any = None
        locked_since: float | None = None
        while limit is None or done < limit:
            n = size if limit is None else min(size, limit - done)
            stage = "update"
            began = time.perf_counter()
            try:
                with conn.transaction():
                    set_limits(conn, timeout)
                    cursor = conn.cursor(row_factory=scalar_row)
                    ids = cursor.execute(first if last is None else keyed, {**params, "n": n, "last": last}).fetchall()
                    if ids:
                        on_intent(ids)  # write-ahead: journaled before the commit, so kill -9 loses nothing
                    stage = "commit"
            except errors.QueryCanceled as exc:
                if "statement timeout" in first_line(exc) and size > _MIN_BATCH:
                    size = max(_MIN_BATCH, size // 2)  # rolled back: the same rows again, in smaller bites
                    continue
                raise _stopped(batch_no + 1, done, statement_error(exc, table.table, where_)) from None
            except errors.LockNotAvailable as exc:
                raise _stopped(batch_no + 1, done, statement_error(exc, table.table, where_)) from None
            except psycopg.OperationalError as exc:
                if conn.closed or conn.broken:
                    raise _lost(batch_no + 1, done, stage) from None
                raise _stopped(batch_no + 1, done, statement_error(exc, table.table, where_)) from None
            except psycopg.Error as exc:
                raise _stopped(batch_no + 1, done, statement_error(exc, table.table, where_)) from None
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
                    set_limits(conn, max(timeout, COUNT_TIMEOUT_S))  # a read: it holds no row locks
                    left = int(conn.execute(count, count_params).fetchone()[0])
            except psycopg.Error as exc:
                if conn.closed or conn.broken:
                    raise _lost(batch_no + 1, done, "update") from None
                raise _stopped(batch_no + 1, done, statement_error(exc, table.table, where_)) from None
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


def _plain_table(conn: psycopg.Connection, table: str) -> bool:
    """An ordinary table (relkind r), where a row's ctid is unique; not a partitioned table or a view."""
    schema, name = split_table(table)
    row = conn.execute(
        "SELECT relkind FROM pg_class WHERE oid = to_regclass(" + QUOTED_NAME + ")", {"schema": schema, "name": name}
    ).fetchone()
    return bool(row) and row[0] == "r"


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
    where_ = configured_target(dsn)
    ident = sql.Identifier
    changed: list[Any] = []
    with connection(dsn, timeout) as conn:
        with statement_errors(table, where_):
            id_type = _column_type(conn, table, id_column)
        query = sql.SQL(
            "UPDATE {t} SET {status} = %(new)s{touch} WHERE {id} = ANY(%(ids)s::text[]::{type}[])"
            " AND {status} = %(expected)s RETURNING {id}"
        ).format(
            t=table_ident(table), status=ident(status_column), id=ident(id_column), type=sql.SQL(id_type),
            touch=sql.SQL(", {} = now()").format(ident(updated_column)) if updated_column else sql.SQL(""),
        )
        step = max(1, batch_size)
        for number, start in enumerate(range(0, len(ids), step), 1):
            chunk = [str(i) for i in ids[start : start + step]]
            try:
                with conn.transaction():
                    set_limits(conn, timeout)
                    cursor = conn.execute(query, {"new": new, "expected": expected, "ids": chunk})
                    changed += [plain(r[0]) for r in cursor.fetchall()]
            except psycopg.Error as exc:
                if conn.closed or conn.broken:
                    raise Unreachable(f"connection to the database lost during batch {number}; {len(changed)} rows "
                                      "were set back in committed batches; run the same command again to finish"
                                      ) from None
                raise statement_error(exc, table, where_) from None
    return changed


def _column_type(conn: psycopg.Connection, table: str, column: str) -> str:
    """The column's SQL type as the catalog prints it (already quoted where it needs to be)."""
    schema, name = split_table(table)
    row = conn.execute(
        "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
        " WHERE a.attrelid = to_regclass(" + QUOTED_NAME + ")"
        " AND a.attname = %(column)s AND a.attnum > 0 AND NOT a.attisdropped",
        {"schema": schema, "name": name, "column": column},
    ).fetchone()
    if row is None:
        raise NotFound(f"{table}: no column {column!r}, or no such table")
    return str(row[0])

