"""Bad input gets one line naming the problem and exit 2 — never a traceback."""

import json
import pytest


@pytest.mark.parametrize(
    "args, message",
    [
        (["nope"], "No such command 'nope'"),
        (["doctor", "--bogus"], "No such option: --bogus"),
        (["doctor", "--timeout", "abc"], "Invalid value for '--timeout'"),
        (["doctor", "--timeout", "-1", "--config", "CONFIG"], "--timeout must be a positive number"),
        (["doctor", "--format", "yaml", "--config", "CONFIG"], "unknown output format 'yaml'"),
        (["doctor", "-o", "report.txt", "--config", "CONFIG"], "to write a file use --output-file FILE"),
        (["doctor", "--fail-on", "high", "--config", "CONFIG"], "--fail-on: severity must be one of P0, P1, P2"),
        (["doctor", "--only", "nothing.here", "--config", "CONFIG"], "unknown check or component 'nothing.here'"),
        (["patch", "no-slash", "--env", "A=b", "--config", "CONFIG"], "'no-slash' is not FLOW/DEPLOYMENT"),
        (["patch", "a/b", "--config", "CONFIG"], "nothing to patch"),
        (["trigger", "a/b", "--timeout", "soon", "--config", "CONFIG"], "--timeout: invalid duration 'soon'"),
        (["secret", "set", "x", "--config", "CONFIG"], "give exactly one of --from-env VAR or --stdin"),
        (["playbook", "run", "nope", "--config", "CONFIG"], "unknown playbook 'nope'"),
        (["sandbox", "break", "nope"], "unknown scenario 'nope'"),
        (["doctor", "--config", "missing.toml"], "missing.toml: config file not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(run_cli, write_config, args, message):
    config = write_config('pipeline = "t"\n')
    code, out, err = run_cli(*[str(config) if a == "CONFIG" else a for a in args])
    assert code == 2, err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def fresh_stripe_key() -> str:
    import secrets

    return "sk_" + "live_" + secrets.token_hex(16)


@pytest.mark.parametrize("args", [
    ["secret", "set", "stripe-key", "{v}", "--config", "CONFIG"],  # the value where only a name belongs
    ["patch", "a/b", "--env", "STRIPE_KEY:{v}", "--config", "CONFIG"],  # `:` typed for `=`
    ["patch", "a/b", "--job-variable", 'env.SLACK_TOKEN:"{v}"', "--config", "CONFIG"],
    ["trigger", "a/b", "--param", "api_token:{v}", "--config", "CONFIG"],
])
def test_a_credential_typed_in_the_wrong_place_is_never_echoed(run_cli, write_config, args):
    value = fresh_stripe_key()
    config = write_config('pipeline = "t"\n')
    code, out, err = run_cli(*[str(config) if a == "CONFIG" else a.format(v=value) for a in args])
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1
    assert not [value[i : i + 8] for i in range(8, len(value) - 7) if value[i : i + 8] in out + err]


def test_a_config_with_nothing_to_check_is_a_usage_error_not_a_green_gate(run_cli, write_config):
    """A CI gate on an empty (or wrongly named) config must not pass: nothing was looked at."""
    config = write_config('pipeline = "empty"\n')
    code, out, err = run_cli("doctor", "--config", str(config), "--no-journal")
    assert code == 2 and out == ""
    assert err.startswith("pipectl: nothing to check:") and err.count("\n") == 1, err


def test_o_picks_the_format_as_in_kubectl_and_the_prefect_and_aws_clis(run_cli, write_config):
    config = write_config('pipeline = "o"\n[credentials]\nshell = ["HOME"]\n')
    code, out, err = run_cli("doctor", "-o", "json", "--config", str(config), "--no-journal")
    assert code == 0, err
    assert json.loads(out)["schema"] == "pipectl.report/v2"


def test_version_and_completion_are_there(run_cli):
    from pipectl import __version__

    for flag in ("--version", "-V"):
        code, out, _ = run_cli(flag)
        assert (code, out.strip()) == (0, __version__)
    code, out, _ = run_cli("--help")
    assert code == 0 and "--install-completion" in out


def test_listings_have_json_output_and_both_playbook_spellings_work(run_cli):
    code, out, _ = run_cli("checks", "list", "-o", "json")
    checks = json.loads(out)
    assert code == 0 and {"db.stuck", "prefect.stalled"} <= {c["id"] for c in checks}
    assert all(c["detects"] and c["fix"] for c in checks)
    for spelling in ("playbooks", "playbook"):
        code, out, _ = run_cli(spelling, "list", "-o", "json")
        assert code == 0 and "fix-stuck-batch" in {p["name"] for p in json.loads(out)}
    code, _, err = run_cli("checks", "list", "-o", "yaml")
    assert code == 2 and "choose terminal or json" in err


def test_quiet_keeps_only_warnings_and_errors(run_cli, write_config, tmp_path):
    config = str(write_config('pipeline = "q"\n[credentials]\nshell = ["HOME"]\n'))
    report = tmp_path / "report.txt"
    code, _, err = run_cli("doctor", "--config", config, "--no-journal", "--output-file", str(report))
    assert code == 0 and "report written to" in err
    code, _, err = run_cli("-q", "doctor", "--config", config, "--no-journal", "--output-file", str(report))
    assert code == 0 and err == ""
    code, _, err = run_cli("-q", "doctor", "--config", config, "-o", "yaml")
    assert code == 2 and "unknown output format" in err


def test_completion_scripts_generate_for_each_shell():
    import os
    import subprocess
    import sys
    from pathlib import Path

    for shell, marker in (("bash", "_pipectl_completion"), ("zsh", "compdef"), ("fish", "complete")):
        done = subprocess.run([str(Path(sys.executable).with_name("pipectl"))], capture_output=True, text=True,
                              env={**os.environ, "_PIPECTL_COMPLETE": f"source_{shell}"}, timeout=60)
        assert done.returncode == 0 and marker in done.stdout, (shell, done.stdout[:200], done.stderr[-200:])


def test_verbose_logs_each_call_and_its_endpoint_never_a_credential(run_cli, write_config):
    config = str(write_config('pipeline = "v"\n[prefect]\napi_url = "http://user:pa55w0rd-xyz@127.0.0.1:9/api"\n'))
    code, _, err = run_cli("-v", "doctor", "--config", config, "--no-journal", "--timeout", "1")
    assert code == 3 and "calling POST /work_pools/filter at http://127.0.0.1:9/api" in err
    assert "pa55w0rd" not in err
    code, _, err = run_cli("doctor", "--config", config, "--no-journal", "--timeout", "1")
    assert "calling" not in err
