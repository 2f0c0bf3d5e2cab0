"""The stuck scan's SQL: the one query that finds stuck rows, and its answer read back.

Pure builders (no connection): `postgres.Session.stuck_rows` sends what `stuck_query` builds and reads the
rows with `stuck_groups`; which form is built follows the index the table has (`stuck_index`). Names reach
SQL only through `psycopg.sql.Identifier`, values only as parameters. psycopg is imported lazily.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pipectl.config import StateTable
from pipectl.connectors.pg_names import plain, table_ident
from pipectl.connectors.stuck_index import index_fit, walks_groups

if TYPE_CHECKING:
    from psycopg import sql

    from pipectl.connectors.postgres import TableInfo


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


def stuck_query(
    info: TableInfo, state_table: StateTable, samples: int
) -> tuple[sql.Composed, list, dict[str, str]]:
    """The query for this table as the catalog describes it, its parameters and its transaction settings."""
    nullable = {c.name for c in info.columns if not c.not_null}
    if index_fit(info, state_table).ordered:
        walk = walks_groups(info, state_table)
        query, params = build_indexed_stuck_query(state_table, samples, nullable, walk_groups=walk)
        # short index ranges: parallel workers only add their start-up time (and load the server). Only a
        # big table that cannot be walked would finish sooner with them, by loading the server more
        return query, params, {"max_parallel_workers_per_gather": "0", "jit": "off"}
    query, params = build_scan_stuck_query(state_table, samples, nullable)
    return query, params, {"jit": "off"}  # a one-off scan does not repay JIT compilation


def stuck_groups(state_table: StateTable, rows: Sequence[Sequence[Any]]) -> list[StuckGroup]:
    """The query's rows as groups: in `stuck_after` order, then largest first, then by group value."""
    n = len(state_table.group_by)
    groups = []
    for row in rows:
        status = _configured_status(state_table, row[0])
        groups.append(StuckGroup(
            status=status,
            group=dict(zip(state_table.group_by, (plain(v) for v in row[1 : 1 + n]), strict=True)),
            rows=int(row[1 + n]),
            oldest_s=math.inf if row[2 + n] is None else float(row[2 + n]),
            threshold=state_table.stuck_after[status],
            sample_ids=tuple(plain(v) for v in (row[3 + n] or ())),
        ))  # fmt: skip
    order = {status: i for i, status in enumerate(state_table.stuck_after)}
    return sorted(groups, key=lambda g: (order.get(g.status, len(order)), -g.rows, _sort_key(g.group)))


def older(updated: Any, bound: Any, undated: bool) -> Any:
    """`updated < bound`; with `undated` (the column allows NULL) also the rows with no timestamp at all:
    their age is unknown, so they count as older than any cutoff instead of silently never matching."""
    from psycopg import sql

    if not undated:
        return sql.SQL("{} < {}").format(updated, bound)
    return sql.SQL("({u} < {b} OR {u} IS NULL)").format(u=updated, b=bound)


def build_indexed_stuck_query(
    state_table: StateTable, samples: int, nullable: set[str] | frozenset[str] = frozenset(),
    walk_groups: bool = False,
) -> tuple[sql.Composed, list]:
    """For a table with an index leading (status, …, updated): one aggregate branch per status, UNION ALL.

    Each branch is `status = S AND updated < now() - T`, an index range (index-only when the index holds
    the group columns), or with `walk_groups` one such range per group (see `walks_groups`); the sample
    ids are then read per group with a LIMIT, so no stuck row but the few shown is fetched from the heap.
    An OR of the statuses would force a bitmap scan instead.
    """
    from psycopg import sql

    table = table_ident(state_table.table)
    status, updated = sql.Identifier(state_table.status_column), sql.Identifier(state_table.updated_column)
    group_cols = [sql.Identifier(c) for c in state_table.group_by]
    group_alias = [sql.Identifier(f"pipectl_g{i}") for i in range(len(group_cols))]
    undated = state_table.updated_column in nullable
    # a walk skips NULLs (see `walks_groups`): with a nullable group or updated column, the plain ranges
    walk_groups = walk_groups and bool(group_cols) and not undated and not nullable & set(state_table.group_by)
    branch = _walk_branch if walk_groups else _range_branch
    branches, params = [], []
    for status_value, threshold in state_table.stuck_after.items():
        text, values = branch(table, status, updated, group_cols, group_alias, undated)
        branches.append(text)
        params += [{"status": status_value, "threshold": threshold}[v] for v in values]
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


def _range_branch(table: Any, status: Any, updated: Any, group_cols: list, group_alias: list, undated: bool
                  ) -> tuple[sql.Composed, tuple[str, ...]]:
    """One status's stuck rows grouped, from one index range; its placeholders, in order."""
    from psycopg import sql

    text = sql.SQL(
        "SELECT {select}, count(*) AS pipectl_rows, {oldest} AS pipectl_oldest,"
        " now() - %s::interval AS pipectl_cutoff"
        " FROM {table} WHERE {status} = %s AND {stale}"
        " GROUP BY {group}"
    ).format(
        select=_keys_as(sql.SQL(""), status, group_cols, group_alias), table=table, status=status,
        group=sql.SQL(", ").join([status, *group_cols]),
        stale=older(updated, sql.SQL("now() - %s::interval"), undated), oldest=_oldest(updated, undated),
    )  # fmt: skip
    return text, ("threshold", "status", "threshold")


def _walk_branch(table: Any, status: Any, updated: Any, group_cols: list, group_alias: list, undated: bool
                 ) -> tuple[sql.Composed, tuple[str, ...]]:
    """One status's stuck rows per group, walking the groups: a recursive CTE finds the status's first
    group and then each next one (one index descent each); per group one index range counts its stuck rows.
    Only for NOT NULL group and updated columns (`walks_groups`), so no NULL needs care here."""
    from psycopg import sql

    del undated  # walks_groups requires a NOT NULL updated column

    def qualified(alias: str) -> sql.Composed:
        return sql.SQL(", ").join(sql.SQL(alias + ".{}").format(c) for c in group_cols)

    keys = sql.SQL(", ").join([status, *group_cols])
    same_group = sql.SQL("").join(sql.SQL(" AND s.{c} = k.{c}").format(c=c) for c in group_cols)
    text = sql.SQL(
        "(WITH RECURSIVE pipectl_k AS ("
        "(SELECT {keys} FROM {table} WHERE {status} = %s ORDER BY {groups} LIMIT 1)"
        " UNION ALL SELECT n.* FROM pipectl_k AS k CROSS JOIN LATERAL"
        " (SELECT {s_keys} FROM {table} AS s WHERE s.{status} = k.{status} AND ({s_groups}) > ({k_groups})"
        " ORDER BY {s_groups} LIMIT 1) AS n)"
        " SELECT {select}, c.pipectl_rows, c.pipectl_oldest, now() - %s::interval AS pipectl_cutoff"
        " FROM pipectl_k AS k CROSS JOIN LATERAL"
        " (SELECT count(*) AS pipectl_rows, min(s.{updated}) AS pipectl_oldest FROM {table} AS s"
        " WHERE s.{status} = k.{status}{same_group} AND s.{updated} < now() - %s::interval) AS c"
        " WHERE c.pipectl_rows > 0)"
    ).format(
        keys=keys, table=table, status=status, groups=sql.SQL(", ").join(group_cols),
        s_keys=sql.SQL(", ").join(sql.SQL("s.{}").format(c) for c in [status, *group_cols]),
        s_groups=qualified("s"), k_groups=qualified("k"), select=_keys_as(sql.SQL("k."), status, group_cols, group_alias),
        updated=updated, same_group=same_group,
    )  # fmt: skip
    return text, ("status", "threshold", "threshold")


def _keys_as(source: Any, status: Any, group_cols: list, group_alias: list) -> sql.Composed:
    """`status AS pipectl_status, g AS pipectl_g0, …`: a branch's keys under the names the outer query reads,
    taken from `source` (a qualifier such as `k.`, or nothing)."""
    from psycopg import sql

    keys = [sql.SQL("{}{} AS pipectl_status").format(source, status)]
    keys += [sql.SQL("{}{} AS {}").format(source, c, a) for c, a in zip(group_cols, group_alias, strict=True)]
    return sql.SQL(", ").join(keys)


def build_scan_stuck_query(
    state_table: StateTable, samples: int, nullable: set[str] | frozenset[str] = frozenset()
) -> tuple[sql.Composed, list]:
    """Without a usable index: one pass, an OR of the statuses, the samples by an ordered array_agg."""
    from psycopg import sql

    undated = state_table.updated_column in nullable

    table = table_ident(state_table.table)
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


def _configured_status(state_table: StateTable, value: Any) -> str:
    """The `stuck_after` key a returned status matched: the same string, unless a char(n) column pads it."""
    text = str(value)
    if text in state_table.stuck_after:
        return text
    return next((s for s in state_table.stuck_after if s.strip() == text.strip()), text)


def _sort_key(group: Mapping[str, Any]) -> tuple:
    return tuple((v is None, str(v)) for v in group.values())
