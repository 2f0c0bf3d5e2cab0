"""Reaching Postgres, and saying in one line why it failed: shared by the read connection (`postgres`) and
the write connection (`postgres_write`), so both open connections alike and describe failures alike.

A message names `host:port/dbname` (or the socket directory), never the DSN or its password: that is why
every failure, of a connect or of a statement, is worded here and nowhere else. psycopg is imported lazily.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipectl.durations import whole_seconds
from pipectl.errors import ConnectorError, NotFound, Unauthorized, Unreachable, UsageError

if TYPE_CHECKING:
    import psycopg

MIN_CONNECT_TIMEOUT = 2
"""libpq treats any lower connect timeout as 2 seconds."""
_AUTH_MESSAGES = (
    "password authentication failed", "no password supplied", "pg_hba.conf", "authentication failed",
    "role \"", "permission denied for database", "must be superuser", "sasl authentication",
)  # fmt: skip


@dataclass(frozen=True)
class Target:
    """Where a DSN points, safe to print: host (or socket directory), port, database; no user, no password."""

    host: str
    port: str
    dbname: str
    socket: bool

    def __str__(self) -> str:
        if self.socket:
            return f"{self.dbname} via socket {self.host}"
        return f"{self.host}:{self.port}/{self.dbname}"


def target(dsn: str) -> Target:
    """The printable part of a DSN; a DSN that cannot be parsed is a usage error that does not quote it."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:  # the parser's message may quote the DSN
        raise UsageError("database.dsn is not a valid Postgres connection string") from None
    host = str(params.get("host") or params.get("hostaddr") or "")
    socket = not host or host.startswith(("/", "@"))
    return Target(
        host=host or "default socket",
        port=str(params.get("port") or "5432"),
        dbname=str(params.get("dbname") or params.get("user") or "postgres"),
        socket=socket,
    )


def configured_target(dsn: str | None) -> Target:
    """`target(dsn)`, refusing an empty DSN: an empty one would quietly mean libpq's default socket."""
    if not dsn:
        raise UsageError("no [database] dsn in the config")
    return target(dsn)


def connect(dsn: str, where: Target, timeout: float, *, autocommit: bool, application_name: str
            ) -> psycopg.Connection:
    """A connection whose connect is bounded by `timeout`, without server-side prepared statements (a pooler
    in transaction mode loses them); a failed connect raises `connect_error`'s one line."""
    import psycopg

    try:
        return psycopg.connect(
            dsn,
            autocommit=autocommit,
            connect_timeout=max(MIN_CONNECT_TIMEOUT, math.ceil(timeout)),
            application_name=application_name,
            prepare_threshold=None,
        )
    except psycopg.Error as exc:
        raise connect_error(exc, where, dsn) from None


def first_line(exc: BaseException) -> str:
    """The server's primary message: one line, no DETAIL/HINT (which may quote row values), no DSN."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    text = primary or str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def statement_error(exc: Exception, table: str, where: Target, timeout: float | None = None) -> ConnectorError:
    """One line about a failed statement on `table`: missing table or column, no permission, a lock or the
    statement timeout (`timeout` seconds when known), a lost connection."""
    import psycopg
    from psycopg import errors

    if isinstance(exc, errors.UndefinedTable | errors.UndefinedColumn):
        return NotFound(f"{table}: {first_line(exc)} (in {where})")
    if isinstance(exc, errors.InsufficientPrivilege):
        return Unauthorized(f"{table}: {first_line(exc)} (in {where})")
    if isinstance(exc, errors.LockNotAvailable):
        return Unreachable(f"{table}: waited longer than the lock timeout for a lock (is a migration or a long "
                           "transaction holding the table?)")
    if isinstance(exc, errors.QueryCanceled):
        within = "the statement timeout" if timeout is None else whole_seconds(timeout)
        return Unreachable(f"{table}: the query did not finish within {within}")
    if isinstance(exc, psycopg.OperationalError):
        return Unreachable(f"lost the connection to {where}: {first_line(exc)}")
    return ConnectorError(f"{table}: {first_line(exc)}")


@contextlib.contextmanager
def statement_errors(table: str, where: Target, timeout: float | None = None) -> Iterator[None]:
    """Raise any psycopg error inside as `statement_error`'s one line naming the table."""
    import psycopg

    try:
        yield
    except psycopg.Error as exc:
        raise statement_error(exc, table, where, timeout) from None


def connect_error(exc: Exception, where: Target, dsn: str) -> ConnectorError:
    """Sort a failed connect into Unauthorized / NotFound / Unreachable, with a one-line reason."""
    text = str(exc)
    low = text.lower()
    sqlstate = getattr(exc, "sqlstate", None) or ""
    if sqlstate in ("28P01", "28000") or any(m in low for m in _AUTH_MESSAGES):
        if "does not exist" in low and "role" in low:
            reason = "the role does not exist"
        elif "no password supplied" in low:
            reason = "no password supplied"
        elif "pg_hba.conf" in low:
            reason = "no pg_hba.conf entry allows this host/user/database"
        else:
            reason = "password authentication failed"
        return Unauthorized(f"Postgres at {where} refused the credentials: {reason}")
    if sqlstate == "3D000" or re.search(r'database "[^"]*" does not exist', text):
        return NotFound(f"Postgres at {where} has no database {where.dbname!r}")
    if "connection refused" in low:
        reason = "connection refused (is the server running and listening on that port?)"
    elif "timeout" in low or "timed out" in low:
        reason = "no answer within the connect timeout"
    elif "resolve host" in low or "translate host name" in low or "name or service not known" in low:
        reason = "the host name does not resolve"
    elif "no such file or directory" in low:
        reason = "no server is listening on that socket"
    elif "ssl" in low:
        reason = "the TLS handshake failed (check sslmode and that this is a Postgres port)"
    elif "too many" in low and "connections" in low:
        reason = "the server has too many connections"
    elif "starting up" in low or "shutting down" in low or "recovery" in low:
        reason = "the server is starting up, shutting down or in recovery"
    else:
        reason = _scrub(_last_line(text), dsn)
    return Unreachable(f"cannot reach Postgres at {where}: {reason}")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[0] if lines else "connection failed"
    return line.rsplit("failed: ", 1)[-1][:160]


def _scrub(text: str, dsn: str) -> str:
    """Belt and braces: a reason never carries the DSN or its password, even if libpq ever quoted them."""
    from pipectl.secrets import embedded_secrets

    for secret in (dsn, *embedded_secrets(dsn)):
        if secret and len(secret) >= 2:
            text = text.replace(secret, "****")
    return text
