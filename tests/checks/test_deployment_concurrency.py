"""A deployment's concurrency limit, as prefect.deployment reads and judges it.

Newer Prefect servers (3.9 among them) report the limit as an object, `global_concurrency_limit` (`limit`, `active`,
`active_slots`, `name` …) and leave the old `concurrency_limit` null; older ones report only that number.
Both shapes are read through a stand-in on 127.0.0.1; everything else runs against the sandbox's real
server, where runs held back by the limit wait in the state Prefect names `AwaitingConcurrencySlot`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pipectl.checks.prefect_deployment import PrefectDeployment

from pipectl.connectors import prefect as prefect_api
from pipectl.model import Severity, Status
from pipectl.sandbox import prefect_stack
from pipectl.sandbox.layout import ORCHESTRATOR
from tests.checks.test_prefect_checks import _with_client, doctor
from tests.conftest import default_signals

DEPLOYMENT_ID = "6f1c1d5e-0000-4000-8000-000000000002"
OWN = f"deployment:{DEPLOYMENT_ID}"
BASE = {"id": DEPLOYMENT_ID, "name": "d", "paused": False, "status": "READY", "work_pool_name": "pool",
        "work_queue_name": "default", "job_variables": {}, "entrypoint": "f.py:main", "pull_steps": None,
        "parameters": {}, "updated": "2025-01-02T03:04:05Z", "parameter_openapi_schema": {}}
SHAPES = {
    "old-number": ({"concurrency_limit": 3}, (3, True, None, None)),
    "object": ({"concurrency_limit": None, "global_concurrency_limit": {
        "id": "0e0e0e0e-0000-4000-8000-000000000003", "active": False, "name": OWN, "limit": 0, "active_slots": 2,
        "slot_decay_per_second": 0.0}}, (0, False, OWN, 2)),
    "object-enabled": ({"concurrency_limit": None, "global_concurrency_limit": {
        "id": "0e0e0e0e-0000-4000-8000-000000000004", "active": True, "name": "shared-db", "limit": 4,
        "active_slots": 1, "slot_decay_per_second": 0.0}}, (4, True, "shared-db", 1)),
    "no-limit": ({"concurrency_limit": None, "global_concurrency_limit": None}, (None, True, None, None)),
    "no-limit-old": ({}, (None, True, None, None)),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_the_limit_is_read_from_either_shape(shape):
    fields, expected = SHAPES[shape]
    body = json.dumps({**BASE, **fields}).encode()

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self):
            found = self.path == "/api/deployments/name/f/d"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body if found else b'{"detail": "Not Found"}')

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        info = prefect_api.read_deployment(f"http://127.0.0.1:{server.server_address[1]}/api", None, "f/d")
    finally:
        server.shutdown()
        server.server_close()
    assert info is not None
    found = (info.concurrency_limit, info.concurrency_active, info.concurrency_limit_name,
             info.concurrency_slots_taken)
    assert found == expected


# ---------------------------------------------------------------- on the sandbox's server


def _limit_then(sandbox, **change) -> str:
    """Give the orchestrator a concurrency limit of 1, then change its global concurrency limit as
    `prefect global-concurrency-limit update|disable` does; returns the deployment's id."""
    from prefect.client.schemas.actions import DeploymentUpdate, GlobalConcurrencyLimitUpdate

    async def run(client):
        deployment = await client.read_deployment_by_name(ORCHESTRATOR)
        await client.update_deployment(deployment.id, DeploymentUpdate(concurrency_limit=1))
        await client.update_global_concurrency_limit(f"deployment:{deployment.id}",
                                                     GlobalConcurrencyLimitUpdate(**change))
        return str(deployment.id)

    sandbox.dirty()  # heal's seed removes the limit
    return _with_client(sandbox.state.prefect_api_url, run)


def _waiting_run(sandbox, waited: timedelta | None = None) -> str:
    """A run of the orchestrator the worker tried to start and the limit held back; with `waited`, it has
    been waiting that long (its expected start moved back in the server's own database, as the zombie-run
    drill ages its run: Prefect sets it itself)."""
    api = sandbox.state.prefect_api_url
    run_id = prefect_stack.trigger(api, ORCHESTRATOR)
    prefect_stack.wait_for_run(api, run_id, 60, state_name=prefect_api.AWAITING_SLOT)
    if waited is not None:
        since = (datetime.now(UTC) - waited).replace(tzinfo=None).isoformat(sep=" ")
        with sqlite3.connect(sandbox.layout.prefect_home / "prefect.db", timeout=30) as db:
            db.execute("UPDATE flow_run SET expected_start_time = ? WHERE id = ?", (since, run_id))
    return run_id


def _orchestrator(sandbox):
    (finding,) = [f for f in doctor(sandbox.config_path, [PrefectDeployment]).findings if f.subject == ORCHESTRATOR]
    return finding


def _run_as_printed(command: str) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(command, shell=True, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=120, check=False, preexec_fn=default_signals)
    assert done.returncode == 0, f"`{command}` failed ({done.returncode}): {done.stderr[-600:]}"


SLOT_CASES = {
    # a slot counted as taken that no run holds (a lease lost with a server restart): the run waits for ever
    "slot-held-by-no-run": ({"active_slots": 1}, timedelta(hours=3), "concurrency_slots_leaked",
                            "prefect global-concurrency-limit update {limit} --active-slots 0",
                            {"concurrency_limit": 1, "concurrency_slots_taken": 0}),
    # a disabled limit is not "no limit" to Prefect 3.9: every run waits for a slot, at once
    "limit-disabled": ({"active": False}, None, "concurrency_disabled",
                       "prefect global-concurrency-limit delete {limit}", {"concurrency_limit": None}),
}


@pytest.mark.parametrize("case", SLOT_CASES)
def test_runs_waiting_for_a_slot_are_named_and_the_printed_fix_starts_them(sandbox, case):
    change, waited, problem, command, healed = SLOT_CASES[case]
    deployment_id = _limit_then(sandbox, **change)
    run_id = _waiting_run(sandbox, waited)
    finding = _orchestrator(sandbox)
    assert finding.status is Status.FAIL and finding.severity is Severity.P0, finding
    assert finding.evidence["problem"] == problem and finding.evidence["awaiting_slot"] == 1, finding.evidence
    assert "waiting for a slot" in finding.summary
    (fix,) = finding.fix
    assert fix.startswith("PREFECT_API_URL=") and fix.endswith(command.format(limit=f"deployment:{deployment_id}"))
    _run_as_printed(fix)
    assert prefect_stack.wait_for_run(sandbox.state.prefect_api_url, run_id, 90) == "COMPLETED"
    finding = _orchestrator(sandbox)
    assert finding.status is Status.OK, finding
    assert {key: finding.evidence[key] for key in healed} == healed


def test_a_run_held_back_moments_ago_waits_its_turn(sandbox):
    """Every slot taken and a run waiting for one: not a finding before it has waited longer than the
    deployment's runs take (here an hour: it has no COMPLETED run to compare with)."""
    _limit_then(sandbox, active_slots=1)
    _waiting_run(sandbox)
    finding = _orchestrator(sandbox)
    assert finding.status is Status.OK and finding.evidence["awaiting_slot"] == 1, finding


def test_heal_puts_the_limit_back_as_up_left_it(sandbox):
    api = sandbox.state.prefect_api_url
    sandbox.break_("deployment-concurrency-zero")
    broken = prefect_api.read_deployment(api, None, ORCHESTRATOR)
    assert broken is not None and broken.concurrency_limit == 0
    sandbox.heal()
    healed = prefect_api.read_deployment(api, None, ORCHESTRATOR)
    assert healed is not None and (healed.concurrency_limit, healed.concurrency_limit_name) == (None, None)

    async def limits(client):
        return [limit.name for limit in await client.read_global_concurrency_limits()]

    # the sandbox's own deployments hold no limit (another test's deployment, e.g. a watchdog, may hold one)
    own = {f"deployment:{d.id}" for d in (broken, healed)}
    assert own.isdisjoint(_with_client(api, limits))
