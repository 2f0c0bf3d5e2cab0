"""Sandbox SQS: moto's server plus the pieces pipectl needs that moto lacks.

moto (5.2.x) dead-letters messages but has no message move tasks (DLQ redrive), and
under IAM enforcement it answers JSON-protocol SQS calls with XML errors that boto3
cannot parse. This module adds StartMessageMoveTask / ListMessageMoveTasks /
CancelMessageMoveTask as methods of moto's SQSResponse (so moto's own request parsing,
IAM check and JSON serialisation apply) and wraps the WSGI app to turn XML errors on
SQS JSON requests into the JSON shape the real service sends.

Run: python -m pipectl.sandbox.sqs_server --host 127.0.0.1 --port 4566
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

_SQS_JSON_TARGET = "AmazonSQS."
_MAX_RATE = 500  # the real service's upper bound for MaxNumberOfMessagesPerSecond


@dataclass
class _MoveTask:
    handle: str
    source_arn: str
    destination_arn: str | None
    rate: int | None
    to_move: int
    started_ms: int
    status: str = "RUNNING"
    moved: int = 0
    failure: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def entry(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Status": self.status,
            "SourceArn": self.source_arn,
            "ApproximateNumberOfMessagesMoved": self.moved,
            "ApproximateNumberOfMessagesToMove": self.to_move,
            "StartedTimestamp": self.started_ms,
        }
        if self.status == "RUNNING":
            out["TaskHandle"] = self.handle
        if self.destination_arn:
            out["DestinationArn"] = self.destination_arn
        if self.rate:
            out["MaxNumberOfMessagesPerSecond"] = self.rate
        if self.failure:
            out["FailureReason"] = self.failure
        return out


_tasks: dict[str, _MoveTask] = {}  # handle -> task, in start order
_tasks_lock = threading.Lock()
_installed = False


def _queue_for_arn(arn: str | None):
    from moto.sqs.exceptions import QueueDoesNotExist, SQSException
    from moto.sqs.models import sqs_backends

    parts = (arn or "").split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs":
        raise SQSException("InvalidAddress", f"Invalid queue ARN: {arn!r}")
    _, _, _, region, account, name = parts
    try:
        return sqs_backends[account][region].get_queue(name)
    except (KeyError, QueueDoesNotExist):
        raise SQSException("ResourceNotFoundException", f"The resource {arn} does not exist.") from None


def _dead_letter_sources(dlq) -> list:
    from moto.sqs.models import sqs_backends

    backend = sqs_backends[dlq.account_id][dlq.region]
    return [q for q in backend.queues.values() if q.dead_letter_queue is dlq]


def _run_move(task: _MoveTask) -> None:
    """Move visible DLQ messages as fresh messages (receive count 0), at most `rate` per second."""
    from moto.sqs.models import sqs_backends

    try:
        dlq = _queue_for_arn(task.source_arn)
        fixed = _queue_for_arn(task.destination_arn) if task.destination_arn else None
        sources = _dead_letter_sources(dlq)
        while task.moved < task.to_move and not task.cancel.is_set():
            tick = time.monotonic()
            batch = task.rate or (task.to_move - task.moved)
            for _ in range(min(batch, task.to_move - task.moved)):
                with dlq._messages_lock:
                    msg = next((m for m in dlq._messages if m.visible and not m.delayed), None)
                    if msg is None:
                        break
                    dlq._messages.remove(msg)
                dest = fixed or _origin(msg, sources)
                if dest is None:
                    with dlq._messages_lock:
                        dlq._messages.append(msg)
                    raise RuntimeError("message has no known source queue; pass DestinationArn")
                try:
                    sqs_backends[dest.account_id][dest.region].send_message(
                        dest.name,
                        msg.body,
                        message_attributes=msg.message_attributes,
                        deduplication_id=msg.deduplication_id,
                        group_id=msg.group_id,
                        system_attributes=msg.system_attributes,
                    )
                except Exception:
                    with dlq._messages_lock:
                        dlq._messages.append(msg)
                    raise
                task.moved += 1
            else:
                if task.rate and task.moved < task.to_move:
                    task.cancel.wait(max(0.0, 1.0 - (time.monotonic() - tick)))
                continue
            break  # the DLQ ran out of visible messages
        task.status = "CANCELLED" if task.cancel.is_set() else "COMPLETED"
    except Exception as exc:  # reported through ListMessageMoveTasks
        task.failure = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        task.status = "FAILED"


def _origin(msg, sources: list):
    arn = getattr(msg, "_pipectl_source_arn", None)
    for queue in sources:
        if queue.queue_arn == arn:
            return queue
    return sources[0] if len(sources) == 1 else None


# --- methods grafted onto moto.sqs.responses.SQSResponse -------------------------------


def _start_message_move_task(self):
    from moto.core.responses import ActionResult
    from moto.sqs.exceptions import SQSException

    source_arn = self._get_param("SourceArn")
    destination_arn = self._get_param("DestinationArn")
    rate = self._get_param("MaxNumberOfMessagesPerSecond")
    dlq = _queue_for_arn(source_arn)
    if destination_arn:
        if _queue_for_arn(destination_arn) is dlq:
            raise SQSException("InvalidParameterValue", "DestinationArn must differ from SourceArn.")
    elif not _dead_letter_sources(dlq):
        raise SQSException("InvalidParameterValue", "Source queue must be configured as a Dead Letter Queue.")
    if rate is not None and not 1 <= int(rate) <= _MAX_RATE:
        raise SQSException("InvalidParameterValue", f"MaxNumberOfMessagesPerSecond must be 1..{_MAX_RATE}.")
    with _tasks_lock:
        if any(t.source_arn == source_arn and t.status == "RUNNING" for t in _tasks.values()):
            raise SQSException(
                "UnsupportedOperation", "There is already a task running for this source queue."
            )
        task = _MoveTask(
            handle=uuid.uuid4().hex,
            source_arn=source_arn,
            destination_arn=destination_arn,
            rate=int(rate) if rate is not None else None,
            to_move=len(dlq.messages),
            started_ms=int(time.time() * 1000),
        )
        _tasks[task.handle] = task
    threading.Thread(target=_run_move, args=(task,), name=f"move-{task.handle[:8]}", daemon=True).start()
    return ActionResult({"TaskHandle": task.handle})


def _list_message_move_tasks(self):
    from moto.core.responses import ActionResult

    source_arn = self._get_param("SourceArn")
    _queue_for_arn(source_arn)
    limit = max(1, min(int(self._get_param("MaxResults") or 1), 10))
    with _tasks_lock:
        mine = [t for t in _tasks.values() if t.source_arn == source_arn]
    return ActionResult({"Results": [t.entry() for t in reversed(mine)][:limit]})


def _cancel_message_move_task(self):
    from moto.core.responses import ActionResult
    from moto.sqs.exceptions import SQSException

    task = _tasks.get(self._get_param("TaskHandle") or "")
    if task is None:
        raise SQSException("ResourceNotFoundException", "The task handle does not exist.")
    if task.status != "RUNNING":
        message = f"Only a RUNNING task can be cancelled (it is {task.status})."
        raise SQSException("UnsupportedOperation", message)
    task.cancel.set()
    task.status = "CANCELLING"
    return ActionResult({"ApproximateNumberOfMessagesMoved": task.moved})


def install() -> None:
    """Graft move tasks onto moto and remember each dead-lettered message's source queue."""
    global _installed
    if _installed:
        return
    from moto.sqs.models import SQSBackend
    from moto.sqs.responses import SQSResponse

    SQSResponse.start_message_move_task = _start_message_move_task
    SQSResponse.list_message_move_tasks = _list_message_move_tasks
    SQSResponse.cancel_message_move_task = _cancel_message_move_task

    original = SQSBackend.receive_message

    def receive_message(self, queue_name, *args, **kwargs):
        queue = self.queues.get(queue_name)
        dlq = queue.dead_letter_queue if queue is not None else None
        before = {m.id for m in queue._messages} if dlq is not None else set()
        try:
            return original(self, queue_name, *args, **kwargs)
        finally:
            for msg in dlq._messages if dlq is not None else ():
                if msg.id in before:
                    msg._pipectl_source_arn = queue.queue_arn

    SQSBackend.receive_message = receive_message
    _installed = True


# --- WSGI wrapper ------------------------------------------------------------------------


class JsonErrorsForSqs:
    """Rewrites moto's XML error bodies on SQS JSON-protocol calls into the AWS JSON error shape."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith(_SQS_JSON_TARGET):
            return self.app(environ, start_response)
        captured: list = []

        def capture(status, headers, exc_info=None):
            captured[:] = [status, headers]
            return lambda _data: None  # moto never uses write()

        result = self.app(environ, capture)
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        status, headers = captured
        if int(status.split()[0]) >= 400 and body.lstrip().startswith(b"<"):
            translated = _json_error(body)
            if translated is not None:
                query_error, body = translated
                keep = [(k, v) for k, v in headers if k.lower() in ("x-amzn-requestid", "date", "server")]
                headers = [
                    *keep,
                    ("Content-Type", "application/x-amz-json-1.0"),
                    ("x-amzn-query-error", query_error),
                    ("Content-Length", str(len(body))),
                ]
        start_response(status, headers)
        return [body]


def _json_error(xml_body: bytes) -> tuple[str, bytes] | None:
    try:
        root = ElementTree.fromstring(xml_body)
    except ElementTree.ParseError:
        return None
    code = root.findtext(".//Code")
    if not code:
        return None
    kind = root.findtext(".//Type") or "Sender"
    shape = "AccessDeniedException" if code == "AccessDenied" else code
    body = {"__type": f"com.amazon.coral.service#{shape}", "message": root.findtext(".//Message") or code}
    return f"{code};{kind}", json.dumps(body).encode()


def make_app():
    """moto's dispatcher with our SQS additions, ready for any WSGI server."""
    from moto.server import DomainDispatcherApplication, create_backend_app

    install()
    return JsonErrorsForSqs(DomainDispatcherApplication(create_backend_app))


def set_auth(endpoint_url: str, enforce: bool, timeout: float = 5.0) -> None:
    """Turn moto's IAM enforcement on or off (it is off by default), for tests and demos."""
    req = urllib.request.Request(
        endpoint_url.rstrip("/") + "/moto-api/reset-auth",
        data=b"0" if enforce else b"inf",
        headers={"Content-Type": "text/plain"},  # a form content type would hide the body from moto
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        resp.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipectl.sandbox.sqs_server", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    args = parser.parse_args(argv)

    from moto.server import MotoRequestHandler
    from werkzeug.serving import make_server

    server = make_server(args.host, args.port, make_app(), threaded=True, request_handler=MotoRequestHandler)

    def stop(*_: object) -> None:
        # shutdown() waits for serve_forever() to return, so it must run off the main thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"sqs sandbox listening on http://{args.host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    print("sqs sandbox stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
