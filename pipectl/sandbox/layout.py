"""Where a sandbox keeps its files, and the small JSON record of its ports and names."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_DIR = ".pipectl-sandbox"

ORCHESTRATOR = "orchestrator-main/data-enrichment-orchestrator"
PROCESS_JOB = "process_job/production"
POOL = "managed-production"
MODAL_APP = "data-enrichment-workers"
MODAL_FUNCTION = "start_normalize_company_name"
STEP = "normalize_company_name"
SITE = "job-frontend"
"""The Netlify site whose function is the push endpoint."""
SUBSCRIBER = "job-subscriber"
WORKER_SERVICE = "job-worker"
"""The Render services: the SQS subscriber and the Prefect worker."""
ROWS = 40
REGION = "us-east-1"
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"  # AWS's documented example key: obviously fake
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@dataclass
class SandboxState:
    """What `up` started; read by every other sandbox command and by the test fixtures."""

    prefect_port: int = 0
    sqs_port: int = 0
    modal_port: int = 0
    database_url: str = ""
    queue_url: str = ""
    dlq_url: str = ""
    modal_token_id: str = ""
    modal_token_secret: str = ""
    render_port: int = 0
    netlify_port: int = 0
    push_port: int = 0
    render_api_key: str = ""
    netlify_token: str = ""
    service_ids: dict[str, str] = field(default_factory=dict)
    """Hosted service name → the provider's id (Render `srv-…`, Netlify site id)."""
    broken: list[str] = field(default_factory=list)

    @property
    def prefect_api_url(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}/api"

    @property
    def sqs_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.sqs_port}"

    @property
    def modal_server_url(self) -> str:
        return f"http://127.0.0.1:{self.modal_port}"

    @property
    def render_api_url(self) -> str:
        return f"http://127.0.0.1:{self.render_port}/v1"

    @property
    def netlify_api_url(self) -> str:
        return f"http://127.0.0.1:{self.netlify_port}/api/v1"

    @property
    def push_url(self) -> str:
        return f"http://127.0.0.1:{self.push_port}/api/autobolt/push"


@dataclass(frozen=True)
class Layout:
    """The sandbox folder: run/ (pid files, logs), pg/ (Postgres data), prefect/, modal/, repo/."""

    root: Path

    @classmethod
    def at(cls, path: Path | str | None = None) -> Layout:
        return cls(Path(path or os.environ.get("PIPECTL_SANDBOX_DIR") or DEFAULT_DIR).resolve())

    run_dir = property(lambda self: self.root / "run")
    pgdata = property(lambda self: self.root / "pg")
    prefect_home = property(lambda self: self.root / "prefect")
    modal_state = property(lambda self: self.root / "modal" / "state.json")
    modal_calls = property(lambda self: self.root / "modal" / "calls.jsonl")
    hosted_state = property(lambda self: self.root / "hosted" / "state.json")
    repo = property(lambda self: self.root / "repo")
    env_file = property(lambda self: self.root / "sandbox.env")
    config_file = property(lambda self: self.root / "pipectl.toml")
    state_file = property(lambda self: self.root / "sandbox.json")
    links_file = property(lambda self: self.root / "links.json")  # the pipectl.toml files `up` linked

    def load(self) -> SandboxState | None:
        if not self.state_file.is_file():
            return None
        known = SandboxState.__dataclass_fields__
        return SandboxState(**{k: v for k, v in json.loads(self.state_file.read_text()).items() if k in known})

    def save(self, state: SandboxState) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), indent=2))
        os.chmod(tmp, 0o600)
        tmp.replace(self.state_file)
