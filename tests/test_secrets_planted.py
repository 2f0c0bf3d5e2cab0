"""Known secret values are planted in config and environment; no output format may show any 8+ char piece."""

import json

import pytest

SECRETS = {
    "PREFECT_API_KEY": "pnu_Qx7" + "Vb2Kp9Lm4Zr8Tw1Ys6Hd3Nf5Jc0Ga",
    "MODAL_TOKEN_ID": "ak-" + "Wq4Er7Ty1Ui9Op3As6",
    "MODAL_TOKEN_SECRET": "as-" + "Zx8Cv5Bn2Mk0Lj7Hg4",
    "DB_PASSWORD": "Pw9" + "Xk2Vm7Qz4Rt",
}

CONFIG = """
pipeline = "planted"
[database]
dsn = "env:DATABASE_URL"
[prefect]
api_url = "http://127.0.0.1:9/api"
api_key = "env:PREFECT_API_KEY"
[modal]
token_id = "env:MODAL_TOKEN_ID"
token_secret = "env:MODAL_TOKEN_SECRET"
[credentials]
modal = ["MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "MODAL_ENVIRONMENT"]
"""


def leaked_pieces(text: str) -> list[str]:
    return [
        value[i : i + 8] for value in SECRETS.values() for i in range(len(value) - 7) if value[i : i + 8] in text
    ]


@pytest.fixture
def planted(write_config, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://app:{SECRETS['DB_PASSWORD']}@127.0.0.1:9/app")
    return write_config(CONFIG)


@pytest.mark.parametrize("fmt", ["terminal", "json", "markdown"])
def test_no_secret_piece_in_any_format(planted, run_cli, fmt, tmp_path):
    code, out, err = run_cli("doctor", "--config", str(planted), "--format", fmt, "--timeout", "1")
    assert code == 1  # MODAL_ENVIRONMENT is missing: the run did find something
    assert "MODAL_ENVIRONMENT" in out
    assert leaked_pieces(out + err) == []
    report = tmp_path / f"report.{fmt}"
    code, out, err = run_cli("doctor", "--config", str(planted), "--format", fmt, "--timeout", "1",
                             "--output-file", str(report))
    assert out == ""
    assert leaked_pieces(report.read_text() + err) == []
    if fmt == "json":
        json.loads(report.read_text())


def test_a_secret_written_into_the_file_is_reported_without_its_value(write_config, run_cli):
    literal = SECRETS["PREFECT_API_KEY"]
    path = write_config(f'[prefect]\napi_url = "http://127.0.0.1:9"\napi_key = "{literal}"\n')
    code, out, err = run_cli("doctor", "--config", str(path), "--format", "json")
    finding = next(f for f in json.loads(out)["findings"] if f["check"] == "config.valid")
    assert finding["status"] == "fail"
    assert finding["evidence"]["keys"] == ["prefect.api_key"]
    assert leaked_pieces(out + err) == []


def test_error_messages_are_redacted_too(write_config, run_cli, monkeypatch):
    secret = SECRETS["MODAL_TOKEN_SECRET"]
    monkeypatch.setenv("MODAL_TOKEN_SECRET", secret)
    path = write_config(f'[modal]\ntoken_secret = "env:MODAL_TOKEN_SECRET"\n[doctor]\nfail_on = "{secret}"\n')
    code, out, err = run_cli("doctor", "--config", str(path))
    assert code == 2
    assert "doctor.fail_on" in err
    assert leaked_pieces(out + err) == []
