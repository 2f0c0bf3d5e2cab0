"""Faults during writes: pipectl killed (-9) or interrupted at random instants of a reset.

Whatever the instant, the journal holds every batch that may have committed (write-ahead intents), so
`undo` restores every row the reset moved, and an interrupted run says so in the journal and on stderr.
"""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipectl.journal import Journal
from tests.conftest import default_signals, python_env
from tests.repairs.test_reset import add, counts

ROWS, BATCH = 3_000, 50


def start_reset(config_path: Path, journal: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipectl", "reset", "--status", "QUEUED", "--yes", "--batch-size", str(BATCH),
         "--config", str(config_path), "--journal", str(journal)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_signals, env=python_env())


def moved(db) -> int:
    return counts(db).get("PENDING", 0)


def interrupt_when(db, proc: subprocess.Popen, rows: int, sig: int) -> None:
    """Signal the reset once at least `rows` rows have moved (or as soon as it is done)."""
    while proc.poll() is None and moved(db) < rows:
        pass  # each look is one query: the reset's own pace sets the loop's
    if proc.poll() is None:
        proc.send_signal(sig)
    proc.communicate(timeout=120)


def undo_all(run_cli, config_path: Path, journal: Path) -> None:
    (run,) = Journal(journal).runs()
    code, out, err = run_cli("undo", run.id, "--yes", "--config", str(config_path), "--journal", str(journal))
    assert code == 0, err


def test_kill_9_at_twenty_random_instants_never_loses_a_committed_row_to_undo(db, config_path, tmp_path, run_cli):
    rng = random.Random(20261201)
    outcomes = []
    for attempt in range(20):
        db.execute("TRUNCATE workflow_states")
        add(db, "enrich", "QUEUED", ROWS, 20)
        journal = tmp_path / f"journal-{attempt}.sqlite3"
        proc = start_reset(config_path, journal)
        interrupt_when(db, proc, rng.randrange(0, ROWS), signal.SIGKILL)
        committed = moved(db)
        undo_all(run_cli, config_path, journal)
        outcomes.append((committed, counts(db)))
    assert all(after == {"QUEUED": ROWS} for _, after in outcomes), outcomes
    assert sum(1 for committed, _ in outcomes if 0 < committed < ROWS) >= 10  # most kills landed mid-reset


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_stops_at_a_safe_point_says_what_committed_and_records_it(db, config_path, tmp_path, run_cli,
                                                                               sig):
    for attempt in range(5):  # on a loaded machine the reset may outrun the signal: then a fresh try
        db.execute("TRUNCATE workflow_states")
        add(db, "enrich", "QUEUED", ROWS, 20)
        journal = tmp_path / f"journal-{attempt}.sqlite3"
        proc = start_reset(config_path, journal)
        while proc.poll() is None and moved(db) < ROWS // 10:
            pass
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            break
    committed = moved(db)
    assert proc.returncode == 130
    assert f"interrupted during: reset {ROWS} row(s)" in err
    said = re.search(r"(\d+) row\(s\) were reset in committed batches(?:, and the batch of (\d+) in flight)?", err)
    assert said, err
    told, in_flight = int(said.group(1)), int(said.group(2) or 0)
    assert told <= committed <= told + in_flight  # the signal may land between a commit and its confirmation
    assert "WARNING" not in err and "Traceback" not in err
    (run,) = Journal(journal).runs()
    last = Journal(journal).events(run.id, "outcome")[-1].data
    assert last["result"] == "interrupted" and last["ok"] is False
    undo_all(run_cli, config_path, journal)
    assert counts(db) == {"QUEUED": ROWS}
