"""The prefect.* checks against the sandbox's real Prefect server, one drill per broken state.

Every case is a row of CASES: a way to break the sandbox (a drill from `pipectl.sandbox.scenarios`, a
local one that costs no flow run, or None for healthy) and what the five checks must conclude. Each
broken state is paid for once and all its expectations are asserted on one doctor run.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from pipectl.checks.prefect_api import PrefectApi
from pipectl.checks.prefect_deployment import PrefectDeployment
from pipectl.checks.prefect_job_variables import PrefectJobVariables
from pipectl.checks.prefect_runs import PrefectRuns, statuses_to_move
from pipectl.checks.prefect_work_pool import PrefectWorkPool

from pipectl.config_load import environment, load_config
from pipectl.interface import Context
from pipectl.model import DoctorResult, Finding, Severity, Status
from pipectl.report import json as json_report
from pipectl.runner import run_checks
from pipectl.sandbox import prefect_stack
from pipectl.sandbox.layout import ORCHESTRATOR, POOL, PROCESS_JOB, ROWS

CHECKS = (PrefectApi, PrefectDeployment, PrefectWorkPool, PrefectJobVariables, PrefectRuns)
TIMEOUT = 10.0
OK, FAIL, ERROR, SKIPPED = Status.OK, Status.FAIL, Status.ERROR, Status.SKIPPED


@dataclass(frozen=True)
class Expect:
    """One finding that must be there: check id, status, and optionally severity, subject, evidence subset,
    words of the summary, the start of the fix, and ids among its causes."""

    check: str
    status: Status
    severity: Severity | None = None
    subject: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    summary: tuple[str, ...] = ()
    fix: str | None = None
    caused_by: tuple[str, ...] = ()


# ---------------------------------------------------------------- breaks that need no flow run


def _with_client(api_url: str, fn):
    from prefect.client.orchestration import PrefectClient

    async def main():
        async with PrefectClient(api_url) as client:
            return await fn(client)

    return asyncio.run(asyncio.wait_for(main(), 30))


def delete_secret_block(sandbox, name: str = prefect_stack.SECRET_TOKEN_SECRET) -> None:
    async def run(client):
        block = await client.read_block_document_by_name(name, "secret", include_secrets=False)
        await client.delete_block_document(block.id)

    sandbox.dirty()
    _with_client(sandbox.state.prefect_api_url, run)


def plaintext_secret(sandbox) -> None:
    """The real token secret pasted into the job variables, next to a proper reference for the id."""
    job_variables = prefect_stack.healthy_job_variables()
    job_variables["env"]["MODAL_TOKEN_SECRET"] = sandbox.state.modal_token_secret
    sandbox.dirty()
    prefect_stack.set_job_variables(sandbox.state.prefect_api_url, ORCHESTRATOR, job_variables)


def pause_deployment_and_pool(sandbox) -> None:
    sandbox.dirty()  # heal's seed upserts both with paused=False
    prefect_stack.pause_deployment(sandbox.state.prefect_api_url, ORCHESTRATOR)
    prefect_stack.pause_pool(sandbox.state.prefect_api_url, POOL)


def delete_late_runs(sandbox) -> None:
    """Leave no Late run behind for the healed worker to pick up during a later test."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateName

    async def run(client):
        late = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(name=FlowRunFilterStateName(any_=["Late"]))))
        for flow_run in late:
            await client.delete_flow_run(flow_run.id)

    _with_client(sandbox.state.prefect_api_url, run)


LOCAL_BREAKS: dict[str, Callable] = {
    "deleted-secret-block": delete_secret_block,
    "plaintext-secret": plaintext_secret,
    "paused": pause_deployment_and_pool,
}

ALL_OK = [Expect(cls.id, OK) for cls in CHECKS]

CASES: list[tuple[str | None, list[Expect]]] = [
    (None, [
        *ALL_OK,
        Expect("prefect.api", OK, summary=("answers",)),
        Expect("prefect.deployment", OK, subject=ORCHESTRATOR, evidence={"concurrency_limit": None}),  # as `up` left it
        Expect("prefect.work_pool", OK, subject=POOL, evidence={"late_runs": 0, "live_workers": ["sandbox-worker"]}),
        Expect("prefect.job_variables", OK, subject=ORCHESTRATOR,
               evidence={"missing": [], "blocks": ["modal-token-id", "modal-token-secret"]}),
    ]),
    ("missing-deployment", [
        Expect("prefect.deployment", FAIL, Severity.P0, PROCESS_JOB, {"problem": "not_registered"},
               summary=("process_job/production is not registered",),
               fix="pipectl deploy register process_job/production"),
        Expect("prefect.deployment", OK, subject=ORCHESTRATOR),
        Expect("prefect.job_variables", SKIPPED, subject=PROCESS_JOB),
        Expect("prefect.runs", SKIPPED, subject=PROCESS_JOB),
        Expect("prefect.work_pool", OK, subject=POOL),
    ]),
    ("deleted-secret-block", [
        Expect("prefect.job_variables", FAIL, Severity.P0, ORCHESTRATOR,
               {"missing": [], "missing_blocks": ["modal-token-secret"]},
               summary=("Secret block modal-token-secret", "does not exist"),
               fix="pipectl secret set modal-token-secret --from-env MODAL_TOKEN_SECRET"),
        Expect("prefect.api", OK),
        Expect("prefect.deployment", OK, subject=ORCHESTRATOR),
    ]),
    ("plaintext-secret", [
        Expect("prefect.job_variables", FAIL, Severity.P1, ORCHESTRATOR,
               {"plaintext_keys": ["MODAL_TOKEN_SECRET"], "missing": []},
               summary=("MODAL_TOKEN_SECRET", "plain text"),
               fix="pipectl secret set modal-token-secret --from-env MODAL_TOKEN_SECRET && pipectl patch "),
    ]),
    ("paused", [
        Expect("prefect.deployment", FAIL, Severity.P0, ORCHESTRATOR, {"paused": True, "problem": "paused"},
               summary=("is paused",), fix="curl -fsS --retry 3 -o /dev/null -X PATCH http://127.0.0.1:"),
        Expect("prefect.deployment", OK, subject=PROCESS_JOB),
        Expect("prefect.work_pool", FAIL, Severity.P0, POOL, {"paused": True, "problem": "paused"},
               fix="PREFECT_API_URL=http://127.0.0.1:"),
    ]),
    ("deployment-concurrency-zero", [
        Expect("prefect.deployment", FAIL, Severity.P0, ORCHESTRATOR,
               {"problem": "concurrency_zero", "concurrency_limit": 0, "concurrency_limit_active": True,
                "late_runs": 1}, summary=("has a concurrency limit of 0: none of its runs can start", "1 run Late"),
               fix="PREFECT_API_URL=http://127.0.0.1:"),
        Expect("prefect.deployment", OK, subject=PROCESS_JOB, evidence={"concurrency_limit": None}),
        # the worker is fine: the Late runs no worker could start are the deployment's doing, and starting
        # another worker (the fix for Late runs of a pool) would be the wrong advice
        Expect("prefect.work_pool", OK, subject=POOL, evidence={"late_runs": 1,
                                                                "late_runs_held_by": {ORCHESTRATOR: 1}}),
        Expect("prefect.runs", FAIL, subject=ORCHESTRATOR, evidence={"late": 1},
               caused_by=(f"prefect.deployment:{ORCHESTRATOR}",)),
    ]),
    ("missing-modal-creds", [
        Expect("prefect.job_variables", FAIL, Severity.P0, ORCHESTRATOR,
               {"missing": ["MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"]},
               summary=("MODAL_TOKEN_ID, MODAL_TOKEN_SECRET",),
               fix=f"pipectl patch {ORCHESTRATOR} --env MODAL_TOKEN_ID=secret:modal-token-id "
                   "--env MODAL_TOKEN_SECRET=secret:modal-token-secret"),
        Expect("prefect.runs", FAIL, Severity.P0, ORCHESTRATOR,
               {"state": "COMPLETED", "rows_not_moved": ROWS, "statuses": ["QUEUED"], "table": "workflow_states"},
               summary=("COMPLETED but 40 rows of workflow_states are still QUEUED",),
               caused_by=(f"prefect.job_variables:{ORCHESTRATOR}",)),
        Expect("prefect.deployment", OK, subject=ORCHESTRATOR),
        Expect("prefect.work_pool", OK, subject=POOL),
        Expect("prefect.runs", OK, subject=PROCESS_JOB),
    ]),
    ("modal-bad-token", [
        # the blocks exist and hold a value: job variables are fine, Modal refuses the token
        Expect("prefect.job_variables", OK, subject=ORCHESTRATOR),
        Expect("prefect.runs", FAIL, Severity.P0, ORCHESTRATOR, {"rows_not_moved": ROWS, "statuses": ["QUEUED"]}),
    ]),
    ("no-worker", [
        Expect("prefect.work_pool", FAIL, Severity.P0, POOL, summary=(POOL,), fix="PREFECT_API_URL=http://127.0.0.1:"),
        Expect("prefect.runs", FAIL, Severity.P1, ORCHESTRATOR, {"late": 1}, summary=("Late",),
               caused_by=(f"prefect.work_pool:{POOL}",)),
        Expect("prefect.deployment", OK, subject=ORCHESTRATOR),
        Expect("prefect.job_variables", OK, subject=ORCHESTRATOR),
    ]),
]


# ---------------------------------------------------------------- the one helper


def doctor(config_path, checks=CHECKS) -> DoctorResult:
    config = load_config(config_path)
    ctx = Context(config, timeout=TIMEOUT, environ=environment(config.source))
    return run_checks(checks, ctx)


def assert_expected(result: DoctorResult, expected: list[Expect]) -> None:
    shown = "\n".join(f"  {f.status.value:7} {f.severity.value} {f.id}: {f.summary}" for f in result.findings)
    for want in expected:
        candidates = [f for f in result.findings if f.check == want.check
                      and (want.subject is None or f.subject == want.subject)]
        assert candidates, f"no finding of {want.check} {want.subject or ''}; got:\n{shown}"
        for found in candidates:
            _assert_one(found, want, shown)


def _assert_one(found: Finding, want: Expect, shown: str) -> None:
    where = f"{found.id} ({found.summary}); all findings:\n{shown}"
    assert found.status is want.status, where
    if want.severity is not None:
        assert found.severity is want.severity, where
    for key, value in want.evidence.items():
        assert found.evidence.get(key) == value, f"evidence {key}={found.evidence.get(key)!r}, want {value!r}: {where}"
    for words in want.summary:
        assert words in found.summary, where
    if want.fix is not None:
        assert " && ".join(found.fix).startswith(want.fix), f"fix {found.fix!r}: {where}"
    for cause in want.caused_by:
        assert cause in found.caused_by, f"caused_by {found.caused_by}: {where}"


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?")
_IDS = re.compile(r"\b(?:dep|srv|evt)-[a-z0-9]{20}\b|\b[0-9a-f]{24}\b|\d{2,}")


def assert_no_leak(result: DoctorResult, secret: str) -> None:
    """No 4-character piece of the secret in the rendered report.

    Run ids, timestamps, the hosting platforms' deploy ids and numbers (ports) are stripped first: they
    come from Prefect, the platforms and the clock, and a random
    32-hex-digit secret shares some 4-digit piece with them by chance in a few runs out of a hundred.
    Longer pieces are looked for everywhere.
    """
    text = json_report.render(result)
    for i in range(len(secret) - 7):
        assert secret[i : i + 8] not in text, f"a piece of the secret is in the report at {secret[i:i + 8]!r}"
    stripped = _IDS.sub("", _TIMESTAMP.sub("", _UUID.sub("", text)))
    leaked = sorted({secret[i : i + 4] for i in range(len(secret) - 3)} & _grams(stripped))
    assert not leaked, f"pieces of the secret in the report: {leaked}"


def _grams(text: str) -> set[str]:
    return {text[i : i + 4] for i in range(len(text) - 3)}


# ---------------------------------------------------------------- the table, run


@pytest.mark.parametrize(("scenario", "expected"), CASES, ids=[c[0] or "healthy" for c in CASES])
def test_prefect_checks(sandbox, scenario, expected):
    if scenario in LOCAL_BREAKS:
        LOCAL_BREAKS[scenario](sandbox)
    elif scenario is not None:
        sandbox.break_(scenario)
    try:
        result = doctor(sandbox.config_path)
        if scenario is None:
            assert [f.id for f in result.findings if f.status is not OK] == []
        assert_expected(result, expected)
        assert_no_leak(result, sandbox.state.modal_token_secret)
    finally:
        if scenario == "no-worker":
            delete_late_runs(sandbox)


def test_unreachable_prefect_is_an_error_within_the_timeout(write_config):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = write_config(f"""
[prefect]
api_url = "http://127.0.0.1:{port}/api"

[[prefect.deployments]]
name = "{ORCHESTRATOR}"
work_pool = "{POOL}"
required_env = ["MODAL_TOKEN_ID"]
""")
    result = doctor(path)
    assert_expected(result, [Expect(cls.id, ERROR) for cls in CHECKS])
    (api,) = [f for f in result.findings if f.check == "prefect.api"]
    assert "unreachable" in api.summary and str(port) in api.summary
    # the others are explained by the API, not shown as causes of their own
    assert all(f.caused_by for f in result.findings if f.check in ("prefect.deployment", "prefect.work_pool"))


def test_a_refused_api_key_is_a_fail_naming_the_variable(write_config, monkeypatch):
    """A real HTTP server that answers 401 to everything, as Prefect Cloud does to a revoked key."""
    import http.server
    import threading

    class Refuse(http.server.BaseHTTPRequestHandler):
        def _refuse(self):
            body = b'{"detail": "Unauthorized"}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = _refuse

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/api"
    monkeypatch.setenv("PREFECT_API_KEY", "pnu_not-a-real-key")
    path = write_config(f'[prefect]\napi_url = "{url}"\napi_key = "env:PREFECT_API_KEY"\n')
    try:
        (finding,) = doctor(path, [PrefectApi]).findings
        rendered = json_report.render(doctor(path, [PrefectApi]))
    finally:
        server.shutdown()
    assert finding.status is FAIL and finding.severity is Severity.P0
    assert finding.summary.startswith(f"Prefect API key refused by {url}")
    assert finding.advice.startswith("Set PREFECT_API_KEY to a valid API key") and finding.fix == ()
    assert "pnu_" not in rendered


def test_no_api_url_skips_and_names_an_unset_variable(write_config, monkeypatch):
    monkeypatch.delenv("PIPECTL_TEST_PREFECT_URL", raising=False)
    result = doctor(write_config('[prefect]\napi_url = "env:PIPECTL_TEST_PREFECT_URL"\n'))
    assert {f.status for f in result.findings} == {SKIPPED}
    (api,) = [f for f in result.findings if f.check == "prefect.api"]
    assert "PIPECTL_TEST_PREFECT_URL" in api.summary
    result = doctor(write_config('pipeline = "x"\n', name="empty.toml"))
    assert {f.status for f in result.findings} == {SKIPPED}


@pytest.mark.parametrize(("stuck_after", "to_status", "expected"), [
    ({"PENDING": "10m", "QUEUED": "5m", "IN_PROGRESS": "30m"}, "IN_PROGRESS", ["PENDING", "QUEUED"]),
    ({"PENDING": "10m", "QUEUED": "5m", "IN_PROGRESS": "30m"}, None, ["PENDING", "QUEUED"]),
    ({"PENDING": "10m", "QUEUED": "5m", "IN_PROGRESS": "30m"}, "QUEUED", ["PENDING"]),
    ({"QUEUED": "5m"}, None, ["PENDING"]),
    ({}, None, ["PENDING"]),
])
def test_statuses_a_completed_run_must_have_moved(write_config, stuck_after, to_status, expected):
    from pipectl.config import RowsMove

    thresholds = ", ".join(f'{k} = "{v}"' for k, v in stuck_after.items())
    to = f', to_status = "{to_status}"' if to_status and "to_status" in RowsMove.model_fields else ""
    if to_status and not to:
        pytest.skip("this config has no moves.to_status")
    config = load_config(write_config(f"""
[[state_tables]]
table = "workflow_states"
stuck_after = {{ {thresholds} }}

[[prefect.deployments]]
name = "{ORCHESTRATOR}"
moves = {{ table = "workflow_states", from_status = "PENDING"{to} }}
"""))
    assert statuses_to_move(config, config.prefect.deployments[0]) == expected


def test_one_run_of_the_checks_asks_prefect_each_question_once(sandbox):
    """Four checks look at each deployment and two at the work pool; Prefect is asked once for each
    (its CPU, on a small machine, is the CPU doctor needs), and every check still concludes OK."""
    from urllib.parse import urlsplit

    from tests.fixtures.proxy import CuttableProxy

    api = urlsplit(sandbox.state.prefect_api_url)
    proxy = CuttableProxy(api.hostname, api.port)
    config = sandbox.config_path.with_name("shared-reads.toml")
    config.write_text(sandbox.config_path.read_text().replace(f"127.0.0.1:{api.port}/", f"127.0.0.1:{proxy.port}/"))
    try:
        result = doctor(config)
    finally:
        proxy.cut()
        config.unlink()
    assert [f.id for f in result.findings if f.status is not OK] == []
    asked = [line.split()[1] for line in proxy.request_lines() if line.startswith("GET ")]
    for name in (ORCHESTRATOR, PROCESS_JOB):
        assert asked.count(f"/api/deployments/name/{name}") == 1, asked
    assert asked.count(f"/api/work_pools/{POOL}") == 1, asked
