"""Both incidents repaired end to end on the sandbox, through the real worker and the Modal fake."""

from __future__ import annotations

from pipectl.connectors import prefect as prefect_api
from pipectl.journal import Journal
from pipectl.sandbox import queues
from pipectl.sandbox.layout import ORCHESTRATOR, PROCESS_JOB, ROWS


def deployment(sandbox, name=ORCHESTRATOR):
    return prefect_api.read_deployment(sandbox.state.prefect_api_url, None, name)


def leaked(sandbox, text: str) -> list[str]:
    secret = sandbox.state.modal_token_secret
    return [secret[i : i + 8] for i in range(len(secret) - 7) if secret[i : i + 8] in text]


def test_fix_stuck_batch_repairs_the_first_incident_and_undo_puts_it_back(sandbox, run_cli, tmp_path):
    sandbox.break_("missing-modal-creds")
    assert sandbox.counts() == {"QUEUED": ROWS}
    broken = deployment(sandbox).job_variables
    journal, report = tmp_path / "journal.sqlite3", tmp_path / "report.md"
    base = ["--config", str(sandbox.config_path), "--journal", str(journal)]

    code, out, err = run_cli("playbook", "run", "fix-stuck-batch", "--dry-run", *base)
    assert code == 0 and sandbox.counts() == {"QUEUED": ROWS}
    assert "Plan: reset up to" in out or "Plan: reset" in out

    code, out, err = run_cli("playbook", "run", "fix-stuck-batch", "--yes", "--report", str(report), *base)
    assert code == 0, err
    assert sandbox.counts() == {"IN_PROGRESS": ROWS}  # through the real worker and the Modal fake
    fixed = deployment(sandbox).job_variables
    assert fixed["env"]["MODAL_TOKEN_ID"] == "{{ prefect.blocks.secret.modal-token-id }}"
    assert fixed["pip_packages"] == broken["pip_packages"]
    text = report.read_text()
    assert "**Current Status:** ✅ FIXED" in text
    assert "**Root Cause:** orchestrator-main/data-enrichment-orchestrator runs without MODAL_TOKEN_ID" in text
    assert "**Command**: `pipectl playbook run fix-stuck-batch --yes" in text
    assert "| workflow_states | normalize_company_name/IN_PROGRESS | 0 | 40 |" in text
    assert leaked(sandbox, out + err + text + journal.read_bytes().decode("utf-8", "replace")) == []

    book = Journal(journal)
    run_id = next(r.id for r in book.runs() if "fix-stuck-batch --yes" in r.command)
    code, out, err = run_cli("undo", run_id, "--yes", *base)
    assert code == 0, err
    assert deployment(sandbox).job_variables == broken
    assert sandbox.counts() == {"IN_PROGRESS": ROWS}  # rows the worker moved on are never put back
    assert "rows restored: 0" in err


def test_unblock_job_pipeline_repairs_the_second_incident(sandbox, run_cli, tmp_path):
    """Deployment missing (its jobs dead-lettered) and the subscriber without AWS keys (its jobs waiting in
    the queue): the playbook repairs both, and says FIXED only once every job reached its final status
    through the real subscriber and worker."""
    sandbox.break_("missing-deployment")
    sandbox.break_("subscriber-no-aws")
    assert sandbox.counts("jobs").get("pending") == 8
    code, out, err = run_cli("playbook", "run", "unblock-job-pipeline", "--yes", "--config",
                             str(sandbox.config_path), "--journal", str(tmp_path / "j"),
                             "--report", str(tmp_path / "r.md"))
    assert code == 0, err
    assert deployment(sandbox, PROCESS_JOB) is not None
    assert queues.depth_of(sandbox.state.sqs_endpoint, sandbox.state.dlq_url) == 0
    assert set(sandbox.counts("jobs")) == {"completed"}
    assert "**Current Status:** ✅ FIXED" in (tmp_path / "r.md").read_text()


def test_unblock_job_pipeline_does_not_claim_jobs_it_cannot_move(sandbox, run_cli, tmp_path):
    """The push endpoint created jobs while it had no AWS keys: their messages never existed. The playbook
    puts the keys back, yet those jobs stay pending, and it must say NOT FIXED, naming them."""
    sandbox.break_("push-endpoint-no-aws")
    code, out, err = run_cli("playbook", "run", "unblock-job-pipeline", "--yes", "--config",
                             str(sandbox.config_path), "--journal", str(tmp_path / "j"),
                             "--report", str(tmp_path / "r.md"))
    assert code == 1, err
    assert "db.stuck:jobs/pending" in err
    assert "**Current Status:** ❌ NOT FIXED" in (tmp_path / "r.md").read_text()

