"""The sandbox's SQS subscriber, shaped like the second incident's Render service.

It long-polls the job queue and, for each message, creates a run of `process_job/production` with the
message's `job_id`; the message is deleted once Prefect accepted the run. A run it cannot create (the
deployment is not registered, Prefect is unreachable) leaves the message to be received again: after
three receives SQS moves it to the dead-letter queue. Like the original, it builds its SQS client at
import time and exits at once when its AWS environment is missing — on a host that restarts it, a
crash loop. Its environment comes from the Render fake's service.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time

import boto3
import httpx

DEPLOYMENT = "process_job/production"
RETRY_AFTER = 1
"""Seconds before a message that failed is received again (the queue's own timeout is 30 s)."""
RECEIVE_BACKOFF = 5
"""Seconds between attempts when receiving fails (a wrong queue URL, a denied permission)."""
log = logging.getLogger("subscriber")


def get_sqs_client():
    if not (os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")):
        raise ValueError("AWS credentials not configured")
    return boto3.client("sqs")


def trigger(prefect: httpx.Client, job_id: str, message_id: str) -> str:
    """Create the job's flow run; raises when Prefect has no such deployment or does not answer."""
    flow, name = DEPLOYMENT.split("/")
    deployment = _busy_retried(lambda: prefect.get(f"/deployments/name/{flow}/{name}"))
    if deployment.status_code == 404:
        raise LookupError(f"deployment {DEPLOYMENT} not found")
    deployment.raise_for_status()
    once = f"sqs-{message_id}"  # a retried request, or the message delivered twice, gives the same run
    run = _busy_retried(lambda: prefect.post(f"/deployments/{deployment.json()['id']}/create_flow_run",
                                             json={"parameters": {"job_id": job_id}, "idempotency_key": once}))
    run.raise_for_status()
    return run.json()["id"]


def _busy_retried(request, attempts: int = 4) -> httpx.Response:
    """Prefect answers 503 (or 429) while its database is busy: that is worth a few quick retries, not a
    dead letter."""
    for attempt in range(attempts):
        response = request()
        if response.status_code not in (429, 503) or attempt == attempts - 1:
            return response
        time.sleep(0.5 * (attempt + 1))
    return response


def handle(sqs, prefect: httpx.Client, queue_url: str, message: dict) -> None:
    try:
        job_id = str(json.loads(message["Body"])["job_id"])
        run_id = trigger(prefect, job_id, message["MessageId"])
    except Exception as exc:  # noqa: BLE001 - any failure leaves the message for another receive
        log.error("Message %s not processed: %s: %s", message["MessageId"], type(exc).__name__, str(exc)[:200])
        sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"],
                                      VisibilityTimeout=RETRY_AFTER)
        return
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    log.info("Job %s: flow run %s created", job_id, run_id)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        sqs = get_sqs_client()
        queue_url = os.environ["SQS_QUEUE_URL"]
        api_url = os.environ["PREFECT_API_URL"]
    except (ValueError, KeyError) as exc:
        log.error("Startup failed: %s", exc if isinstance(exc, ValueError) else f"{exc.args[0]} is not set")
        sys.exit(1)
    log.info("Polling %s", queue_url.rsplit("/", 1)[-1])
    stopping: list[int] = []  # SIGTERM: finish the poll under way, give back what it brought, exit
    signal.signal(signal.SIGTERM, lambda number, frame: stopping.append(number))
    with httpx.Client(base_url=api_url.rstrip("/"), timeout=10, transport=httpx.HTTPTransport(retries=2)) as prefect:
        while not stopping:
            try:
                received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            except Exception as exc:  # noqa: BLE001 - a wrong URL or a denied permission, logged and retried
                log.error("Receive failed: %s: %s", type(exc).__name__, str(exc)[:200])
                time.sleep(RECEIVE_BACKOFF)
                continue
            for message in received.get("Messages", []):
                if stopping:
                    sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"],
                                                  VisibilityTimeout=0)
                else:
                    handle(sqs, prefect, queue_url, message)
    log.info("Stopped")


if __name__ == "__main__":
    main()
