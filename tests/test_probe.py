"""`pipectl probe` on the real sandbox: a canary through the push endpoint, the queue, the subscriber, Prefect
and the worker — the way through, the silent 201, a dead-lettered item, a run nothing starts — and what it
leaves behind (nothing)."""

from __future__ import annotations

import json

from pipectl.sandbox import database, prefect_stack, queues
from pipectl.sandbox.layout import PROCESS_JOB


def probe(run_cli, sandbox, *args: str) -> tuple[int, dict, str]:
    code, out, err = run_cli("--config", str(sandbox.config_path), "probe", "--yes", "-o", "json",
                             "--journal", str(sandbox.layout.root / "probe-journal"), *args)
    assert "Traceback" not in err
    return code, json.loads(out), err


def hops(report: dict) -> dict[str, bool | None]:
    return {h["name"]: h["done"] for h in report["hops"]}


def leftovers(sandbox, report: dict) -> list:
    """Rows, flow runs and dead letters of the probe's item still there after it cleaned up."""
    with database.connect(sandbox.state.database_url) as conn:
        rows = conn.execute("SELECT id FROM jobs WHERE customer_id = %s", (report["marker"],)).fetchall()
    runs = len(runs_naming(sandbox, report["item_id"]))
    return [*rows, *(["flow run"] * runs), *(["dead letter"] * queues.depth_of(sandbox.state.sqs_endpoint,
                                                                               sandbox.state.dlq_url))]


def runs_naming(sandbox, item_id: str) -> list[dict]:
    import httpx

    with httpx.Client(base_url=sandbox.state.prefect_api_url, timeout=10) as client:
        runs = client.post("/flow_runs/filter", json={"limit": 200}).json()
    return [r for r in runs if str((r.get("parameters") or {}).get("job_id")) == str(item_id)]


def test_a_healthy_pipeline_carries_the_probe_all_the_way_and_keeps_nothing(sandbox, run_cli):
    code, report, _err = probe(run_cli, sandbox)
    assert code == 0, report
    assert report["ok"] and report["failed_hop"] is None
    assert set(hops(report).values()) == {True}
    assert leftovers(sandbox, report) == []
    assert any("deleted row" in line for line in report["cleanup"])


def test_the_silent_201_is_named_at_the_queue_with_its_cause(sandbox, run_cli):
    sandbox.break_("push-endpoint-no-aws")
    code, report, _err = probe(run_cli, sandbox)
    assert code == 1
    assert report["failed_hop"] == "queued"
    assert hops(report)["accepted"] is True and hops(report)["row"] is True
    assert "job-frontend" in {c["id"].split(":")[-1] for c in report["causes"]}
    assert any(c["id"] == "service.env:job-frontend" and c["fix"] for c in report["causes"])
    assert leftovers(sandbox, report) == []


def test_a_dead_lettered_probe_names_the_unregistered_deployment_and_takes_its_letter_back(sandbox, run_cli):
    sandbox.dirty()
    prefect_stack.delete_deployment(sandbox.state.prefect_api_url, PROCESS_JOB)
    code, report, _err = probe(run_cli, sandbox)
    assert code == 1
    assert report["failed_hop"] == "run"
    assert f"prefect.deployment:{PROCESS_JOB}" in [c["id"] for c in report["causes"]]
    assert leftovers(sandbox, report) == []


def test_a_run_nothing_starts_is_named_with_the_work_pool(sandbox, run_cli):
    sandbox.dirty()
    prefect_stack.stop_worker(sandbox.layout.run_dir)
    code, report, _err = probe(run_cli, sandbox, "--timeout", "15")
    assert code == 1
    assert report["failed_hop"] == "completed"
    assert next(h for h in report["hops"] if h["name"] == "run")["done"] is True
    assert any(c["id"].startswith("prefect.work_pool") for c in report["causes"])
    assert leftovers(sandbox, report) == []


def test_the_probe_asks_before_it_writes(sandbox, run_cli):
    before = database.status_counts(sandbox.state.database_url, "jobs")
    code, out, err = run_cli("--config", str(sandbox.config_path), "probe")
    assert code == 2 and "pass --yes" in err and "Traceback" not in err
    code, _out, err = run_cli("--config", str(sandbox.config_path), "probe", "--dry-run")
    assert code == 0 and "POST http://127.0.0.1" in err
    assert database.status_counts(sandbox.state.database_url, "jobs") == before


def test_doctor_probe_adds_the_probe_as_a_finding(sandbox, run_cli):
    code, out, err = run_cli("--config", str(sandbox.config_path), "doctor", "--probe", "-o", "json",
                             "--no-journal")
    findings = {f["id"]: f for f in json.loads(out)["findings"]}
    assert code == 0, err
    assert findings["pipeline.probe"]["status"] == "ok"


def test_a_probe_with_no_way_in_is_bad_input_for_a_dry_run_too(write_config, run_cli):
    path = write_config('[database]\ndsn = "env:DATABASE_URL"\n[[state_tables]]\ntable = "jobs"\n'
                        '[probe]\nfinal_status = ["completed"]\n')
    for extra in (["--dry-run"], ["--yes"]):
        code, out, err = run_cli("--config", str(path), "probe", *extra)
        assert code == 2 and "give `url`" in err and "INSERT" not in err and "Traceback" not in err
