"""The stuck scan's group walk against a real Postgres: chosen exactly where `walks_groups` says, and
answering what the forms it replaced answer and what a hand-written GROUP BY counts.

The walk is only taken on tables of at least `WALK_ROWS_PER_GROUP` rows per group, which the small tables
of `test_db.py` never reach, so each table here is built with `generate_series` at that size. Every
answer of one comparison is read inside one transaction: `now()` is then the same instant for all of them,
so even the oldest age must agree to the microsecond, and the comparison cannot drift with the clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import pytest
from pipectl.checks.db_stuck import DbStuck

from pipectl.config import PipelineConfig, StateTable
from pipectl.connectors import postgres, stuck_query
from pipectl.connectors.pg_names import split_table, table_ident
from pipectl.connectors.stuck_index import WALK_ROWS_PER_GROUP, suggest_index, walks_groups
from pipectl.interface import Context
from pipectl.model import Status
from pipectl.runner import run_checks
from tests.fixtures.postgres import create_database, drop_database

SAMPLES = 3
STUCK_BEFORE_MINUTES = (18_000, 36_000)
"""The first two watched statuses' thresholds, in minutes. Row g is g minutes and 30 s old, so every row
is at least 30 s away from either threshold: no row changes side while a test runs."""
THRESHOLDS = ("300h", "600h", "1h")
"""As `stuck_after` spells them: 18 000 and 36 000 minutes, and one for a status no row has."""


@dataclass(frozen=True)
class Layout:
    """A state table to build: its names as the config spells them, and the values it holds.

    Row g (1…rows) is in status `statuses[0]` when g % 10 == 0, `statuses[1]` when g % 10 == 1, else
    `statuses[-1]`. Its first group column cycles through its values with g, its second (if any) with
    g // 10, so every status meets every combination of them. It is g minutes (and 30 s) old, except the
    rows of `statuses[1]` in the second value of the first group column: seconds old, so that group has rows
    in that status and none stuck, and the walk must step over it to reach the next.
    """

    state_table: StateTable
    group_values: tuple[tuple[str, ...], ...]
    statuses: tuple[str, str, str, str]
    """The three watched (`stuck_after` order; the third is held by no row) and one never watched."""
    id_type: str = "bigint"
    id_prefix: str = ""
    """For a text id column: the id of row g is this prefix and g."""
    nullable_group: bool = False
    """The first group column allows NULL, and every seventh row of `statuses[0]` holds NULL there."""


def layout(
    table: str,
    *,
    id_column: str = "id",
    status_column: str = "status",
    updated_column: str = "updated_at",
    group_values: dict[str, tuple[str, ...]] | None = None,
    statuses: tuple[str, str, str, str] = ("QUEUED", "PENDING", "RUNNING", "COMPLETED"),
    **options: Any,
) -> Layout:
    groups = group_values if group_values is not None else {"step_name": ("dedupe", "enrich", "score")}
    state_table = StateTable(
        table=table, id_column=id_column, status_column=status_column, updated_column=updated_column,
        group_by=list(groups), stuck_after=dict(zip(statuses[:3], THRESHOLDS, strict=True)),
    )  # fmt: skip
    return Layout(state_table, tuple(groups.values()), statuses, **options)


PLAIN = layout("workflow_states")
QUOTED = layout(
    "app.Order", id_column="Id", status_column="State", updated_column="UpdatedAt",
    group_values={"Step": ("Enrich", "O'Brien step", "score")},
    statuses=("queued", "Pending", "RUNNING", "done"), id_type="text", id_prefix="job-",
)  # fmt: skip
TWO_GROUP_COLUMNS = layout(
    "jobs", group_values={"step_name": ("dedupe", "enrich", "score"), "tenant": ("acme", "globex")}
)


def build(dsn: str, spec: Layout, rows: int, *, index: bool = True) -> None:
    """Create the table, fill it, create the check's own suggested index, ANALYZE (the walk reads the
    planner's statistics, and there are none before)."""
    import psycopg
    from psycopg import sql

    st = spec.state_table
    schema, _ = split_table(st.table)
    first_group, *other_groups = st.group_by
    columns = [sql.SQL("{} {} PRIMARY KEY").format(sql.Identifier(st.id_column), sql.SQL(spec.id_type))]
    columns.append(
        sql.SQL("{} text {}").format(
            sql.Identifier(first_group), sql.SQL("" if spec.nullable_group else "NOT NULL")
        )
    )
    columns += [sql.SQL("{} text NOT NULL").format(sql.Identifier(c)) for c in other_groups]
    columns += [
        sql.SQL("{} text NOT NULL").format(sql.Identifier(st.status_column)),
        sql.SQL("{} timestamptz NOT NULL").format(sql.Identifier(st.updated_column)),
    ]
    watched_a, watched_b, _, other = spec.statuses
    status = sql.SQL("CASE g % 10 WHEN 0 THEN {} WHEN 1 THEN {} ELSE {} END").format(
        sql.Literal(watched_a), sql.Literal(watched_b), sql.Literal(other)
    )
    first = sql.SQL("({}::text[])[1 + g % {}]").format(
        sql.Literal(list(spec.group_values[0])), sql.Literal(len(spec.group_values[0]))
    )
    nulls = sql.SQL("CASE WHEN g % 10 = 0 AND g % 7 = 0 THEN NULL ELSE {} END").format(first)
    group_exprs = [nulls if spec.nullable_group else first]
    group_exprs += [
        sql.SQL("({}::text[])[1 + g / 10 % {}]").format(sql.Literal(list(values)), sql.Literal(len(values)))
        for values in spec.group_values[1:]
    ]
    fresh = sql.SQL("g % 10 = 1 AND {} = {}").format(first, sql.Literal(spec.group_values[0][1]))
    updated = sql.SQL(
        "now() - CASE WHEN {} THEN make_interval(secs => g % 50)"
        " ELSE make_interval(mins => g, secs => 30) END"
    ).format(fresh)
    row_id = sql.SQL("{} || g").format(sql.Literal(spec.id_prefix)) if spec.id_prefix else sql.SQL("g")
    names = [st.id_column, *st.group_by, st.status_column, st.updated_column]
    with psycopg.connect(dsn, autocommit=True) as conn:
        if schema:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL("CREATE TABLE {} ({})").format(table_ident(st.table), sql.SQL(", ").join(columns))
        )
        # no parameters: the `%` of the expressions above is SQL's modulo, not a placeholder
        conn.execute(
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM generate_series(1, {}) AS g").format(
                table_ident(st.table),
                sql.SQL(", ").join(map(sql.Identifier, names)),
                sql.SQL(", ").join([row_id, *group_exprs, status, updated]),
                sql.Literal(rows),
            )
        )
        if index:
            conn.execute(suggest_index(st))
        conn.execute(sql.SQL("ANALYZE {}").format(table_ident(st.table)))


Answer = list[tuple[str, tuple[Any, ...], int, float, tuple[Any, ...]]]
"""Per stuck group: status, group values, rows, oldest age in seconds, sample ids; sorted."""


def answer(groups: list[stuck_query.StuckGroup]) -> Answer:
    return sorted(
        ((g.status, tuple(g.group.values()), g.rows, g.oldest_s, g.sample_ids) for g in groups),
        key=lambda a: (a[0], tuple((v is None, str(v)) for v in a[1])),
    )


def by_hand(db: postgres.Session, st: StateTable) -> Answer:
    """The plain GROUP BY anyone would write: every row joined to its status's threshold, then counted."""
    from psycopg import sql

    keys = [sql.Identifier("t", c) for c in [st.status_column, *st.group_by]]
    updated = sql.Identifier("t", st.updated_column)
    query = sql.SQL(
        "SELECT {keys}, count(*), extract(epoch FROM now() - min({updated}))::float8,"
        " (array_agg({id} ORDER BY {updated}))[1:%s]"
        " FROM {table} AS t JOIN unnest(%s::text[], %s::interval[]) AS limits(status, age)"
        " ON {status} = limits.status WHERE {updated} < now() - limits.age GROUP BY {keys}"
    ).format(
        keys=sql.SQL(", ").join(keys), updated=updated, id=sql.Identifier("t", st.id_column),
        table=table_ident(st.table), status=keys[0],
    )  # fmt: skip
    rows = db.fetch(query, [SAMPLES, list(st.stuck_after), list(st.stuck_after.values())])
    return answer(stuck_query.stuck_groups(st, rows))


def older_forms(db: postgres.Session, st: StateTable, info: postgres.TableInfo) -> dict[str, Answer]:
    """What the two forms the walk replaced answer on the same table: one index range per status (the
    builder's own switch, `walk_groups=False`), and the one-pass scan a table without the index gets. Both
    told which columns allow NULL, as `stuck_query` tells them."""
    nullable = {c.name for c in info.columns if not c.not_null}
    indexed, indexed_params = stuck_query.build_indexed_stuck_query(st, SAMPLES, nullable, walk_groups=False)
    scan, scan_params = stuck_query.build_scan_stuck_query(st, SAMPLES, nullable)
    return {
        "index ranges": answer(stuck_query.stuck_groups(st, db.fetch(indexed, indexed_params))),
        "scan": answer(stuck_query.stuck_groups(st, db.fetch(scan, scan_params))),
    }


def counted(got: Answer) -> dict[tuple[str, tuple[Any, ...]], tuple[int, tuple[Any, ...]]]:
    """An answer's rows and sample ids per status and group: the part that does not depend on `now()`."""
    return {(status, group): (rows, samples) for status, group, rows, _, samples in got}


def modelled(spec: Layout, rows: int) -> dict[tuple[str, tuple[Any, ...]], tuple[int, tuple[Any, ...]]]:
    """What `build` put in the table, worked out in Python row by row: the stuck rows per status and group,
    and the ids of the oldest `SAMPLES` of them (the largest g: row g is g minutes old)."""
    thresholds = dict(zip(spec.statuses[:2], STUCK_BEFORE_MINUTES, strict=True))
    stuck: dict[tuple[str, tuple[Any, ...]], list[int]] = {}
    for g in range(1, rows + 1):
        status = {0: spec.statuses[0], 1: spec.statuses[1]}.get(g % 10, spec.statuses[-1])
        first = spec.group_values[0][g % len(spec.group_values[0])]
        fresh = g % 10 == 1 and first == spec.group_values[0][1]
        if status not in thresholds or fresh or g < thresholds[status]:
            continue
        if spec.nullable_group and g % 10 == 0 and g % 7 == 0:
            first = None
        group = (first, *(values[g // 10 % len(values)] for values in spec.group_values[1:]))
        stuck.setdefault((status, group), []).append(g)
    return {
        key: (
            len(gs),
            tuple(f"{spec.id_prefix}{g}" if spec.id_prefix else g for g in sorted(gs)[::-1][:SAMPLES]),
        )
        for key, gs in stuck.items()
    }


def walks(plan: str) -> int:
    """How many recursive walks the plan holds (one per watched status when the walk is taken)."""
    return plan.count("Recursive Union")


@dataclass
class Looked:
    info: postgres.TableInfo
    plan: str
    sent: Answer
    """What `Session.stuck_rows` answered: the query the check sends."""
    hand: Answer
    older: dict[str, Answer]


def look(dsn: str, st: StateTable) -> Looked:
    """Every answer about the table, read in one transaction (one `now()`), as the check's session reads."""
    with postgres.session(dsn, timeout=30) as db, db.conn.transaction():
        info = db.describe_table(st.table)
        assert info is not None
        return Looked(
            info=info,
            plan=db.stuck_query_plan(st, SAMPLES, info=info),
            sent=answer(db.stuck_rows(st, SAMPLES, info=info)),
            hand=by_hand(db, st),
            older=older_forms(db, st, info),
        )


@pytest.fixture(scope="module")
def database(pg_server):
    """One database for the module: each test builds tables of its own names in it (60,000 rows each are
    cheap to insert, but a database per test costs more than the tables)."""
    uri = create_database(pg_server)
    yield uri
    drop_database(pg_server, uri)


def renamed(spec: Layout, table: str) -> Layout:
    """The same layout under another table name, so several sizes of it can live in one database."""
    schema, _ = split_table(spec.state_table.table)
    name = f"{schema}.{table}" if schema else table
    return replace(spec, state_table=spec.state_table.model_copy(update={"table": name}))


@pytest.mark.parametrize(
    ("spec", "table"),
    [(PLAIN, "walk_plain"), (QUOTED, "Walk Quoted"), (TWO_GROUP_COLUMNS, "walk_two_groups")],
    ids=["plain", "quoted-mixed-case-text-ids", "two-group-columns"],
)
def test_walk_is_taken_and_answers_like_the_forms_it_replaced(database, spec: Layout, table: str):
    spec = renamed(spec, table)
    st = spec.state_table
    groups = math.prod(len(values) for values in spec.group_values)
    rows = 60_000
    assert rows >= groups * WALK_ROWS_PER_GROUP  # the two-column layout sits exactly on the threshold
    build(database, spec, rows)
    looked = look(database, st)

    assert walks_groups(looked.info, st)
    assert walks(looked.plan) == len(st.stuck_after), looked.plan  # one walk per watched status

    assert looked.sent == looked.hand
    assert looked.older == {"index ranges": looked.hand, "scan": looked.hand}
    assert counted(looked.hand) == modelled(spec, rows)
    # the data holds what the comparison needs: every group stuck in the first status; in the second,
    # the middle group with rows but none stuck; nothing in the third; young rows in both populated ones
    first, second, absent, _ = spec.statuses
    values = spec.group_values[0]
    assert {(s, group[0]) for s, group in modelled(spec, rows)} == {(first, v) for v in values} | {
        (second, values[0]),
        (second, values[2]),
    }
    assert len({group for s, group in modelled(spec, rows) if s == first}) == groups
    assert absent not in {status for status, *_ in looked.hand}
    for status in (first, second):  # a tenth of the rows is in each; some of them are young
        assert 0 < sum(count for s, _, count, *_ in looked.hand if s == status) < rows // 10
    if spec.id_prefix:
        assert all(
            isinstance(i, str) and i.startswith(spec.id_prefix) for *_, ids in looked.hand for i in ids
        )

    # and the check itself, through its own session, reports those groups and counts
    findings = run_checks(
        [DbStuck], Context(config=PipelineConfig(database={"dsn": database}, state_tables=[st]), timeout=30)
    ).findings
    failed = {
        tuple(f.subject.split("/")[1:]): f.evidence["rows"] for f in findings if f.status is Status.FAIL
    }
    assert failed == {(s, *map(str, group)): r for s, group, r, *_ in looked.hand}


@pytest.mark.parametrize(
    ("spec", "rows", "walked"),
    [
        (PLAIN, 3 * WALK_ROWS_PER_GROUP, True),
        (PLAIN, 3 * WALK_ROWS_PER_GROUP - 1, False),
        (TWO_GROUP_COLUMNS, 6 * WALK_ROWS_PER_GROUP - 1, False),
    ],
    ids=["at-the-threshold", "one-row-under", "two-group-columns-one-row-under"],
)
def test_walk_starts_at_its_threshold_of_rows_per_group(database, spec: Layout, rows: int, walked: bool):
    spec = renamed(spec, f"threshold_{rows}_{len(spec.group_values)}")
    build(database, spec, rows)
    looked = look(database, spec.state_table)
    assert looked.info.estimated_rows == rows  # ANALYZE read every row: the boundary is exact
    assert walks_groups(looked.info, spec.state_table) is walked
    assert walks(looked.plan) == (len(spec.state_table.stuck_after) if walked else 0), looked.plan
    assert looked.sent == looked.hand == looked.older["index ranges"] == looked.older["scan"]
    assert counted(looked.hand) == modelled(spec, rows)


def test_a_nullable_group_column_is_never_walked(database):
    """A row comparison skips NULLs, so a walk would lose the NULL group: the rule asks for NOT NULL, and
    the plain ranges count that group with the others."""
    spec = layout("walk_nullable", nullable_group=True)
    build(database, spec, 60_000)
    looked = look(database, spec.state_table)
    assert not walks_groups(looked.info, spec.state_table)
    assert walks(looked.plan) == 0, looked.plan
    assert looked.sent == looked.hand == looked.older["index ranges"] == looked.older["scan"]
    assert counted(looked.hand) == modelled(spec, 60_000)
    assert any(group == (None,) for _, group, *_ in looked.sent)


def test_without_the_index_the_scan_is_sent_and_agrees(database):
    """The same table as the walk's, without the check's index: the older scan, the same answer."""
    spec = renamed(PLAIN, "walk_no_index")
    build(database, spec, 60_000, index=False)
    looked = look(database, spec.state_table)
    assert not walks_groups(looked.info, spec.state_table)
    assert walks(looked.plan) == 0 and "Seq Scan" in looked.plan, looked.plan
    assert looked.sent == looked.hand == looked.older["scan"]
    assert counted(looked.hand) == modelled(spec, 60_000)
