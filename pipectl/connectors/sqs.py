"""SQS: queue depth and DLQ redrive. The only place pipectl talks to SQS (clients come from `aws`)."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from pipectl.connectors import aws
from pipectl.deadline import waiting_on
from pipectl.errors import ConnectorError, NotFound, Unauthorized, Unreachable, UsageError

_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")
_ACCOUNT = re.compile(r"\d{12}")
_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}|[A-Za-z0-9_-]{1,75}\.fifo")
_AWS_HOST = re.compile(r"sqs\.(?P<a>[^.]+)\.amazonaws\.com(\.cn)?|(?P<b>[^.]+)\.queue\.amazonaws\.com(\.cn)?")
_REGIONLESS_HOSTS = {"sqs.amazonaws.com", "queue.amazonaws.com"}
_AUTH_CODES = {
    "AccessDenied", "AccessDeniedException", "InvalidClientTokenId", "UnrecognizedClientException",
    "SignatureDoesNotMatch", "IncompleteSignature", "MissingAuthenticationToken", "ExpiredToken",
    "InvalidSecurity", "KMS.AccessDeniedException",
}  # fmt: skip
_NOT_FOUND_CODES = {
    "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "ResourceNotFoundException",
}  # fmt: skip
_FINISHED = {"COMPLETED", "FAILED", "CANCELLED"}
_ACCESS_KEY = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{12,}\b")

MAX_MOVE_RATE = 500
"""SQS's limit on a message-move task's MaxNumberOfMessagesPerSecond."""


@dataclass(frozen=True)
class QueueRef:
    """A queue URL taken apart, so errors can name the queue and region without another call."""

    region: str | None  # None for a sandbox URL ({endpoint}/{account}/{name}): the client's region applies
    account: str
    name: str


@dataclass(frozen=True)
class RedrivePolicy:
    """Where a queue dead-letters to, and after how many receives."""

    dlq_arn: str
    max_receive_count: int


@dataclass(frozen=True)
class QueueStats:
    """Approximate depth of one queue: what an operator checks before and after a redrive."""

    arn: str
    visible: int
    in_flight: int
    delayed: int
    redrive: RedrivePolicy | None


@dataclass(frozen=True)
class RedriveStatus:
    """The most recent DLQ move task, as ListMessageMoveTasks reports it."""

    status: str  # RUNNING, CANCELLING, CANCELLED, COMPLETED or FAILED
    moved: int
    to_move: int | None
    failure_reason: str | None = None
    task_handle: str | None = None  # only while RUNNING

    @property
    def finished(self) -> bool:
        return self.status in _FINISHED


def _origin(parts) -> tuple[str, str, int | None]:
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def parse_queue_url(url: str, endpoint_url: str | None = None) -> QueueRef:
    """Reject a malformed queue URL before any network call, with one line saying what is wrong."""
    url = (url or "").strip()
    if not url:
        raise UsageError("queue URL is empty")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or "://" not in url:
        got = repr(url.split("://")[0][:10] + "://") if "://" in url else "no scheme"
        raise UsageError(f"queue URL must start with https:// (got {got})")
    if "@" in parts.netloc:
        raise UsageError("queue URL must not contain user info before the host")
    if parts.query or parts.fragment:
        raise UsageError("queue URL must not have a query string or fragment")
    path, region = parts.path, None
    endpoint = urlsplit(endpoint_url.rstrip("/")) if endpoint_url else None
    host = (parts.hostname or "").lower()
    match = _AWS_HOST.fullmatch(host)
    if endpoint and _origin(parts) == _origin(endpoint):  # user info in the endpoint is credentials, not place
        if endpoint.path and not path.startswith(endpoint.path + "/"):
            raise UsageError(f"queue URL path must start with the endpoint's path {endpoint.path!r}")
        path = path[len(endpoint.path) :]
    elif match:
        region = match.group("a") or match.group("b")
        if parts.scheme != "https":
            raise UsageError("queue URL on amazonaws.com must use https://")
        if not _REGION.fullmatch(region):
            raise UsageError(
                f"queue URL host {host!r} has no valid region (expected sqs.REGION.amazonaws.com)"
            )
    elif host in _REGIONLESS_HOSTS:
        raise UsageError(f"queue URL host {host!r} is missing the region (expected sqs.REGION.amazonaws.com)")
    elif not host:
        raise UsageError("queue URL has no host")
    else:
        expected = "sqs.REGION.amazonaws.com" + (f" or {endpoint_url.rstrip('/')}" if endpoint_url else "")
        raise UsageError(f"queue URL host {host!r} is not an SQS endpoint (expected {expected})")
    segments = path.split("/")
    if len(segments) != 3 or segments[0]:
        raise UsageError(f"queue URL path must be /ACCOUNT/QUEUE_NAME (got {path or '/'!r})")
    account, name = segments[1], segments[2]
    if not _ACCOUNT.fullmatch(account):
        raise UsageError(f"account ID in queue URL must be 12 digits (got {account[:20]!r})")
    if not name:
        raise UsageError("queue URL has an empty queue name")
    if len(name) > 80:
        raise UsageError(f"queue name is {len(name)} characters long (at most 80)")
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"queue name {name!r} may only contain letters, digits, '-' and '_' "
            "(plus an optional '.fifo' suffix)"
        )
    return QueueRef(region=region, account=account, name=name)


def queue_stats(
    url: str, *, endpoint_url: str | None = None, region: str | None = None, timeout: float = 5.0,
    environ: Mapping[str, str] | None = None,
) -> QueueStats:
    """Depth and DLQ wiring of a queue in one call, for status checks and redrive before/after."""
    client = queue_client(url, endpoint_url, region, timeout, environ)
    names = ["QueueArn", "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
             "ApproximateNumberOfMessagesDelayed", "RedrivePolicy"]  # fmt: skip
    with mapped_errors("read attributes of", url):
        attrs = client.get_queue_attributes(QueueUrl=url, AttributeNames=names).get("Attributes", {})
    redrive = None
    if attrs.get("RedrivePolicy"):
        policy = json.loads(attrs["RedrivePolicy"])
        redrive = RedrivePolicy(policy["deadLetterTargetArn"], int(policy["maxReceiveCount"]))
    return QueueStats(
        arn=attrs.get("QueueArn", ""),
        visible=int(attrs.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
        delayed=int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
        redrive=redrive,
    )


def start_redrive(
    dlq_url: str,
    *,
    destination_url: str | None = None,
    max_per_second: int | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    timeout: float = 5.0,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Move a DLQ's messages back (to their source queues, or to destination_url); returns the task handle."""
    if max_per_second is not None and not 1 <= max_per_second <= MAX_MOVE_RATE:
        raise UsageError(f"max messages per second must be 1..{MAX_MOVE_RATE} (got {max_per_second})")
    client = queue_client(dlq_url, endpoint_url, region, timeout, environ)
    params = {"SourceArn": _arn(client, dlq_url)}
    if destination_url:
        parse_queue_url(destination_url, endpoint_url)
        params["DestinationArn"] = _arn(client, destination_url)
    if max_per_second is not None:
        params["MaxNumberOfMessagesPerSecond"] = max_per_second
    with mapped_errors("start a redrive from", dlq_url):
        return client.start_message_move_task(**params)["TaskHandle"]


def redrive_status(
    dlq_url: str, *, endpoint_url: str | None = None, region: str | None = None, timeout: float = 5.0,
    environ: Mapping[str, str] | None = None,
) -> RedriveStatus:
    """The latest redrive of this DLQ; NotFound if none was ever started."""
    client = queue_client(dlq_url, endpoint_url, region, timeout, environ)
    return _latest_task(client, dlq_url, _arn(client, dlq_url))


def wait_redrive(
    dlq_url: str,
    *,
    deadline_s: float = 300.0,
    poll_s: float = 1.0,
    progress: Callable[[RedriveStatus], None] | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    timeout: float = 5.0,
    environ: Mapping[str, str] | None = None,
) -> RedriveStatus:
    """Poll until the latest redrive finishes; ConnectorError if it still runs at the deadline."""
    client = queue_client(dlq_url, endpoint_url, region, timeout, environ)
    arn = _arn(client, dlq_url)
    end = time.monotonic() + deadline_s
    while True:
        status = _latest_task(client, dlq_url, arn)
        if progress is not None:
            progress(status)
        if status.finished:
            return status
        left = end - time.monotonic()
        if left <= 0:
            raise ConnectorError(
                f"redrive of {_name(dlq_url)} still {status.status} after {deadline_s:.0f}s "
                f"({status.moved}/{status.to_move} moved); it continues in the background"
            )
        time.sleep(min(poll_s, left))


def _latest_task(client, dlq_url: str, arn: str) -> RedriveStatus:
    with mapped_errors("list redrives of", dlq_url):
        results = client.list_message_move_tasks(SourceArn=arn, MaxResults=1).get("Results", [])
    if not results:
        raise NotFound(f"no redrive has been started for queue {_name(dlq_url)}")
    task = results[0]
    to_move = task.get("ApproximateNumberOfMessagesToMove")
    return RedriveStatus(
        status=task["Status"],
        moved=int(task.get("ApproximateNumberOfMessagesMoved", 0)),
        to_move=None if to_move is None else int(to_move),
        failure_reason=task.get("FailureReason"),
        task_handle=task.get("TaskHandle"),
    )


def _arn(client, url: str) -> str:
    """Ask the service rather than build the ARN: it knows the partition and the sandbox's region."""
    with mapped_errors("read attributes of", url):
        attrs = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return attrs["QueueArn"]


def queue_client(url: str, endpoint_url: str | None, region: str | None, timeout: float,
                 environ: Mapping[str, str] | None = None):
    """A client for the queue's region; credentials from `environ` (e.g. the config's .env) when given,
    else the AWS credential chain."""
    ref = parse_queue_url(url, endpoint_url)
    if region and ref.region and region != ref.region:
        raise UsageError(f"queue {ref.name} is in region {ref.region} but region {region} was requested")
    return aws.client("sqs", region or ref.region, endpoint_url, timeout, environ)


@contextlib.contextmanager
def mapped_errors(doing: str, url: str) -> Iterator[None]:
    """Turn botocore failures into pipectl's one-line errors, never echoing credentials."""
    from botocore import exceptions as bx

    name = _name(url)
    try:
        with waiting_on(_host(None, url), f"{doing} {name}"):
            yield
    except (bx.NoCredentialsError, bx.PartialCredentialsError):
        raise Unauthorized(
            "no usable AWS credentials: the AWS credential chain looks for AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(and AWS_SESSION_TOKEN), then AWS_PROFILE / ~/.aws/credentials, then an instance role"
        ) from None
    except (bx.ConnectTimeoutError, bx.ReadTimeoutError) as exc:
        host = _host(exc, url)
        raise Unreachable(f"SQS at {host} did not answer in time while trying to {doing} {name}") from None
    except (bx.EndpointConnectionError, bx.ConnectionClosedError, bx.HTTPClientError) as exc:
        raise Unreachable(f"could not connect to SQS at {_host(exc, url)} to {doing} {name}") from None
    except bx.ClientError as exc:
        err = exc.response.get("Error", {})
        code = str(err.get("Code", "")) or "Unknown"
        http = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        detail = _one_line(str(err.get("Message") or ""))
        text = f"{code}: {detail}" if detail else code
        if code in _AUTH_CODES or http == 403:
            raise Unauthorized(f"SQS refused to {doing} {name}: {text}") from None
        if code in _NOT_FOUND_CODES:
            raise NotFound(f"SQS queue not found while trying to {doing} {name}: {text}") from None
        raise ConnectorError(f"SQS failed to {doing} {name}: {text} (HTTP {http})") from None


def _name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1] or url


def _host(exc: Exception, url: str) -> str:
    target = getattr(exc, "kwargs", {}).get("endpoint_url") or url
    return urlsplit(target).netloc.rsplit("@", 1)[-1] or target


def _one_line(text: str, limit: int = 200) -> str:
    text = _ACCESS_KEY.sub("<access key>", " ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def dead_letter_pairs(region: str | None, endpoint_url: str | None, timeout: float,
                      environ: Mapping[str, str] | None = None) -> list[tuple[str, str | None]]:
    """(queue URL, its dead-letter queue's URL or None) for every queue that has a RedrivePolicy."""
    client = aws.client("sqs", region, endpoint_url, timeout, environ)
    with mapped_errors("list the queues of", endpoint_url or f"region {region}"):
        urls = client.list_queues(MaxResults=1000).get("QueueUrls", [])
        attrs = {url: client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn", "RedrivePolicy"])
                 ["Attributes"] for url in urls}
    by_arn = {a["QueueArn"]: url for url, a in attrs.items()}
    return [(url, by_arn.get(json.loads(a["RedrivePolicy"]).get("deadLetterTargetArn")))
            for url, a in attrs.items() if a.get("RedrivePolicy")]


@dataclass(frozen=True)
class PeekedMessage:
    """A message seen in a queue without taking it: its body and what SQS says about its history."""

    message_id: str
    body: str
    receive_count: int | None
    sent: float | None
    """SentTimestamp in seconds since the epoch: when it was first sent (a dead-lettered message keeps it)."""


def peek_messages(
    url: str, *, limit: int = 100, visibility_s: int = 5, endpoint_url: str | None = None,
    region: str | None = None, timeout: float = 5.0, environ: Mapping[str, str] | None = None,
) -> tuple[list[PeekedMessage], QueueStats]:
    """Up to `limit` visible messages of a queue (meant for a DLQ), and its depth before looking.

    Never deletes: each message read is hidden for at most `visibility_s` seconds (made visible again as
    soon as all are read), and its receive count in this queue goes up by one. Use it on a dead-letter
    queue only: on a working queue the extra receives would push messages towards their dead-letter queue.
    """
    stats = queue_stats(url, endpoint_url=endpoint_url, region=region, timeout=timeout, environ=environ)
    client = queue_client(url, endpoint_url, region, timeout, environ)
    members = client.meta.service_model.operation_model("ReceiveMessage").input_shape.members
    names = ["ApproximateReceiveCount", "SentTimestamp"]
    wanted = {"MessageSystemAttributeNames" if "MessageSystemAttributeNames" in members else "AttributeNames": names}
    seen: dict[str, PeekedMessage] = {}
    handles: dict[str, str] = {}  # the latest receipt handle of each message: only it can release it
    try:
        while len(seen) < min(limit, stats.visible):
            with mapped_errors("read messages of", url):
                batch = client.receive_message(QueueUrl=url, MaxNumberOfMessages=min(10, limit - len(seen)),
                                               VisibilityTimeout=visibility_s, WaitTimeSeconds=1,
                                               **wanted).get("Messages", [])
            handles.update((m["MessageId"], m["ReceiptHandle"]) for m in batch)
            fresh = [m for m in batch if m["MessageId"] not in seen]
            if not fresh:
                break
            for m in fresh:
                attrs = m.get("Attributes", {})
                count, sent = attrs.get("ApproximateReceiveCount"), attrs.get("SentTimestamp")
                seen[m["MessageId"]] = PeekedMessage(m["MessageId"], m.get("Body", ""),
                                                     None if count is None else int(count),
                                                     None if sent is None else int(sent) / 1000)
    finally:  # visible again now, for the next look or a redrive
        held = list(handles.values())
        for start in range(0, len(held), 10):
            entries = [{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                       for i, h in enumerate(held[start : start + 10])]
            with contextlib.suppress(ConnectorError), mapped_errors("release messages of", url):
                client.change_message_visibility_batch(QueueUrl=url, Entries=entries)
    return list(seen.values()), stats
