"""db.connect — the state store answers, and the tables and columns the config names exist."""

from __future__ import annotations

import time

from pipectl.config import PipelineConfig, StateTable
from pipectl.connectors import pg_connect, postgres
from pipectl.deadline import retry_advice
from pipectl.errors import ConnectorError, NotFound, Unauthorized
from pipectl.interface import Check, Context
from pipectl.model import Finding, Severity

_COLUMN_KEYS = ("id_column", "status_column", "updated_column")


def database_skip_reason(config: PipelineConfig) -> str | None:
    """Why no database check can run here (shared by the db.* checks), or None."""
    variable = config.source.unresolved.get("database.dsn")
    if variable:
        return f"database.dsn refers to ${variable}, which is not set (credentials.present reports it)"
    if not config.database.dsn:
        return "no database.dsn configured: nothing to connect to"
    return None


def connect_timeout(ctx: Context) -> float:
    return min(ctx.timeout, ctx.config.database.connect_timeout)


def query_timeout(ctx: Context) -> float:
    """A query gives up a little before the runner does, so the finding says which table was too slow."""
    return ctx.timeout * 0.8


class DbConnect(Check):
    """Detects: a state store that cannot be reached or refuses the credentials, and state tables or
    columns named in the config (table, id/status/updated columns, group_by) that the database does
    not have, cannot be read by this role, or whose updated column is not a timestamp.

    Why it matters: every other database finding rests on this one; a renamed column or a table in
    another schema silently turns stuck-row detection into "nothing found".

    Fix: start or reach the server (network, host, port), correct the password in the variable
    database.dsn refers to, or correct `table` / `*_column` / `group_by` under [[state_tables]].
    """

    id = "db.connect"
    libraries = ("psycopg",)
    component = "database"
    severity = Severity.P0

    def applies(self, ctx: Context) -> str | None:
        return database_skip_reason(ctx.config)

    def run(self, ctx: Context) -> list[Finding]:
        dsn = ctx.config.database.dsn or ""
        where = pg_connect.target(dsn)
        location = {"host": where.host, "dbname": where.dbname}
        variable = ctx.config.source.references.get("database.dsn")
        started = time.monotonic()
        try:
            with postgres.session(dsn, query_timeout(ctx), connect_timeout(ctx)) as db:
                connected_ms = round((time.monotonic() - started) * 1000)
                findings = [self.ok(
                    f"connected to {where} (PostgreSQL {db.server_version()}) in {connected_ms} ms",
                    evidence={**location, "server_version": db.server_version(), "connect_ms": connected_ms},
                )]  # fmt: skip
                findings += [self._table(db, st, ctx) for st in ctx.config.state_tables]
                return findings
        except Unauthorized as exc:
            holder = f"${variable} (database.dsn)" if variable else "database.dsn"
            return [self.fail(
                str(exc),
                impact="Nothing can read or move the pipeline's rows with these credentials.",
                evidence=location,
                advice=f"Correct the user/password in {holder}.",
            )]  # fmt: skip
        except NotFound as exc:  # the database itself does not exist
            return [self.fail(
                str(exc),
                impact="Nothing can read or move the pipeline's rows.",
                evidence=location,
                advice=f"Correct the database name in {'$' + variable if variable else 'database.dsn'}.",
            )]  # fmt: skip
        except ConnectorError as exc:
            return [self.error(
                str(exc),
                impact="Could not tell whether the pipeline's rows are moving.",
                evidence=location,
                advice=f"Check that the server runs and this machine can reach {where}. "
                       + retry_advice("db", ctx.timeout),
            )]  # fmt: skip

    def _table(self, db: postgres.Session, st: StateTable, ctx: Context) -> Finding:
        config_path = ctx.config.source.path
        info = db.describe_table(st.table)
        if info is None:
            hint = db.near_miss_table(st.table)
            return self.fail(
                f"table {st.table} not found in {db.where}" + (f" (did you mean {hint}?)" if hint else ""),
                subject=st.table,
                impact="Rows of this table are never checked for being stuck.",
                evidence={
                    "table": st.table,
                    "dbname": db.where.dbname,
                    **({"similar": hint} if hint else {}),
                },
                advice=f'Set table = "{hint}" under [[state_tables]] in {config_path}.'
                if hint
                else f"Create {st.table}, or correct `table` under [[state_tables]] in {config_path}.",
            )
        if not info.can_select:
            return self.fail(
                f"{st.table}: this role may not read the table",
                subject=st.table,
                impact="Rows of this table are never checked for being stuck.",
                evidence={"table": st.table},
                advice=f"Run `GRANT SELECT ON {st.table} TO <the role in database.dsn>` as the table's owner.",
            )
        wanted = {
            st.id_column: "id_column",
            st.status_column: "status_column",
            st.updated_column: "updated_column",
        }
        wanted.update({c: "group_by" for c in st.group_by if c not in wanted})
        missing = info.missing(list(wanted))
        if missing:
            hints = {m: info.near_miss(m) for m in missing}
            described = ", ".join(
                f"{m} ({wanted[m]}{'; the table has ' + hints[m] if hints[m] else ''})" for m in missing
            )
            first = missing[0]
            fix = (f'set {wanted[first]} = "{hints[first]}"' if hints[first] and wanted[first] != "group_by"
                   else f"correct {wanted[first]}")  # fmt: skip
            return self.fail(
                f"{st.table}: column{'s' if len(missing) > 1 else ''} {described} not found",
                subject=st.table,
                impact="Stuck rows in this table cannot be counted.",
                evidence={"table": st.table, "missing": missing, "config_keys": [wanted[m] for m in missing]},
                advice=f'{fix[0].upper()}{fix[1:]} under [[state_tables]] table = "{st.table}" in {config_path}.',
            )
        updated = info.column(st.updated_column)
        if updated is not None and updated.type not in postgres.TIME_TYPES:
            return self.fail(
                f"{st.table}: {st.updated_column} is {updated.type}, not a timestamp",
                subject=st.table,
                impact="How long a row has been waiting cannot be told.",
                evidence={"table": st.table, "column": st.updated_column, "type": updated.type},
                advice=f"Point updated_column at a timestamptz column under [[state_tables]] in {config_path}.",
            )
        rows = "never analyzed" if info.estimated_rows < 0 else f"~{info.estimated_rows:,} rows"
        return self.ok(
            f"{st.table}: {len(wanted)} configured columns present ({rows})",
            subject=st.table,
            evidence={"table": st.table, "columns": list(wanted), "estimated_rows": info.estimated_rows},
        )
