"""`sandbox heal` undoes every drill and hand-made damage, and only says so when doctor agrees.

That heal undoes each drill is tested with the drills themselves (`tests/test_drill_fixes.py`); here,
damage no drill makes, judged by the real doctor.
"""

from __future__ import annotations

import json

import pytest

from pipectl.connectors import prefect as prefect_api
from pipectl.connectors import prefect_runs
from pipectl.sandbox import database, prefect_stack, queues
from pipectl.sandbox.layout import ORCHESTRATOR, POOL, Layout

DOCTOR_TIMEOUT = "30"  # per check: a busy CI machine must not look like a broken sandbox


def doctor_problems(run_cli, sandbox) -> tuple[int, list[str]]:
    """Run the real `pipectl doctor` on the sandbox's config; (exit code, findings that are not ok)."""
    code, out, _ = run_cli("doctor", "--config", str(sandbox.config_path), "--format", "json",
                             "--no-journal", "--timeout", DOCTOR_TIMEOUT)
    findings = json.loads(out)["findings"]
    return code, [f"{f['id']} {f['status']}: {f['summary']}" for f in findings if f["status"] in ("fail", "error")]


def _delete_main_queue(sandbox) -> None:
    queues.client(sandbox.state.sqs_endpoint).delete_queue(QueueUrl=sandbox.state.queue_url)


def _remove_redrive_policy(sandbox) -> None:
    queues.client(sandbox.state.sqs_endpoint).set_queue_attributes(
        QueueUrl=sandbox.state.queue_url, Attributes={"RedrivePolicy": ""})


def _rename_status_column(sandbox) -> None:
    with database.connect(sandbox.state.database_url) as conn:
        conn.execute("ALTER TABLE workflow_states RENAME COLUMN status TO state")


def _pause_work_pool(sandbox) -> None:
    prefect_stack.pause_pool(sandbox.state.prefect_api_url, POOL)


def _crashed_flow_run(sandbox) -> None:
    from prefect.client.schemas.objects import State, StateType

    async def create(client):
        deployment = await client.read_deployment_by_name(ORCHESTRATOR)
        await client.create_flow_run_from_deployment(deployment.id, state=State(type=StateType.CRASHED))

    prefect_stack._with_client(sandbox.state.prefect_api_url, create)


DAMAGE = {
    "delete-main-queue": (_delete_main_queue, "sqs.queue"),
    "remove-redrive-policy": (_remove_redrive_policy, "sqs.dlq"),
    "rename-status-column": (_rename_status_column, "db.connect"),
    "pause-work-pool": (_pause_work_pool, "prefect.work_pool"),
    "crashed-flow-run": (_crashed_flow_run, "prefect.runs"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_heal_undoes_hand_made_damage(sandbox, run_cli, damage):
    do, check = DAMAGE[damage]
    sandbox.dirty()  # whatever happens below, the next test gets a healed sandbox
    do(sandbox)
    code, problems = doctor_problems(run_cli, sandbox)
    assert code == 1 and any(p.startswith(check) for p in problems), problems
    code, _, err = run_cli("sandbox", "heal", "--dir", str(sandbox.layout.root))
    # stderr is this process's: its last line is heal's verdict (a thread of another test may have written too)
    assert code == 0 and err.strip().splitlines()[-1] == "the sandbox is healthy again: every doctor check passes", err
    sandbox.state = sandbox.layout.load()
    code, problems = doctor_problems(run_cli, sandbox)
    assert problems == [] and code == 0


def test_heal_clears_the_run_history(sandbox):
    sandbox.dirty()
    _crashed_flow_run(sandbox)
    sandbox.heal()
    deployment = prefect_api.read_deployment(sandbox.state.prefect_api_url, None, ORCHESTRATOR)
    assert prefect_runs.recent_flow_runs(sandbox.state.prefect_api_url, None, deployment.id, limit=5) == []


def test_heal_says_what_still_fails_and_exits_1(sandbox, run_cli):
    # heal cannot fix the operator's shell: an empty AWS key there fails doctor, so heal must not say healthy
    code, _, err = run_cli("sandbox", "heal", "--dir", str(sandbox.layout.root), env={"AWS_ACCESS_KEY_ID": ""})
    sandbox.state = sandbox.layout.load()
    assert code == 1
    assert "healthy again" not in err
    assert "still not healthy" in err and "credentials.present" in err
    assert "Traceback" not in err


def test_heal_error_is_one_line_and_exit_1(sandbox, run_cli, tmp_path):
    # a copy of the sandbox whose database is unreachable: heal fails part-way, and says so in one line
    broken = Layout.at(tmp_path / "copy")
    state = sandbox.layout.load()
    state.database_url = "postgresql://nobody@127.0.0.1:1/nothing?connect_timeout=2"
    broken.save(state)
    sandbox.dirty()
    code, _, err = run_cli("sandbox", "heal", "--dir", str(broken.root))
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and err.startswith("pipectl: sandbox heal failed: ")
    assert "Traceback" not in err
