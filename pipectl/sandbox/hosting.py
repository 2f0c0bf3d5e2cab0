"""The sandbox's hosting platform: fakes of Render's and Netlify's APIs, and the services they run.

`python -m pipectl.sandbox.hosting --root DIR` serves both APIs and runs the job pipeline's hosted
services with the environment the fakes hold, as the platforms do: the push endpoint (a Netlify
site's function), the SQS subscriber and the Prefect worker (Render services). A service that exits
is restarted with backoff (a crash loop shows as `server_failed` events and a failed deploy); a deploy
or restart asked through either API starts it again with the environment as it is then.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pipectl.sandbox.layout import REGION, SITE, SUBSCRIBER, WORKER_SERVICE, Layout, SandboxState

NAME = "hosting"
LIVE_AFTER = 2.0
"""Seconds a started service must keep running before its deploy counts as live."""
BACKOFF = (1.0, 2.0, 4.0, 8.0)
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")


@dataclass(frozen=True)
class Hosted:
    """One hosted service of the sandbox: where it lives, and the module it runs (None: the worker)."""

    name: str
    provider: str
    module: str | None
    pid_name: str


SERVICES = (
    Hosted(SITE, "netlify", "pipectl.sandbox.push_endpoint", "push-endpoint"),
    Hosted(SUBSCRIBER, "render", "pipectl.sandbox.subscriber", "subscriber"),
    Hosted(WORKER_SERVICE, "render", None, "prefect-worker"),
)
AWS_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def healthy_env(state: SandboxState, service: str) -> dict[str, str]:
    """Each service's environment as `up` sets it on the platform (what `heal` restores)."""
    from pipectl.sandbox.layout import AWS_KEY_ID, AWS_SECRET

    aws = {"AWS_ACCESS_KEY_ID": AWS_KEY_ID, "AWS_SECRET_ACCESS_KEY": AWS_SECRET, "AWS_DEFAULT_REGION": REGION,
           "AWS_ENDPOINT_URL": state.sqs_endpoint, "SQS_QUEUE_URL": state.queue_url}
    return {
        SITE: {"DATABASE_URL": state.database_url, **aws},
        SUBSCRIBER: {**aws, "SQS_DLQ_URL": state.dlq_url, "PREFECT_API_URL": state.prefect_api_url},
        WORKER_SERVICE: {"PREFECT_API_URL": state.prefect_api_url, "DATABASE_URL": state.database_url},
    }[service]


def seed(layout: Layout, state: SandboxState) -> None:
    """Write the platforms' state: tokens, the three services and their healthy environments."""
    from pipectl.sandbox.hosted_fake import HostedStore

    layout.hosted_state.parent.mkdir(parents=True, exist_ok=True)
    layout.hosted_state.unlink(missing_ok=True)
    store = HostedStore.load(layout.hosted_state)
    store.set_tokens(render=state.render_api_key, netlify=state.netlify_token)
    ids = {}
    for service in SERVICES:
        env = healthy_env(state, service.name)
        ids[service.name] = (store.add_netlify_site(service.name, env) if service.provider == "netlify"
                             else store.add_render_service(service.name, "background_worker", env))
    store.save()
    state.service_ids = ids


def provider(state: SandboxState, service: str):
    """The real provider client for a hosted service, pointed at the sandbox's fake of its platform."""
    from pipectl.connectors.netlify import Netlify
    from pipectl.connectors.render import Render

    if next(s for s in SERVICES if s.name == service).provider == "netlify":
        return Netlify(state.netlify_token, state.netlify_api_url)
    return Render(state.render_api_key, state.render_api_url)


def pristine(state: SandboxState) -> bool:
    """Whether every hosted service runs with the environment `up` gave it (else `heal` restarts them)."""
    from pipectl.connectors.hosting import ProviderError, ServiceStatus

    try:
        for service in SERVICES:
            with provider(state, service.name) as client:
                resource_id = state.service_ids[service.name]
                if (client.service(resource_id).status is not ServiceStatus.RUNNING
                        or client.env(resource_id) != healthy_env(state, service.name)):
                    return False
    except (ProviderError, KeyError):
        return False
    return True


def child_env(env: dict[str, str]) -> dict[str, str]:
    """Only what the platform gives: nothing of the caller's AWS, Prefect or database settings leaks in."""
    base = {k: v for k, v in os.environ.items() if k in _INHERITED}
    isolated = {"AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_CONFIG_FILE": os.devnull,
                "AWS_EC2_METADATA_DISABLED": "true", "PYTHONUNBUFFERED": "1"}
    return {**base, **isolated, **env}


class Supervisor:
    """Runs the hosted services and keeps the fakes' deploys and events true to what the processes do."""

    def __init__(self, layout: Layout, state: SandboxState, store) -> None:
        self.layout, self.state, self.store = layout, state, store
        self.lock = threading.RLock()
        self.procs: dict[str, subprocess.Popen] = {}
        self.started: dict[str, float] = {}
        self.deploys: dict[str, str] = {}
        self.failures: dict[str, int] = {}
        self.retry_at: dict[str, float] = {}
        self.suspended: set[str] = set()
        self.stopping = False

    def deploy(self, provider: str, resource_id: str, deploy_id: str) -> None:
        """A deploy or restart was asked for: stop the service, start it with the environment it has now."""
        service = next(s for s in SERVICES if self.store.find(s.provider, s.name) == resource_id)
        with self.lock:
            self._stop(service)
            self.deploys[service.name] = deploy_id
            self.failures[service.name] = 0
            self._start(service)

    def boot(self) -> None:
        """The first deploy of each service; the worker is `up`'s to start, so its deploy is only recorded."""
        for service in SERVICES:
            resource_id = self.store.find(service.provider, service.name)
            deploy_id = self.store.start_deploy(service.provider, resource_id)
            if service.module is None:
                self.store.finish_deploy(service.provider, resource_id, deploy_id, True)
                continue
            with self.lock:
                self.deploys[service.name] = deploy_id
                self._start(service)

    def watch(self) -> None:
        """Every half second: a deploy that has run long enough is live; a service that exited failed."""
        while not self.stopping:
            with self.lock:
                for service in SERVICES:
                    self._look_at(service)
            time.sleep(0.5)

    def _look_at(self, service: Hosted) -> None:
        proc, resource_id = self.procs.get(service.name), self.store.find(service.provider, service.name)
        if service.module is not None and self._suspended(service, resource_id):
            if proc is not None or service.name in self.retry_at:
                self._stop(service)
                self.suspended.add(service.name)
            return
        if proc is None:
            if service.name in self.suspended:  # resumed
                self.suspended.discard(service.name)
                self._start(service)
            elif service.name in self.retry_at and time.monotonic() >= self.retry_at.pop(service.name):
                self._start(service)
            return
        code = proc.poll()
        pending = self.deploys.get(service.name)
        if code is None:
            if pending and time.monotonic() - self.started[service.name] >= LIVE_AFTER:
                self.store.finish_deploy(service.provider, resource_id, self.deploys.pop(service.name), True)
                if service.module is None:  # once live, the worker is the sandbox's (drills stop it on purpose)
                    del self.procs[service.name]
            return
        del self.procs[service.name]
        if self.stopping:
            return
        if service.provider == "render":
            self.store.add_event(resource_id, "server_failed", {"reason": {"nonZeroExit": code}})
        if pending:
            self.store.finish_deploy(service.provider, resource_id, self.deploys.pop(service.name), False,
                                     f"exited with code {code}")
        if service.module is not None:  # the platform restarts it; the worker is left to its deploys
            failures = self.failures[service.name] = self.failures.get(service.name, 0) + 1
            self.retry_at[service.name] = time.monotonic() + BACKOFF[min(failures, len(BACKOFF)) - 1]

    def _suspended(self, service: Hosted, resource_id: str) -> bool:
        if service.provider != "render":
            return False
        with self.store.view():
            return self.store.record("render", resource_id).get("suspended") == "suspended"

    def _start(self, service: Hosted) -> None:
        resource_id = self.store.find(service.provider, service.name)
        env = child_env(self.store.env(service.provider, resource_id))
        self.started[service.name] = time.monotonic()
        if service.module is None:
            self.procs[service.name] = self._start_worker(env)
            return
        argv = [sys.executable, "-m", service.module]
        if service.name == SITE:
            argv += ["--port", str(self.state.push_port)]
        from pipectl.sandbox import procs

        # recorded and marked as the sandbox's, with the platform's environment alone
        self.procs[service.name] = procs.spawn(service.pid_name, argv, self.layout.run_dir, env, inherit=False)

    def _start_worker(self, env: dict[str, str]) -> subprocess.Popen:
        from pipectl.sandbox import prefect_stack, stack
        from pipectl.sandbox.layout import POOL

        api_url = env.get("PREFECT_API_URL")
        if not api_url:  # the worker could not reach Prefect: it exits at once, as a real one fails to start
            message = "Can't connect to Prefect API: PREFECT_API_URL is not set"
            return subprocess.Popen([sys.executable, "-c", f"import sys; sys.exit({message!r})"],
                                    stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        worker_env = {**stack.worker_env(self.layout, self.state), "DATABASE_URL": env.get("DATABASE_URL", "")}
        return prefect_stack.start_worker(api_url, POOL, self.layout.run_dir, worker_env, wait=None)

    def _stop(self, service: Hosted) -> None:
        from pipectl.sandbox import procs

        self.procs.pop(service.name, None)
        self.retry_at.pop(service.name, None)
        procs.stop(service.pid_name, self.layout.run_dir)

    def stop_all(self, *_: object) -> None:
        """On SIGTERM: no restarts from now on; the services go down with the platform."""
        from pipectl.sandbox import procs

        self.stopping = True
        with self.lock:
            procs.stop_all([s.pid_name for s in SERVICES if s.module], self.layout.run_dir, grace=3.0)
        os._exit(0)


def main() -> None:
    from pipectl.sandbox.hosted_fake import HostedStore, serve

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, required=True)
    args = parser.parse_args()
    layout = Layout.at(args.root)
    state = layout.load()
    if state is None:
        raise SystemExit(f"no sandbox state in {layout.root}")
    store = HostedStore.load(layout.hosted_state)
    supervisor = Supervisor(layout, state, store)
    signal.signal(signal.SIGTERM, supervisor.stop_all)
    store.on_deploy = supervisor.deploy
    serve(store, state.render_port, state.netlify_port)
    supervisor.boot()
    supervisor.watch()


if __name__ == "__main__":
    main()
