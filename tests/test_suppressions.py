"""Suppressions: accepted findings are reported as such and decide nothing; expired ones speak up again."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest

from pipectl import suppressions
from pipectl.model import Finding, Severity, Status, Suppression

TODAY = date(2026, 12, 2)


def finding(check: str, subject: str = "", status: Status = Status.FAIL) -> Finding:
    return Finding(check=check, status=status, severity=Severity.P1, component="database", summary="x",
                   subject=subject)


def entry(check: str, subject: str = "*", expires: date = TODAY, **extra) -> Suppression:
    return Suppression(check=check, subject=subject, owner="data-team", reason="backfill runs until Friday",
                       expires=expires, **extra)


def test_a_live_entry_suppresses_what_it_matches_and_nothing_else():
    findings = [finding("db.stuck", "workflow_states/QUEUED"), finding("db.stuck", "jobs/pending"),
                finding("sqs.dlq", "q"), finding("db.stuck", "workflow_states/PENDING", Status.OK)]
    active, suppressed = suppressions.apply(findings, [entry("db.stuck", "workflow_states/*")], TODAY)
    assert [f.id for f in suppressed] == ["db.stuck:workflow_states/QUEUED"]
    assert suppressed[0].suppression.owner == "data-team"
    # an OK finding is never "suppressed": there is nothing to accept
    assert [f.id for f in active] == ["db.stuck:jobs/pending", "sqs.dlq:q", "db.stuck:workflow_states/PENDING"]


def test_an_entry_holds_through_its_last_day_and_expires_the_day_after():
    rule = entry("sqs.dlq", expires=TODAY)
    assert suppressions.apply([finding("sqs.dlq", "q")], [rule], TODAY)[1]
    active, suppressed = suppressions.apply([finding("sqs.dlq", "q")], [rule], TODAY + timedelta(days=1))
    assert suppressed == []
    warn = [f for f in active if f.check == suppressions.CHECK_ID]
    assert [f.id for f in active if f.check == "sqs.dlq"] == ["sqs.dlq:q"]  # the finding is back
    assert len(warn) == 1 and warn[0].status is Status.WARN
    assert "expired on 2026-12-02" in warn[0].summary and "data-team" in warn[0].summary


def test_entries_without_an_owner_reason_or_expiry_are_refused(write_config, run_cli):
    path = write_config('[[suppressions]]\ncheck = "db.stuck"\nowner = "me"\n')
    code, _, err = run_cli("config", "validate", "--config", str(path))
    assert code == 2
    assert "suppressions[0].reason: required key is missing" in err
    assert "suppressions[0].expires: required key is missing" in err
    assert "Traceback" not in err


def test_the_ignore_file_is_read_beside_the_config_and_its_mistakes_named(write_config, run_cli, tmp_path):
    path = write_config('pipeline = "p"\n')
    ignore = tmp_path / ".pipectl-ignore.toml"
    ignore.write_text('[[suppressions]]\ncheck = "db.stuck"\nowner = "me"\nreason = "r"\nexpires = 2027-01-01\n'
                      'color = "blue"\n')
    code, _, err = run_cli("config", "validate", "--config", str(path))
    assert code == 2 and f"{ignore}: suppressions[0].color: unknown key" in err

    from pipectl.config_load import load_config

    ignore.write_text('[[suppressions]]\ncheck = "db.stuck"\nowner = "me"\nreason = "r"\nexpires = 2027-01-01\n')
    (loaded,) = load_config(path).suppressions
    assert loaded.source == str(ignore) and loaded.expires == date(2027, 1, 1) and loaded.subject == "*"


@pytest.fixture
def broken_copy(sandbox, tmp_path):
    """The sandbox with a deployment paused, and a copy of its config that suppressions can be added to."""
    sandbox.break_("deployment-paused")
    shutil.copy(sandbox.layout.env_file, tmp_path / sandbox.layout.env_file.name)
    config = tmp_path / "pipectl.toml"
    config.write_text(sandbox.config_path.read_text())
    return config


def _doctor(run_cli, config, *extra):
    code, out, _ = run_cli("doctor", "--config", str(config), "-o", "json", "--no-journal", *extra)
    return code, json.loads(out)


def _entries(findings: list[dict], expires: date) -> str:
    return "".join(f'[[suppressions]]\ncheck = "{f["check"]}"\nsubject = "{f["subject"] or "*"}"\n'
                   f'owner = "on-call"\nreason = "known, ticket OPS-1"\nexpires = {expires.isoformat()}\n\n'
                   for f in findings)


def test_suppressing_every_problem_of_a_drill_turns_doctor_green_and_says_so(run_cli, broken_copy, tmp_path):
    code, report = _doctor(run_cli, broken_copy)
    problems = [f for f in report["findings"] if f["status"] in ("fail", "error", "warn")]
    assert code == 1 and problems
    today = suppressions.today()
    (tmp_path / ".pipectl-ignore.toml").write_text(_entries(problems, today + timedelta(days=30)))

    code, report = _doctor(run_cli, broken_copy)
    assert code == 0
    shown = {f["id"]: f for f in report["findings"] if f["suppression"]}
    assert set(shown) == {f["id"] for f in problems}
    assert all(s["suppression"]["owner"] == "on-call" and s["status"] in ("fail", "error", "warn")
               for s in shown.values())
    assert report["summary"]["suppressed"] == len(problems) and report["summary"]["fail"] == 0

    code, out, _ = run_cli("doctor", "--config", str(broken_copy), "--no-journal")
    assert code == 0 and "SUPPRESSED" in out and "suppressed by on-call until" in " ".join(out.split())

    junit, sarif = tmp_path / "j.xml", tmp_path / "s.sarif"
    run_cli("doctor", "--config", str(broken_copy), "--no-journal", "--ci", "--junit", str(junit),
            "--sarif", str(sarif))
    suite = ET.parse(junit).getroot()
    assert suite.get("failures") == "0" and not suite.findall(".//failure")
    skipped = [c.get("name") for c in suite.iter("testcase") if c.find("skipped") is not None
               and "suppressed by on-call" in c.find("skipped").get("message")]
    assert sorted(skipped) == sorted(shown)
    results = json.loads(sarif.read_text())["runs"][0]["results"]
    accepted = [r for r in results if r.get("suppressions")]
    assert len(accepted) == len(problems)
    assert all(r["suppressions"][0]["justification"] == "known, ticket OPS-1" for r in accepted)


def test_an_expired_suppression_brings_the_finding_back_with_a_warning(run_cli, broken_copy):
    code, report = _doctor(run_cli, broken_copy)
    failing = [f for f in report["findings"] if f["status"] == "fail"]
    yesterday = suppressions.today() - timedelta(days=1)
    broken_copy.write_text(broken_copy.read_text() + "\n" + _entries(failing, yesterday))

    code, report = _doctor(run_cli, broken_copy)
    assert code == 1
    assert not any(f["suppression"] for f in report["findings"])
    warnings = [f for f in report["findings"] if f["check"] == suppressions.CHECK_ID]
    assert len(warnings) == len(failing)
    assert all(w["status"] == "warn" and yesterday.isoformat() in w["summary"] for w in warnings)
    assert {f["id"] for f in report["findings"] if f["status"] == "fail"} == {f["id"] for f in failing}


def test_every_format_shows_a_suppressed_finding_as_accepted_never_as_failing():
    from dataclasses import replace

    from pipectl.report import github, markdown, terminal
    from pipectl.report import json as json_report
    from tests.sample_result import CAUSE, RESULT, SYMPTOM

    rule = entry(SYMPTOM.check, expires=date(2027, 1, 31), source="pipectl.toml")
    active, hidden = suppressions.apply(RESULT.findings, [rule], TODAY)
    result = replace(RESULT, findings=tuple(active), suppressed=tuple(hidden))
    words = "suppressed by data-team until 2027-01-31: backfill runs until Friday"
    annotations = github.render(result)
    assert f"::error title=P0 {CAUSE.id.replace(':', '%3A')}" in annotations
    assert not any(line.startswith("::error") and "db.stuck" in line for line in annotations.splitlines())
    assert words in annotations
    assert words in markdown.render(result) and "## Suppressed findings" in markdown.render(result)
    assert words in " ".join(terminal.render(result).split())
    assert "2 fail" not in terminal.render(result) and "1 suppressed" in terminal.render(result)
    data = json.loads(json_report.render(result))
    assert data["summary"]["fail"] == 1 and data["summary"]["suppressed"] == 1
    (shown,) = [f for f in data["findings"] if f["suppression"]]
    assert shown["id"] == SYMPTOM.id and shown["status"] == "fail"
    assert shown["suppression"] == {"owner": "data-team", "reason": "backfill runs until Friday",
                                    "expires": "2027-01-31", "source": "pipectl.toml"}


def test_a_run_whose_only_finding_is_suppressed_still_checked_something(write_config, run_cli):
    path = write_config('[credentials]\naws = ["AWS_ACCESS_KEY_ID"]\n\n' + _entries(
        [{"check": "credentials.present", "subject": "aws"}], suppressions.today() + timedelta(days=7)))
    code, out, err = run_cli("doctor", "--config", str(path), "-o", "json", "--no-journal")
    assert code == 0, err  # accepted, not "nothing to check"
    assert [f["id"] for f in json.loads(out)["findings"] if f["suppression"]] == ["credentials.present:aws"]
