"""The sandbox's SQS queues (on the moto-based server): the job queue and its dead-letter queue."""

from __future__ import annotations

import json
import time

from pipectl.sandbox.layout import AWS_KEY_ID, AWS_SECRET, REGION

QUEUE = "job-queue"
DLQ = "job-queue-dlq"
MAX_RECEIVE_COUNT = 3


def client(endpoint: str):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "sqs", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=AWS_KEY_ID,
        aws_secret_access_key=AWS_SECRET, config=Config(retries={"max_attempts": 2, "mode": "standard"}),
    )


def create(endpoint: str) -> tuple[str, str]:
    """Queue + DLQ with a redrive policy (maxReceiveCount 3); returns their URLs."""
    sqs = client(endpoint)
    dlq_url = sqs.create_queue(QueueName=DLQ)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)})
    queue_url = sqs.create_queue(QueueName=QUEUE, Attributes={"RedrivePolicy": policy})["QueueUrl"]
    return queue_url, dlq_url


def reset(endpoint: str) -> tuple[str, str]:
    """Delete and recreate both queues: a deleted queue comes back, the redrive policy and every other
    attribute are as `create` sets them, and both are empty (in-flight messages too). Returns their URLs."""
    from pipectl.sandbox.sqs_server import set_auth

    set_auth(endpoint, False)  # IAM enforcement (a test or a person may have turned it on) is off again
    sqs = client(endpoint)
    for name in (QUEUE, DLQ):
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except sqs.exceptions.QueueDoesNotExist:
            continue
        sqs.delete_queue(QueueUrl=url)
    return create(endpoint)


def drain(endpoint: str, *urls: str) -> None:
    """Empty the queues by receiving and deleting (PurgeQueue is allowed only once a minute)."""
    sqs = client(endpoint)
    for url in urls:
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30).get(
            "Messages"
        ):
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            sqs.delete_message_batch(QueueUrl=url, Entries=entries)


def dead_letter(endpoint: str, queue_url: str, dlq_url: str, bodies: list[str], timeout: float = 20.0) -> int:
    """Send messages a consumer keeps failing on: received and never deleted until SQS dead-letters them."""
    sqs = client(endpoint)
    for body in bodies:
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        depth = depth_of(endpoint, dlq_url)
        if depth >= len(bodies):
            return depth
    raise TimeoutError(f"messages did not reach the dead-letter queue within {timeout:.0f}s")


def depth_of(endpoint: str, url: str) -> int:
    attrs = client(endpoint).get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])
