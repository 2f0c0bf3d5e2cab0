"""How fast `db.stuck` finds stuck rows in a big state table, beside hand-written GROUP BY queries.

    python bench/stuck_scan.py [--rows 1000000] [--runs 15] [--dsn DSN] [--no-index] [--plan]

Without --dsn it starts a throw-away Postgres (pgserver) in a temporary directory. With --dsn it works in
its own schema `pipectl_bench`, dropped at the end (unless --keep). The table is shaped like the
incident's `workflow_states`: 86% COMPLETED, 2% FAILED, 5% PENDING, 4% QUEUED, 3% IN_PROGRESS over six
steps; active rows were touched in the last minute except ~2% stuck for 40 min to 3 h, and every QUEUED
row of one step is stuck (its dispatch is broken). Fresh rows stay younger than the smallest threshold
(5m) for four minutes, long enough for the whole run, so every query sees the same answer.

The index is the one db.stuck's own fix creates (`stuck_index.suggest_index`), so what is measured is
the table as the check leaves it. The hand-written contenders: the first query one writes (an OR), the
same answer written for the index (a GROUP BY per status), and the same walking each status's groups one
index descent at a time (a loose index scan: a range per group instead of the whole status).

Prints the median time of each query (runs interleaved in a shuffled order, after one warm-up), each
beside the anchor, the fastest hand-written one by median, with its ratio to it; then ours / anchor by
median and by best run. No query is prepared (ours never is, for poolers), so planning counts in every
figure. Figures only; no asserts. On a shared machine the median follows the load: compare figures of
one run, not across runs.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable

from pipectl.config import StateTable
from pipectl.connectors import postgres, stuck_index

SCHEMA = "pipectl_bench"
TABLE = f"{SCHEMA}.workflow_states"
THRESHOLDS = {"PENDING": "10m", "QUEUED": "5m", "IN_PROGRESS": "30m"}
STEPS = ["normalize_company_name", "enrich_domain", "fetch_linkedin", "score_lead", "dedupe", "export_crm"]

CREATE = f"""
CREATE TABLE {TABLE} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id bigint NOT NULL,
    step_name text NOT NULL,
    status text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    payload jsonb,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
)"""

FILL = f"""
INSERT INTO {TABLE} (company_id, step_name, status, attempts, payload, created_at, updated_at)
SELECT (g::bigint * 7919) %% 200000, step, status, (r2 * 3)::int,
       jsonb_build_object('company', 'company-' || g, 'domain', 'example-' || g || '.com',
                          'note', repeat('x', 80)),
       updated - interval '1 hour' * r2, updated
FROM (
    SELECT g, r, r2, (%(steps)s::text[])[1 + g %% 6] AS step,
           CASE WHEN r < .86 THEN 'COMPLETED' WHEN r < .88 THEN 'FAILED' WHEN r < .93 THEN 'PENDING'
                WHEN r < .97 THEN 'QUEUED' ELSE 'IN_PROGRESS' END AS status
    FROM (SELECT g, random() AS r, random() AS r2 FROM generate_series(1, %(rows)s) AS g) AS raw
) AS s
CROSS JOIN LATERAL (SELECT CASE
    WHEN status IN ('COMPLETED', 'FAILED') THEN now() - interval '30 days' * r2
    WHEN status = 'QUEUED' AND step = %(broken_step)s
        THEN now() - interval '6 minutes' - interval '2 hours' * r2
    WHEN r2 < .02 THEN now() - interval '40 minutes' - interval '3 hours' * (r2 / .02)
    ELSE now() - interval '1 minute' * r2 END AS updated) AS u
"""

_SECONDS = {"m": 60}


def _interval(text: str) -> str:
    return f"{int(text[:-1]) * _SECONDS[text[-1]]} seconds"


def hand_or() -> str:
    """What one writes first: one pass, an OR of the statuses, the oldest ids by an ordered array_agg."""
    where = " OR ".join(
        f"(status = '{s}' AND updated_at < now() - interval '{_interval(t)}')" for s, t in THRESHOLDS.items()
    )
    return (
        "SELECT status, step_name, count(*), extract(epoch FROM now() - min(updated_at))::float8,"
        f" (array_agg(id ORDER BY updated_at))[1:3] FROM {TABLE} WHERE {where} GROUP BY status, step_name"
    )


def hand_union() -> str:
    """The same answer, written for the index: a GROUP BY per status, then three ids per group."""
    branches = " UNION ALL ".join(
        f"SELECT status, step_name, count(*) AS n, min(updated_at) AS oldest,"
        f" now() - interval '{_interval(t)}' AS cutoff FROM {TABLE}"
        f" WHERE status = '{s}' AND updated_at < now() - interval '{_interval(t)}' GROUP BY status, step_name"
        for s, t in THRESHOLDS.items()
    )
    return (
        "SELECT g.status, g.step_name, g.n, extract(epoch FROM now() - g.oldest)::float8,"
        f" ARRAY(SELECT w.id FROM {TABLE} w WHERE w.status = g.status AND w.step_name = g.step_name"
        f" AND w.updated_at < g.cutoff ORDER BY w.updated_at LIMIT 3) FROM ({branches}) AS g"
    )


def hand_walk() -> str:
    """The same answer again, each status's steps found one index descent at a time (a loose index scan),
    then one short range per step: only the stuck rows' index entries are read, not the whole status."""
    branches = " UNION ALL ".join(
        f"(WITH RECURSIVE k AS ((SELECT status, step_name FROM {TABLE} WHERE status = '{s}'"
        " ORDER BY step_name LIMIT 1)"
        f" UNION ALL SELECT n.* FROM k CROSS JOIN LATERAL (SELECT status, step_name FROM {TABLE}"
        " WHERE status = k.status AND step_name > k.step_name ORDER BY step_name LIMIT 1) AS n)"
        f" SELECT k.status, k.step_name, c.n, c.oldest, now() - interval '{_interval(t)}' AS cutoff"
        f" FROM k CROSS JOIN LATERAL (SELECT count(*) AS n, min(updated_at) AS oldest FROM {TABLE}"
        f" WHERE status = k.status AND step_name = k.step_name AND updated_at < now() - interval '{_interval(t)}')"
        " AS c WHERE c.n > 0)"
        for s, t in THRESHOLDS.items()
    )
    return (
        "SELECT g.status, g.step_name, g.n, extract(epoch FROM now() - g.oldest)::float8,"
        f" ARRAY(SELECT w.id FROM {TABLE} w WHERE w.status = g.status AND w.step_name = g.step_name"
        f" AND w.updated_at < g.cutoff ORDER BY w.updated_at LIMIT 3) FROM ({branches}) AS g"
    )


def hand_group_by_only() -> str:
    """Counts only, no sample ids: the floor any query returning the same counts has to pay."""
    branches = " UNION ALL ".join(
        f"SELECT status, step_name, count(*), min(updated_at) FROM {TABLE}"
        f" WHERE status = '{s}' AND updated_at < now() - interval '{_interval(t)}' GROUP BY status, step_name"
        for s, t in THRESHOLDS.items()
    )
    return branches


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--dsn", help="an existing Postgres to use (a schema pipectl_bench is created in it)")
    parser.add_argument(
        "--no-index", action="store_true", help="measure without the (status, step, updated) index"
    )
    parser.add_argument("--plan", action="store_true", help="print EXPLAIN ANALYZE of our query")
    parser.add_argument("--keep", action="store_true", help="leave the schema in place (with --dsn)")
    args = parser.parse_args()

    import psycopg

    server = None
    if args.dsn:
        dsn = args.dsn
    else:
        import pgserver

        workdir = tempfile.mkdtemp(prefix="pipectl-bench-")
        server = pgserver.get_server(workdir, cleanup_mode="delete")
        dsn = server.get_uri()

    state_table = StateTable(table=TABLE, group_by=["step_name"], stuck_after=THRESHOLDS)
    index = stuck_index.suggest_index(state_table)  # db.stuck's own fix
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
            conn.execute(f"CREATE SCHEMA {SCHEMA}")
            conn.execute(CREATE)
            started = time.perf_counter()
            conn.execute(FILL, {"rows": args.rows, "steps": STEPS, "broken_step": STEPS[0]})
            filled = time.monotonic()  # the fill's now(): fresh rows turn stuck 4 minutes on
            if not args.no_index:
                conn.execute(index)
            conn.execute(f"VACUUM ANALYZE {TABLE}")
            built = time.perf_counter() - started
            size = conn.execute(f"SELECT pg_size_pretty(pg_total_relation_size('{TABLE}'))").fetchone()[0]
        print(
            f"PostgreSQL {version}; {args.rows:,} rows ({size} with indexes) built in {built:.1f}s;"
            f" index: {'none' if args.no_index else index}"
        )

        # the hand-written queries never prepare either: ours cannot (a transaction-mode pooler loses prepared
        # statements), so every figure includes planning alike (a few tenths of a ms; it shows most at 1 M)
        hand_conn = psycopg.connect(dsn, autocommit=True, prepare_threshold=None)
        with postgres.session(dsn, timeout=60) as db, hand_conn as hand:
            info = db.describe_table(TABLE)
            if not stuck_index.index_fit(info, state_table).ordered:
                shape = "one pass, OR of statuses"
            elif stuck_index.walks_groups(info, state_table):
                shape = "per-status walk of the groups (loose index scan) + LIMIT samples"
            else:
                shape = "per-status UNION ALL + LIMIT samples"
            ours_answer = db.stuck_rows(state_table, info=info)
            print(
                f"stuck groups: {len(ours_answer)}, stuck rows: {sum(g.rows for g in ours_answer):,};"
                f" our query shape: {shape}"
            )

            def ours() -> None:
                db.stuck_rows(state_table, info=info)

            def ours_cold() -> None:  # what one call costs from nothing: connect, catalog, query
                postgres.stuck_rows(dsn, state_table, timeout=60)

            def run(text: str) -> Callable[[], None]:
                return lambda: hand.execute(text).fetchall()

            def run_serial(
                text: str,
            ) -> Callable[[], None]:  # as ours runs: no parallel workers, one round trip
                def go() -> None:
                    with hand.pipeline(), hand.transaction():
                        hand.execute("SET LOCAL max_parallel_workers_per_gather = 0")
                        cursor = hand.execute(text)
                    cursor.fetchall()

                return go

            contenders: dict[str, Callable[[], None]] = {
                "ours: Session.stuck_rows": ours,
                "hand: OR + GROUP BY + array_agg": run(hand_or()),
                "hand: UNION ALL GROUP BY + LIMIT": run(hand_union()),
                "hand: same, parallel workers off": run_serial(hand_union()),
                "hand: UNION ALL walking the groups": run(hand_walk()),
                "floor: GROUP BY counts, no ids": run(hand_group_by_only()),
                "ours: stuck_rows(dsn) incl. connect": ours_cold,
            }
            answers = {
                "hand: OR + GROUP BY + array_agg": hand.execute(hand_or()).fetchall(),
                "hand: UNION ALL GROUP BY + LIMIT": hand.execute(hand_union()).fetchall(),
                "hand: UNION ALL walking the groups": hand.execute(hand_walk()).fetchall(),
            }
            mine = sorted((g.status, g.group["step_name"], g.rows, list(g.sample_ids)) for g in ours_answer)
            for label, rows in answers.items():
                theirs = sorted((r[0], r[1], r[2], list(r[4])) for r in rows)
                print(f"  same answer as {label.split(': ')[1]}: {mine == theirs}")

            samples: dict[str, list[float]] = {name: [] for name in contenders}
            for fn in contenders.values():  # warm-up
                fn()
            order = list(contenders)
            shuffle = random.Random(0).shuffle
            for _ in range(args.runs):  # interleaved, so drift and noise hit every contender alike
                # in a new order each round: what one contender leaves running (the backend of the cold call
                # exiting) must not always fall on the same next one
                shuffle(order)
                for name in order:
                    fn = contenders[name]
                    t0 = time.perf_counter()
                    fn()
                    samples[name].append(time.perf_counter() - t0)

            ours = samples["ours: Session.stuck_rows"]
            hands = {n: v for n, v in samples.items() if n.startswith("hand")}
            best = min(hands, key=lambda n: median_ms(hands[n]))
            anchor = median_ms(hands[best])
            print(f"\nmedian of {args.runs} runs, each beside the anchor (the fastest hand-written, {anchor:.2f} ms):")
            for name, values in samples.items():
                mark = "   <- anchor" if name == best else ""
                print(f"  {name:<38} {median_ms(values):8.2f} ms   (min {min(values) * 1000:8.2f})"
                      f"   vs {anchor:.2f} ms: {median_ms(values) / anchor:5.2f}x{mark}")
            by_median = median_ms(ours) / anchor
            by_best = min(ours) / min(hands[best])
            print(
                f"\nours / best hand-written ({best.split(': ')[1]}): {median_ms(ours):.2f} / {anchor:.2f} ms ="
                f" {by_median:.2f}x by median, {min(ours) * 1000:.2f} / {min(hands[best]) * 1000:.2f} ms ="
                f" {by_best:.2f}x by best run   (target <= 1.2x)"
            )
            if time.monotonic() - filled > 240:
                print("warning: the run outlasted the 4 minutes the data holds still: later runs saw more stuck rows")
            if args.plan:
                print("\n" + db.stuck_query_plan(state_table, analyze=True, info=info))
    finally:
        if args.dsn and not args.keep:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        if server is not None:
            server.cleanup()


if __name__ == "__main__":
    main()
