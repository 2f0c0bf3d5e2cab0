"""Finding, reading and validating the config; every problem becomes one line naming file and key."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from pipectl import contexts, secrets
from pipectl.config import SECRET_KEYS, ConfigSource, PipelineConfig, secret_key
from pipectl.config_view import dotted
from pipectl.errors import UsageError
from pipectl.redact import redactor

CONFIG_NAME = "pipectl.toml"
_ENV_REF = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")


class ConfigError(UsageError):
    """The config cannot be used; `lines` holds one message per problem."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def find_config(start: Path | None = None) -> tuple[Path, tuple[str, ...]] | None:
    """The nearest pipectl.toml, or pyproject.toml with [tool.pipectl], in `start` or a parent you trust.

    Like git's safe.directory, a config decides where credentials go, so the walk stops after the home
    directory and at the first folder owned by another user. A config found there, or one owned by another
    user, is never used: ConfigError names it and why (it is the only candidate, nothing nearer exists).
    """
    here = (start or Path.cwd()).resolve()
    home = _home()
    for folder in (here, *here.parents):
        foreign = _not_yours(folder)
        found = _candidate(folder)
        if found is not None:
            why = f"its folder {folder} is {foreign}" if foreign else _not_yours(found[0])
            if why:
                reason = f"{why}; pipectl only reads configs you own, in folders you own"
                raise ConfigError([f"{found[0]}: not used: {reason}"])
            return found
        if foreign or folder == home:
            return None
    return None


def _candidate(folder: Path) -> tuple[Path, tuple[str, ...]] | None:
    candidate = folder / CONFIG_NAME
    if candidate.is_file():
        return candidate, ()
    pyproject = folder / "pyproject.toml"
    if pyproject.is_file() and _has_tool_table(pyproject):
        return pyproject, ("tool", "pipectl")
    return None


def _home() -> Path | None:
    home = os.path.expanduser("~")
    return Path(home).resolve() if home != "~" else None


def _not_yours(path: Path) -> str | None:
    """None when the current user owns `path` (after symlinks); else "owned by NAME (uid N), not by you"."""
    try:
        uid = path.stat().st_uid
    except OSError:
        return None  # vanished or unreadable: the read that follows reports it
    if uid == os.geteuid():
        return None
    try:
        import pwd

        name = f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        name = f"uid {uid}"
    return f"owned by {name}, not by you"


def load_config(path: Path | str | None = None, environ: Mapping[str, str] | None = None,
                context: str | None = None) -> PipelineConfig:
    """Load, resolve `env:` references and validate; raises ConfigError with one line per problem.

    Without `path`: $PIPECTL_CONFIG, else the nearest config (see `find_config`). The context is chosen as
    `pipectl.contexts` describes; `context` is `--context`."""
    path, table = locate(path)
    raw = _read_toml(path, table)
    try:
        raw, chosen = contexts.apply(raw, path, context)
    except UsageError as exc:
        raise ConfigError([str(exc)]) from None
    source = ConfigSource(path=str(path), env_files=_env_files(path, raw.get("env_file")), context=chosen,
                          file_keys=sorted(dotted(raw)))
    raw["suppressions"] = _suppressions(path, raw.get("suppressions"))
    return _validated(path, raw, source, environ)


def _suppressions(path: Path, listed: object) -> list[Any]:
    """The config's `[[suppressions]]` and those of `.pipectl-ignore.toml` beside it, each marked with its file."""
    from pydantic import TypeAdapter

    from pipectl.model import Suppression
    from pipectl.suppressions import ignore_file

    entries = [{**e, "source": str(path)} if isinstance(e, dict) else e for e in _as_list(listed)]
    ignore = ignore_file(path)
    if not ignore.is_file():
        return entries
    if why := _not_yours(ignore):
        raise ConfigError([f"{ignore}: {why}; refusing to use it"])
    data = _read_toml(ignore, ())
    problems = [f"{ignore}: {key}: unknown key (only [[suppressions]] belongs here)"
                for key in data if key != "suppressions"]
    found = [{**e, "source": str(ignore)} if isinstance(e, dict) else e for e in _as_list(data.get("suppressions"))]
    try:
        TypeAdapter(list[Suppression]).validate_python(found)
    except ValidationError as exc:
        problems += [f"{ignore}: {_loc(('suppressions', *err['loc']))}: {_message(err)}" for err in exc.errors()]
    if problems:
        raise ConfigError(problems)
    return entries + found


def _as_list(value: object) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def read_raw(path: Path | str | None = None) -> tuple[Path, dict[str, Any]]:
    """The config file `locate` finds and its keys as written (contexts unmerged, nothing resolved)."""
    found, table = locate(path)
    return found, _read_toml(found, table)


def locate(path: Path | str | None = None) -> tuple[Path, tuple[str, ...]]:
    """The config file to read (and the TOML table holding it): `path`, $PIPECTL_CONFIG, or the nearest."""
    path = path or os.environ.get("PIPECTL_CONFIG") or None
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError([f"{path}: config file not found"])
        if why := _not_yours(path):
            raise ConfigError([f"{path}: {why}; refusing to use it"])
        table = ("tool", "pipectl") if path.name == "pyproject.toml" else ()
    else:
        found = find_config()
        if found is None:
            raise ConfigError(
                [f"no {CONFIG_NAME} in {Path.cwd()} or above: pass --config PATH, or see `pipectl sandbox env`"]
            )
        path, table = found
    return path, table


def _validated(path: Path, raw: dict[str, Any], source: ConfigSource, environ: Mapping[str, str] | None
               ) -> PipelineConfig:
    env = environment(source, environ)
    resolved = _resolve(raw, env, source, prefix="")
    _find_literal_secrets(raw, source)
    try:
        config = PipelineConfig(**resolved)
    except ValidationError as exc:
        raise ConfigError([f"{_origin(err['loc'], raw, path)}: {_loc(err['loc'])}: {_message(err)}"
                           for err in exc.errors()]) from None
    config._source = source
    _check_dsn(path, config)
    register_secrets(config)
    return config


def register_secrets(config: PipelineConfig) -> None:
    """Hand every credential the config holds to the redactor before anything can print it, and protect
    the config's own names (paths, deployments, tables) so no everyday-word password masks them."""
    for key in SECRET_KEYS:
        section, name = key.split(".")
        holder = getattr(config, section)
        for item in holder if isinstance(holder, list) else [holder]:
            secrets.register(key, getattr(item, name))
    _register_urls(config.model_dump())
    source = config.source
    redactor.protect(
        config.pipeline, source.path if source else None, *(d.name for d in config.prefect.deployments),
        *(d.work_pool for d in config.prefect.deployments), *config.modal.functions,
        *(t.table for t in config.state_tables),
    )


def _register_urls(value: Any, key: str = "") -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _register_urls(v, str(k))
    elif isinstance(value, list):
        for v in value:
            _register_urls(v, key)
    else:
        secrets.register(key, value)


def _check_dsn(path: Path, config: PipelineConfig) -> None:
    dsn = config.database.dsn
    if not dsn:
        return
    if "://" in dsn:
        parts = urlsplit(dsn)
        if parts.scheme not in ("postgres", "postgresql"):
            raise ConfigError([f"{path}: database.dsn: scheme must be postgresql://, not {parts.scheme}://"])
        try:
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            raise ConfigError([f"{path}: database.dsn: the port is not a number"]) from None
    elif "=" not in dsn:
        raise ConfigError([f"{path}: database.dsn: neither a postgresql:// URL nor key=value pairs"])


def _read_toml(path: Path, table: tuple[str, ...]) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    for key in table:
        data = data.get(key, {})
    return data


def _has_tool_table(pyproject: Path) -> bool:
    try:
        return "pipectl" in tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {})
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError):
        return False


def environment(source: ConfigSource, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment over the config's env files (the environment wins)."""
    from dotenv import dotenv_values

    env: dict[str, str] = {}
    for file in source.env_files:
        env.update({k: v for k, v in dotenv_values(file).items() if v is not None})
    env.update(os.environ if environ is None else environ)
    secrets.register_environment(env)
    return env


def _env_files(path: Path, named: object) -> list[str]:
    """`.env` beside the config, then the file named by `env_file` (relative to the config).

    Both feed credentials to whatever hosts the config names, so each must resolve inside the config's
    folder and be owned by the user: a config can never pick up, say, ~/.aws/credentials.
    """
    files = []
    dotenv = path.parent / ".env"
    if dotenv.is_symlink() or dotenv.exists():
        _check_env_file(path, dotenv, ".env")
        files.append(dotenv)
    if isinstance(named, str) and named:
        _check_env_file(path, path.parent / named, f"env_file {named!r}")
        files.append((path.parent / named).resolve())
    return [str(f) for f in files if f.is_file()]


def _check_env_file(config: Path, file: Path, label: str) -> None:
    resolved = file.resolve()
    base = config.parent.resolve()
    if not resolved.is_relative_to(base):
        raise ConfigError([f"{config}: {label} resolves to {resolved}, outside {base}; refusing to read it"])
    if why := _not_yours(resolved):
        raise ConfigError([f"{config}: {label} ({resolved}) is {why}; refusing to read it"])


def _resolve(value: Any, env: Mapping[str, str], source: ConfigSource, prefix: str) -> Any:
    if isinstance(value, dict):
        return {k: _resolve(v, env, source, f"{prefix}.{k}" if prefix else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, env, source, f"{prefix}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str) and value.startswith("env:"):
        match = _ENV_REF.match(value)
        if not match:
            raise ConfigError([f"{source.path}: {prefix}: {value!r} is not env:NAME with a variable name"])
        name = match.group(1)
        source.references[prefix] = name
        if env.get(name):
            if secret_key(prefix):  # known secret before validation can echo it
                secrets.register(prefix, env[name])
            return env[name]
        source.unresolved[prefix] = name
        return None
    return value


def _find_literal_secrets(raw: dict[str, Any], source: ConfigSource) -> None:
    for key in SECRET_KEYS:
        section, name = key.split(".")
        holder = raw.get(section)
        items = holder if isinstance(holder, list) else [holder]
        for index, item in enumerate(items):
            value = item.get(name) if isinstance(item, dict) else None
            if isinstance(value, str) and value and not value.startswith("env:"):
                source.literal_secrets.append(f"{section}[{index}].{name}" if isinstance(holder, list) else key)
                secrets.register(key, value)


def _origin(loc: tuple[Any, ...], raw: Mapping[str, Any], path: Path) -> str:
    """Where a bad key came from: the file, or the PIPECTL_SECTION__KEY variable that overrides it."""
    value: Any = raw
    for part in loc:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and isinstance(part, int) and part < len(value):
            value = value[part]
        else:
            variable = "PIPECTL_" + "__".join(str(p) for p in loc).upper()
            if any(name.upper() == variable for name in os.environ):
                return f"environment variable {variable}"
            break
    return str(path)


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _message(err: Mapping[str, Any]) -> str:
    if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        return "unknown key"
    if err["type"] in ("missing", "missing_argument"):
        return "required key is missing"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")
