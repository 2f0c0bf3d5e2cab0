"""Config discovery has a trust boundary: only configs (and env files) the user owns, never above home.

The tests run as root, so "another user" is uid 65534 (nobody), set with os.chown.
"""

from __future__ import annotations

import http.server
import os
import threading

import pytest

from pipectl.config_load import ConfigError, find_config, load_config

NOBODY = 65534
VICTIM_SECRET = "victim-" + "secret-value"  # built at run time: obviously fake
CREDENTIALS = f"[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = {VICTIM_SECRET}\n"


@pytest.fixture(autouse=True)
def as_root():
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")


@pytest.fixture
def listener():
    """A tiny HTTP server on loopback that records every request it gets."""
    seen: list[tuple[str, str | None]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.path, self.headers.get("Authorization")))
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api", seen
    server.shutdown()
    server.server_close()


def planted_config(api_url: str, env_file: str) -> str:
    return f'pipeline = "x"\nenv_file = "{env_file}"\n[prefect]\napi_url = "{api_url}"\napi_key = "env:aws_secret_access_key"\n'


@pytest.mark.parametrize("foreign", ["folder", "file"])
def test_a_config_planted_in_a_shared_parent_folder_is_not_used(run_cli, tmp_path, listener, foreign):
    url, seen = listener
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "creds").write_text(CREDENTIALS)
    shared = tmp_path / "shared"
    work = shared / "work"
    work.mkdir(parents=True)
    planted = shared / "pipectl.toml"
    planted.write_text(planted_config(url, "../victim/creds"))
    os.chown(shared if foreign == "folder" else planted, NOBODY, NOBODY)
    code, out, err = run_cli("doctor", "--no-journal", cwd=work)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1
    assert str(planted) in err and "uid 65534" in err
    assert seen == []
    assert VICTIM_SECRET not in err


def test_the_listener_would_have_seen_the_token(run_cli, tmp_path, listener):
    """The control for the test above: a config the user owns, reading an env file beside it, is used."""
    url, seen = listener
    (tmp_path / "creds").write_text(CREDENTIALS)
    (tmp_path / "pipectl.toml").write_text(planted_config(url, "creds"))
    run_cli("doctor", "--no-journal", "--only", "prefect", cwd=tmp_path)
    assert f"Bearer {VICTIM_SECRET}" in {auth for _, auth in seen}


def test_env_file_outside_the_config_folder_is_refused(tmp_path):
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "creds").write_text(CREDENTIALS)
    project = tmp_path / "project"
    project.mkdir()
    config = project / "pipectl.toml"
    config.write_text(planted_config("http://127.0.0.1:9/api", "../victim/creds"))
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert len(caught.value.lines) == 1
    assert str(config) in str(caught.value) and "../victim/creds" in str(caught.value)


def test_env_file_symlinked_outside_is_refused(tmp_path):
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "creds").write_text(CREDENTIALS)
    project = tmp_path / "project"
    project.mkdir()
    (project / "local.env").symlink_to(tmp_path / "victim" / "creds")
    config = project / "pipectl.toml"
    config.write_text(planted_config("http://127.0.0.1:9/api", "local.env"))
    with pytest.raises(ConfigError, match="local.env"):
        load_config(config)
    (project / "local.env").unlink()
    (project / ".env").symlink_to(tmp_path / "victim" / "creds")
    config.write_text('pipeline = "x"\n')
    with pytest.raises(ConfigError, match=r"\.env"):
        load_config(config)


def test_env_files_owned_by_another_user_are_refused(tmp_path):
    config = tmp_path / "pipectl.toml"
    config.write_text('pipeline = "x"\nenv_file = "deploy/app.env"\n')
    (tmp_path / "deploy").mkdir()
    named = tmp_path / "deploy" / "app.env"
    named.write_text("A=1\n")
    assert load_config(config).source.env_files == [str(named)]  # a subfolder is inside
    os.chown(named, NOBODY, NOBODY)
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert len(caught.value.lines) == 1 and "deploy/app.env" in str(caught.value)
    named.unlink()
    dotenv = tmp_path / ".env"
    dotenv.write_text("A=1\n")
    os.chown(dotenv, NOBODY, NOBODY)
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert len(caught.value.lines) == 1 and str(dotenv) in str(caught.value)


def test_explicit_config_owned_by_another_user_is_refused(run_cli, tmp_path):
    config = tmp_path / "pipectl.toml"
    config.write_text('pipeline = "x"\n')
    os.chown(config, NOBODY, NOBODY)
    code, out, err = run_cli("doctor", "--no-journal", "--config", str(config))
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith(f"pipectl: {config}: owned by ") and "(uid 65534), not by you; refusing to use it" in err


def test_discovery_stops_at_home(tmp_path, monkeypatch):
    (tmp_path / "pipectl.toml").write_text('pipeline = "above-home"\n')
    home = tmp_path / "home"
    project = home / "project"
    project.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    assert find_config(project) is None
    monkeypatch.chdir(project)
    with pytest.raises(ConfigError, match="no pipectl.toml"):
        load_config()
    (home / "pipectl.toml").write_text('pipeline = "in-home"\n')
    assert load_config().pipeline == "in-home"  # home itself is still checked


def test_discovery_stops_silently_at_a_folder_owned_by_another_user(tmp_path):
    (tmp_path / "pipectl.toml").write_text('pipeline = "beyond"\n')
    middle = tmp_path / "middle"
    project = middle / "project"
    project.mkdir(parents=True)
    os.chown(middle, NOBODY, NOBODY)
    assert find_config(project) is None
    (project / "pipectl.toml").write_text('pipeline = "mine"\n')
    assert find_config(project) == (project / "pipectl.toml", ())


def test_a_foreign_pyproject_table_is_not_used(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.pipectl]\npipeline = "theirs"\n')
    os.chown(pyproject, NOBODY, NOBODY)
    with pytest.raises(ConfigError, match="pyproject.toml"):
        find_config(tmp_path)


def test_the_sandbox_layout_still_loads(tmp_path):
    """`pipectl sandbox up` writes ./pipectl.toml naming .pipectl-sandbox/sandbox.env: inside, so trusted."""
    folder = tmp_path / ".pipectl-sandbox"
    folder.mkdir()
    (folder / "sandbox.env").write_text("MODAL_TOKEN_ID=ak-x\n")
    config = tmp_path / "pipectl.toml"
    config.write_text('pipeline = "x"\nenv_file = ".pipectl-sandbox/sandbox.env"\n')
    assert load_config(config).source.env_files == [str((folder / "sandbox.env").resolve())]


def test_error_messages_never_contain_the_env_file_contents(tmp_path):
    outside = tmp_path / "outside.env"
    outside.write_text(f"SECRET={VICTIM_SECRET}\n")
    project = tmp_path / "p"
    project.mkdir()
    config = project / "pipectl.toml"
    config.write_text('pipeline = "x"\nenv_file = "../outside.env"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert VICTIM_SECRET not in str(caught.value)
    assert str(config) in str(caught.value) and "outside" in str(caught.value)
