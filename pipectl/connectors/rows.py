"""Rows a run should have moved on: one bounded, read-only count per status, for `prefect.runs`.

The connection comes from `pipectl.connectors.postgres.session` (bounded, read-only, errors that name
`host:port/dbname`, never the DSN). Names reach SQL only through `psycopg.sql.Identifier`, values only as
parameters. psycopg is imported lazily.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from pipectl.durations import whole_seconds
from pipectl.errors import ConnectorError, NotFound, Unauthorized, Unreachable


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
    import psycopg
    from psycopg import errors, sql

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
        status=status, table=_table_ident(table), where=where
    )
    with session(dsn, timeout, connect_timeout) as db:
        try:
            rows = db.fetch(query, params)
        except (errors.UndefinedTable, errors.UndefinedColumn) as exc:
            raise NotFound(f"{table}: {_first_line(exc)} (in {db.where})") from None
        except errors.InsufficientPrivilege as exc:
            raise Unauthorized(f"{table}: {_first_line(exc)} (in {db.where})") from None
        except errors.QueryCanceled:
            raise Unreachable(f"{table}: the count did not finish within {whole_seconds(timeout)} (in {db.where})") from None
        except psycopg.OperationalError as exc:
            raise Unreachable(f"lost the connection to {db.where}: {_first_line(exc)}") from None
        except psycopg.Error as exc:
            raise ConnectorError(f"{table}: {_first_line(exc)} (in {db.where})") from None
    return {str(value): int(count) for value, count in rows if count}


def _table_ident(table: str):
    from psycopg import sql

    schema, _, name = table.rpartition(".")
    return sql.Identifier(schema, name) if schema else sql.Identifier(name)


def _first_line(exc: BaseException) -> str:
    """The server's primary message only: no DETAIL (which may quote row values), no DSN."""
    diag = getattr(exc, "diag", None)
    text = (getattr(diag, "message_primary", None) if diag is not None else None) or str(exc)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(exc).__name__
