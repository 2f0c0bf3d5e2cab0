"""`pipectl report` is deterministic: a journal written with a fixed clock renders to the golden file."""

from __future__ import annotations

from pathlib import Path

from pipectl.journal import Journal
from pipectl.report.incident import render_incident
from tests.sample_result import CAUSE, HEALTHY, SYMPTOM
from tests.test_repair_flow import fixed_clock

GOLDEN = Path(__file__).parent / "golden" / "incident-report.md"
BEFORE_JV = {"env": {"LOG_LEVEL": "INFO"}, "pip_packages": ["modal"]}
AFTER_JV = {"env": {"LOG_LEVEL": "INFO", "MODAL_TOKEN_ID": "{{ prefect.blocks.secret.modal-token-id }}"},
            "pip_packages": ["modal"]}


def write_incident(book: Journal) -> str:
    run = book.start("pipectl playbook run fix-stuck-batch --yes", "enrichment")
    record = lambda kind, data: book.record(run.id, kind, data)  # noqa: E731
    for finding in (CAUSE, SYMPTOM, HEALTHY):
        record("finding", {"phase": "before", **finding.as_dict()})
    record("note", {"phase": "before", "counts": {"workflow_states": {"normalize_company_name/QUEUED": 40}}})
    record("plan", {"step": "patch", "title": "merge into the job variables of orchestrator-main/data-enrichment"})
    record("change", {"kind": "secret_block", "block": "modal-token-id", "fingerprint": "sha256:0123456789ab"})
    record("change", {"kind": "job_variables", "deployment": "orchestrator-main/data-enrichment",
                      "before": BEFORE_JV, "after": AFTER_JV})
    for batch in range(2):
        record("change", {"kind": "rows", "table": "workflow_states", "from_status": "QUEUED",
                          "to_status": "PENDING", "ids": list(range(batch * 20, batch * 20 + 20)), "batch": batch})
    record("change", {"kind": "flow_run", "deployment": "orchestrator-main/data-enrichment", "flow_run_id": "06955da2"})
    record("verify", {"step": "trigger orchestrator-main/data-enrichment and wait", "ok": True,
                      "summary": "run retry COMPLETED; 40 row(s) reached IN_PROGRESS", "flow_run_id": "06955da2",
                      "flow_run": "retry", "state": "Completed", "duration_s": 41.0,
                      "counts_before": {"PENDING": 40}, "counts_after": {"IN_PROGRESS": 40}})
    record("finding", {"phase": "after", **HEALTHY.as_dict()})
    record("note", {"phase": "after", "counts": {"workflow_states": {"normalize_company_name/IN_PROGRESS": 40}}})
    record("outcome", {"stage": "done", "ok": True, "summary": "all 5 steps done and verified"})
    return run.id


def test_report_matches_the_golden_file(tmp_path):
    book = Journal(tmp_path / "journal.sqlite3", clock=fixed_clock(), actor="oncall@example")
    run_id = write_incident(book)
    text = render_incident(book.run(run_id), book.events(run_id))
    assert text == GOLDEN.read_text().replace("RUN_ID", run_id)


def test_report_command_writes_the_latest_run(tmp_path, run_cli):
    journal = tmp_path / "journal.sqlite3"
    run_id = write_incident(Journal(journal, clock=fixed_clock(), actor="oncall@example"))
    output = tmp_path / "report.md"
    code, out, err = run_cli("report", "--journal", str(journal), "--output-file", str(output))
    assert code == 0 and out == ""
    assert output.read_text() == GOLDEN.read_text().replace("RUN_ID", run_id)
    code, out, _ = run_cli("journal", "--journal", str(journal))
    assert out.startswith(run_id) and "all 5 steps done and verified" in out
    code, _, err = run_cli("report", "nope", "--journal", str(journal))
    assert code == 2 and "no run nope in the journal" in err
