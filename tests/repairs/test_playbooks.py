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
    sandbox.break_("missing-deployment")
    sandbox.break_("dlq-filling")
    code, out, err = run_cli("playbook", "run", "unblock-job-pipeline", "--yes", "--config",
                             str(sandbox.config_path), "--journal", str(tmp_path / "j"),
                             "--report", str(tmp_path / "r.md"))
    assert deployment(sandbox, PROCESS_JOB) is not None
    assert queues.depth_of(sandbox.state.sqs_endpoint, sandbox.state.dlq_url) == 0
    # every step verified, yet nothing in the sandbox reads the queue, so the jobs never move: the playbook
    # must not claim a fix its own report denies
    assert code == 1, err
    assert "✗ all steps done, but 1 check finding(s) still fail after the repair" in err
    assert "db.stuck:jobs/pending" in err
    assert "**Current Status:** ❌ NOT FIXED" in (tmp_path / "r.md").read_text()
