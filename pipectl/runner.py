"""Runs checks concurrently, each under a timeout, and turns hangs and crashes into ERROR findings."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pipectl import shared_reads, spread, suppressions
from pipectl.deadline import retry_advice, track, waiting_for
from pipectl.durations import whole_seconds
from pipectl.errors import PipectlError, Unauthorized, UsageError
from pipectl.interface import Check, Context
from pipectl.links import link_findings
from pipectl.model import DoctorResult, Finding, Status


def select(checks: dict[str, type[Check]], only: Sequence[str] = (), skip: Sequence[str] = ()) -> list[type[Check]]:
    """Checks chosen by id, id prefix (`prefect`) or component; an unknown name is a usage error."""
    for token in (*only, *skip):
        if not any(_selected(cls, token) for cls in checks.values()):
            raise UsageError(f"unknown check or component {token!r}: see `pipectl checks list`")
    chosen = [cls for cls in checks.values() if not only or any(_selected(cls, t) for t in only)]
    return [cls for cls in chosen if not any(_selected(cls, t) for t in skip)]


def run_checks(checks: Iterable[type[Check]], ctx: Context, pipeline: str = "") -> DoctorResult:
    """Every check at once; wall time is that of the slowest one, capped by the timeout."""
    started_at = datetime.now(UTC)
    clock = time.monotonic()
    instances = [cls() for cls in checks]
    halves = spread.split(instances)
    if halves is None:
        spread.dismiss_helper()
        per_check = _run_group(instances, ctx)
    else:
        groups = spread.run_split(*halves, functools.partial(_run_group, ctx=ctx), ctx.timeout)
        by_check = dict(zip([*halves[0], *halves[1]], groups, strict=True))
        per_check = [by_check[check] for check in instances]  # the order of a one-process run
    findings = link_findings([f for group in per_check for f in group])
    active, suppressed = suppressions.apply(findings, ctx.config.suppressions, suppressions.today())
    return DoctorResult(
        pipeline=pipeline or ctx.config.pipeline,
        started_at=started_at,
        duration_s=time.monotonic() - clock,
        findings=tuple(active),
        suppressed=tuple(suppressed),
    )


def _run_group(checks: Sequence[Check], ctx: Context) -> list[list[Finding]]:
    """Import what the checks need, then run them all at once; one list of findings per check."""
    _import_libraries(checks, ctx)
    # the checks' deadlines start only now: slow imports on a busy machine are not a slow system
    with shared_reads.scope():
        return asyncio.run(_gather(list(checks), ctx))


def require_something_checked(result: DoctorResult, config_path: str, selected: bool = False) -> None:
    """A run whose every check (the config's own aside) had nothing to look at is bad input, never a green
    light; a suppressed finding was looked at all the same."""
    looked = [f for f in (*result.findings, *result.suppressed) if f.component != "config"]
    if any(f.status is not Status.SKIPPED for f in looked):
        return
    reasons = sorted({f.summary for f in result.findings if f.status is Status.SKIPPED})
    raise UsageError(f"nothing to check: {config_path} gives the {'selected checks' if selected else 'checks'} "
                     "nothing to look at" + (f" ({'; '.join(reasons[:3])})" if reasons else ""))


async def _gather(checks: list[Check], ctx: Context) -> list[list[Finding]]:
    return await asyncio.gather(*(run_one(check, ctx) for check in checks))


async def run_one(check: Check, ctx: Context) -> list[Finding]:
    """One check's findings; whatever goes wrong inside it stays inside it."""
    waiting = track()
    try:
        reason = check.applies(ctx)
        if reason:
            return [check.skipped(reason)]
        if inspect.iscoroutinefunction(check.run):
            findings = await asyncio.wait_for(check.run(ctx), ctx.timeout)
        else:
            findings = await asyncio.wait_for(_in_daemon_thread(check.run, ctx), ctx.timeout)
        findings = list(findings)
        return findings or [check.ok("nothing to report")]
    except TimeoutError:
        return [check.error(f"did not finish within {whole_seconds(ctx.timeout)}{waiting_for(waiting)}",
                            impact="Could not tell whether this part works.",
                            advice=retry_advice(check.id, ctx.timeout))]
    except Unauthorized as exc:
        return [check.fail(str(exc))]
    except PipectlError as exc:
        return [check.error(str(exc), impact="Could not tell whether this part works.")]
    except Exception as exc:  # a plugin's bug must not hide the other findings
        return [check.error(f"check crashed: {type(exc).__name__}: {exc}")]


def _import_libraries(checks: Sequence[Check], ctx: Context) -> None:
    """Import what the applicable checks' connectors need, once, before any deadline runs."""
    import importlib

    wanted = [lib for check in checks if check.libraries and _applies(check, ctx) for lib in check.libraries]
    for name in dict.fromkeys(wanted):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S112 - the check itself reports a library that cannot load
            continue


def _applies(check: Check, ctx: Context) -> bool:
    try:
        return check.applies(ctx) is None
    except Exception:  # noqa: BLE001 - run_one reports it
        return False


def _in_daemon_thread(fn: Callable[[Context], Any], ctx: Context) -> asyncio.Future:
    """Run blocking code in a daemon thread, so a check that hangs forever cannot keep the process alive."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def target() -> None:
        try:
            result = list(fn(ctx))
        except BaseException as exc:  # delivered to the awaiting coroutine
            outcome = (None, exc)
        else:
            outcome = (result, None)
        with contextlib.suppress(RuntimeError):  # the run ended (timed out) before this thread did
            loop.call_soon_threadsafe(_settle, future, *outcome)

    context = contextvars.copy_context()  # the check's `Waiting` goes along into the thread
    threading.Thread(target=context.run, args=(target,), name="pipectl-check", daemon=True).start()
    return future


def _settle(future: asyncio.Future, result: Any, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _selected(cls: type[Check], token: str) -> bool:
    return token in (cls.id, cls.component) or cls.id.startswith(token + ".")
