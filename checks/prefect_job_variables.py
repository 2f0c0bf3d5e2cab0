"""prefect.job_variables — each deployment's runs get the environment they need, from Secret blocks."""

from __future__ import annotations

import difflib
import json
import re
import shlex
from collections.abc import Iterator
from typing import Any

from pipectl.checks.prefect_api import Budget, DeploymentsCheck, api

from pipectl import secrets
from pipectl.connectors import prefect as prefect_api
from pipectl.interface import Context
from pipectl.model import Finding, Severity
from pipectl.redact import redactor
from pipectl.repairs.secrets import block_name_for, block_template, variable_for

_BLOCK_REF = re.compile(r"\{\{\s*prefect\.blocks\.secret\.([A-Za-z0-9_-]+)(?:\.[A-Za-z0-9_.-]+)?\s*\}\}")


class PrefectJobVariables(DeploymentsCheck):
    """Detects: a deployment whose `job_variables.env` lacks a variable listed in its `required_env`
    (the first incident: the orchestrator ran without MODAL_TOKEN_ID / MODAL_TOKEN_SECRET), a
    `{{ prefect.blocks.secret.NAME }}` reference to a Secret block that does not exist or is empty, and a
    credential written into the job variables as plain text. Only key and block names are reported; any
    value read (a plain-text credential, a Secret block's value) is handed to the redactor at once.

    Why it matters: the worker starts the run with exactly these variables. Without the token the
    orchestrator's Modal calls fail, the failure is swallowed, the run ends COMPLETED and the rows it
    queued stay QUEUED; a missing block fails every run at start. A plain-text credential is readable by
    anyone who can read the deployment.

    Fix: `pipectl patch FLOW/DEPLOYMENT --env KEY=secret:BLOCK` (the block created first with
    `pipectl secret set BLOCK --from-env KEY`); move a plain-text credential into a Secret block the same
    way, then rotate it.
    """

    id = "prefect.job_variables"

    def run(self, ctx: Context) -> list[Finding]:
        budget = Budget(ctx)
        blocks: dict[str, str | None] = {}  # block name → value (registered with the redactor), None if absent
        findings = []
        for entry in ctx.config.prefect.deployments:
            name = entry.name
            deployment = prefect_api.read_deployment(*api(ctx), name, timeout=budget.left())
            if deployment is None:
                findings.append(self.skipped(
                    f"deployment {name} is not registered (see prefect.deployment)", subject=name,
                ))
                continue
            job_variables = deployment.job_variables or {}
            raw_env = job_variables.get("env")
            env = raw_env if isinstance(raw_env, dict) else {}
            plaintext = []  # env keys, or dotted paths elsewhere in the job variables
            for path, value in _strings(job_variables, ""):
                key = re.split(r"[.\[]", path)[-1] if not path.endswith("]") else path
                if secrets.is_secret(key, value):
                    secrets.register(key, value)  # before anything else can see it
                    plaintext.append(path.removeprefix("env."))
            missing = [k for k in entry.required_env if env.get(k) in (None, "")]
            referenced = _referenced_blocks(job_variables)  # block → env key (or job variable path) using it
            for block in referenced:
                self._read_block(ctx, budget, block, blocks)
            absent = [b for b in referenced if blocks[b] is None]
            empty = [b for b in referenced if blocks[b] is not None and not blocks[b].strip()]
            evidence: dict[str, Any] = {
                "deployment": name,
                "env_keys": sorted(str(k) for k in env),
                "required_env": list(entry.required_env),
                "missing": missing,
                "blocks": sorted(referenced),
            }
            problems: list[tuple[str, str, list[str], str]] = []  # (summary, impact, fix, advice): most urgent first
            if missing:
                problems.append((
                    (f"{name} runs without {', '.join(missing)}: its job_variables.env lacks "
                     f"{'it' if len(missing) == 1 else 'them'}"),
                    (f"Runs of {name} start without {', '.join(missing)}; code that needs them fails, "
                     "possibly silently (the run still ends COMPLETED)."),
                    self._patch_command(ctx, budget, name, missing, blocks), "",
                ))
            for block in absent + empty:
                what = "does not exist" if block in absent else "is empty"
                user = referenced[block]
                meant = self._meant(ctx, budget, block, referenced) if block in absent else None
                problems.append((
                    f"Secret block {block} (used by {user} of {name}) {what}"
                    + (f" (did you mean {meant}?)" if meant else ""),
                    f"Every run of {name} fails at start, or gets an empty {user}.",
                    *_block_fix(name, user, block, meant),
                ))
            if problems:
                evidence |= {"missing_blocks": absent, "empty_blocks": empty}
            if plaintext:
                commands = _move_to_blocks(name, plaintext)
                problems.append((
                    (f"{', '.join(plaintext)} sit{'s' if len(plaintext) == 1 else ''} in the job variables of "
                     f"{name} as plain text"),
                    "Anyone who can read the deployment (UI, API, logs of the run) holds the credential.",
                    list(commands), "Then rotate the credential: it has been readable in plain text.",
                ))
                evidence["plaintext_keys"] = plaintext
            if not problems:
                findings.append(self.ok(
                    f"{name}: job_variables.env has {len(env)} key(s)"
                    + (f", every required one, from {len(referenced)} Secret block(s)" if referenced else ""),
                    subject=name, evidence=evidence,
                ))
                continue
            p0 = bool(missing or absent or empty)
            findings.append(self.fail(
                "; ".join(p[0] for p in problems),
                subject=name,
                severity=Severity.P0 if p0 else Severity.P1,
                impact=problems[0][1],
                evidence=evidence,
                fix=[command for p in problems for command in p[2]],
                advice=" ".join(dict.fromkeys(p[3] for p in problems if p[3])),
            ))
        return findings

    def _read_block(self, ctx: Context, budget: Budget, block: str, cache: dict[str, str | None]) -> str | None:
        if block not in cache:
            value = prefect_api.read_secret_block(*api(ctx), block, timeout=budget.left())
            redactor.add(value)
            cache[block] = value
        return cache[block]

    def _meant(self, ctx: Context, budget: Budget, block: str, referenced: dict[str, str]) -> str | None:
        """The existing Secret block a missing name most likely means (a typo, a rename), if any: one the
        deployment does not already use, close enough to the name."""
        unused = [b for b in prefect_api.secret_block_names(*api(ctx), timeout=budget.left()) if b not in referenced]
        close = difflib.get_close_matches(block, unused, n=1, cutoff=0.8)
        return close[0] if close else None

    def _patch_command(self, ctx: Context, budget: Budget, name: str, missing: list[str],
                       cache: dict[str, str | None]) -> list[str]:
        """The exact `pipectl patch`, preceded by `pipectl secret set` for each conventional block not there."""
        steps, specs = [], []
        for key in missing:
            if secrets.is_secret_key(key):
                block = block_name_for(key)
                if not (self._read_block(ctx, budget, block, cache) or "").strip():
                    steps.append(f"pipectl secret set {block} --from-env {key}")
                specs.append(f"--env {key}=secret:{block}")
            else:
                specs.append(f"--env {key}=env:{key}")
        return [*steps, f"pipectl patch {shlex.quote(name)} {' '.join(specs)}"]


def _move_to_blocks(name: str, plaintext: list[str]) -> list[str]:
    """`secret set` for each value, then one `patch` pointing each place at its block."""
    commands, specs = [], []
    for where in plaintext:
        block = block_name_for(where)
        commands.append(f"pipectl secret set {block} --from-env {variable_for(where)}")
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", where):
            specs.append(f"--env {where}=secret:{block}")
        else:
            specs.append(f"--job-variable '{where}={json.dumps(block_template(block))}'")
    return [*commands, f"pipectl patch {shlex.quote(name)} " + " ".join(specs)]


def _referenced_blocks(value: Any, path: str = "") -> dict[str, str]:
    """Secret block → the env key (or job variable path) that references it, anywhere in the job variables."""
    found: dict[str, str] = {}
    for where, text in _strings(value, path):
        for block in _BLOCK_REF.findall(text):
            found.setdefault(block, where.removeprefix("env."))
    return found


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]")


def _block_fix(deployment: str, user: str, block: str, meant: str | None) -> tuple[list[str], str]:
    """Point the deployment at the block it means, or store the value under the name it uses."""
    if meant:
        spec = (f"--env {user}=secret:{meant}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", user)
                else f"--job-variable {shlex.quote(f'{user}={json.dumps(block_template(meant))}')}")
        return [f"pipectl patch {shlex.quote(deployment)} {spec}"], ""
    variable = variable_for(user)
    return ([f"pipectl secret set {shlex.quote(block)} --from-env {variable}"],
            f"The command stores the value of {variable}: set it first.")


