"""A reset's SQL and its reads: which rows it may move, counted before (`plan_reset`) and after
(`count_matching`), and the batch UPDATE that moves them (sent by `postgres_write.reset_batches`).

The reads run on pipectl's read connection (`postgres.session`: bounded, read-only). The cutoff is fixed
once, on the server's clock, so the count, the batches and verify all judge the same rows. Names reach SQL
only through `psycopg.sql.Identifier`, values only as parameters. psycopg is imported lazily.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pipectl.config import StateTable
from pipectl.connectors.pg_connect import configured_target, statement_errors
from pipectl.connectors.pg_names import QUOTED_NAME, plain, split_table, table_ident
from pipectl.connectors.stuck_query import older

if TYPE_CHECKING:
    from psycopg import sql

SAMPLES = 3


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


def plan_reset(dsn: str, table: StateTable, from_status: str, older_than: timedelta | None,
               where: Mapping[str, Any] | None = None, limit: int | None = None,
               timeout: float = 10.0) -> ResetPlan:
    """Per group, how many rows are in `from_status` and older than the cutoff, with the oldest few ids.

    One query; the cutoff (`now() - older_than`, or `now()`) is computed by that same statement and
    returned, so the reset can move exactly the rows counted here. `limit` does not change the counts.
    """
    from psycopg import sql

    from pipectl.connectors import postgres

    del limit  # the counts are what matches; the caller shows how many of them a limit lets through
    ident = sql.Identifier
    groups = [ident(c) for c in table.group_by]
    alias = [ident(f"pipectl_g{i}") for i in range(len(groups))]
    cond, params = conditions(table, dict(where or {}), "w")
    match = [sql.SQL(" AND s.{} = g.{}").format(c, a) for c, a in zip(groups, alias, strict=True)]
    where_ = configured_target(dsn)
    with postgres.session(dsn, timeout) as db, statement_errors(table.table, where_):
        is_undated = undated(db.fetch, table)
        cutoff = sql.SQL("now() - %(age)s::interval")
        query = sql.SQL(
            "SELECT g.*, now() - %(age)s::interval,"
            " ARRAY(SELECT s.{id} FROM {table} AS s WHERE s.{status} = %(from)s AND {sstale}"
            "       {scond}{match} ORDER BY s.{updated} LIMIT %(samples)s)"
            " FROM (SELECT {select}count(*) AS pipectl_rows FROM {table} AS w"
            "       WHERE w.{status} = %(from)s AND {wstale}{cond} {group_by}) AS g"
            " ORDER BY {order}"
        ).format(
            sstale=older(ident("s", table.updated_column), cutoff, is_undated),
            wstale=older(ident("w", table.updated_column), cutoff, is_undated),
            select=sql.SQL("").join(sql.SQL("w.{} AS {}, ").format(c, a) for c, a in zip(groups, alias, strict=True)),
            table=table_ident(table.table), status=ident(table.status_column), updated=ident(table.updated_column),
            id=ident(table.id_column), cond=cond, scond=conditions(table, dict(where or {}), "s")[0],
            match=sql.Composed(match),
            group_by=sql.SQL("GROUP BY {}").format(sql.SQL(", ").join(groups)) if groups else sql.SQL(""),
            order=sql.SQL(", ").join([sql.SQL("pipectl_rows DESC"), *alias]),
        )
        params.update({"age": older_than or timedelta(0), "from": from_status, "samples": SAMPLES})
        rows = db.fetch(query, params)
        if not rows:  # nothing matches: the cutoff still bounds what verify looks at
            now = db.fetch("SELECT now() - %s::interval", [older_than or timedelta(0)])[0][0]
            return ResetPlan(0, (), (), now, is_undated)
    n = len(groups)
    per_group = tuple((tuple(plain(v) for v in r[:n]), int(r[n])) for r in rows)
    samples = tuple((tuple(plain(v) for v in r[:n]), tuple(plain(v) for v in r[-1] or ())) for r in rows)
    return ResetPlan(sum(c for _, c in per_group), per_group, samples, rows[0][n + 1], is_undated)


def undated(fetch: Callable[..., list[tuple]], table: StateTable) -> bool:
    """Whether the table's updated column allows NULL (so rows may have no timestamp at all); `fetch` runs
    one query on whichever connection the caller holds."""
    schema, name = split_table(table.table)
    rows = fetch("SELECT NOT a.attnotnull FROM pg_attribute AS a WHERE a.attrelid = to_regclass("
                 + QUOTED_NAME + ") AND a.attname = %(column)s",
                 {"schema": schema, "name": name, "column": table.updated_column})
    return bool(rows and rows[0][0])


def known_statuses(dsn: str, table: StateTable, limit: int = 200, timeout: float = 10.0) -> list[str]:
    """The statuses the table's rows are in now (at most `limit`, found by walking the status column's index
    when there is one), so a reset can refuse a status nothing uses."""
    from psycopg import sql

    query = sql.SQL("SELECT {status} FROM {table} GROUP BY {status} LIMIT %(limit)s").format(
        status=sql.Identifier(table.status_column), table=table_ident(table.table))
    return sorted(str(r[0]) for r in _read(dsn, table.table, query, {"limit": limit}, timeout) if r[0] is not None)


def count_matching(dsn: str, table: StateTable, flt: Filter, timeout: float = 10.0) -> int:
    """Rows still in the filter's status and older than its cutoff (what verify expects to be 0)."""
    query, params = count_query(table, flt)
    return int(_read(dsn, table.table, query, params, timeout)[0][0])


def count_query(table: StateTable, flt: Filter) -> tuple[sql.Composed, dict[str, Any]]:
    """`SELECT count(*)` of the rows the filter matches, with its parameters."""
    from psycopg import sql

    cond, params = conditions(table, flt.where)
    query = sql.SQL("SELECT count(*) FROM {table} WHERE {status} = %(from)s AND {stale}{cond}").format(
        table=table_ident(table.table), status=sql.Identifier(table.status_column), cond=cond,
        stale=older(sql.Identifier(table.updated_column), sql.SQL("%(cutoff)s"), flt.undated))
    return query, {**params, "from": flt.status, "cutoff": flt.cutoff}


def batch_queries(table: StateTable, where: Mapping[str, Any], by_ctid: bool,
                  is_undated: bool = False) -> tuple[sql.Composed, sql.Composed]:
    """The batch UPDATE, from the lowest id and from after `last` (keyset: no batch rescans done rows).

    The subquery locks the rows it picks (FOR NO KEY UPDATE, the lock an UPDATE of non-key columns takes
    anyway; SKIP LOCKED leaves rows a worker holds to the worker), so they cannot change before the
    UPDATE reaches them; the UPDATE checks the whole filter again all the same (compare-and-set). The
    locked rows are found again by their physical address (ctid, a direct heap fetch) in an ordinary
    table, by the id in a partitioned one (a ctid is only unique within one partition). `= ANY(ARRAY(…))`,
    not `IN (…)`: with IN the planner may hash-join the locked rows against a scan of the whole table.
    """
    from psycopg import sql

    cond, _ = conditions(table, where)
    ident = sql.Identifier
    parts = {"t": table_ident(table.table), "id": ident(table.id_column), "status": ident(table.status_column),
             "updated": ident(table.updated_column), "cond": cond,
             "stale": older(ident(table.updated_column), sql.SQL("%(cutoff)s"), is_undated),
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


def conditions(table: StateTable, where: Mapping[str, Any], alias: str | None = None) -> tuple[sql.Composed, dict]:
    """` AND col = %(w0)s …` for the equality filters (a None value matches NULL), and their parameters."""
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


def _read(dsn: str | None, table: str, query: Any, params: Any, timeout: float) -> list[tuple]:
    """One bounded read-only transaction on pipectl's read connection (see `postgres.session`)."""
    from pipectl.connectors import postgres

    where = configured_target(dsn)
    with postgres.session(dsn or "", timeout) as db, statement_errors(table, where):
        return db.fetch(query, params)
