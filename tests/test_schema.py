"""docs/report.schema.json: current with the models, a valid draft 2020-12 schema, accepting what pipectl
prints and rejecting what it does not. (Every JSON output of every other test is checked too: see
schema_check.)"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest
from jsonschema import Draft202012Validator

from pipectl.model import DoctorResult, Finding, Severity, Status
from pipectl.probe import Hop, ProbeResult
from pipectl.repair import Change, Plan
from pipectl.report import json as doctor_json
from pipectl.report import plan as plan_report
from pipectl.report import probe as probe_report
from pipectl.report import schema
from pipectl.report import trace as trace_report
from pipectl.report.metrics import Snapshot, healthz
from pipectl.report.plan import render_plan
from pipectl.trace import Event, Timeline
from tests import schema_check
from tests.sample_result import CAUSE, RESULT
from tests.schema_check import SCHEMA_PATH, json_documents, violations

CONFIG = 'pipeline = "schema"\n[credentials]\nshell = ["HOME"]\n'
SUPPRESSION = {"owner": "data-team", "reason": "backfill until Friday", "expires": "2026-01-09",
               "source": "pipectl.toml"}


def doctor_document() -> dict:
    return json.loads(doctor_json.render(RESULT))


def test_the_committed_schema_is_what_the_models_generate():
    committed = SCHEMA_PATH.read_text(encoding="utf-8")
    assert committed == schema.render(), (
        f"{SCHEMA_PATH} is out of date with pipectl/report/documents.py: regenerate it with "
        f"`{schema_check.REGENERATE}` and commit it")


def test_the_schema_is_a_valid_versioned_draft_2020_12_schema():
    generated = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(generated)
    assert generated["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert generated["$id"].endswith(f"/v{schema.VERSION}.json") and str(schema.VERSION) in generated["title"]
    assert all(set(alternative) == {"$ref"} for alternative in generated["anyOf"])


def test_each_document_with_a_schema_key_pins_the_value_its_renderer_writes():
    definitions = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))["$defs"]
    pinned = {name: d["properties"]["schema"] for name, d in definitions.items()
              if "schema" in d.get("properties", {})}
    assert {name: p.get("const") for name, p in pinned.items()} == {
        "DoctorReport": doctor_json.SCHEMA, "Trace": trace_report.SCHEMA, "Probe": probe_report.SCHEMA,
        "RepairOutcome": plan_report.OUTCOME_SCHEMA, "PlaybookVerdict": plan_report.PLAYBOOK_SCHEMA}
    assert all("schema" in definitions[name]["required"] for name in pinned)


def test_the_sample_doctor_report_validates():
    assert violations(doctor_document()) == []


def test_findings_and_summary_validate_with_and_without_suppressions():
    before = doctor_document()
    for finding in before["findings"]:
        finding.pop("suppression", None)
    before["summary"].pop("suppressed", None)
    after = copy.deepcopy(before)
    after["findings"][0]["suppression"] = SUPPRESSION
    for finding in after["findings"][1:]:
        finding["suppression"] = None
    after["summary"]["suppressed"] = 1
    assert violations(before) == []
    assert violations(after) == []


def _broken(change) -> dict:
    document = doctor_document()
    change(document)
    return document


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d["findings"][0].update(status="bogus"), "at $.findings[0].status: 'bogus' is not one of"),
    (lambda d: d.pop("summary"), "'summary' is a required property"),
    (lambda d: d.update(schema="pipectl.report/v9"), "at $.schema: 'pipectl.report/v2' was expected"),
    (lambda d: d["findings"][1].update(suppression={**SUPPRESSION, "expires": "next week"}),
     "at $.findings[1].suppression.expires: 'next week' is not a 'date'"),
    (lambda d: d["findings"][1].update(suppression={"owner": "me"}), "'reason' is a required property"),
    (lambda d: d["summary"].update(fail=-1), "at $.summary.fail: -1 is less than the minimum of 0"),
    (lambda d: d["findings"][0].update(severity="P3"), "at $.findings[0].severity: 'P3' is not one of"),
    (lambda d: d["findings"][0].update(priority="P0"), "('priority' was unexpected)"),
], ids=["bogus-status", "no-summary", "other-version", "expires-not-a-date", "suppression-incomplete",
        "negative-count", "unknown-severity", "undescribed-key"])
def test_a_broken_doctor_report_is_rejected_and_says_where(change, expected):
    problems = violations(_broken(change))
    assert problems[0] == "(closest document: DoctorReport)"
    assert any(expected in line for line in problems), problems


def test_trace_probe_plan_and_healthz_documents_validate():
    at = datetime(2026, 1, 1, 2, 14, tzinfo=UTC)
    timeline = Timeline("6", "jobs row 6: status pending", True, [
        Event(at, "postgres", "row-created", "jobs: row created", {"table": "jobs", "status": "pending"}),
        Event(None, "modal", "note", "Modal calls: not listable")])
    hops = [Hop("accepted", "the entry point accepted it", False, "503"), Hop("row", "its row exists")]
    probe = ProbeResult("pipectl-probe-1a2b", None, hops, failed="accepted", causes=[CAUSE],
                        cleanup=["nothing to delete"], seconds=1.25)
    plans = [Plan("reset", "move 2 rows", (Change("row 1", "QUEUED → PENDING", "QUEUED", "PENDING"),),
                  {"table": "jobs", "rows": 2}), Plan("verify", "re-run checks")]
    healthy = DoctorResult("p", at, 0.5, (Finding("prefect.api", Status.OK, Severity.P0, "prefect", "up"),))
    snapshots = (Snapshot(), Snapshot(result=healthy, runs=1), Snapshot(result=RESULT, runs=2, error="boom"))
    documents = [trace_report.to_dict(timeline), probe_report.to_dict(probe),
                 *json_documents("".join(render_plan(p, "json") for p in plans)),
                 *(healthz(snapshot, Severity.P1)[1] for snapshot in snapshots)]
    assert len(documents) == 7
    assert [violations(json.loads(json.dumps(d))) for d in documents] == [[]] * 7


def test_real_outputs_validate(run_cli, write_config, tmp_path):
    config, journal = str(write_config(CONFIG)), str(tmp_path / "journal.sqlite3")
    report = tmp_path / "doctor.json"
    commands = [
        ("--config", config, "doctor", "--format", "json", "--journal", journal),
        ("--config", config, "doctor", "-o", "json", "--output-file", str(report), "--journal", journal),
        ("checks", "list", "-o", "json"),
        ("playbooks", "list", "--output=json"),
        ("--config", config, "config", "show", "-o", "json"),
        ("--config", config, "context", "list", "-o", "json"),
        ("--config", config, "context", "show", "-o", "json"),
        ("--config", config, "journal", "-o", "json", "--journal", journal),
        ("--config", config, "report", "-o", "json", "--journal", journal),
    ]
    for command in commands:
        code, out, err = run_cli(*command)
        assert code == 0, (command, err)
        documents = json_documents(out or report.read_text())
        assert documents and [violations(d) for d in documents] == [[]] * len(documents), command
    runs = json.loads(run_cli("--config", config, "journal", "-o", "json", "--journal", journal)[1])["runs"]
    assert len(runs) == 2  # the journal listing and the run report above were not empty ones
    beside = tmp_path / "beside.json"
    code, _, err = run_cli("--config", config, "doctor", "--no-journal", "--output-file", f"json={beside}")
    assert code == 0 and violations(json.loads(beside.read_text())) == [], err


def test_the_run_cli_gate_fails_a_test_whose_json_output_the_schema_rejects(tmp_path, monkeypatch):
    broken = json.dumps(_broken(lambda d: d["findings"][0].update(status="bogus")))
    expected = r"(?s)`pipectl doctor -o json` wrote JSON to stdout.*at \$\.findings\[0\]\.status: 'bogus'"
    with pytest.raises(pytest.fail.Exception, match=expected):
        schema_check.check_json_output(("doctor", "-o", "json"), broken)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out.json").write_text(broken)
    with pytest.raises(pytest.fail.Exception, match="wrote JSON to out.json"):
        schema_check.check_json_output(("doctor", "--format=json", "--output-file", "out.json"), "")
    beside = ("doctor", "--output-file", "json=out.json", "--output-file", "report.md")  # any -o: checked
    with pytest.raises(pytest.fail.Exception, match="wrote JSON to out.json"):
        schema_check.check_json_output(beside, "")
    (tmp_path / "out.sarif").write_text(broken)  # JSON too, but SARIF's: not pipectl's schema
    schema_check.check_json_output(("doctor", "-o", "json", "--output-file", "sarif=out.sarif"), "")
    schema_check.check_json_output(("doctor", "-o", "terminal"), broken)  # not asked for JSON: not checked
    schema_check.check_json_output(("doctor", "-o", "json"), "pipectl: nothing to check\n")  # not JSON


@pytest.mark.parametrize(("args", "expected"), [
    (("doctor", "-o", "json"), "json"), (("doctor", "--output", "json"), "json"),
    (("doctor", "--format", "json"), "json"), (("sandbox", "status", "-f", "json"), "json"),
    (("doctor", "--output=json"), "json"), (("doctor", "--format=json"), "json"),
    (("doctor", "-ojson"), "json"),
    (("doctor", "-o", "json", "-o", "markdown"), "markdown"), (("doctor", "--output-file", "x.json"), None),
])
def test_the_gate_reads_every_spelling_of_the_format_option(args, expected):
    assert schema_check.requested_format(args) == expected


def test_a_stream_of_plans_is_read_as_one_document_each():
    text = render_plan(Plan("secret", "set block"), "json") + render_plan(Plan("patch", "merge"), "json")
    assert [d["action"] for d in json_documents(text)] == ["secret", "patch"]
    assert json_documents("{} trailing words") is None and json_documents("") is None
