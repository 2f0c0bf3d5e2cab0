"""modal.auth — the Modal tokens in use authenticate: ours, and the one each deployment's runs get."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from dataclasses import dataclass
from typing import Any

from pipectl.deadline import retry_advice
from pipectl.errors import PipectlError, Unauthorized, Unreachable
from pipectl.interface import Check, Context
from pipectl.model import Finding, Severity
from pipectl.redact import redactor

_BUDGET = 0.8
"""Share of the run's timeout our calls may use (closing a Modal client takes a moment after a timeout), so
our error, which names the server, comes before the runner's generic one."""
_KEYS = ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET")
_SECRET_TEMPLATE = re.compile(
    r"^\s*\{\{\s*prefect\.blocks\.secret\.([A-Za-z0-9_-]+)((?:\.[A-Za-z0-9_-]+)*)\s*\}\}\s*$"
)  # NAME, then an optional .field.path into a JSON-valued secret
_ANY_TEMPLATE = re.compile(r"\{\{.*\}\}", re.DOTALL)


@dataclass(frozen=True)
class LocalToken:
    """The token pipectl itself uses, from [modal]: its values, or the names of the variables not set."""

    token_id: str | None
    token_secret: str | None
    missing: list[str]
    configured: bool


def local_token(ctx: Context) -> LocalToken:
    """[modal] token_id / token_secret as resolved; `missing` names what is unset (variable, else key)."""
    modal = ctx.config.modal
    source = ctx.config.source
    missing: list[str] = []
    configured = False
    for key, value in (("token_id", modal.token_id), ("token_secret", modal.token_secret)):
        dotted = f"modal.{key}"
        configured = configured or bool(value) or dotted in source.references
        if not value:
            missing.append(source.unresolved.get(dotted) or source.references.get(dotted) or f"[modal] {key}")
    return LocalToken(modal.token_id, modal.token_secret, missing, configured)


def budget(ctx: Context) -> float:
    """Seconds our calls may take in all: a bit under the run's timeout."""
    return round(max(min(ctx.timeout * _BUDGET, ctx.timeout - 0.5), 0.1), 1)


def server_where(ctx: Context) -> str:
    url = ctx.config.modal.server_url
    if not url:
        return "Modal (default server)"
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.netloc.rsplit("@", 1)[-1] or url


class ModalAuth(Check):
    """Detects: a Modal token that Modal rejects — the one in [modal] (subject `local`), and the one each
    Prefect deployment's flow runs receive through `job_variables.env` MODAL_TOKEN_ID / MODAL_TOKEN_SECRET
    from `{{ prefect.blocks.secret.NAME }}` Secret blocks (subject: the deployment). Token values are read
    only to try them and never appear in a finding.

    Why it matters: the orchestrator swallows the authentication error of its Modal spawn, so the run
    ends COMPLETED while every row it queued stays QUEUED. A token that works on the operator's laptop
    proves nothing about the one the deployment runs with.

    Fix: create a token (`modal token new`, or in the Modal dashboard), store it in the deployment's
    Secret blocks and in MODAL_TOKEN_ID / MODAL_TOKEN_SECRET here, then `pipectl doctor --only modal`.
    """

    id = "modal.auth"
    libraries = ("modal_proto.api_grpc", "httpx")
    component = "modal"
    severity = Severity.P0

    def applies(self, ctx: Context) -> str | None:
        modal = ctx.config.modal
        if local_token(ctx).configured or modal.server_url or modal.functions:
            return None
        return "the config describes no Modal ([modal] section)"

    async def run(self, ctx: Context) -> list[Finding]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget(ctx)
        verified: dict[tuple[str, str], asyncio.Task] = {}

        def verify(token_id: str, token_secret: str) -> asyncio.Task:
            """One round trip per distinct token, however many subjects use it."""
            from pipectl.connectors import modal

            key = (token_id, token_secret)
            if key not in verified:
                left = round(max(deadline - loop.time(), 0.1), 1)
                server_url = ctx.config.modal.server_url
                verified[key] = asyncio.ensure_future(
                    modal.verify_token(token_id, token_secret, server_url=server_url, timeout=left)
                )
            return verified[key]

        tasks = [self._local(ctx, verify)]
        tasks += [self._deployment(ctx, d.name, deadline, verify) for d in ctx.config.prefect.deployments]
        results = await asyncio.gather(*tasks)
        return [f for group in results for f in group]

    async def _local(self, ctx: Context, verify) -> list[Finding]:
        token = local_token(ctx)
        if token.missing:
            names = ", ".join(token.missing)
            return [self.skipped(
                f"no local Modal token to try: {names} not set", subject="local",
                evidence={"missing": token.missing},
                advice=f"Set {', '.join(n for n in token.missing if not n.startswith('['))} in the environment "
                       "or the config's env file.",
            )]  # fmt: skip
        where = server_where(ctx)
        try:
            workspace = await verify(token.token_id or "", token.token_secret or "")
        except Unauthorized:
            refs = ctx.config.source.references
            names = [refs.get(f"modal.{k}", f"[modal] {k}") for k in ("token_id", "token_secret")]
            return [self.fail(
                f"the local Modal token ({', '.join(names)}) is rejected by {where}", subject="local",
                evidence={"server": where, "variables": names},
                impact="pipectl cannot look at Modal, and anything started from here with this token fails.",
                advice="Create a token with `modal token new` (or in the Modal dashboard) and put it in "
                       f"{' / '.join(names)}.",
            )]  # fmt: skip
        except Unreachable as exc:
            return [self._unreachable(ctx, exc, "local")]
        except PipectlError as exc:
            return [self.error(str(exc), subject="local", evidence={"server": where},
                               impact="Could not tell whether the token works.")]
        return [self.ok(f"the local Modal token authenticates with {where} (workspace {workspace})",
                        subject="local", evidence={"server": where, "workspace": workspace})]

    async def _deployment(self, ctx: Context, name: str, deadline: float, verify) -> list[Finding]:
        from pipectl.connectors import prefect

        prefect_cfg = ctx.config.prefect
        if not prefect_cfg.api_url:
            return []  # prefect.api reports a missing api_url
        loop = asyncio.get_running_loop()
        api = (prefect_cfg.api_url, prefect_cfg.api_key)
        try:
            info = await asyncio.to_thread(
                prefect.read_deployment, *api, name, timeout=max(deadline - loop.time(), 0.1))
        except PipectlError as exc:  # could not tell: an ERROR, never a skip that reads as all-clear
            return [self.error(f"cannot read deployment {name} from Prefect to try its token: {exc}",
                               subject=name, impact="Could not tell whether the deployment's token works.",
                               advice=_AFTER_PREFECT)]
        if info is None:
            return []  # prefect.deployment reports a missing deployment
        env = info.job_variables.get("env") if isinstance(info.job_variables, dict) else None
        env = env if isinstance(env, dict) else {}
        given = [k for k in _KEYS if env.get(k)]
        if not given:
            return []  # the deployment passes no Modal token at all: prefect.job_variables owns that
        if len(given) < len(_KEYS):
            absent = [k for k in _KEYS if k not in given]
            return [self.skipped(f"deployment {name} sets {given[0]} but not {', '.join(absent)} "
                                 "(see prefect.job_variables)", subject=name)]
        blocks: dict[str, str] = {}
        paths: dict[str, list[str]] = {}
        for key in _KEYS:
            value = env[key]
            match = _SECRET_TEMPLATE.match(value) if isinstance(value, str) else None
            if match:
                blocks[key] = match.group(1)
                paths[key] = [p for p in match.group(2).split(".") if p]
            elif not isinstance(value, str) or _ANY_TEMPLATE.search(value):
                return [self.skipped(f"deployment {name} takes {key} from a template this check cannot "
                                     "resolve (only {{ prefect.blocks.secret.NAME }})", subject=name)]
            else:
                redactor.add(value)  # a literal token in the job variables: try it all the same
        evidence: dict[str, Any] = {"server": server_where(ctx), "blocks": list(blocks.values())}
        try:
            left = max(deadline - loop.time(), 0.1)
            values = await asyncio.gather(
                *(asyncio.to_thread(prefect.read_secret_block, *api, block, timeout=left)
                  for block in blocks.values())  # fmt: skip
            )
        except PipectlError as exc:
            return [self.error(f"cannot read the Secret blocks of deployment {name} to try its token: {exc}",
                               subject=name, evidence=evidence,
                               impact="Could not tell whether the deployment's token works.", advice=_AFTER_PREFECT)]
        for value in values:
            redactor.add(value)  # before anything else is done with it
        resolved = {k: _field(v, paths[k]) for k, v in zip(blocks, values, strict=True)}
        absent = [blocks[k] for k in blocks if not resolved[k]]
        if absent:  # prefect.job_variables reports the missing block itself
            return [self.skipped(f"cannot try the token of deployment {name}: Secret block(s) "
                                 f"{', '.join(absent)} missing or empty (see prefect.job_variables)",
                                 subject=name, evidence=evidence)]  # fmt: skip
        for value in resolved.values():
            redactor.add(value)
        stray = [k for k in blocks if resolved[k] != resolved[k].strip()]
        if stray:  # the worker passes it on as is: the flow's Modal client cannot even send it
            return [self.fail(
                f"Secret block {blocks[stray[0]]} (the {stray[0]} of deployment {name}) holds the token with "
                "whitespace around it (a trailing newline?)", subject=name, evidence=evidence,
                impact="Every Modal call of this deployment fails: the token cannot be sent as it is.",
                fix=self._store_fix(ctx, name, blocks), advice=self._token_advice(ctx),
            )]
        token = [resolved.get(k) or env[k] for k in _KEYS]
        try:
            await verify(token[0], token[1])
        except Unauthorized:
            origin = {k: f"Secret block {blocks[k]}" if k in blocks else "a literal value" for k in _KEYS}
            source = ", ".join(f"{k} from {v}" for k, v in origin.items())
            return [self.fail(
                f"the token deployment {name} runs with is rejected by Modal", subject=name,
                evidence={**evidence, "token_from": source},
                impact="Every Modal spawn of this deployment fails; its runs still end COMPLETED and the "
                       "rows they queued stay QUEUED.",
                fix=self._store_fix(ctx, name, blocks), advice=self._token_advice(ctx),
            )]  # fmt: skip
        except Unreachable as exc:
            return [self._unreachable(ctx, exc, name)]
        except PipectlError as exc:
            return [self.error(str(exc), subject=name, evidence=evidence,
                               impact="Could not tell whether the deployment's token works.")]
        return [self.ok(f"the token deployment {name} runs with authenticates with Modal", subject=name,
                        evidence=evidence)]

    @staticmethod
    def _token_variables(ctx: Context) -> dict[str, str]:
        refs = ctx.config.source.references
        return {k: refs.get(f"modal.{k.lower().removeprefix('modal_')}", k) for k in _KEYS}

    @classmethod
    def _store_fix(cls, ctx: Context, deployment: str, blocks: dict[str, str]) -> list[str]:
        """Store a working token (the local one, from its variables) in the blocks the deployment reads."""
        var = cls._token_variables(ctx)
        block = {k: blocks.get(k) or k.lower().replace("_", "-") for k in _KEYS}  # the conventional names
        steps = [f"pipectl secret set {block[k]} --from-env {var[k]}" for k in _KEYS]
        if len(blocks) < len(_KEYS):  # literal values in the job variables: point them at the blocks
            specs = " ".join(f"--env {k}=secret:{block[k]}" for k in _KEYS if k not in blocks)
            steps.append(f"pipectl patch {shlex.quote(deployment)} {specs}")
        return steps

    @classmethod
    def _token_advice(cls, ctx: Context) -> str:
        return (f"The commands store the token found in {' / '.join(cls._token_variables(ctx).values())}: make sure "
                "it is a working one first (`modal token new` makes one).")

    def _unreachable(self, ctx: Context, exc: Exception, subject: str) -> Finding:
        return self.error(
            str(exc), subject=subject, evidence={"server": server_where(ctx)},
            impact="Could not tell whether the token works; the pipeline probably cannot reach Modal either.",
            advice=retry_advice(self.id, ctx.timeout),
        )


_AFTER_PREFECT = "Once Prefect answers (see prefect.api), look again: `pipectl doctor --only prefect.api,modal.auth`."


def _field(value: str | None, path: list[str]) -> str | None:
    """The secret itself, or the string at `.a.b` inside a JSON-valued secret (None when absent)."""
    if not path or value is None:
        return value
    try:
        node = json.loads(value)
    except ValueError:
        return None
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, str) else None
