"""Put stuck rows back where a worker will pick them up: a batched compare-and-set on the status column."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from pipectl.config import PipelineConfig, StateTable
from pipectl.connectors.pg_names import split_table
from pipectl.durations import format_duration
from pipectl.errors import PipectlError, UsageError
from pipectl.repair import Change, JournalRun, Outcome, Plan, Repair

DEFAULT_BATCH_SIZE = 20_000
MAX_BATCH_SIZE = 1_000_000
MAX_ROWS = 2**63 - 1
READ_TIMEOUT_S = 30.0
"""The plan's and the verify's counting queries: one aggregate each, bounded by this."""


def find_table(config: PipelineConfig, name: str | None) -> StateTable:
    """The named [[state_tables]] entry, or the only one when no name is given."""
    tables = config.state_tables
    known = ", ".join(t.table for t in tables) or "none configured"
    if name is None:
        if len(tables) == 1:
            return tables[0]
        if not tables:
            raise UsageError("no [[state_tables]] in the config: nothing to reset")
        raise UsageError(f"several state tables are configured: pick one with --table ({known})")
    for table in tables:
        if name in (table.table, split_table(table.table)[1]):
            return table
    raise UsageError(f"no state table {name!r} in the config (state tables: {known})")


class ResetRows(Repair):
    """Rows stuck in one status go back to another, in short batches, only where still in that status.

    Every committed batch is journaled (ids, table, statuses), so `pipectl undo` can put exactly those
    rows back, again only where nobody has moved them on since.
    """

    def __init__(
        self,
        config: PipelineConfig,
        table: StateTable,
        from_status: str,
        to_status: str,
        *,
        older_than: timedelta | None = None,
        step: str | None = None,
        limit: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: Callable[[int, int], None] = lambda done, total: None,
        allow_new_status: bool = False,
    ) -> None:
        if from_status == to_status:
            raise UsageError(f"--status and --to are both {from_status}: nothing would change")
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise UsageError(f"--batch-size {batch_size}: must be between 1 and {MAX_BATCH_SIZE}")
        if limit is not None and not 1 <= limit <= MAX_ROWS:
            raise UsageError(f"--limit {limit}: must be between 1 and {MAX_ROWS}")
        if older_than is not None and older_than < timedelta(0):
            raise UsageError("--older-than must not be negative")
        if step is not None and not table.group_by:
            raise UsageError(f"--step needs a group_by column on state table {table.table}; it has none")
        if not config.database.dsn:
            raise UsageError("no [database] dsn in the config")
        self.config, self.table = config, table
        self.from_status, self.to_status = from_status, to_status
        self.older_than, self.step, self.limit, self.batch_size = older_than, step, limit, batch_size
        self.allow_new_status = allow_new_status
        self.cutoff_reason = "--older-than"
        if older_than is None:
            older_than = table.stuck_after.get(from_status)
            if older_than is None:
                raise UsageError(
                    f"no stuck_after for {from_status} on state table {table.table}: say how old a row must be "
                    f"with --older-than (e.g. 10m; 0 takes every {from_status} row, even one queued a second ago)")
            self.older_than = older_than
            self.cutoff_reason = f"stuck_after.{from_status} of {table.table}"
        self.progress = progress
        self.where: dict[str, Any] = {table.group_by[0]: step} if step is not None else {}
        self._plan = None
        self._moved = 0
        self._in_flight = 0
        self._limit_reached = False

    @property
    def dsn(self) -> str:
        return self.config.database.dsn or ""

    def plan(self) -> Plan:
        from pipectl.connectors import reset_query

        self._check_target_status()
        found = reset_query.plan_reset(self.dsn, self.table, self.from_status, self.older_than, self.where,
                                       self.limit, timeout=READ_TIMEOUT_S)
        self._plan = found
        details: dict[str, Any] = {"table": self.table.table, "filter": self._filter_text(),
                                   "cutoff": found.cutoff.isoformat(timespec="seconds"),
                                   "cutoff rule": f"older than {format_duration(self.older_than)} "
                                                  f"({self.cutoff_reason})", "rows": found.rows}
        if self.limit is not None and self.limit < found.rows:
            details["limit"] = f"{self.limit} (lowest ids first)"
        details["batch size"] = self.batch_size
        if found.rows == 0:
            return Plan("reset", f"no {self.from_status} rows of {self.table.table} match: nothing to reset",
                        (), details)
        samples = {self._group_label(group): list(ids) for group, ids in found.sample_ids if ids}
        if samples:
            details["sample ids (oldest)"] = "; ".join(
                f"{label}: {', '.join(map(str, ids))}" if label else ", ".join(map(str, ids))
                for label, ids in samples.items())
        limited = self.limit is not None and self.limit < found.rows
        changes = tuple(
            Change(" ".join(filter(None, [self.table.table, self._group_label(group)])),
                   (f"up to {min(rows, self.limit)} of {rows} rows" if limited else f"{rows} rows")
                   + f" {self.from_status} → {self.to_status}",
                   {"status": self.from_status, "rows": rows}, {"status": self.to_status, "rows": rows})
            for group, rows in found.per_group
        )
        moving = min(found.rows, self.limit) if self.limit is not None else found.rows
        title = f"reset {moving} row(s) of {self.table.table} from {self.from_status} to {self.to_status}"
        if moving < found.rows:
            title += f" (of {found.rows} matching)"
        return Plan("reset", title, changes, details)

    def apply(self, plan: Plan, journal: JournalRun) -> Outcome:
        from pipectl.connectors import postgres_write

        if self._plan is None:  # pragma: no cover - execute always plans first
            self.plan()
        total = min(self._plan.rows, self.limit) if self.limit is not None else self._plan.rows
        batches: list[int] = []
        timings: list[float] = []
        recorder = _Recorder(journal)

        def batch_record(ids: list[Any], number: int) -> dict[str, Any]:
            return {"kind": "rows", "table": self.table.table, "id_column": self.table.id_column,
                    "status_column": self.table.status_column, "updated_column": self.table.updated_column,
                    "from_status": self.from_status, "to_status": self.to_status,
                    "ids": ids, "batch": number}  # uuid etc. become text in the journal's JSON

        def intended(ids: list[Any]) -> None:
            journal.record("intent", batch_record(ids, len(batches) + 1))
            self._in_flight = len(ids)

        def committed(ids: list[Any]) -> None:
            self._in_flight = 0
            batches.append(len(ids))
            self._moved += len(ids)
            confirmation = batch_record([], len(batches))  # the ids are in the batch's intent
            del confirmation["ids"]
            recorder.record({**confirmation, "rows": len(ids), "ids_in": "intent"})
            self.progress(self._moved, max(total, self._moved))

        self.progress(0, total)
        try:
            moved = postgres_write.reset_batches(
                self.dsn, self.table, self.from_status, self.to_status, self.older_than, self.where, self.limit,
                self.batch_size, committed, on_intent=intended, cutoff=self._plan.cutoff, timings=timings,
                expected=self._plan.rows)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                recorder.close()  # every committed batch is in the journal before the error is told
            if isinstance(exc, PipectlError):
                journal.record("outcome", {"stage": "apply", "ok": False, "summary": str(exc),
                                           "rows moved": self._moved, "batches": len(batches)})
            raise
        recorder.close()
        self.progress(moved, moved)  # the last call: done == total
        self._limit_reached = self.limit is not None and moved >= self.limit
        details = {"rows moved": moved, "batches": len(batches),
                   "longest batch": f"{max(timings):.2f} s" if timings else "-"}
        return Outcome(True, f"moved {moved} row(s) of {self.table.table} {self.from_status} → {self.to_status}",
                       details)

    def verify(self, applied: Outcome) -> Outcome:
        from pipectl.connectors import reset_query

        flt = reset_query.Filter(self.from_status, self._plan.cutoff, self.where, self._plan.undated)
        left = reset_query.count_matching(self.dsn, self.table, flt, timeout=READ_TIMEOUT_S)
        details = {**applied.details, f"{self.from_status} rows left (older than the cutoff)": left}
        if left == 0:
            return Outcome(True, f"{self._moved} row(s) {self.from_status} → {self.to_status}; no "
                                 f"{self.from_status} row older than the cutoff is left", details)
        if self._limit_reached:
            return Outcome(True, f"{self._moved} row(s) {self.from_status} → {self.to_status} (the --limit); "
                                 f"{left} matching row(s) are left", details)
        return Outcome(False, f"{left} {self.from_status} row(s) older than the cutoff are still there (held by "
                              "another transaction, or put back meanwhile); run the same command again", details)

    def committed(self) -> str:
        flight = (f", and the batch of {self._in_flight} in flight when it stopped may have committed too"
                  if self._in_flight else "")
        return (f"{self._moved} row(s) were reset in committed batches{flight}; all are journaled (`pipectl undo` "
                "puts them back); the rest were not touched")

    def _check_target_status(self) -> None:
        """`--to PENDNG` would park rows where nothing picks them up: only statuses in use or configured."""
        from pipectl.connectors import reset_query

        if self.allow_new_status:
            return
        known = set(reset_query.known_statuses(self.dsn, self.table, timeout=READ_TIMEOUT_S))
        known |= set(self.table.stuck_after)
        if self.to_status not in known:
            raise UsageError(f"--to {self.to_status}: no row of {self.table.table} is in that status and the config "
                             f"names no such status (known: {', '.join(sorted(known)) or 'none'}); "
                             "--allow-new-status to use it anyway")

    def _filter_text(self) -> str:
        parts = [f"{self.table.status_column} = {self.from_status}"]
        parts += [f"{column} = {value}" for column, value in self.where.items()]
        if self.older_than:
            parts.append(f"{self.table.updated_column} older than {format_duration(self.older_than)}")
        else:
            parts.append(f"{self.table.updated_column} before now")
        return ", ".join(parts)

    def _group_label(self, group: tuple[Any, ...]) -> str:
        return " ".join(f"{c}={v}" for c, v in zip(self.table.group_by, group, strict=False))


class _Recorder:
    """Journals committed batches in order on a thread of its own, while the next batch runs.

    One batch at most waits while another is written: a crash of pipectl itself can leave at most two
    committed batches out of the journal (writing in line would leave one). A journal that cannot be
    written stops the reset at the next batch.
    """

    def __init__(self, journal: JournalRun) -> None:
        self._journal = journal
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=1)
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name="pipectl-journal", daemon=True)
        self._thread.start()

    def record(self, data: dict[str, Any]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(data)

    def close(self) -> None:
        """Wait until everything handed over is written."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._journal.record("change", data)
                except Exception as exc:  # noqa: BLE001 - handed to the resetting thread at its next batch
                    self._error = exc

