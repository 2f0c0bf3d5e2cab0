"""The sandbox's push endpoint, shaped like the second incident's `POST /api/autobolt/push` on Netlify.

It creates the job row, then tries to queue the job on SQS. Like the original, a missing AWS environment
(or any failure to send) is only logged: the caller still gets `201 {"success": true}` — the silent
201 that only a canary (`pipectl probe`) catches. Its environment comes from the Netlify fake's site.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATH = "/api/autobolt/push"
log = logging.getLogger("push")


def queue_job(job_id: int, customer_id: str) -> str | None:
    """Send the job's message; returns why it was not sent, or None once SQS took it."""
    if not (os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")):
        return "AWS credentials not configured"
    if not os.environ.get("SQS_QUEUE_URL"):
        return "SQS_QUEUE_URL not configured"
    import boto3

    body = json.dumps({"job_id": job_id, "customer_id": customer_id})
    try:
        boto3.client("sqs").send_message(QueueUrl=os.environ["SQS_QUEUE_URL"], MessageBody=body)
    except Exception as exc:  # noqa: BLE001 - the original swallowed every failure, on purpose here
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    return None


def create_job(customer_id: str) -> int:
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True, connect_timeout=10) as conn:
        return conn.execute("INSERT INTO jobs (customer_id, status) VALUES (%s, 'pending') RETURNING id",
                            (customer_id,)).fetchone()[0]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        if self.path.split("?")[0] != PATH:
            return self._answer(404, {"error": "not found"})
        try:
            payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            customer_id = str(payload["customerId"])
        except (ValueError, KeyError, TypeError):
            return self._answer(400, {"error": "customerId is required"})
        try:
            job_id = create_job(customer_id)
        except Exception as exc:  # noqa: BLE001 - a 500 with the class name, like a function's crash
            log.error("Job creation failed: %s", type(exc).__name__)
            return self._answer(500, {"error": "job creation failed"})
        if why := queue_job(job_id, customer_id):
            log.warning("⚠️ Job %s created but not sent to SQS (%s)", job_id, why)
        else:
            log.info("Job %s queued", job_id)
        self._answer(201, {"success": True, "jobId": job_id})

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:
        log.info(format, *args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if not os.environ.get("DATABASE_URL"):
        raise SystemExit("DATABASE_URL is not set")
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
