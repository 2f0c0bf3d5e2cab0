"""The CI smoke gate's machine formats: JUnit XML, SARIF and GitHub annotations."""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

from pipectl.report import github, junit, sarif
from tests.sample_result import RESULT


def test_junit_has_a_case_per_finding_and_failures_for_fails():
    suite = ET.fromstring(junit.render(RESULT))
    assert suite.get("tests") == "4" and suite.get("failures") == "2" and suite.get("skipped") == "1"
    failures = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failures == ["prefect.job_variables:orchestrator-main/data-enrichment-orchestrator",
                        "db.stuck:workflow_states/QUEUED/normalize_company_name"]
    assert "fix: pipectl playbook run fix-stuck-batch" in suite.find("testcase[2]/failure").text


def test_sarif_lists_failing_findings_as_results():
    doc = json.loads(sarif.render(RESULT))
    assert doc["version"] == "2.1.0"
    results = doc["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == ["prefect.job_variables", "db.stuck"]
    assert results[1]["properties"]["caused_by"] == [RESULT.findings[1].id]
    assert all(r["level"] == "error" for r in results)


def test_github_annotations_escape_their_properties():
    lines = github.render(RESULT).splitlines()
    assert lines[0].startswith("::error title=P0 prefect.job_variables%3Aorchestrator-main/")
    assert lines[-1].startswith("::notice title=pipectl doctor::4 findings")


def test_ci_flag_writes_artefacts_and_keeps_the_exit_code(write_config, run_cli, tmp_path, monkeypatch):
    path = write_config('[credentials]\naws = ["AWS_ACCESS_KEY_ID"]\n')
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    code, out, err = run_cli("doctor", "--config", str(path), "--ci", "--junit", str(tmp_path / "j.xml"),
                             "--sarif", str(tmp_path / "s.sarif"))
    assert code == 1
    assert ET.parse(tmp_path / "j.xml").getroot().get("failures") == "1"
    assert json.loads((tmp_path / "s.sarif").read_text())["runs"][0]["results"][0]["ruleId"] == "credentials.present"
    assert "::error title=P0 credentials.present%3Aaws::aws: AWS_ACCESS_KEY_ID not set" in out


def test_one_run_writes_several_formats_and_each_holds_the_same_findings(write_config, run_cli, tmp_path):
    path = write_config('[credentials]\naws = ["AWS_ACCESS_KEY_ID"]\n')
    report, xml, tree = tmp_path / "report.json", tmp_path / "junit.xml", tmp_path / "tree.txt"
    code, out, err = run_cli("doctor", "--config", str(path), "--no-journal", "--output-file", f"json={report}",
                             "--output-file", f"junit={xml}", "--output-file", str(tree))
    assert code == 1 and out == ""  # the plain file took the terminal tree: nothing left for stdout
    ids = [f["id"] for f in json.loads(report.read_text())["findings"]]
    assert "credentials.present:aws" in ids
    assert [c.get("name") for c in ET.parse(xml).getroot().iter("testcase")] == ids
    assert "credentials.present:aws" in tree.read_text() and "\x1b[" not in tree.read_text()
    assert f"json report written to {report}" in err and f"junit report written to {xml}" in err
    assert (report.stat().st_mode & 0o777) == 0o600


def test_format_files_beside_stdout_and_bad_destinations_are_refused(write_config, run_cli, tmp_path):
    path = write_config('[credentials]\naws = ["AWS_ACCESS_KEY_ID"]\n')
    sarif_file = tmp_path / "out.sarif"
    code, out, _ = run_cli("doctor", "--config", str(path), "--no-journal", "-o", "json",
                           "--output-file", f"sarif={sarif_file}")
    assert code == 1 and json.loads(out)["schema"] == "pipectl.report/v2"
    assert json.loads(sarif_file.read_text())["version"] == "2.1.0"
    for bad, words in ((["a.txt", "b.txt"], "2 files without a format"), (["json="], "give a file after '='"),
                       ([f"json={tmp_path}/x", f"junit={tmp_path}/x"], "named twice")):
        args = [a for spec in bad for a in ("--output-file", spec)]
        code, _, err = run_cli("doctor", "--config", str(path), "--no-journal", *args)
        assert code == 2 and words in err and "Traceback" not in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "work" / "a.txt").exists()
