"""modal.function — every Modal function the pipeline spawns is deployed."""

from __future__ import annotations

import asyncio

from pipectl.checks.modal_auth import budget, local_token, server_where

from pipectl.deadline import retry_advice
from pipectl.errors import PipectlError, Unauthorized, Unreachable
from pipectl.interface import Check, Context
from pipectl.model import Finding, Severity

_NO_TOKEN = "cannot look without a working token (see modal.auth)"


class ModalFunction(Check):
    """Detects: a function listed under [modal] functions ("APP/FUNCTION") that is not deployed in its app,
    looked up with the local Modal token (the one in [modal]).

    Why it matters: `Function.from_name(...).spawn()` fails for a function that is not deployed, and the
    orchestrator swallows that error: the run ends COMPLETED and the rows it queued stay QUEUED.

    Fix: deploy the app from the workers' code, in the workspace the pipeline's token belongs to:
    `modal deploy -m <module that defines the app>` (or `modal deploy path/to/app.py`), then
    `pipectl doctor --only modal.function`.
    """

    id = "modal.function"
    libraries = ("modal_proto.api_grpc",)
    component = "modal"
    severity = Severity.P0

    def applies(self, ctx: Context) -> str | None:
        return None if ctx.config.modal.functions else "no Modal functions in the config ([modal] functions)"

    async def run(self, ctx: Context) -> list[Finding]:
        token = local_token(ctx)
        names = list(dict.fromkeys(ctx.config.modal.functions))
        if token.missing:
            reason = f"{_NO_TOKEN}: {', '.join(token.missing)} not set"
            return [self.skipped(reason, subject=name, evidence={"missing": token.missing}) for name in names]
        timeout = budget(ctx)
        return list(await asyncio.gather(*(self._one(ctx, name, timeout) for name in names)))

    async def _one(self, ctx: Context, name: str, timeout: float) -> Finding:
        from pipectl.connectors import modal

        app, function = name.split("/", 1)
        where = server_where(ctx)
        evidence = {"app": app, "function": function, "server": where}
        try:
            config = ctx.config.modal
            deployed = await modal.function_exists(
                app, function, token_id=config.token_id or "", token_secret=config.token_secret or "",
                server_url=config.server_url, timeout=timeout,
            )  # fmt: skip
        except Unauthorized:
            return self.skipped(f"{_NO_TOKEN}: the local token is rejected", subject=name, evidence=evidence)
        except Unreachable as exc:
            return self.error(str(exc), subject=name, evidence=evidence,
                              impact="Could not tell whether the function is deployed.",
                              advice=retry_advice(self.id, ctx.timeout))
        except PipectlError as exc:
            return self.error(str(exc), subject=name, evidence=evidence,
                              impact="Could not tell whether the function is deployed.")
        if not deployed:
            return self.fail(
                f"function {function} is not deployed in app {app}", subject=name, evidence=evidence,
                impact=f"Every spawn of {app}/{function} fails; the flow that spawns it still ends COMPLETED "
                       "and its rows stay QUEUED.",
                advice=f"From the workers' repository, deploy the module that defines app {app} "
                       "(`modal deploy -m <module>`) with the pipeline's workspace token.",
            )  # fmt: skip
        return self.ok(f"function {function} is deployed in app {app}", subject=name, evidence=evidence)
