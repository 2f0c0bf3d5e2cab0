"""Move dead-lettered messages back to their queue with SQS's own message-move task."""

from __future__ import annotations

from collections.abc import Callable

from pipectl.config import PipelineConfig, QueueConfig
from pipectl.connectors import sqs as sqs_api
from pipectl.errors import UsageError
from pipectl.repair import Change, JournalRun, Outcome, Plan, Repair


def find_queue(config: PipelineConfig, name: str) -> QueueConfig:
    for queue in config.queues:
        if name in (queue.name, queue.url, (queue.url or "").rsplit("/", 1)[-1]):
            return queue
    known = ", ".join(q.name or (q.url or "?").rsplit("/", 1)[-1] for q in config.queues) or "none configured"
    raise UsageError(f"no queue {name!r} in the config (queues: {known})")


class Redrive(Repair):
    """Rate-limited, waits for the task to finish, reports moved and failed counts."""

    def __init__(self, config: PipelineConfig, queue: str, environ: dict[str, str], max_per_second: int | None = None,
                 deadline_s: float = 600.0, progress: Callable[[str], None] = lambda text: None) -> None:
        if max_per_second is not None and not 1 <= max_per_second <= sqs_api.MAX_MOVE_RATE:
            raise UsageError(f"--rate {max_per_second}: SQS moves 1 to {sqs_api.MAX_MOVE_RATE} messages per second")
        self.queue = find_queue(config, queue)
        if not self.queue.dlq_url or not self.queue.url:
            raise UsageError(f"queue {queue} has no dlq_url in the config: nothing to redrive from")
        environ = config.aws.environ(environ)
        self.config, self.environ, self.rate, self.deadline_s = config, environ, max_per_second, deadline_s
        self.progress = progress
        self._where = {"endpoint_url": config.aws.endpoint_url, "region": config.aws.region or
                       environ.get("AWS_DEFAULT_REGION") or environ.get("AWS_REGION"), "environ": environ}

    def plan(self) -> Plan:
        dlq = sqs_api.queue_stats(self.queue.dlq_url, **self._where)
        source = sqs_api.queue_stats(self.queue.url, **self._where)
        details = {"dlq_depth": dlq.visible, "queue_depth": source.visible, "rate": self.rate or "unlimited"}
        if not dlq.visible:
            return Plan("redrive", "the dead-letter queue is empty", (), details)
        change = Change(f"queue {self.queue.name or self.queue.url}",
                        f"move {dlq.visible} message(s) from the DLQ back", {"dlq": dlq.visible},
                        {"dlq": 0})
        return Plan("redrive", f"redrive {dlq.visible} message(s) to {self.queue.name or self.queue.url}",
                    (change,), details)

    def apply(self, plan: Plan, journal: JournalRun) -> Outcome:
        handle = sqs_api.start_redrive(self.queue.dlq_url, destination_url=self.queue.url,
                                       max_per_second=self.rate, **self._where)
        status = sqs_api.wait_redrive(self.queue.dlq_url, deadline_s=self.deadline_s, **self._where,
                                      progress=lambda s: self.progress(f"redrive {s.status}: {s.moved} moved"))
        failed = (status.to_move or 0) - status.moved if status.status != "COMPLETED" else 0
        journal.record("change", {"kind": "redrive", "queue": self.queue.name, "task": handle, "moved": status.moved,
                                  "failed": failed, "status": status.status})
        return Outcome(status.status == "COMPLETED", f"redrive {status.status.lower()}: {status.moved} moved",
                       {"moved": status.moved, "failed": failed})

    def verify(self, applied: Outcome) -> Outcome:
        dlq = sqs_api.queue_stats(self.queue.dlq_url, **self._where)
        ok = dlq.visible == 0
        return Outcome(ok, f"dead-letter queue holds {dlq.visible} message(s)", {**applied.details,
                                                                                 "dlq_depth": dlq.visible})
