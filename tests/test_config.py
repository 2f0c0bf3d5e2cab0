from pathlib import Path

import pytest

from pipectl.config_load import ConfigError, load_config

BROKEN = Path(__file__).parent / "configs" / "broken.toml"


def test_broken_config_prints_one_line_per_problem_and_exits_2(run_cli):
    code, out, err = run_cli("doctor", "--config", str(BROKEN))
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 7
    assert all(line.startswith(f"pipectl: {BROKEN}: ") for line in lines)
    assert "database.conect_timeout: unknown key" in err
    assert "state_tables[0].table: 'workflow_states; drop table x' is not a plain SQL name" in err
    assert "state_tables[0].stuck_after.QUEUED: invalid duration 'five minutes'" in err
    assert "prefect.deployments[0].name: 'no-slash-here' is not FLOW/DEPLOYMENT" in err
    assert "Traceback" not in err


def test_env_references_resolve_from_environment_then_dotenv(write_config, monkeypatch):
    path = write_config('[database]\ndsn = "env:DATABASE_URL"\n[prefect]\napi_url = "env:PREFECT_API_URL"\n')
    (path.parent / ".env").write_text("DATABASE_URL=postgresql://u:pw-from-dotenv@h/db\nPREFECT_API_URL=http://dotenv\n")
    monkeypatch.setenv("PREFECT_API_URL", "http://from-env")
    config = load_config(path)
    assert config.database.dsn == "postgresql://u:pw-from-dotenv@h/db"
    assert config.prefect.api_url == "http://from-env"
    assert config.source.references == {"database.dsn": "DATABASE_URL", "prefect.api_url": "PREFECT_API_URL"}
    assert config.source.unresolved == {}


def test_unset_reference_is_recorded_not_fatal(write_config):
    config = load_config(write_config('[prefect]\napi_key = "env:PREFECT_API_KEY"\n'))
    assert config.prefect.api_key is None
    assert config.source.unresolved == {"prefect.api_key": "PREFECT_API_KEY"}


def test_pipectl_variables_override_the_file(write_config, monkeypatch):
    monkeypatch.setenv("PIPECTL_DOCTOR__TIMEOUT", "9")
    config = load_config(write_config("[doctor]\ntimeout = 2\n"))
    assert config.doctor.timeout == 9


def test_found_in_parent_folder_and_in_pyproject(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text('[project]\nname="x"\n[tool.pipectl]\npipeline = "from-pyproject"\n')
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    assert load_config().pipeline == "from-pyproject"
    (tmp_path / "a" / "pipectl.toml").write_text('pipeline = "nearer"\n')
    assert load_config().pipeline == "nearer"


@pytest.mark.parametrize(
    "text, message",
    [
        ('[database]\ndsn = "mysql://u@h/db"\n', "database.dsn: scheme must be postgresql://"),
        ('[database]\ndsn = "postgresql://u@h:notaport/db"\n', "database.dsn: the port is not a number"),
        ('[database]\ndsn = "just words"\n', "database.dsn: neither a postgresql:// URL nor key=value"),
        ('[prefect]\napi_url = "env:not a name"\n', "prefect.api_url: 'env:not a name' is not env:NAME"),
        ("pipeline = [\n", "not valid TOML"),
        ('[[state_tables]]\nstatus_column = "status"\n', "state_tables[0].table: required key is missing"),
    ],
)
def test_each_malformed_value_is_named(write_config, text, message):
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(text))
    assert message in str(caught.value)
    assert len(caught.value.lines) == 1


def test_missing_config_is_a_usage_error(run_cli, tmp_path):
    code, _, err = run_cli("doctor", cwd=tmp_path)
    assert code == 2
    assert "no pipectl.toml" in err


def test_a_typo_in_an_override_variable_names_the_variable_not_the_file(tmp_path, monkeypatch):
    from pipectl.config_load import ConfigError, load_config

    path = tmp_path / "pipectl.toml"
    path.write_text('pipeline = "typo"\n')
    monkeypatch.setenv("PIPECTL_DOCTOR__TIMOUT", "5")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "environment variable PIPECTL_DOCTOR__TIMOUT: doctor.timout: unknown key" in str(caught.value)


def test_config_show_names_each_source_and_never_a_credential(run_cli, write_config, monkeypatch):
    import json

    password = "hunter" + "2-correct-horse"
    monkeypatch.setenv("DATABASE_URL", f"postgresql://app:{password}@db.internal/prod")
    monkeypatch.setenv("PIPECTL_DOCTOR__TIMEOUT", "9")
    path = write_config('pipeline = "shown"\n[database]\ndsn = "env:DATABASE_URL"\n[prefect]\n'
                        'api_url = "http://127.0.0.1:4200/api"\n')
    code, out, err = run_cli("config", "show", "--config", str(path), "-o", "json")
    assert code == 0, err
    keys = {row["key"]: row for row in json.loads(out)["keys"]}
    assert keys["database.dsn"] == {"key": "database.dsn", "value": "(set)", "source": "env:DATABASE_URL"}
    assert keys["doctor.timeout"]["source"] == "environment PIPECTL_DOCTOR__TIMEOUT"
    assert keys["prefect.api_url"]["source"] == "file" and keys["doctor.fail_on"]["source"] == "default"
    assert password not in out and "hunter" not in out
    assert run_cli("config", "validate", "--config", str(path))[0] == 0
    bad = write_config('pipeline = "bad"\n[doctor]\ntimout = 5\n', name="bad.toml")
    code, out, err = run_cli("config", "validate", "--config", str(bad))
    assert code == 2 and "doctor.timout: unknown key" in err
