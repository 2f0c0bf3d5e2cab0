"""db.connect and db.stuck against a real Postgres: one table of healthy and broken states, one helper."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from pipectl.checks.db_connect import DbConnect
from pipectl.checks.db_stuck import DbStuck, reset_command

from pipectl.config import ConfigSource, PipelineConfig, StateTable
from pipectl.connectors import postgres, stuck_index, stuck_query
from pipectl.interface import Context
from pipectl.model import Finding, Severity, Status
from pipectl.runner import run_checks
from pipectl.sandbox.procs import free_port

COLUMNS = (
    "id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, step_name text NOT NULL, status text NOT NULL,"
    " updated_at timestamptz NOT NULL"
)
INDEX = "CREATE INDEX ON {table} (status, step_name, updated_at)"
WS = "workflow_states"
ORDER_TABLE = (
    'CREATE TABLE app."Order" ("Id" bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,'
    ' "Step" text NOT NULL, "State" text NOT NULL, "UpdatedAt" timestamptz NOT NULL)'
)


@dataclass
class Case:
    id: str
    rows: list[tuple[str, str | None, int, int]] = field(default_factory=list)
    """(status, step, age in seconds or None for no timestamp, how many)."""
    expect: list[tuple[str, Status, str, dict[str, Any]]] = field(default_factory=list)
    """Every finding, as (check, status, subject, evidence subset)."""
    table: dict[str, Any] = field(default_factory=lambda: {"table": WS, "group_by": ["step_name"],
                                                           "stuck_after": {"QUEUED": "5m"}})  # fmt: skip
    ddl: list[str] = field(default_factory=lambda: [f"CREATE TABLE {WS} ({COLUMNS})", INDEX.format(table=WS)])
    insert: str = f"INSERT INTO {WS} (step_name, status, updated_at)"
    severity: dict[str, Severity] = field(default_factory=dict)
    """Subject → expected severity, where it matters."""


CONNECTED = ("db.connect", Status.OK, "", {})
TABLE_OK = ("db.connect", Status.OK, WS, {"table": WS})

CASES = [
    Case(
        "healthy",
        rows=[
            ("QUEUED", "enrich", 60, 5),
            ("PENDING", "enrich", 3600, 5),
            ("COMPLETED", "enrich", 86400, 20),
        ],
        expect=[CONNECTED, TABLE_OK, ("db.stuck", Status.OK, WS, {"table": WS, "statuses": ["QUEUED"]})],
    ),
    Case(
        "queued-rows-stuck-per-step",
        rows=[("QUEUED", "enrich", 12 * 60, 40), ("QUEUED", "score", 60, 7), ("QUEUED", "dedupe", 9 * 60, 3)],
        expect=[
            CONNECTED,
            TABLE_OK,
            (
                "db.stuck",
                Status.FAIL,
                f"{WS}/QUEUED/enrich",
                {
                    "table": WS,
                    "status": "QUEUED",
                    "step_name": "enrich",
                    "rows": 40,
                    "oldest": "12m",
                    "threshold": "5m",
                },
            ),
            ("db.stuck", Status.FAIL, f"{WS}/QUEUED/dedupe", {"rows": 3, "oldest": "9m"}),
        ],
        severity={f"{WS}/QUEUED/enrich": Severity.P0, f"{WS}/QUEUED/dedupe": Severity.P1},
    ),
    Case(
        "rows-younger-than-threshold",
        rows=[("QUEUED", "enrich", 4 * 60, 40), ("PENDING", "enrich", 9 * 60, 40)],
        table={"table": WS, "group_by": ["step_name"], "stuck_after": {"QUEUED": "5m", "PENDING": "10m"}},
        expect=[CONNECTED, TABLE_OK, ("db.stuck", Status.OK, WS, {"statuses": ["QUEUED", "PENDING"]})],
    ),
    Case(
        "missing-table",
        ddl=[],
        expect=[
            CONNECTED,
            ("db.connect", Status.FAIL, WS, {"table": WS}),
            ("db.stuck", Status.ERROR, WS, {"table": WS}),
        ],
    ),
    Case(
        "table-name-differs-in-case",
        table={"table": "Workflow_States", "stuck_after": {"QUEUED": "5m"}},
        expect=[
            CONNECTED,
            ("db.connect", Status.FAIL, "Workflow_States", {"similar": WS}),
            ("db.stuck", Status.ERROR, "Workflow_States", {}),
        ],
    ),
    Case(
        "missing-column",
        table={
            "table": WS,
            "status_column": "state",
            "group_by": ["step_name"],
            "stuck_after": {"QUEUED": "5m"},
        },
        expect=[
            CONNECTED,
            ("db.connect", Status.FAIL, WS, {"missing": ["state"], "config_keys": ["status_column"]}),
            ("db.stuck", Status.ERROR, WS, {"table": WS}),
        ],
    ),
    Case(
        "no-index",
        ddl=[f"CREATE TABLE {WS} ({COLUMNS})"],
        rows=[("QUEUED", "enrich", 60, 3)],
        expect=[
            CONNECTED,
            TABLE_OK,
            ("db.stuck", Status.OK, WS, {}),
            ("db.stuck", Status.WARN, f"{WS}/index", {"table": WS, "indexes": [f"{WS}_pkey"]}),
        ],
        severity={f"{WS}/index": Severity.P2},
    ),
    Case(
        "null-group-value-with-nullable-column",
        ddl=[
            f"CREATE TABLE {WS} ({COLUMNS.replace('step_name text NOT NULL', 'step_name text')})",
            INDEX.format(table=WS),
        ],
        rows=[("QUEUED", None, 20 * 60, 4), ("QUEUED", "enrich", 20 * 60, 2)],
        expect=[
            CONNECTED,
            TABLE_OK,
            ("db.stuck", Status.FAIL, f"{WS}/QUEUED/(null)", {"step_name": None, "rows": 4, "oldest": "20m"}),
            ("db.stuck", Status.FAIL, f"{WS}/QUEUED/enrich", {"rows": 2}),
        ],
    ),
    Case(
        "quoted-schema-qualified-mixed-case-names",
        ddl=["CREATE SCHEMA app", ORDER_TABLE],
        insert='INSERT INTO app."Order" ("Step", "State", "UpdatedAt")',
        table={
            "table": "app.Order",
            "id_column": "Id",
            "status_column": "State",
            "updated_column": "UpdatedAt",
            "group_by": ["Step"],
            "stuck_after": {"queued": "5m"},
        },
        rows=[("queued", "enrich", 10 * 60, 12), ("done", "enrich", 10 * 60, 5)],
        expect=[
            CONNECTED,
            ("db.connect", Status.OK, "app.Order", {"columns": ["Id", "State", "UpdatedAt", "Step"]}),
            (
                "db.stuck",
                Status.FAIL,
                "app.Order/queued/enrich",
                {"status": "queued", "Step": "enrich", "rows": 12},
            ),
            ("db.stuck", Status.WARN, "app.Order/index", {}),
        ],
    ),
    Case(
        "rows-without-a-timestamp-are-stuck-for-an-unknown-time",
        ddl=[f"CREATE TABLE {WS} ({COLUMNS.replace('updated_at timestamptz NOT NULL', 'updated_at timestamptz')})",
             INDEX.format(table=WS)],
        rows=[("QUEUED", "enrich", None, 7), ("QUEUED", "enrich", 30, 3), ("QUEUED", "score", 600, 2)],
        expect=[
            CONNECTED, TABLE_OK,
            ("db.stuck", Status.FAIL, f"{WS}/QUEUED/enrich", {"rows": 7, "oldest_s": None}),
            ("db.stuck", Status.FAIL, f"{WS}/QUEUED/score", {"rows": 2}),
        ],
    ),
    Case(
        "rows-without-a-timestamp-are-stuck-without-an-index-too",
        ddl=[f"CREATE TABLE {WS} ({COLUMNS.replace('updated_at timestamptz NOT NULL', 'updated_at timestamptz')})"],
        rows=[("QUEUED", "enrich", None, 4), ("QUEUED", "enrich", 30, 3)],
        expect=[
            CONNECTED, TABLE_OK,
            ("db.stuck", Status.FAIL, f"{WS}/QUEUED/enrich", {"rows": 4, "oldest_s": None}),
            ("db.stuck", Status.WARN, f"{WS}/index", {}),
        ],
    ),
]


def run(config: PipelineConfig):
    return run_checks([DbConnect, DbStuck], Context(config=config, timeout=10))


def state_config(dsn: str | None, *tables: dict[str, Any]) -> PipelineConfig:
    return PipelineConfig(database={"dsn": dsn}, state_tables=list(tables))


def build(dsn: str, case: Case) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in case.ddl:
            conn.execute(statement)
        for status, step, age, count in case.rows:
            conn.execute(
                case.insert + " SELECT %s, %s, now() - make_interval(secs => %s) FROM generate_series(1, %s)",
                [step, status, age, count],
            )


def assert_findings(findings: tuple[Finding, ...], case: Case) -> None:
    got = {(f.check, f.status, f.subject): f for f in findings}
    assert set(got) == {(c, s, subj) for c, s, subj, _ in case.expect}, [
        f"{f.id} {f.status}: {f.summary}" for f in findings
    ]
    for check, status, subject, evidence in case.expect:
        finding = got[(check, status, subject)]
        assert {k: finding.evidence.get(k) for k in evidence} == evidence, finding
    for subject, severity in case.severity.items():
        assert next(f for f in findings if f.subject == subject).severity is severity


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_states(case: Case, pg_dsn):
    build(pg_dsn, case)
    result = run(state_config(pg_dsn, case.table))
    assert_findings(result.findings, case)


def test_stuck_finding_reads_at_3am(pg_dsn):
    case = CASES[1]
    build(pg_dsn, case)
    finding = next(f for f in run(state_config(pg_dsn, case.table)).findings if f.subject.endswith("/enrich"))
    assert finding.summary == "40 rows stuck in QUEUED for 12m (threshold 5m) at step_name=enrich"
    assert finding.fix == (
        "pipectl reset --table workflow_states --status QUEUED --to PENDING --older-than 5m --step enrich",)
    assert len(finding.evidence["sample_ids"]) == 3 and all(
        isinstance(i, int) for i in finding.evidence["sample_ids"]
    )


def test_missing_column_is_named_with_its_config_key(pg_dsn):
    case = CASES[5]
    build(pg_dsn, case)
    finding = next(f for f in run(state_config(pg_dsn, case.table)).findings if f.status is Status.FAIL)
    assert "state" in finding.summary and "status_column" in finding.summary
    stuck = next(f for f in run(state_config(pg_dsn, case.table)).findings if f.check == "db.stuck")
    assert stuck.caused_by == (f"db.connect:{WS}",)


def test_no_index_warns_with_the_exact_create_index(pg_dsn):
    case = CASES[6]
    build(pg_dsn, case)
    warn = next(f for f in run(state_config(pg_dsn, case.table)).findings if f.status is Status.WARN)
    assert warn.advice == (  # the DSN is no env: reference here, so there is no psql command to print
        "Run as the table's owner: `CREATE INDEX CONCURRENTLY \"workflow_states_status_step_name_updated_at_idx\""
        ' ON "workflow_states" ("status", "step_name", "updated_at");`'
    )


def test_quoted_names_reach_sql_as_identifiers():
    st = StateTable(table="app.Order", status_column="State", updated_column="UpdatedAt", group_by=["Step"])
    assert stuck_index.suggest_index(st) == (
        'CREATE INDEX CONCURRENTLY "Order_State_Step_UpdatedAt_idx"'
        ' ON "app"."Order" ("State", "Step", "UpdatedAt")'
    )


def test_reset_command_keeps_the_status_case_and_quotes_values():
    st = StateTable(table="jobs", group_by=["step"], stuck_after={"queued": "5m", "RUNNING": "1h"})
    queued = stuck_query.StuckGroup("queued", {"step": "a b"}, 3, 600, st.stuck_after["queued"])
    running = stuck_query.StuckGroup("RUNNING", {"step": None}, 3, 7200, st.stuck_after["RUNNING"])
    assert (
        reset_command(st, queued)
        == "pipectl reset --table jobs --status queued --to pending --older-than 5m --step 'a b'"
    )
    assert reset_command(st, running) == "pipectl reset --table jobs --status RUNNING --older-than 1h"


def test_index_makes_the_stuck_query_an_index_scan(pg_dsn):
    """20k realistic rows, ANALYZEd: the planner itself picks the index; nothing is forced."""
    import psycopg

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {WS} ({COLUMNS})")
        conn.execute(
            f"INSERT INTO {WS} (step_name, status, updated_at)"
            " SELECT (ARRAY['enrich', 'score', 'dedupe'])[1 + g % 3],"
            "        CASE WHEN g % 50 = 0 THEN 'QUEUED' WHEN g % 50 = 1 THEN 'PENDING' ELSE 'COMPLETED' END,"
            "        now() - make_interval(secs => g % 120 * 60 + 30)"  # ages 30s apart from any threshold
            " FROM generate_series(1, 20000) AS g"
        )
        conn.execute("CREATE INDEX workflow_states_status_step_name_updated_at_idx"
                     f" ON {WS} (status, step_name, updated_at)")  # fmt: skip
        conn.execute(f"ANALYZE {WS}")
    st = StateTable(table=WS, group_by=["step_name"], stuck_after={"QUEUED": "5m", "PENDING": "10m"})
    plan = postgres.stuck_query_plan(pg_dsn, st, timeout=5)
    assert "Seq Scan" not in plan, plan
    scans = re.findall(r"(Index Only Scan|Index Scan|Bitmap Index Scan) (?:using|on) (\w+)", plan)
    # one per status branch, plus the per-group sample lookup: every one on the index
    assert len(scans) >= 3 and {name for _, name in scans} == {
        "workflow_states_status_step_name_updated_at_idx"
    }, plan
    assert postgres.has_fitting_index(pg_dsn, st, timeout=5)
    groups = postgres.stuck_rows(pg_dsn, st, timeout=5)
    assert {(g.status, g.group["step_name"]) for g in groups} == {
        (s, step) for s in ("QUEUED", "PENDING") for step in ("enrich", "score", "dedupe")
    }
    assert sum(g.rows for g in groups) == sum(
        1 for g in range(1, 20001) if g % 50 in (0, 1) and g % 120 * 60 + 30 > (300 if g % 50 == 0 else 600)
    )


def test_wrong_password_fails_and_never_shows_it(pg_password_dsn):
    dsn, password = pg_password_dsn
    wrong = dsn.replace(password, "not-the-password-0xBEEF")
    result = run(state_config(wrong, {"table": WS, "stuck_after": {"QUEUED": "5m"}}))
    by_check = {f.check: f for f in result.findings}
    assert by_check["db.connect"].status is Status.FAIL
    assert "refused the credentials" in by_check["db.connect"].summary
    assert by_check["db.stuck"].status is Status.ERROR and by_check["db.stuck"].caused_by == ("db.connect",)
    assert_no_secret(result.findings, "not-the-password-0xBEEF", wrong)


def test_right_password_without_grant_fails_naming_the_table(pg_password_dsn, pg_dsn):
    build(pg_dsn, Case("x"))
    dsn, password = pg_password_dsn
    result = run(state_config(dsn, {"table": WS, "stuck_after": {"QUEUED": "5m"}}))
    table = next(f for f in result.findings if f.check == "db.connect" and f.subject == WS)
    assert table.status is Status.FAIL and "may not read" in table.summary
    stuck = next(f for f in result.findings if f.check == "db.stuck")
    assert stuck.status is Status.ERROR and stuck.caused_by == (f"db.connect:{WS}",)
    assert_no_secret(result.findings, password, dsn)


def test_unreachable_is_an_error_and_never_shows_the_password():
    dsn = f"postgresql://app:s3cret-hunter2-pw@127.0.0.1:{free_port()}/appdb"
    result = run(state_config(dsn, {"table": WS, "stuck_after": {"QUEUED": "5m"}}))
    by_check = {f.check: f for f in result.findings}
    assert by_check["db.connect"].status is Status.ERROR
    assert by_check["db.connect"].summary.startswith("cannot reach Postgres at 127.0.0.1:")
    assert "/appdb: connection refused" in by_check["db.connect"].summary
    assert by_check["db.connect"].evidence == {"host": "127.0.0.1", "dbname": "appdb"}
    assert by_check["db.stuck"].status is Status.ERROR
    assert_no_secret(result.findings, "s3cret-hunter2-pw", dsn)


@pytest.mark.parametrize(
    ("dsn", "unresolved", "word"),
    [(None, {}, "no database.dsn"), (None, {"database.dsn": "DATABASE_URL"}, "$DATABASE_URL")],
    ids=["no-dsn", "unresolved-env-reference"],
)
def test_skipped_without_a_dsn(dsn, unresolved, word):
    config = state_config(dsn, {"table": WS, "stuck_after": {"QUEUED": "5m"}})
    config._source = ConfigSource(references=dict(unresolved), unresolved=dict(unresolved))
    findings = run(config).findings
    assert [f.status for f in findings] == [Status.SKIPPED, Status.SKIPPED]
    assert all(word in f.summary for f in findings), findings


def assert_no_secret(findings, *secrets: str) -> None:
    shown = [
        {"summary": f.summary, "impact": f.impact, "fix": f.fix, "evidence": dict(f.evidence)}
        for f in findings
    ]
    text = json.dumps(shown, default=str)
    for secret in secrets:
        assert secret not in text


def test_many_groups_are_capped_largest_first(pg_dsn):
    from pipectl.checks.db_stuck import MAX_GROUPS

    case = Case("many", rows=[("QUEUED", f"s{i:02}", 600, 1 + (i == 7)) for i in range(MAX_GROUPS + 5)])
    build(pg_dsn, case)
    stuck = [f for f in run(state_config(pg_dsn, case.table)).findings if f.check == "db.stuck"]
    assert len(stuck) == MAX_GROUPS + 1 and stuck[0].subject == f"{WS}/QUEUED/s07"
    more = stuck[-1]
    assert more.subject == f"{WS}/QUEUED/+5 more" and more.evidence["rows"] == 5
    assert more.fix == (f"pipectl reset --table {WS} --status QUEUED --to PENDING --older-than 5m",)


def test_status_counts_per_group_and_status(pg_dsn):
    build(pg_dsn, Case("x", rows=[("QUEUED", "a", 60, 2), ("DONE", "a", 60, 1), ("QUEUED", "b", 60, 3)]))
    assert postgres.status_counts(pg_dsn, WS, "status", timeout=5) == {"DONE": 1, "QUEUED": 5}
    grouped = StateTable(table=WS, group_by=["step_name"])
    assert postgres.status_counts(pg_dsn, grouped, timeout=5) == {"a/DONE": 1, "a/QUEUED": 2, "b/QUEUED": 3}


def test_a_scan_slower_than_the_timeout_names_the_table(pg_dsn):
    build(pg_dsn, Case("x", ddl=[f"CREATE TABLE rows_behind ({COLUMNS})"], insert="INSERT INTO rows_behind"
                       " (step_name, status, updated_at)", rows=[("QUEUED", "a", 600, 3)]))  # fmt: skip
    build(
        pg_dsn, Case("x", ddl=[f"CREATE VIEW {WS} AS SELECT r.* FROM rows_behind r, LATERAL pg_sleep(1) s"])
    )
    config = state_config(pg_dsn, {"table": WS, "stuck_after": {"QUEUED": "5m"}})
    findings = run_checks([DbStuck], Context(config=config, timeout=1)).findings
    assert [(f.status, f.subject) for f in findings] == [(Status.ERROR, WS), (Status.WARN, f"{WS}/index")]
    assert "did not finish within 1s" in findings[0].summary


def test_missing_database_fails_naming_it(pg_server):
    result = run(state_config(pg_server.get_uri("no_such_db"), {"table": WS, "stuck_after": {"QUEUED": "5m"}}))
    connect = next(f for f in result.findings if f.check == "db.connect")
    assert connect.status is Status.FAIL and "has no database 'no_such_db'" in connect.summary
