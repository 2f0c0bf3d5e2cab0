"""The SQS connector against the sandbox server (moto + move tasks + JSON auth errors), over loopback."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from pipectl.connectors import sqs
from pipectl.errors import ConnectorError, NotFound, Unauthorized, Unreachable, UsageError
from pipectl.sandbox import procs
from pipectl.sandbox.sqs_server import set_auth

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
AWS = "https://sqs.us-east-1.amazonaws.com"
AWS_CN = "https://sqs.cn-north-1.amazonaws.com.cn"
SANDBOX = "http://127.0.0.1:4566"
UNSET_ENV = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS")


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("sqs")
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(run_dir / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(run_dir / "no-credentials"),
    }
    port = procs.free_port()
    argv = [sys.executable, "-m", "pipectl.sandbox.sqs_server", "--host", "127.0.0.1", "--port", str(port)]
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    proc = procs.spawn("sqs", argv, run_dir, env={**env, "PYTHONPATH": path})
    try:
        procs.wait_for_port(port, 30, proc, "sqs sandbox")
        with pytest.MonkeyPatch.context() as mp:
            for key in UNSET_ENV:
                mp.delenv(key, raising=False)
            for key, value in env.items():
                mp.setenv(key, value)
            yield f"http://127.0.0.1:{port}"
    finally:
        procs.stop("sqs", run_dir)


@pytest.fixture(scope="module")
def client(endpoint):
    import boto3

    return boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")


@pytest.mark.parametrize(
    ("url", "endpoint_url", "expected"),
    [
        (f"{AWS}/{ACCOUNT}/orders", None, ("us-east-1", ACCOUNT, "orders")),
        (f"https://eu-west-1.queue.amazonaws.com/{ACCOUNT}/a_b-C", None, ("eu-west-1", ACCOUNT, "a_b-C")),
        (f"{AWS_CN}/{ACCOUNT}/f.fifo", None, ("cn-north-1", ACCOUNT, "f.fifo")),
        (f"{SANDBOX}/{ACCOUNT}/orders", SANDBOX + "/", (None, ACCOUNT, "orders")),
        (f"{SANDBOX}/{ACCOUNT}/orders", SANDBOX.replace("://", "://user:pw@"), (None, ACCOUNT, "orders")),
        (f"{AWS}/{ACCOUNT}/{'x' * 80}", SANDBOX, ("us-east-1", ACCOUNT, "x" * 80)),
    ],
)
def test_parse_queue_url_accepts(url, endpoint_url, expected):
    ref = sqs.parse_queue_url(url, endpoint_url)
    assert (ref.region, ref.account, ref.name) == expected


@pytest.mark.parametrize(
    ("url", "endpoint_url", "needle"),
    [
        ("", None, "empty"),
        (f"sqs.us-east-1.amazonaws.com/{ACCOUNT}/q", None, "no scheme"),
        (f"ftp://sqs.us-east-1.amazonaws.com/{ACCOUNT}/q", None, "'ftp://'"),
        (f"http://sqs.us-east-1.amazonaws.com/{ACCOUNT}/q", None, "must use https"),
        (f"https://sqs.amazonaws.com/{ACCOUNT}/q", None, "missing the region"),
        (f"https://sqs.nowhere.amazonaws.com/{ACCOUNT}/q", None, "no valid region"),
        (f"{AWS}/12345/q", None, "12 digits"),
        (f"{AWS}/{ACCOUNT}/", None, "empty queue name"),
        (f"{AWS}/{ACCOUNT}", None, "/ACCOUNT/QUEUE_NAME"),
        (f"{AWS}/{ACCOUNT}/q/extra", None, "/ACCOUNT/QUEUE_NAME"),
        (f"{AWS}/{ACCOUNT}/{'x' * 81}", None, "81 characters"),
        (f"{AWS}/{ACCOUNT}/bad.name", None, "may only contain"),
        (f"{AWS}/{ACCOUNT}/q?Action=x", None, "query string"),
        (f"{SANDBOX}/{ACCOUNT}/q", None, "not an SQS endpoint"),
        (f"http://127.0.0.1:9/{ACCOUNT}/q", SANDBOX, "or http://127.0.0.1:4566"),
        (f"https://user:secret@sqs.us-east-1.amazonaws.com/{ACCOUNT}/q", None, "user info"),
    ],
)
def test_parse_queue_url_rejects_with_one_line(url, endpoint_url, needle):
    with pytest.raises(UsageError) as err:
        sqs.parse_queue_url(url, endpoint_url)
    message = str(err.value)
    assert needle in message and "\n" not in message and "secret" not in message


def test_stats_of_empty_queue(client, endpoint):
    url = client.create_queue(QueueName="empty")["QueueUrl"]
    stats = sqs.queue_stats(url, endpoint_url=endpoint)
    assert (stats.visible, stats.in_flight, stats.delayed, stats.redrive) == (0, 0, 0, None)
    assert stats.arn == f"arn:aws:sqs:us-east-1:{ACCOUNT}:empty"


def test_dead_letter_then_redrive_back(client, endpoint):
    dlq = client.create_queue(QueueName="work-dlq")["QueueUrl"]
    dlq_arn = sqs.queue_stats(dlq, endpoint_url=endpoint).arn
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})
    src = client.create_queue(QueueName="work", Attributes={"RedrivePolicy": policy})["QueueUrl"]
    assert sqs.queue_stats(src, endpoint_url=endpoint).redrive == sqs.RedrivePolicy(dlq_arn, 3)
    client.send_message(QueueUrl=src, MessageBody="poison")

    receives, deadline = 0, time.monotonic() + 5
    while sqs.queue_stats(dlq, endpoint_url=endpoint).visible == 0:
        assert time.monotonic() < deadline, f"not dead-lettered after {receives} receives"
        receives += len(client.receive_message(QueueUrl=src, VisibilityTimeout=0).get("Messages", []))
    assert receives == 3
    assert sqs.queue_stats(src, endpoint_url=endpoint).visible == 0

    handle = sqs.start_redrive(dlq, endpoint_url=endpoint)
    assert handle
    seen = []
    final = sqs.wait_redrive(dlq, deadline_s=5, poll_s=0.05, progress=seen.append, endpoint_url=endpoint)
    assert (final.status, final.moved, final.to_move, final.failure_reason) == ("COMPLETED", 1, 1, None)
    assert seen and seen[-1] == final
    assert sqs.redrive_status(dlq, endpoint_url=endpoint) == final
    assert sqs.queue_stats(src, endpoint_url=endpoint).visible == 1
    assert sqs.queue_stats(dlq, endpoint_url=endpoint).visible == 0
    # It came back as a fresh message, so it is not dead-lettered again on the next receive.
    again = client.receive_message(QueueUrl=src, AttributeNames=["ApproximateReceiveCount"])["Messages"]
    assert again[0]["Body"] == "poison" and again[0]["Attributes"]["ApproximateReceiveCount"] == "1"


def test_redrive_of_a_plain_queue_is_refused(client, endpoint):
    url = client.create_queue(QueueName="not-a-dlq")["QueueUrl"]
    with pytest.raises(ConnectorError, match="Dead Letter Queue"):
        sqs.start_redrive(url, endpoint_url=endpoint)
    with pytest.raises(NotFound, match="no redrive"):
        sqs.redrive_status(url, endpoint_url=endpoint)


def test_iam_enforced_refusals_are_unauthorized(client, endpoint, monkeypatch):
    import boto3
    from botocore.exceptions import ClientError

    url = client.create_queue(QueueName="guarded")["QueueUrl"]
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1")
    iam.create_user(UserName="nobody")
    key = iam.create_access_key(UserName="nobody")["AccessKey"]
    set_auth(endpoint, True)
    try:
        with pytest.raises(Unauthorized, match="InvalidClientTokenId"):  # the fake 'testing' key
            sqs.queue_stats(url, endpoint_url=endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        with pytest.raises(Unauthorized, match="AccessDenied") as err:  # a real user without a policy
            sqs.queue_stats(url, endpoint_url=endpoint)
        assert key["AccessKeyId"] not in str(err.value) and key["SecretAccessKey"] not in str(err.value)
        with pytest.raises(ClientError) as raw:
            boto3.client(
                "sqs",
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id=key["AccessKeyId"],
                aws_secret_access_key=key["SecretAccessKey"],
            ).list_queues()
        assert raw.value.response["Error"]["Code"] == "AccessDenied"
    finally:
        set_auth(endpoint, False)
    monkeypatch.undo()
    assert sqs.queue_stats(url, endpoint_url=endpoint).visible == 0


def test_missing_credentials_name_the_env_vars(endpoint, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(Unauthorized, match="AWS_ACCESS_KEY_ID"):
        sqs.queue_stats(f"{endpoint}/{ACCOUNT}/any", endpoint_url=endpoint)


def test_closed_port_is_unreachable_quickly(endpoint):
    closed = f"http://127.0.0.1:{procs.free_port()}"
    with pytest.raises(Unreachable, match="could not connect"):
        sqs.queue_stats(f"{closed}/{ACCOUNT}/q", endpoint_url=closed, timeout=1)


def test_wrong_queue_name_is_not_found(endpoint):
    with pytest.raises(NotFound, match="nope"):
        sqs.queue_stats(f"{endpoint}/{ACCOUNT}/nope", endpoint_url=endpoint)
