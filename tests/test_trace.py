"""`pipectl trace ITEM_ID` on the real sandbox: a job that completed, one stuck in the dead-letter queue,
one that never left pending, an unknown id, a table that is not configured and a source that is down."""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator

from pipectl.sandbox import database, prefect_stack, queues
from pipectl.sandbox.job_drills import suspended_subscriber
from pipectl.sandbox.layout import PROCESS_JOB


def trace(run_cli, sandbox, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    return run_cli("--config", str(sandbox.config_path), "trace", *args, env=env)


def trace_json(run_cli, sandbox, *args: str) -> tuple[int, dict]:
    code, out, err = trace(run_cli, sandbox, *args, "-o", "json")
    assert "Traceback" not in err
    return code, json.loads(out)


def events(report: dict, source: str, kind: str | None = None) -> list[dict]:
    return [e for e in report["events"] if e["source"] == source and (kind is None or e["kind"] == kind)]


def new_pending_job(sandbox) -> int:
    sandbox.dirty()  # the next test gets the sandbox healed: no stray jobs, messages or runs
    return database.add_pending_jobs(sandbox.state.database_url, 1, 0)[0]


@contextlib.contextmanager
def no_consumer(sandbox) -> Iterator[None]:
    """Nothing reads the job queue meanwhile (the subscriber is suspended): its messages dead-letter, and
    its counts hold still."""
    with suspended_subscriber(sandbox.layout, sandbox.state):
        yield


def main_queue(sandbox) -> dict[str, str]:
    attrs = queues.client(sandbox.state.sqs_endpoint).get_queue_attributes(
        QueueUrl=sandbox.state.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    return attrs["Attributes"]


def test_a_completed_job_shows_its_row_and_its_flow_run_history(sandbox, run_cli):
    job = new_pending_job(sandbox)
    api = sandbox.state.prefect_api_url
    run_id = prefect_stack.trigger(api, PROCESS_JOB, {"job_id": str(job)})
    assert prefect_stack.wait_for_run(api, run_id, 120) == "COMPLETED"

    code, report = trace_json(run_cli, sandbox, str(job))
    assert code == 0
    assert report["schema"] == "pipectl.trace/v1" and report["found"] is True
    rows = [e for e in events(report, "postgres", "row-status") if e["data"]["table"] == "jobs"]
    assert [e["data"]["status"] for e in rows] == ["completed"]
    states = [e for e in events(report, "prefect", "flow-run-state") if e["data"]["flow_run_id"] == run_id]
    assert states and states[-1]["data"]["state_type"] == "COMPLETED"
    assert states[0]["data"]["state_type"] == "SCHEDULED" and states[0]["data"]["parameter"] == "job_id"
    assert all(e["time"] is not None and e["time"].endswith("+00:00") for e in rows + states)
    times = [e["time"] for e in report["events"] if e["time"]]
    assert times == sorted(times)  # one timeline, oldest first
    assert "COMPLETED" in report["summary"] and "not in the DLQ" in report["summary"]
    modal = events(report, "modal")
    assert len(modal) == 1 and modal[0]["time"] is None and "not listable through Modal's API" in modal[0]["detail"]


def test_b_a_job_in_the_dead_letter_queue_is_shown_without_touching_the_main_queue(sandbox, run_cli, tmp_path):
    job = new_pending_job(sandbox)
    key = "k3y-" + secrets.token_hex(16)
    bodies = [json.dumps({"job_id": job, "deployment": PROCESS_JOB}), json.dumps({"job_id": job, "api_key": key})]
    endpoint, queue_url, dlq_url = sandbox.state.sqs_endpoint, sandbox.state.queue_url, sandbox.state.dlq_url
    sqs = queues.client(endpoint)
    with no_consumer(sandbox):
        queues.dead_letter(endpoint, queue_url, dlq_url, bodies)
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"job_id": job}))  # waits in the main queue
        before = main_queue(sandbox)
        code, report = trace_json(run_cli, sandbox, str(job), "--table", "jobs")
        after = main_queue(sandbox)
        waiting = sqs.receive_message(QueueUrl=queue_url, MessageSystemAttributeNames=["ApproximateReceiveCount"],
                                      VisibilityTimeout=0)["Messages"]
        for message in waiting:  # no consumer gets it once resumed
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    assert code == 0
    dead = events(report, "sqs-dlq", "dlq-message")
    assert len(dead) == 2
    assert {e["data"]["dlq"] for e in dead} == {"job-queue-dlq"}
    assert all(e["data"]["receive_count"] >= queues.MAX_RECEIVE_COUNT for e in dead)
    assert all(e["time"] is not None for e in dead)
    assert {"job_id": job, "deployment": PROCESS_JOB} in [e["data"]["body"] for e in dead]
    assert any("in flight in the main queue are not shown" in e["detail"] for e in events(report, "sqs-dlq", "note"))
    assert report["summary"].startswith(f"job {job}: row status pending since ")
    assert "in the DLQ job-queue-dlq (received" in report["summary"]

    code, markdown, _ = trace(run_cli, sandbox, str(job), "--table", "jobs", "-o", "markdown")
    assert code == 0 and "| sqs-dlq | dlq-message | in job-queue-dlq" in markdown and "| postgres | row-status |" in markdown
    out_file = tmp_path / "trace.txt"
    code, terminal, err = trace(run_cli, sandbox, str(job), "--table", "jobs", "--output-file", str(out_file))
    text = out_file.read_text()
    assert code == 0 and terminal == "" and "trace written to" in err
    assert text.startswith(f"job {job}: ") and "dlq-message" in text and "row-status" in text
    for output in (json.dumps(report), markdown, text):
        assert key not in output and key[:12] not in output  # the body's credential never shows
    assert "‹secret sha256:" in json.dumps(report, ensure_ascii=False)

    # tracing never received from the main queue, never deleted from the DLQ, and released what it read
    assert after == before == {"ApproximateNumberOfMessages": "1", "ApproximateNumberOfMessagesNotVisible": "0"}
    assert [m["Attributes"]["ApproximateReceiveCount"] for m in waiting] == ["1"]  # that receive, none before
    assert queues.depth_of(endpoint, dlq_url) == 2


def test_c_a_job_that_never_left_pending(sandbox, run_cli):
    job = new_pending_job(sandbox)
    code, report = trace_json(run_cli, sandbox, str(job), "--table", "jobs")
    assert code == 0
    assert [e["data"]["status"] for e in events(report, "postgres", "row-status")] == ["pending"]
    assert events(report, "prefect", "flow-run-state") == [] and events(report, "sqs-dlq", "dlq-message") == []
    assert not [e for e in report["events"] if e["kind"] == "unavailable"]
    summary = report["summary"]
    assert summary.startswith(f"job {job}: row status pending since ")
    assert summary.endswith("; no flow run names it; not in the DLQ")
    code, terminal, _ = trace(run_cli, sandbox, str(job), "--table", "jobs")
    assert code == 0 and terminal.splitlines()[0] == summary and "row-created" in terminal


def test_d_an_unknown_id_is_found_nowhere_and_a_bad_table_is_bad_input(sandbox, run_cli):
    code, out, err = trace(run_cli, sandbox, "no-such-job-42")
    assert code == 1
    assert out.splitlines()[0] == ("item no-such-job-42: found nowhere: no row in workflow_states, jobs; "
                                   "no flow run names it; not in the DLQ")
    code, out, err = trace(run_cli, sandbox, "42", "--table", "nope")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "pipectl: --table nope: not a configured state table (state tables: workflow_states, jobs)"]
    code, _, err = trace(run_cli, sandbox, "42", "-o", "yaml")
    assert code == 2 and len(err.splitlines()) == 1 and "markdown" in err


def test_a_source_that_is_down_is_one_line_and_the_others_still_show(sandbox, run_cli):
    job = new_pending_job(sandbox)
    code, out, err = trace(run_cli, sandbox, str(job), "--table", "jobs", "-o", "json", "--timeout", "2",
                           env={"PIPECTL_PREFECT__API_URL": "http://127.0.0.1:9/api"})
    report = json.loads(out)
    assert code == 0 and "Traceback" not in err
    down = events(report, "prefect")
    assert [e["kind"] for e in down] == ["unavailable"] and "unreachable" in down[0]["detail"]
    assert [e["data"]["status"] for e in events(report, "postgres", "row-status")] == ["pending"]
    assert "Prefect unreadable" in report["summary"] and "not in the DLQ" in report["summary"]
