"""service.queue — the queue URLs a hosted service is given name queues that exist."""

from __future__ import annotations

import re

from pipectl.interface import Check, Context
from pipectl.model import Finding, Severity

_QUEUE_KEY = re.compile(r"(^|_)(QUEUE|DLQ)(_URL)?$")


class ServiceQueue(Check):
    """Detects: a hosted service whose queue variables (`SQS_QUEUE_URL`, `SQS_DLQ_URL`, any `*_QUEUE_URL`)
    name a queue that does not exist, or one pipectl's config does not watch. The URL is read from the
    provider and looked up with pipectl's own AWS credentials.

    Why it matters: the second incident's subscriber could not receive because of a wrong queue URL; it
    kept running and logging `InvalidQueueUrl`, while every check of the configured queue passed.

    Fix: `pipectl service env set SERVICE SQS_QUEUE_URL=<the configured queue's URL>` (printed in full).
    """

    id = "service.queue"
    component = "hosting"
    severity = Severity.P1
    libraries = ("httpx", "botocore.session", "botocore.config")

    def applies(self, ctx: Context) -> str | None:
        return None if ctx.config.services and ctx.config.queues else "no [[services]] and [[queues]] to compare"

    def run(self, ctx: Context) -> list[Finding]:
        return [self._judge(ctx, service) for service in ctx.config.services]

    def _judge(self, ctx: Context, service) -> Finding:
        from pipectl.connectors.hosting import ProviderError
        from pipectl.errors import UsageError
        from pipectl.services import provider_for

        try:
            env = provider_for(service, ctx.environ, ctx.timeout).env(service.id)
        except (UsageError, ProviderError) as exc:
            return self.skipped(f"{service.name}: environment not readable ({exc}); see service.env",
                                subject=service.name)
        urls = {key: value.strip() for key, value in env.items() if _QUEUE_KEY.search(key) and value.strip()}
        if not urls:
            return self.ok(f"{service.name}: names no queue", subject=service.name)
        known = {url for q in ctx.config.queues for url in (q.url, q.dlq_url) if url}
        judged = {key: _why(ctx, url) for key, url in urls.items() if url not in known}
        problems = {key: why for key, (why, broken) in judged.items() if broken}
        if problems:
            return self._fail(ctx, service, problems, urls)
        if judged:  # queues that exist, but that pipectl does not look at: worth knowing, not broken
            return self.warn(f"{service.name}: " + "; ".join(f"{k} {why}" for k, (why, _) in sorted(judged.items())),
                             subject=service.name, evidence={"keys": sorted(judged)},
                             advice="Add the queue under [[queues]] so doctor watches it too, or point the "
                                    "service at the configured one.")
        return self.ok(f"{service.name}: {', '.join(urls)} name configured queue(s)", subject=service.name,
                       evidence={"keys": sorted(urls)})

    def _fail(self, ctx: Context, service, problems: dict[str, str], urls: dict[str, str]) -> Finding:
        from pipectl.services import set_command, value_source

        keys = sorted(problems)
        fixable = [k for k in keys if not value_source(ctx.config, k).startswith(f"{k}=env:")]
        return self.fail(
            f"{service.name}: " + "; ".join(f"{k} {problems[k]}" for k in keys), subject=service.name,
            evidence={"keys": keys, "queues": {k: urls[k].rsplit("/", 1)[-1] for k in keys}},
            impact=f"{service.name} cannot reach its queue: messages are not received (or not sent).",
            fix=set_command(ctx.config, service.name, fixable) if fixable == keys else (),
            advice="" if fixable == keys else f"Set {', '.join(keys)} on {service.name} to the right queue URL.")


def _why(ctx: Context, url: str) -> tuple[str, bool]:
    """What is wrong with a queue URL the config does not list, and whether it is broken (else only
    unwatched: the queue exists)."""
    from pipectl.checks.sqs_queue import Target, parse, stats

    from pipectl.errors import NotFound, PipectlError, UsageError

    name = url.rstrip("/").rsplit("/", 1)[-1]
    aws = ctx.config.aws
    t = Target(0, name, url, aws.endpoint_url or None, aws.region or ctx.environ.get("AWS_DEFAULT_REGION"))
    try:
        stats(ctx, t, parse(t))
    except UsageError as exc:
        return f"is not a queue URL ({exc})", True
    except NotFound:
        return f"names queue {name}, which does not exist", True
    except PipectlError as exc:
        return f"names queue {name}, which could not be read ({exc})", False
    return f"names queue {name}, which pipectl's config does not watch", False
