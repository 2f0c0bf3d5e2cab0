"""AWS credentials and clients, through botocore (imported lazily; boto3's resource layer is not needed).

Sessions are keyed by the credentials given and by every AWS_* variable of the process, and shared for a
few minutes; `credential_source` says where the credential chain finds credentials, never what they are.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping

from pipectl.errors import UsageError

AWS_KEY_NAMES = frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"})
"""Variables the credential chain reads first; a profile, SSO or a role can stand in for them."""
_SESSION_TTL = 300.0
_sessions: dict[tuple, tuple[float, object, threading.Lock]] = {}
_sessions_lock = threading.Lock()


def _session(env: Mapping[str, str]) -> tuple[object, threading.Lock]:
    """A botocore session for these credentials, shared for a few minutes.

    Not the default session: it caches credentials, hiding later changes to the environment; so sessions
    are keyed by the credentials given and by every AWS_* variable of the process (the chain falls back to
    them, and to the files and roles they name). Not a new session per call either: each one loads
    botocore's endpoint and service models again (~100 ms of CPU per client, most of an SQS check). After
    `_SESSION_TTL` seconds a session is rebuilt, so a long `pipectl serve` sees a profile's rotated keys."""
    import botocore.session

    key = (tuple(env.get(name) or None for name in (*sorted(AWS_KEY_NAMES), "AWS_PROFILE")),
           frozenset((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    now = time.monotonic()
    with _sessions_lock:
        made, session, lock = _sessions.get(key, (0.0, None, None))
        if session is None or now - made > _SESSION_TTL:
            session = botocore.session.Session()
            if env.get("AWS_PROFILE"):
                session.set_config_variable("profile", env["AWS_PROFILE"])
            if any(env.get(name) for name in AWS_KEY_NAMES):
                session.set_credentials(env.get("AWS_ACCESS_KEY_ID") or None,
                                        env.get("AWS_SECRET_ACCESS_KEY") or None,
                                        env.get("AWS_SESSION_TOKEN") or None)
            lock = threading.Lock()
            if len(_sessions) >= 8:
                _sessions.clear()
            _sessions[key] = (now, session, lock)
        return session, lock


def client(service: str, region: str | None, endpoint_url: str | None, timeout: float,
           environ: Mapping[str, str] | None = None):
    """A botocore client of `service`, each request bounded by `timeout` (connect and read), tried twice."""
    from botocore.config import Config
    from botocore.exceptions import NoRegionError

    config = Config(
        retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=timeout, read_timeout=timeout
    )
    try:
        session, lock = _session(environ or {})
        with lock:  # a botocore session is not thread-safe; the clients it makes are
            return session.create_client(service, region_name=region, endpoint_url=endpoint_url, config=config)
    except NoRegionError:
        raise UsageError("no AWS region for a non-AWS queue URL: pass a region or set AWS_REGION") from None


def credential_source(environ: Mapping[str, str] | None = None) -> str | None:
    """Where the credential chain finds AWS credentials for this environment (`env`, `explicit`,
    `shared-credentials-file`, `sso`, `assume-role`, `iam-role` …), or None when it finds none. Never the
    values; nothing is called but the chain's own lookups."""
    try:
        session, lock = _session(environ or {})
        with lock:
            credentials = session.get_credentials()
    except Exception:  # noqa: BLE001 - a broken profile is "no credentials" here; sqs.queue says why
        return None
    return getattr(credentials, "method", None) or ("found" if credentials else None)
