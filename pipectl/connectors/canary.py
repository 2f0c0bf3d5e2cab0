"""The writes of `pipectl probe`, and nothing else: send one marked item in, and take back what it left.

Each uses the connection conventions of its system's connector (pipectl's Postgres write connection with
its timeouts, the Prefect client, boto3 for SQS), and errors leave as one line without credentials.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pipectl.config import StateTable
from pipectl.errors import Unreachable


def post_item(url: str, method: str, body: Mapping[str, Any], timeout: float) -> tuple[int, Any]:
    """Send the item to an HTTP entry point: (status, parsed JSON answer or None)."""
    import httpx

    from pipectl.connectors.http import register_url_secrets, safe_url

    register_url_secrets(url)
    try:
        response = httpx.request(method, url, json=dict(body), timeout=timeout)
    except httpx.HTTPError as exc:
        raise Unreachable(f"{method} {safe_url(url)}: {type(exc).__name__}") from None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    return response.status_code, answer


def insert_row(dsn: str, table: StateTable, values: Mapping[str, Any], timeout: float) -> str:
    """Insert the item's row directly (a pipeline whose entry point is the table); returns its id."""
    from psycopg import sql

    from pipectl.connectors import postgres_write
    from pipectl.connectors.pg_names import table_ident

    query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING {}").format(
        table_ident(table.table), sql.SQL(", ").join(map(sql.Identifier, values)),
        sql.SQL(", ").join(sql.Placeholder() * len(values)), sql.Identifier(table.id_column))
    with postgres_write.transaction(dsn, table.table, timeout) as conn:
        return str(conn.execute(query, list(values.values())).fetchone()[0])


def delete_row(dsn: str, table: StateTable, item_id: str, timeout: float) -> int:
    """Delete the item's row (by its id column only); returns how many rows went (0 or 1)."""
    from psycopg import sql

    from pipectl.connectors import postgres_write
    from pipectl.connectors.pg_names import table_ident

    query = sql.SQL("DELETE FROM {} WHERE {}::text = %s").format(table_ident(table.table),
                                                                 sql.Identifier(table.id_column))
    with postgres_write.transaction(dsn, table.table, timeout) as conn:
        return conn.execute(query, [item_id]).rowcount


def delete_dead_letters(url: str, is_ours: Callable[[str], bool], *, endpoint_url: str | None, region: str | None,
                        timeout: float, environ: Mapping[str, str] | None = None) -> int:
    """Delete the messages of a dead-letter queue whose body `is_ours`; the others are made visible again."""
    from pipectl.connectors.sqs import mapped_errors, queue_client

    client = queue_client(url, endpoint_url, region, timeout, environ)
    deleted, others = 0, []
    with mapped_errors("clean up messages of", url):
        while batch := client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=10,
                                              WaitTimeSeconds=0).get("Messages", []):
            for message in batch:
                if is_ours(message.get("Body", "")):
                    client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                    deleted += 1
                else:
                    others.append(message["ReceiptHandle"])
        for start in range(0, len(others), 10):
            entries = [{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                       for i, h in enumerate(others[start:start + 10])]
            client.change_message_visibility_batch(QueueUrl=url, Entries=entries)
    return deleted

