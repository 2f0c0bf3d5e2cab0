"""`pipectl journal verify`: the journal's hash chain and run records checked end to end.

SQLite's triggers stop pipectl itself from changing history; anyone with the file can still drop them. The
chain makes that visible: a changed, forged or deleted record breaks it, and a run record that was deleted or
edited no longer matches the `start` record the chain holds for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pipectl.journal import Journal, chain_hash

_RUN_FIELDS = ("id", "command", "pipeline", "started_at", "actor", "config", "endpoints")


@dataclass
class Verdict:
    """What `journal verify` found: counts, and one line per problem."""

    records: int = 0
    runs: int = 0
    unchained: int = 0
    """Records written by a version without the chain: they cannot be checked."""
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def verify(book: Journal) -> Verdict:
    """Walk every record in order, recompute the chain, and match run records to their start records."""
    events, runs = book.raw_events(), {r["id"]: r for r in book.raw_runs()}
    verdict = Verdict(records=len(events), runs=len(runs))
    previous, last_seq, started = "", 0, set()
    for row in events:
        seq = row["seq"]
        if last_seq and seq != last_seq + 1:
            verdict.problems.append(f"records {last_seq + 1}–{seq - 1} are missing: deleted from the journal")
        last_seq = seq
        if not row["hash"]:
            verdict.unchained += 1
            previous = ""
            continue
        if row["hash"] != chain_hash(previous, row["run_id"], row["at"], row["kind"], row["data"]):
            verdict.problems.append(f"record {seq} ({row['kind']} of run {row['run_id']}) breaks the chain: it, "
                                    "or the record before it, was changed, forged or deleted")
        previous = row["hash"]
        if row["kind"] == "start":
            started.add(row["run_id"])
            _match_run(verdict, runs.get(row["run_id"]), json.loads(row["data"]), row["run_id"])
        elif row["run_id"] not in runs:
            verdict.problems.append(f"record {seq} belongs to run {row['run_id']}, which is not in the journal")
    chained_since = min((json.loads(r["data"])["started_at"] for r in events if r["kind"] == "start"), default=None)
    for run_id, run in runs.items():
        if run_id not in started and chained_since is not None and run["started_at"] >= chained_since:
            verdict.problems.append(f"run {run_id} has no start record in the chain: inserted by hand")
    return verdict


def _match_run(verdict: Verdict, run, recorded: dict, run_id: str) -> None:
    if run is None:
        verdict.problems.append(f"run {run_id} was deleted: its records remain in the chain")
        return
    changed = [f for f in _RUN_FIELDS if str(run[f]) != str(recorded.get(f, ""))]
    if changed:
        verdict.problems.append(f"run {run_id} was changed since it was recorded ({', '.join(changed)})")
