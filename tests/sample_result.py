"""A fixed doctor result shaped like the first incident, for renderer tests."""

from datetime import UTC, datetime

from pipectl.model import DoctorResult, Finding, Severity, Status

CAUSE = Finding(
    check="prefect.job_variables",
    subject="orchestrator-main/data-enrichment-orchestrator",
    status=Status.FAIL,
    severity=Severity.P0,
    component="prefect",
    summary="job_variables.env lacks MODAL_TOKEN_ID, MODAL_TOKEN_SECRET",
    impact="Every run dispatches nothing to Modal and still ends COMPLETED.",
    evidence={"missing": ["MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"], "work_pool": "managed-production"},
    fix="pipectl playbook run fix-stuck-batch",
)
SYMPTOM = Finding(
    check="db.stuck",
    subject="workflow_states/QUEUED/normalize_company_name",
    status=Status.FAIL,
    severity=Severity.P0,
    component="database",
    summary="40 rows stuck in QUEUED for 12m (threshold 5m)",
    impact="Records never reach Clay.",
    evidence={"rows": 40, "status": "QUEUED", "oldest": "12m"},
    fix="pipectl reset --status QUEUED --to PENDING",
    caused_by=(CAUSE.id,),
)
HEALTHY = Finding(
    check="prefect.api", status=Status.OK, severity=Severity.P0, component="prefect",
    summary="Prefect 3.9.1 answers at 127.0.0.1:4200",
)
SKIPPED = Finding(
    check="sqs.queue", status=Status.SKIPPED, severity=Severity.P1, component="sqs", summary="no queues configured",
)
RESULT = DoctorResult(
    pipeline="enrichment",
    started_at=datetime(2026, 1, 1, 2, 14, 0, tzinfo=UTC),
    duration_s=0.84,
    findings=(HEALTHY, CAUSE, SYMPTOM, SKIPPED),
)
