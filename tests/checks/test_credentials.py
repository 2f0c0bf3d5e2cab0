"""credentials.present: names only, and AWS access from a profile, SSO or a role counts as present."""

from __future__ import annotations

from pipectl.checks.credentials_present import CredentialsPresent
from pipectl.config import PipelineConfig
from pipectl.interface import Context
from pipectl.model import Status
from pipectl.runner import run_checks

AWS = {"aws": ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]}


def _findings(environ: dict[str, str]):
    config = PipelineConfig(credentials=AWS)
    return {f.subject: f for f in run_checks([CredentialsPresent], Context(config=config, timeout=10,
                                                                           environ=environ)).findings}


def _no_instance_role(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


def test_missing_keys_with_no_other_source_fail_naming_them(monkeypatch, tmp_path):
    _no_instance_role(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    finding = _findings({})["aws"]
    assert finding.status is Status.FAIL
    assert "AWS_ACCESS_KEY_ID" in finding.summary and "AWS_SECRET_ACCESS_KEY" in finding.summary


def test_a_profile_stands_in_for_the_key_variables_and_no_value_is_shown(monkeypatch, tmp_path):
    _no_instance_role(monkeypatch, tmp_path)
    secret = "wJalr" + "XUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[ops]\naws_access_key_id = AKIA{'Q' * 16}\naws_secret_access_key = {secret}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    finding = _findings({"AWS_PROFILE": "ops"})["aws"]
    assert finding.status is Status.OK, finding.summary
    assert finding.evidence["source"] == "shared-credentials-file"
    assert secret not in str(finding.as_dict()) and "AKIA" not in str(finding.as_dict())


def test_the_configured_aws_profile_is_the_one_used(monkeypatch, tmp_path):
    _no_instance_role(monkeypatch, tmp_path)
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[prod]\naws_access_key_id = AKIA{'P' * 16}\naws_secret_access_key = {'s' * 40}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    config = PipelineConfig(credentials=AWS, aws={"profile": "prod"})
    (finding,) = run_checks([CredentialsPresent], Context(config=config, timeout=10, environ={})).findings
    assert finding.status is Status.OK and finding.evidence["source"] == "shared-credentials-file"
    (finding,) = run_checks([CredentialsPresent], Context(config=PipelineConfig(credentials=AWS), timeout=10,
                                                          environ={})).findings
    assert finding.status is Status.FAIL  # no profile named: [default] does not exist in that file
