"""Rows a run should have moved on: one bounded, read-only count per status, for `prefect.runs`.

The connection comes from `pipectl.connectors.postgres.session` (bounded, read-only, errors that name
`host:port/dbname`, never the DSN) and a failed count is worded by `pg_connect.statement_errors`, as every
other statement on a state table is. Names reach SQL only through `psycopg.sql.Identifier` (`pg_names`),
values only as parameters. psycopg is imported lazily.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from pipectl.connectors.pg_names import table_ident


def rows_not_moved_since(
    dsn: str,
    table: str,
    since: Mapping[str, datetime],
    timeout: float,
    *,
    older_than: Mapping[str, timedelta] | None = None,
    status_column: str = "status",
    updated_column: str = "updated_at",
    match: Mapping[str, str] | None = None,
    connect_timeout: float | None = None,
) -> dict[str, int]:
    """Per status, the rows of `table` in that status whose `updated_column` is not after `since[status]`.

    `older_than[status]` also requires the row to be older than that (measured with the database's clock);
    `match` adds `column = value` conditions (e.g. the step a deployment works on). Statuses with no such
    row are left out of the answer.
    """
    if not since:
        return {}
    from psycopg import sql

    from pipectl.connectors.postgres import session

    status, updated = sql.Identifier(status_column), sql.Identifier(updated_column)
    branches, params = [], []
    for value, cutoff in since.items():
        condition = sql.SQL("({} = %s AND {} <= %s").format(status, updated)
        params += [value, cutoff]
        age = (older_than or {}).get(value)
        if age is not None:
            condition += sql.SQL(" AND {} < now() - %s::interval").format(updated)
            params.append(age)
        branches.append(condition + sql.SQL(")"))
    where = sql.SQL("({})").format(sql.SQL(" OR ").join(branches))
    for column, value in (match or {}).items():
        where += sql.SQL(" AND {} = %s").format(sql.Identifier(column))
        params.append(value)
    query = sql.SQL("SELECT {status}, count(*) FROM {table} WHERE {where} GROUP BY {status}").format(
        status=status, table=table_ident(table), where=where
    )
    with session(dsn, timeout, connect_timeout) as db, db.about(table):
        rows = db.fetch(query, params)
    return {str(value): int(count) for value, count in rows if count}
