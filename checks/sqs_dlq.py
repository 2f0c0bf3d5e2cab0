"""sqs.dlq — every queue dead-letters somewhere, to the configured DLQ, and that DLQ is empty."""

from __future__ import annotations

import json
import shlex
from typing import Any

from pipectl.checks.sqs_queue import Target, in_parallel, parse, stats, target

from pipectl.connectors.http import safe_url
from pipectl.errors import NotFound, PipectlError, Unauthorized, Unreachable, UsageError
from pipectl.interface import Check, Context
from pipectl.model import Finding, Severity

_SEE_QUEUE = "cannot read queue {name} (see sqs.queue)"


class SqsDlq(Check):
    """Detects: a queue without a redrive policy (no dead-letter queue), a redrive policy pointing at
    another queue than the configured `dlq_url`, and a dead-letter queue that holds messages.

    Why it matters: without a DLQ a message that keeps failing is retried until it expires and is lost;
    with one, every message in it is a job that failed `maxReceiveCount` times and was never done.

    Fix: find why the messages failed (the other findings usually name it) and fix that first, then move
    them back with `pipectl redrive QUEUE`. A missing DLQ is added with
    `aws sqs set-queue-attributes` (RedrivePolicy with deadLetterTargetArn and maxReceiveCount).
    """

    id = "sqs.dlq"
    libraries = ("botocore.session", "botocore.config")
    component = "sqs"
    severity = Severity.P1

    def applies(self, ctx: Context) -> str | None:
        return None if ctx.config.queues else "no [[queues]] in the config"

    def run(self, ctx: Context) -> list[Finding]:
        pairs = [(target(ctx, i, q), q.dlq_url) for i, q in enumerate(ctx.config.queues)]
        return in_parallel(lambda pair: self._one(ctx, *pair), pairs)

    def _one(self, ctx: Context, t: Target, dlq_url: str | None) -> Finding:
        try:
            ref = parse(t)
            queue = stats(ctx, t, ref)
        except (UsageError, NotFound, Unauthorized, Unreachable) as exc:  # sqs.queue reports these
            reason = _SEE_QUEUE.format(name=t.subject)
            return self.skipped(reason, subject=t.subject, evidence={"reason": _first_line(exc)})
        except PipectlError as exc:
            return self.error(str(exc), subject=t.subject,
                              impact="Could not tell whether failed messages are kept.")
        evidence: dict[str, Any] = {"queue": ref.name}
        if queue.redrive is None:
            return self.fail(
                f"queue {ref.name} has no dead-letter queue: failing messages retry forever or are lost",
                subject=t.subject, evidence=evidence,
                impact="A message that keeps failing is retried until it expires, then silently dropped.",
                fix=_add_dlq(t, ref.region or t.region, queue.arn,
                             _configured_name(t, dlq_url) or f"{ref.name}-dlq", create=not dlq_url),
            )  # fmt: skip
        target_name = queue.redrive.dlq_arn.rsplit(":", 1)[-1]
        evidence.update(dlq=target_name, max_receive_count=queue.redrive.max_receive_count)
        if dlq_url:
            dlq = Target(t.index, t.subject, dlq_url, t.endpoint_url, t.region)
            try:
                dlq_ref = parse(dlq)
                dlq_stats = stats(ctx, dlq, dlq_ref)
            except UsageError as exc:
                return self.fail(f"malformed dlq_url for queue {t.subject}: {exc}", subject=t.subject,
                                 evidence={**evidence, "key": f"queues[{t.index}].dlq_url"},
                                 advice=f"Correct queues[{t.index}].dlq_url in {ctx.config.source.path}.")
            except NotFound:
                return self.fail(
                    f"the configured dead-letter queue {dlq_ref.name} does not exist", subject=t.subject,
                    evidence={**evidence, "configured": dlq_ref.name},
                    impact="Failed messages cannot be inspected or redriven from the configured queue.",
                    **({"fix": [_aws(t, ref.region or t.region, "create-queue", "--queue-name", target_name)],
                        "advice": f"The RedrivePolicy of {ref.name} already names {target_name}."}
                       if dlq_ref.name == target_name else
                       {"advice": f"Set queues[{t.index}].dlq_url to the URL of {target_name} in "
                                  f"{ctx.config.source.path}."}),
                )  # fmt: skip
            except PipectlError as exc:
                return self._unread(exc, t, evidence)
            if dlq_stats.arn and dlq_stats.arn != queue.redrive.dlq_arn:
                if not self._exists(ctx, t, queue.redrive.dlq_arn):  # a policy naming no queue: point it back
                    return self.fail(
                        f"queue {ref.name} dead-letters to {target_name}, which does not exist (the configured "
                        f"dead-letter queue is {dlq_ref.name})", subject=t.subject,
                        evidence={**evidence, "configured": dlq_ref.name},
                        impact="Messages that keep failing have nowhere to go and are lost.",
                        fix=_attach(t, ref.region or t.region, dlq_stats.arn, queue.redrive.max_receive_count),
                    )  # fmt: skip
                return self.fail(
                    f"queue {ref.name} dead-letters to {target_name}, not to the configured {dlq_ref.name}",
                    subject=t.subject, evidence={**evidence, "configured": dlq_ref.name},
                    impact="Failed messages pile up where nobody looks, and a redrive reads the wrong queue.",
                    advice=f"Set queues[{t.index}].dlq_url to the URL of {target_name} in "
                           f"{ctx.config.source.path} (or change the queue's RedrivePolicy).",
                )  # fmt: skip
        else:
            try:
                url = _url_from_arn(queue.redrive.dlq_arn, t)
                dlq = Target(t.index, t.subject, url, t.endpoint_url, t.region)
                dlq_stats = stats(ctx, dlq, parse(dlq))
            except (UsageError, ValueError):
                return self.skipped(f"cannot work out the URL of dead-letter queue {target_name}: set "
                                    f"queues[{t.index}].dlq_url", subject=t.subject, evidence=evidence)
            except NotFound:
                return self.fail(
                    f"queue {ref.name} dead-letters to {target_name}, which does not exist",
                    subject=t.subject, evidence=evidence,
                    impact="Messages that keep failing have nowhere to go and are lost.",
                    fix=[_aws(t, ref.region or t.region, "create-queue", "--queue-name", target_name)],
                    advice="The queue's RedrivePolicy already names it: create it.",
                )  # fmt: skip
            except PipectlError as exc:
                return self._unread(exc, t, evidence)
        held = dlq_stats.visible + dlq_stats.in_flight + dlq_stats.delayed
        evidence.update(messages=held)
        if held:
            return self.fail(
                f"{held} message(s) in dead-letter queue {target_name}: each was received "
                f"{queue.redrive.max_receive_count} times from {ref.name} and never processed",
                subject=t.subject, evidence=evidence,
                impact=f"{held} job(s) were given up on and will never be done unless moved back.",
                fix=[f"pipectl redrive {shlex.quote(t.subject)}"] if dlq_url else [],
                advice="Fix why they failed first (the other findings usually say), or they come back."
                       + ("" if dlq_url else f' Add dlq_url = "{dlq.url}" to queues[{t.index}] in '
                                             f"{ctx.config.source.path}, then `pipectl redrive "
                                             f"{shlex.quote(t.subject)}`."),
            )  # fmt: skip
        return self.ok(f"queue {ref.name} dead-letters to {target_name}, which is empty", subject=t.subject,
                       evidence=evidence)

    @staticmethod
    def _exists(ctx: Context, t: Target, arn: str) -> bool:
        """Whether the queue an ARN names exists (True when that cannot be told: no claim without proof)."""
        try:
            other = Target(t.index, t.subject, _url_from_arn(arn, t), t.endpoint_url, t.region)
            stats(ctx, other, parse(other))
        except NotFound:
            return False
        except (PipectlError, ValueError):
            return True
        return True

    def _unread(self, exc: PipectlError, t: Target, evidence: dict[str, Any]) -> Finding:
        """The dead-letter queue could not be read although its source queue could."""
        if isinstance(exc, Unauthorized):
            return self.fail(f"cannot read dead-letter queue {evidence['dlq']}: {exc}", subject=t.subject,
                             evidence=evidence, impact="Nobody can see or redrive the failed messages.",
                             advice="Allow sqs:GetQueueAttributes on the dead-letter queue for these "
                                    "credentials.")  # fmt: skip
        return self.error(str(exc), subject=t.subject, evidence=evidence,
                          impact="Could not tell whether failed messages are piling up.")


def _url_from_arn(arn: str, t: Target) -> str:
    """The DLQ's URL from its ARN (arn:PARTITION:sqs:REGION:ACCOUNT:NAME), on the queue's endpoint."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs":
        raise ValueError(f"not an SQS queue ARN: {arn!r}")
    partition, region, account, name = parts[1], parts[3], parts[4], parts[5]
    if t.endpoint_url:
        return f"{safe_url(t.endpoint_url).rstrip('/')}/{account}/{name}"
    suffix = ".amazonaws.com.cn" if partition == "aws-cn" else ".amazonaws.com"
    return f"https://sqs.{region}{suffix}/{account}/{name}"


def _aws(t: Target, region: str | None, command: str, *args: str) -> str:
    """An `aws sqs` command aimed at the queue's region and endpoint, runnable as printed."""
    opts = [*(["--region", region] if region else []), *(["--endpoint-url", safe_url(t.endpoint_url)]
                                                         if t.endpoint_url else [])]
    return " ".join(["aws", "sqs", command, *(shlex.quote(a) for a in (*opts, *args))])


def _add_dlq(t: Target, region: str | None, queue_arn: str | None, dlq_name: str, create: bool) -> list[str]:
    """The AWS CLI commands that give the queue a dead-letter queue (maxReceiveCount 5)."""
    arn = queue_arn.rsplit(":", 1)[0] + ":" + dlq_name if queue_arn else f"<ARN of {dlq_name}>"
    attach = _attach(t, region, arn, 5)
    return [_aws(t, region, "create-queue", "--queue-name", dlq_name), *attach] if create else attach


def _attach(t: Target, region: str | None, dlq_arn: str, max_receive_count: int) -> list[str]:
    """`set-queue-attributes` giving the queue a RedrivePolicy to `dlq_arn`."""
    policy = json.dumps({"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                                      "maxReceiveCount": str(max_receive_count)})})
    return [_aws(t, region, "set-queue-attributes", "--queue-url", t.url, "--attributes", policy)]


def _configured_name(t: Target, dlq_url: str | None) -> str | None:
    """The name of the configured dead-letter queue, when there is one and its URL parses."""
    try:
        return parse(Target(t.index, t.subject, dlq_url, t.endpoint_url, t.region)).name if dlq_url else None
    except UsageError:
        return None


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
