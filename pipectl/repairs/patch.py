"""Merge changes into a deployment's job variables: never replace what was not asked for, never race."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pipectl import secrets
from pipectl.config import PipelineConfig
from pipectl.connectors import prefect as prefect_api
from pipectl.connectors import prefect_write
from pipectl.errors import UsageError
from pipectl.redact import redactor
from pipectl.repair import Change, JournalRun, Outcome, Plan, Repair
from pipectl.repairs.register import missing_deployment
from pipectl.repairs.secrets import (
    block_name_for,
    block_template,
    name_part,
    refuse_plaintext,
    secret_leaves,
    template_block,
)

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ABSENT = "(absent)"


def parse_env(specs: Sequence[str], environ: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """`KEY=secret:BLOCK`, `KEY=env:NAME` or `KEY=value` → ({KEY: job-variable value}, {block: value to store}).

    A credential never becomes plain text: `KEY=value` with a secret name or shape is refused, and
    `KEY=env:NAME` of a credential becomes a Secret block (stored first) that KEY refers to."""
    result: dict[str, str] = {}
    blocks: dict[str, str] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep or not _KEY.match(key):
            raise UsageError(f"--env {name_part(spec)!r}…: expected KEY=secret:BLOCK, KEY=env:NAME or KEY=value")
        if value.startswith("secret:"):
            block = value.removeprefix("secret:")
            if not re.fullmatch(r"[A-Za-z0-9_-]+", block):
                raise UsageError(f"--env {key}: {name_part(block)!r}… is not a Secret block name")
            result[key] = block_template(block)
            continue
        if value.startswith("env:"):
            name = value.removeprefix("env:")
            if not environ.get(name):
                raise UsageError(f"--env {key}: environment variable {name} is not set")
            value = environ[name]
            if secret_leaves(value, key) or secrets.is_secret_key(name):
                secrets.register(key, value)
                blocks[block_name_for(key)] = value
                result[key] = block_template(block_name_for(key))
                continue
        refuse_plaintext("--env", key, value)
        result[key] = value
    return result, blocks


def parse_job_variables(specs: Sequence[str]) -> dict[str, Any]:
    """`PATH=JSON` pairs, e.g. `pip_packages=["modal"]` or `env.LOG_LEVEL="DEBUG"`; credentials refused."""
    result: dict[str, Any] = {}
    for spec in specs:
        path, sep, raw = spec.partition("=")
        if not sep or not all(_KEY.match(p) or re.fullmatch(r"[A-Za-z0-9_-]+", p) for p in path.split(".")):
            raise UsageError(f"--job-variable {name_part(path)!r}…: expected PATH=JSON, e.g. env.LOG_LEVEL=\"DEBUG\"")
        try:
            value = json.loads(raw, parse_constant=_no_constant)
        except json.JSONDecodeError:
            raise UsageError(f"--job-variable {path}: the value is not JSON (quote strings: \"text\")") from None
        refuse_plaintext("--job-variable", path, value, env_key=path.startswith("env.") and path.count(".") == 1)
        result[path] = value
    return result


def _no_constant(name: str) -> Any:
    raise UsageError(f"--job-variable: {name} is not a JSON value")


def merged(current: Mapping[str, Any], set_env: Mapping[str, str], unset_env: Sequence[str],
           set_paths: Mapping[str, Any]) -> dict[str, Any]:
    """The new job variables: `current` with only the named keys changed."""
    result = copy.deepcopy(dict(current))
    env = dict(result.get("env") or {})
    env.update(set_env)
    for key in unset_env:
        env.pop(key, None)
    if env or "env" in result:
        result["env"] = env
    for path, value in set_paths.items():
        node = result
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UsageError(f"--job-variable {path}: {part} is not an object in the current job variables")
        if isinstance(value, dict) and isinstance(node.get(leaf), dict):
            node[leaf] = _deep_merge(node[leaf], value)  # an object merges: other keys stay
        else:
            node[leaf] = value
    return result


def _deep_merge(current: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(current)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


class PatchJobVariables(Repair):
    """Merge env keys and job variables into one deployment, aborting if it changed since the plan."""

    def __init__(self, config: PipelineConfig, deployment: str, set_env: Mapping[str, str],
                 unset_env: Sequence[str] = (), set_paths: Mapping[str, Any] | None = None) -> None:
        self.config, self.name = config, deployment
        self.set_env, self.unset_env, self.set_paths = dict(set_env), list(unset_env), dict(set_paths or {})
        self._api = (config.prefect.api_url, config.prefect.api_key)
        self._timeout = config.prefect.timeout
        self._before: dict[str, Any] | None = None
        self._deployment_id = ""

    def plan(self) -> Plan:
        if not self._api[0]:
            raise UsageError("no [prefect] api_url in the config")
        deployment = prefect_api.read_deployment(*self._api, self.name, timeout=self._timeout)
        if deployment is None:
            raise missing_deployment(self.config, self.name)
        self._deployment_id = deployment.id
        self._before = deployment.job_variables
        secrets.scrub(self._before)  # registers any credential already in there before the diff shows it
        after = merged(self._before, self.set_env, self.unset_env, self.set_paths)
        changes = _changes(self.name, self._before, after)
        return Plan("patch", f"merge into the job variables of {self.name}", tuple(changes),
                    {"deployment": self.name, "deployment_id": deployment.id})

    def apply(self, plan: Plan, journal: JournalRun) -> Outcome:
        current = prefect_api.read_deployment(*self._api, self.name, timeout=self._timeout)
        if current is None or current.id != self._deployment_id:
            return Outcome(False, f"deployment {self.name} disappeared or was replaced since the plan; nothing changed")
        if current.job_variables != self._before:
            return Outcome(False, f"the job variables of {self.name} changed since the plan; nothing changed — "
                                  "run the command again to plan against the new values")
        after = merged(self._before or {}, self.set_env, self.unset_env, self.set_paths)
        prefect_write.update_job_variables(*self._api, self._deployment_id, after, timeout=self._timeout)
        journal.record("change", {"kind": "job_variables", "deployment": self.name,
                                  "deployment_id": self._deployment_id, "before": secrets.scrub(self._before),
                                  "after": secrets.scrub(after)})
        self._after = after
        return Outcome(True, f"patched the job variables of {self.name}", {"changed_keys": len(plan.changes)})

    def verify(self, applied: Outcome) -> Outcome:
        current = prefect_api.read_deployment(*self._api, self.name, timeout=self._timeout)
        if current is None or current.job_variables != self._after:
            return Outcome(False, f"re-read of {self.name} does not show the patched job variables")
        missing = [b for b in _blocks(self._after) if not _block_has_value(self._api, b, self._timeout)]
        if missing:
            return Outcome(False, f"patched, but Secret block(s) {', '.join(missing)} do not exist: "
                                  f"`pipectl secret set {missing[0]} --from-env VAR`", {"missing_blocks": missing})
        return Outcome(True, f"{self.name} now runs with the patched job variables")


def _changes(name: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    changes = []
    for key in sorted(set(_flatten(before)) | set(_flatten(after))):
        old, new = _flatten(before).get(key, _ABSENT), _flatten(after).get(key, _ABSENT)
        if old != new:
            old_shown, new_shown = _show(key, old), _show(key, new)
            if old_shown.startswith("‹secret") and new_shown.startswith("‹secret"):
                new_shown = new_shown.replace("‹secret", "‹secret, changed", 1)
            changes.append(Change(f"{name} job_variables.{key}", f"{old_shown} → {new_shown}",
                                  _kept(key, old), _kept(key, new)))
    return changes


def _flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        path = f"{prefix}{key}"
        if isinstance(item, dict) and item:
            out.update(_flatten(item, path + "."))
        else:
            out[path] = item
    return out


def _kept(key: str, value: Any) -> Any:
    """What a plan keeps of a value: None for absent, a placeholder for a credential."""
    return None if value is _ABSENT else secrets.scrub(value, key.rsplit(".", 1)[-1])


def _show(key: str, value: Any) -> str:
    """How a value appears in the diff: a credential as its placeholder, never itself."""
    if value is _ABSENT:
        return value
    shown = secrets.scrub(value, key.rsplit(".", 1)[-1])
    return shown if isinstance(shown, str) else json.dumps(shown, ensure_ascii=False)


def _block_has_value(api: tuple[str | None, str | None], name: str, timeout: float) -> bool:
    value = prefect_api.read_secret_block(api[0], api[1], name, timeout=timeout)
    redactor.add(value)
    return bool(value)


def _blocks(job_variables: Mapping[str, Any]) -> list[str]:
    env = job_variables.get("env") or {}
    return [b for b in (template_block(v) for v in env.values()) if b]
