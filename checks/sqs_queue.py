"""sqs.queue — every configured queue is well-formed, exists, lets us in, and is not piling up."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pipectl.connectors.http import safe_url
from pipectl.deadline import retry_advice
from pipectl.errors import NotFound, PipectlError, Unauthorized, Unreachable, UsageError
from pipectl.interface import Check, Context
from pipectl.model import Finding, Severity

if TYPE_CHECKING:
    from pipectl.config import QueueConfig
    from pipectl.connectors.sqs import QueueRef

_BUDGET = 0.25
"""Share of the run's timeout one SQS request may take: botocore tries twice, each with connect + read."""
_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
_NOT_READ = "Could not tell whether this queue works."

T = TypeVar("T")


@dataclass(frozen=True)
class Target:
    """One [[queues]] entry with what is needed to reach it: its name for people, its URL, its place."""

    index: int
    subject: str
    url: str
    endpoint_url: str | None
    region: str | None


def subject_of(index: int, queue: QueueConfig) -> str:
    """The queue as findings name it: its configured name, else the name in its URL."""
    if queue.name:
        return queue.name
    name = (queue.url or "").rstrip("/").rsplit("/", 1)[-1]
    return name or f"queues[{index}]"


def target(ctx: Context, index: int, queue: QueueConfig, url: str | None = None) -> Target:
    """Where to reach a queue: the endpoint from [aws], the region from the URL, [aws] or the environment."""
    aws = ctx.config.aws
    region = aws.region or ctx.environ.get("AWS_DEFAULT_REGION") or ctx.environ.get("AWS_REGION") or None
    return Target(index, subject_of(index, queue), url or queue.url or "", aws.endpoint_url or None, region)


def parse(t: Target) -> QueueRef:
    from pipectl.connectors import sqs

    return sqs.parse_queue_url(t.url, t.endpoint_url)


def stats(ctx: Context, t: Target, ref: QueueRef) -> Any:
    """QueueStats of the queue; the URL's own region wins over the configured one (AWS URLs name theirs)."""
    from pipectl.connectors import sqs

    return sqs.queue_stats(
        t.url, endpoint_url=t.endpoint_url, region=ref.region or t.region,
        timeout=max(ctx.timeout * _BUDGET, 0.5), environ=ctx.config.aws.environ(ctx.environ),
    )


def where(t: Target, ref: QueueRef) -> str:
    """'account 123456789012, region us-east-1' (or the endpoint for an SQS-compatible server)."""
    place = f"account {ref.account}, region {ref.region or t.region or '(none)'}"
    return f"{place} at {safe_url(t.endpoint_url)}" if t.endpoint_url else place


def credentials_problem(ctx: Context, exc: Unauthorized, queue_name: str) -> tuple[str, dict[str, Any], str]:
    """Summary, evidence and advice for refused SQS access, naming the variables (never their values)."""
    missing = [k for k in _KEYS if not ctx.environ.get(k)]
    present = [k for k in (*_KEYS, "AWS_SESSION_TOKEN", "AWS_PROFILE") if ctx.environ.get(k)]
    evidence: dict[str, Any] = {"missing": missing, "present": present}
    if missing and not ctx.environ.get("AWS_PROFILE"):
        summary = (f"no AWS credentials to read queue {queue_name}: {' and '.join(missing)} not set "
                   "(nor AWS_PROFILE)")  # fmt: skip
        fix = f"Set {' and '.join(missing)} (or AWS_PROFILE) in the environment or the config's env file."
    else:
        used = "AWS_PROFILE" if missing else "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
        summary = f"SQS refused the credentials from {used} for queue {queue_name}: {exc}"
        fix = (f"Give the identity in {used} sqs:GetQueueAttributes on {queue_name} (or use keys that "
               "have it).")  # fmt: skip
    return summary, evidence, fix


def in_parallel(fn: Callable[[T], Finding | list[Finding]], items: Sequence[T]) -> list[Finding]:
    """fn over items in threads (each bounded by its own timeouts); findings in the items' order."""
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(items))), thread_name_prefix="pipectl-sqs") as pool:
        results = list(pool.map(fn, items))
    out: list[Finding] = []
    for result in results:
        out.extend(result if isinstance(result, list) else [result])
    return out


class SqsQueue(Check):
    """Detects: a [[queues]] entry whose URL is malformed (region, 12-digit account, queue name), a queue
    that does not exist in that account and region, credentials that are missing or refused, and a queue
    holding more messages than its `max_depth`. Depth and in-flight counts are shown either way.

    Why it matters: in the second incident the frontend had no AWS credentials, so every enqueue failed
    while the endpoint still answered success; a typo in a queue URL fails the same silent way.

    Fix: correct `url` under [[queues]] (copy it from `aws sqs get-queue-url --queue-name NAME`), set
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) where the pipeline runs; a deep queue
    needs its consumers looked at. Re-check with `pipectl doctor --only sqs`.
    """

    id = "sqs.queue"
    libraries = ("botocore.session", "botocore.config")
    component = "sqs"
    severity = Severity.P0

    def applies(self, ctx: Context) -> str | None:
        return None if ctx.config.queues else "no [[queues]] in the config"

    def run(self, ctx: Context) -> list[Finding]:
        targets = [target(ctx, i, q) for i, q in enumerate(ctx.config.queues)]
        limits = {t.index: q.max_depth for t, q in zip(targets, ctx.config.queues, strict=True)}
        return in_parallel(lambda t: self._one(ctx, t, limits[t.index]), targets)

    def _one(self, ctx: Context, t: Target, max_depth: int) -> Finding:
        key = f"queues[{t.index}].url"
        if not t.url:
            return self.fail(f"queue {t.subject} has no url", subject=t.subject, evidence={"key": key},
                             impact="Nothing can be sent to or read from this queue.",
                             advice=f"Set {key} in {ctx.config.source.path}.")  # fmt: skip
        try:
            ref = parse(t)
        except UsageError as exc:
            return self.fail(
                f"malformed URL for queue {t.subject}: {exc}", subject=t.subject,
                evidence={"key": key, **({} if "@" in t.url else {"url": t.url})},  # user:password@ stays out
                impact="Every send to and receive from this queue fails before it leaves the process.",
                advice=f"Correct {key} in {ctx.config.source.path} (`aws sqs get-queue-url --queue-name NAME` "
                       "prints the right one).",
            )  # fmt: skip
        evidence: dict[str, Any] = {"queue": ref.name, "account": ref.account,
                                    "region": ref.region or t.region}  # fmt: skip
        try:
            s = stats(ctx, t, ref)
        except NotFound:
            return self.fail(
                f"queue {ref.name} does not exist in {where(t, ref)}", subject=t.subject, evidence=evidence,
                impact="Messages sent to this URL are rejected; nothing reaches the consumers.",
                advice=f"Correct {key} in {ctx.config.source.path} (`aws sqs list-queues` shows the queues "
                       "there), or create the queue.",
            )  # fmt: skip
        except Unauthorized as exc:
            summary, more, fix = credentials_problem(ctx, exc, ref.name)
            return self.fail(summary, subject=t.subject, evidence={**evidence, **more}, advice=fix,
                             impact="The pipeline cannot send to or read this queue: work is lost or never "
                                    "starts.")  # fmt: skip
        except Unreachable as exc:
            return self.error(str(exc), subject=t.subject, evidence=evidence, impact=_NOT_READ,
                              advice=retry_advice(self.id, ctx.timeout))
        except UsageError as exc:  # no region for a non-AWS URL, or a region that contradicts the URL's
            return self.fail(f"cannot address queue {ref.name}: {exc}", subject=t.subject, evidence=evidence,
                             impact="Nothing can be sent to or read from this queue from here.",
                             advice=f'Set region = "…" under [aws] in {ctx.config.source.path} (or AWS_REGION).')
        except PipectlError as exc:
            return self.error(str(exc), subject=t.subject, evidence=evidence, impact=_NOT_READ)
        evidence.update(visible=s.visible, in_flight=s.in_flight, delayed=s.delayed, max_depth=max_depth)
        counts = f"{s.visible} waiting, {s.in_flight} in flight"
        if s.visible > max_depth:  # a backlog past the limit the team set is a failure, at the check's severity
            return self.fail(
                f"queue {ref.name} holds {s.visible} message(s), more than max_depth {max_depth} "
                f"({s.in_flight} in flight)", subject=t.subject, evidence=evidence,
                impact="Work waits longer than expected: consumers are slow, stopped or failing.",
                advice="Look at the consumers: is one running? Are its calls failing?",
            )  # fmt: skip
        return self.ok(f"queue {ref.name} is reachable: {counts}", subject=t.subject, evidence=evidence)
