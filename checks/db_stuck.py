"""db.stuck — rows that stopped moving: older than their status's `stuck_after` threshold."""

from __future__ import annotations

import math
import shlex
from dataclasses import replace
from typing import Any

from pipectl.checks.db_connect import connect_timeout, database_skip_reason, query_timeout

from pipectl.config import PipelineConfig, StateTable
from pipectl.connectors import postgres, stuck_index, stuck_query
from pipectl.durations import format_duration
from pipectl.errors import ConnectorError, NotFound, Unauthorized
from pipectl.interface import Check, Context
from pipectl.model import Finding, Severity

P0_ROWS = 10
"""A group with at least this many stuck rows is a stalled batch (P0); fewer is a straggler (P1)."""

MAX_GROUPS = 20
"""Per table and status, the largest groups shown one by one; the rest are summed in one more finding."""

_PREVIOUS = {"QUEUED": "PENDING"}
"""Where a stuck row goes back to so the pipeline picks it up again; other statuses are reset in place."""

_RESERVED = ("table", "status", "rows", "oldest", "oldest_s", "threshold", "sample_ids")


class DbStuck(Check):
    """Detects: rows of a state table that have sat in one status longer than its `stuck_after`
    threshold, per status and `group_by` value (e.g. per step), with the oldest age and sample ids;
    and state tables without an index leading with the status column (the scan then reads them whole).

    Why it matters: stuck rows are the first visible symptom of both incidents — work handed to a
    worker that never ran it (QUEUED) or never handed out at all (PENDING). Severity: P0 when a group
    has 10 or more stuck rows (a stalled batch), P1 below that (stragglers), P2 for a missing index.
    The 20 largest groups per table and status are listed; the rest are summed in one more finding.

    Fix: repair the cause shown above the finding, then put the rows back with the exact
    `pipectl reset --table … --status … --older-than …` command in the finding; for a missing index,
    run the `CREATE INDEX CONCURRENTLY` statement given (outside a transaction).
    """

    id = "db.stuck"
    libraries = ("psycopg",)
    component = "database"
    severity = Severity.P1

    def applies(self, ctx: Context) -> str | None:
        reason = database_skip_reason(ctx.config)
        if reason:
            return reason
        if not ctx.config.state_tables:
            return "no [[state_tables]] configured"
        if not any(st.stuck_after for st in ctx.config.state_tables):
            return "no state table has stuck_after thresholds (config.valid reports it)"
        return None

    def run(self, ctx: Context) -> list[Finding]:
        self.config = ctx.config
        dsn = ctx.config.database.dsn or ""
        try:
            with postgres.session(dsn, query_timeout(ctx), connect_timeout(ctx)) as db:
                findings: list[Finding] = []
                for st in ctx.config.state_tables:
                    if st.stuck_after:
                        findings += self._table(db, st)
                return findings
        except ConnectorError as exc:  # unreachable, refused: db.connect says so with the fix
            return [self.error(
                f"could not look for stuck rows: {exc}",
                impact="Could not tell whether the pipeline's rows are moving.",
                caused_by=("db.connect",),
            )]  # fmt: skip

    def _table(self, db: postgres.Session, st: StateTable) -> list[Finding]:
        info = db.describe_table(st.table)
        if info is None:
            return [self._cannot_look(st, f"table {st.table} not found in {db.where}")]
        fit = stuck_index.index_fit(info, st)
        findings = []
        try:
            groups = db.stuck_rows(st, samples=3, info=info)
        except (NotFound, Unauthorized) as exc:  # a missing column, no SELECT grant: db.connect names it
            return [self._cannot_look(st, str(exc))]
        except ConnectorError as exc:  # e.g. the scan outran the timeout: say so, and why if we know
            findings.append(self.error(
                f"{st.table}: could not count stuck rows: {exc}",
                subject=st.table,
                impact="Could not tell whether this table's rows are moving.",
                evidence={"table": st.table, "estimated_rows": info.estimated_rows},
            ))  # fmt: skip
            groups = None
        if groups:
            for status in dict.fromkeys(g.status for g in groups):
                of_status = [g for g in groups if g.status == status]  # largest first
                findings += [self._stuck(st, g) for g in of_status[:MAX_GROUPS]]
                if len(of_status) > MAX_GROUPS:
                    findings.append(self._more(st, of_status[MAX_GROUPS:]))
        elif groups is not None:
            checked = ", ".join(f"{s} > {format_duration(t)}" for s, t in st.stuck_after.items())
            findings.append(self.ok(
                f"{st.table}: nothing stuck ({checked})",
                subject=st.table,
                evidence={"table": st.table, "statuses": list(st.stuck_after)},
            ))  # fmt: skip
        if not fit.fitting:
            findings.append(self._no_index(st, info, fit))
        return findings

    def _stuck(self, st: StateTable, group: stuck_query.StuckGroup) -> Finding:
        values = [_shown(v) for v in group.group.values()]
        subject = "/".join([st.table, group.status, *values])
        undated = math.isinf(group.oldest_s)
        threshold = format_duration(group.threshold)
        oldest = f"an unknown time ({st.updated_column} is NULL)" if undated else format_duration(group.oldest_s)
        where = ", ".join(f"{k}={_shown(v)}" for k, v in group.group.items())
        noun = "row" if group.rows == 1 else "rows"
        evidence: dict[str, Any] = {"table": st.table, "status": group.status}
        evidence.update({(f"group_{k}" if k in _RESERVED else k): v for k, v in group.group.items()})
        evidence.update({
            "rows": group.rows,
            "oldest": None if undated else oldest,
            "oldest_s": None if undated else int(group.oldest_s),
            "threshold": threshold,
            "sample_ids": _ids(group.sample_ids),
        })  # fmt: skip
        return self.fail(
            f"{group.rows} {noun} stuck in {group.status} for {oldest} (threshold {threshold})"
            + (f" at {where}" if where else ""),
            subject=subject,
            severity=Severity.P0 if group.rows >= P0_ROWS else Severity.P1,
            impact=_impact(group.status),
            evidence=evidence,
            **fix_for(self.config, st, group),
        )

    def _more(self, st: StateTable, rest: list[stuck_query.StuckGroup]) -> Finding:
        rows, status = sum(g.rows for g in rest), rest[0].status
        oldest_s = max(g.oldest_s for g in rest)
        oldest = "unknown" if math.isinf(oldest_s) else format_duration(oldest_s)
        return self.fail(
            f"{rows} more rows stuck in {status} in {len(rest)} more groups (oldest {oldest})",
            subject=f"{st.table}/{status}/+{len(rest)} more",
            severity=Severity.P0 if rows >= P0_ROWS else Severity.P1,
            impact=_impact(status),
            evidence={"table": st.table, "status": status, "groups": len(rest), "rows": rows,
                      "oldest": oldest, "threshold": format_duration(rest[0].threshold)},
            fix=reset_command(st, replace(rest[0], group={})),
        )  # fmt: skip

    def _no_index(self, st: StateTable, info: postgres.TableInfo, fit: stuck_index.IndexFit) -> Finding:
        create = stuck_index.suggest_index(st)
        rows = f"~{info.estimated_rows:,} rows" if info.estimated_rows >= 0 else "every row"
        if fit.invalid:
            name = fit.invalid[0]
            return self.warn(
                f"{st.table}: index {name} on {st.status_column} is INVALID (a concurrent build failed);"
                f" the stuck scan reads {rows}",
                subject=f"{st.table}/index",
                severity=Severity.P2,
                impact="Each doctor run scans the whole table, and may time out as it grows.",
                evidence={"table": st.table, "invalid_index": name, "estimated_rows": info.estimated_rows},
                **_psql(self.config, f"DROP INDEX CONCURRENTLY {_quoted_index(info, name)}", create),
            )
        return self.warn(
            f"{st.table}: no index leads with {st.status_column}; the stuck scan reads {rows}",
            subject=f"{st.table}/index",
            severity=Severity.P2,
            impact="Each doctor run (and each reset) scans the whole table, and may time out as it grows.",
            evidence={"table": st.table, "estimated_rows": info.estimated_rows,
                      "indexes": [ix.name for ix in info.indexes]},
            **_psql(self.config, create),
        )  # fmt: skip

    def _cannot_look(self, st: StateTable, why: str) -> Finding:
        return self.error(
            f"could not look for stuck rows: {why}",
            subject=st.table,
            impact="Rows of this table are not checked for being stuck.",
            evidence={"table": st.table},
            caused_by=(f"db.connect:{st.table}",),
        )


def fix_for(config: PipelineConfig, st: StateTable, group: stuck_query.StuckGroup) -> dict[str, Any]:
    """`fix` and `advice` for a stuck group. Rows waiting to be picked up need the run that picks them up;
    rows stuck later need a reset, and then that run, when the config says which deployment it is."""

    def mover(status: str | None) -> str | None:
        for deployment in config.prefect.deployments:
            moves = deployment.moves
            if moves and moves.table == st.table and status and moves.from_status.upper() == status.upper():
                return f"pipectl trigger {shlex.quote(deployment.name)} --wait"
        return None

    trigger = mover(group.status)
    if trigger:
        return {"fix": [trigger], "advice": _AFTER_CAUSE}
    previous = previous_status(group.status)
    if previous is None and group.status.upper() == "PENDING":
        return {"advice": "Nothing is configured to pick up PENDING rows: find out why "
                          "(`pipectl doctor --only prefect`) before resetting anything."}
    again = mover(previous)
    return {"fix": [reset_command(st, group), *([again] if again else [])], "advice": _AFTER_CAUSE}


_AFTER_CAUSE = "Fix what stopped the rows first (the finding this one is under), or they get stuck again."


def reset_command(st: StateTable, group: stuck_query.StuckGroup) -> str:
    """The exact `pipectl reset` that puts this group's stuck rows back where the pipeline picks them up."""
    args = ["pipectl", "reset", "--table", st.table, "--status", group.status]
    previous = previous_status(group.status)
    if previous:
        args += ["--to", previous]
    args += ["--older-than", format_duration(group.threshold)]
    if len(group.group) == 1:
        (value,) = group.group.values()
        if value is not None:
            args += ["--step", str(value)]
    return " ".join(shlex.quote(a) for a in args)


def _psql(config: PipelineConfig, *statements: str) -> dict[str, Any]:
    """`psql` commands for SQL the pipeline's own connection runs; the DSN from its variable, never written
    out. Without a variable to name, the SQL is advice."""
    variable = config.source.references.get("database.dsn")
    if not variable:
        return {"advice": "Run as the table's owner: " + " ".join(f"`{s};`" for s in statements)}
    return {"fix": [f'psql "${variable}" -c {shlex.quote(s)}' for s in statements]}


def previous_status(status: str) -> str | None:
    """QUEUED → PENDING (in the status's own case); None when pipectl cannot know."""
    previous = _PREVIOUS.get(status.upper())
    if previous is None:
        return None
    return previous.lower() if status.islower() else previous


def _shown(value: Any) -> str:
    return "(null)" if value is None else str(value)


def _impact(status: str) -> str:
    return f"The work these rows stand for is not being done; they will not leave {status} on their own."


def _ids(ids: tuple[Any, ...]) -> list[int] | list[str]:
    """Evidence lists are all ints or all strings."""
    if all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        return list(ids)
    return [str(i) for i in ids]


def _quoted_index(info: postgres.TableInfo, name: str) -> str:
    from psycopg import sql

    return sql.Identifier(info.schema, name).as_string()
