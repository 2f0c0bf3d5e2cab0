"""Which pipeline a run acted on: its name, its config file and a fingerprint of the systems it reaches.

The journal is per user, not per pipeline, so every run records this, and `undo`, `report` and `journal`
use it to keep one pipeline's history away from another's (dev and prod in one journal, two checkouts).
The fingerprint covers where the state lives — database host, port and name, the Prefect API URL, the queue
URLs — and nothing secret: URLs lose their user info and queries before they are hashed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from pipectl.config import PipelineConfig


@dataclass(frozen=True)
class PipelineIdentity:
    """What a run records about the pipeline it acted on."""

    name: str
    config: str
    """The config file's path ('' when the config came from elsewhere)."""
    endpoints: str
    """`sha256:…` of the pipeline's endpoints; equal fingerprints mean the same systems."""

    def owns(self, run) -> bool:
        """A journaled run belongs to this pipeline when it reached the same systems (runs of older
        versions, which recorded no fingerprint: when it bears the same name)."""
        return run.endpoints == self.endpoints if run.endpoints else run.pipeline == self.name


def identity_of(config: PipelineConfig) -> PipelineIdentity:
    """The identity of the pipeline `config` describes."""
    places = {
        "database": _database(config.database.dsn),
        "prefect": _place(config.prefect.api_url),
        "queues": sorted(_place(u) for q in config.queues for u in (q.url, q.dlq_url) if u),
        "sqs_endpoint": _place(config.aws.endpoint_url),
    }
    if config.source and config.source.context:  # two contexts are two pipelines, whatever they share
        places["context"] = config.source.context
    digest = hashlib.sha256(json.dumps(places, sort_keys=True).encode()).hexdigest()[:16]
    source = config.source.path if config.source else ""
    return PipelineIdentity(config.pipeline, str(source or ""), f"sha256:{digest}")


def _place(url: str | None) -> str:
    if not url:
        return ""
    try:
        parts = urlsplit(url.strip())
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<malformed>"
    return f"{parts.scheme}://{(parts.hostname or '').lower()}{port}{parts.path.rstrip('/')}"


def _database(dsn: str | None) -> str:
    """host:port/dbname of a URL or key=value DSN, without user or password."""
    if not dsn:
        return ""
    if "://" in dsn:
        place = _place(dsn)
        return place.split("://", 1)[-1]
    fields = dict(part.split("=", 1) for part in dsn.split() if "=" in part)
    return f"{fields.get('host', '')}:{fields.get('port', '5432')}/{fields.get('dbname', '')}"
