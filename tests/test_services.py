"""Hosted services on the real sandbox (its Render and Netlify fakes): `pipectl service env set` plans, sets,
redeploys and verifies; bad input changes nothing; doctor sees a suspended service and a missing token; a
credential never shows."""

from __future__ import annotations

import json

import httpx

from pipectl.sandbox.hosting import provider
from pipectl.sandbox.layout import SUBSCRIBER


def env_of(sandbox, service: str) -> dict[str, str]:
    with provider(sandbox.state, service) as client:
        return client.env(sandbox.state.service_ids[service])


def service_cli(run_cli, sandbox, tmp_path, *args: str):
    return run_cli("--config", str(sandbox.config_path), "service", "env", "set", *args,
                   "--journal", str(tmp_path / "journal"))


def test_a_variable_is_set_redeployed_and_verified_without_showing_a_credential(sandbox, run_cli, tmp_path,
                                                                             monkeypatch):
    import secrets

    sandbox.dirty()
    token = "sk_live_" + secrets.token_hex(16)
    monkeypatch.setenv("STRIPE_KEY", token)
    code, out, err = service_cli(run_cli, sandbox, tmp_path, SUBSCRIBER, "LOG_LEVEL=DEBUG",
                                 "STRIPE_KEY=env:STRIPE_KEY", "--yes")
    assert code == 0, err
    assert "LOG_LEVEL: absent → DEBUG" in out
    assert "STRIPE_KEY: absent → the value of $STRIPE_KEY (not shown)" in out
    assert "deploy dep-" in err and " live" in err
    assert env_of(sandbox, SUBSCRIBER)["LOG_LEVEL"] == "DEBUG"
    journal = (tmp_path / "journal").read_bytes()
    assert token.encode() not in journal and token not in out + err
    code, out, err = run_cli("--config", str(sandbox.config_path), "journal", "--all", "-o", "json",
                             "--journal", str(tmp_path / "journal"))
    assert code == 0 and token not in out


def test_the_issue_form_with_from_env(sandbox, run_cli, tmp_path, monkeypatch):
    sandbox.dirty()
    monkeypatch.setenv("WANTED_LEVEL", "WARNING")
    code, _out, err = service_cli(run_cli, sandbox, tmp_path, SUBSCRIBER, "LOG_LEVEL", "--from-env",
                                 "WANTED_LEVEL", "--yes", "--no-deploy")
    assert code == 0, err
    assert env_of(sandbox, SUBSCRIBER)["LOG_LEVEL"] == "WARNING"


def test_bad_input_is_one_line_and_changes_nothing(sandbox, run_cli, tmp_path):
    before = env_of(sandbox, SUBSCRIBER)
    literal = "AKIA" + "Z" * 16
    cases = [
        ((SUBSCRIBER, f"AWS_ACCESS_KEY_ID={literal}", "--yes"), "refusing a credential typed on the command line"),
        (("nope", "A=1", "--yes"), "no service 'nope' in the config (services: job-frontend, job-subscriber"),
        ((SUBSCRIBER, "A=1", "--from-env", "X", "--yes"), "give exactly one KEY (no '=')"),
        ((SUBSCRIBER, "A=env:NOT_SET_ANYWHERE", "--yes"), "environment variable NOT_SET_ANYWHERE is not set"),
        ((SUBSCRIBER, "not a key", "--yes"), "expected KEY=env:NAME or KEY=value"),
        ((SUBSCRIBER, "A=1", "--wait", "0", "--yes"), "--wait 0"),
    ]
    for args, message in cases:
        code, out, err = service_cli(run_cli, sandbox, tmp_path, *args)
        assert code == 2, (args, err)
        assert message in err and "Traceback" not in err, err
        assert literal not in out + err
    code, out, err = service_cli(run_cli, sandbox, tmp_path, SUBSCRIBER, "LOG_LEVEL=DEBUG", "--dry-run")
    assert code == 0 and "LOG_LEVEL: absent → DEBUG" in out
    assert env_of(sandbox, SUBSCRIBER) == before


def test_doctor_names_a_suspended_service(sandbox, run_cli):
    sandbox.dirty()
    render = f"{sandbox.state.render_api_url}/services/{sandbox.state.service_ids[SUBSCRIBER]}"
    headers = {"Authorization": f"Bearer {sandbox.state.render_api_key}"}
    httpx.post(f"{render}/suspend", headers=headers, timeout=10).raise_for_status()
    code, out, _err = run_cli("--config", str(sandbox.config_path), "doctor", "--only", "service", "-o", "json",
                             "--no-journal")
    finding = {f["id"]: f for f in json.loads(out)["findings"]}[f"service.env:{SUBSCRIBER}"]
    assert code == 1
    assert finding["status"] == "fail" and "suspended" in finding["summary"]
    assert "Resume job-subscriber" in finding["advice"]


def test_a_missing_provider_token_is_an_error_naming_the_variable(sandbox, run_cli, tmp_path, monkeypatch):
    env = dict(line.split("=", 1) for line in sandbox.layout.env_file.read_text().splitlines() if "=" in line)
    env.pop("RENDER_API_KEY")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RENDER_API_KEY", raising=False)
    config = tmp_path / "pipectl.toml"
    config.write_text(sandbox.config_path.read_text().replace('env_file = "sandbox.env"\n', ""))
    code, out, _err = run_cli("--config", str(config), "doctor", "--only", "service.env", "-o", "json", "--no-journal")
    findings = {f["id"]: f for f in json.loads(out)["findings"]}
    assert findings[f"service.env:{SUBSCRIBER}"]["status"] == "error"
    assert "RENDER_API_KEY is not set" in findings[f"service.env:{SUBSCRIBER}"]["summary"]
    assert findings["service.env:job-frontend"]["status"] == "ok"
    assert code == 3


def test_a_token_written_into_the_config_is_flagged_and_never_shown(tmp_path, run_cli):
    token = "rnd_" + "q7" * 16
    config = tmp_path / "pipectl.toml"
    config.write_text(f'[[services]]\nname = "web"\nprovider = "render"\nid = "srv-x"\ntoken = "{token}"\n'
                      'api_url = "http://127.0.0.1:9/v1"\n')
    code, out, err = run_cli("--config", str(config), "doctor", "-o", "json", "--no-journal", "--timeout", "2")
    findings = {f["id"]: f for f in json.loads(out)["findings"]}
    assert "services[0].token" in findings["config.valid"]["summary"]
    assert token not in out + err
    _code, out, err = run_cli("--config", str(config), "config", "show")
    assert token not in out + err and "(set)" in out
