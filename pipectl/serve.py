"""`pipectl serve`: doctor's checks on a timer behind /healthz and /metrics, for dashboards and load balancers.

One background thread runs the checks, at most once per interval; requests only read the last result.
However many scrapers and health probes arrive, Prefect, SQS and the database see one run per interval.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from pipectl.durations import format_duration, option_seconds
from pipectl.errors import UsageError
from pipectl.interface import Check, Context
from pipectl.model import DoctorResult, Severity
from pipectl.redact import redactor
from pipectl.report.metrics import ResultCollector, Snapshot, healthz

MIN_INTERVAL = 1.0
"""Seconds: anything shorter would turn a health endpoint into load on the systems it watches."""
REQUEST_TIMEOUT = 10.0
"""Seconds a client may take to send its request before its connection is dropped."""


def parse_interval(text: str) -> float:
    """`--interval 30s` in seconds; a malformed or too short interval is bad input."""
    return option_seconds(text, "--interval", MIN_INTERVAL)


def build(config, *, only: Sequence[str] = (), skip: Sequence[str] = (), host: str = "127.0.0.1",
          port: int = 9464, interval: float = 30.0, progress: Callable[[str], None] = lambda text: None) -> Exporter:
    """The bound server for a loaded config, its checks chosen as doctor chooses them. Bad input (an unknown
    check, a config with nothing to check, a port in use) raises UsageError before any check runs."""
    from pipectl.config_load import environment
    from pipectl.registry import load_checks
    from pipectl.runner import select

    checks = load_checks()
    for warning in checks.warnings:
        progress(f"pipectl: warning: {warning}")
    chosen = select(checks.items, only, skip)
    environ = environment(config.source)
    require_something(config, chosen, environ)
    return Exporter(doctor_runs(config, chosen, environ), host=host, port=port, interval=interval,
                    fail_on=config.doctor.fail_on, progress=progress, stop_wait=config.doctor.timeout + 5)


def doctor_runs(config, checks: Sequence[type[Check]], environ: dict[str, str]) -> Callable[[], DoctorResult]:
    """One doctor run of the chosen checks, as `pipectl doctor` makes it (a fresh context each time)."""
    from pipectl.runner import run_checks

    def run() -> DoctorResult:
        return run_checks(checks, Context(config=config, timeout=config.doctor.timeout, environ=environ))

    return run


def require_something(config, checks: Sequence[type[Check]], environ: dict[str, str]) -> None:
    """As doctor refuses a config that gives its checks nothing to look at, so does serve, before serving:
    a server that answers "ok" forever about nothing would be worse than none."""
    ctx = Context(config=config, timeout=config.doctor.timeout, environ=environ)

    def applies(cls: type[Check]) -> bool:
        try:
            return cls.component != "config" and cls().applies(ctx) is None
        except Exception:  # noqa: BLE001 - the run reports it as the check's ERROR
            return True

    if not any(applies(cls) for cls in checks):
        raise UsageError(f"nothing to check: {config.source.path} gives the chosen checks nothing to look at")


class CachedRunner:
    """Runs the checks in one background thread, the next run starting `interval` after the last one started
    (or when it ended, if it took longer), and keeps the last result for every request to share."""

    def __init__(self, run: Callable[[], DoctorResult], interval: float,
                 on_run: Callable[[Snapshot], None] = lambda snapshot: None) -> None:
        self._run = run
        self.interval = interval
        self._on_run = on_run
        self._lock = threading.Lock()
        self._snapshot = Snapshot()
        self._started = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pipectl-serve-runs", daemon=True)

    @property
    def snapshot(self) -> Snapshot:
        """The last result and run count, consistent with each other; never waits for a run."""
        with self._lock:
            return self._snapshot

    @property
    def started(self) -> int:
        """How many runs have started: what proves that requests never start one."""
        with self._lock:
            return self._started

    def start(self) -> None:
        self._thread.start()

    @property
    def in_flight(self) -> bool:
        with self._lock:
            return self._started > self._snapshot.runs

    def stop(self, wait: float) -> None:
        """No run starts after this; one in flight may finish for `wait` seconds (its checks have timeouts),
        so its connections close properly instead of being cut off at exit."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(wait)

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self._once()
            self._stop.wait(max(0.0, began + self.interval - time.monotonic()))

    def _once(self) -> None:
        with self._lock:
            self._started += 1
        try:
            result, error = self._run(), None
        except Exception as exc:  # noqa: BLE001 - a bug in one run must not end the server
            result, error = None, f"{type(exc).__name__}: {exc}"
        with self._lock:
            previous = self._snapshot
            self._snapshot = Snapshot(result=previous.result if result is None else result,
                                      runs=previous.runs + 1, error=error)
            snapshot = self._snapshot
        if not self._stop.is_set():
            self._on_run(snapshot)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    exporter: Exporter

    def handle_error(self, request, client_address) -> None:
        """A client that hung up is no news; anything else is one line on stderr, never a traceback."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError):
            self.exporter.progress(f"pipectl: warning: request from {client_address[0]} failed: "
                                   f"{type(exc).__name__}: {exc}")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = REQUEST_TIMEOUT

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _answer(self, head: bool) -> None:
        status, content_type, body = self.server.exporter.respond(urlsplit(self.path).path,
                                                                  self.headers.get("Accept", ""))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        """Silent: stderr carries one line per run, not one per scrape."""


class Exporter:
    """The bound HTTP server and its cached runner. Binding happens here, so a port in use is bad input
    before any check runs."""

    def __init__(self, run: Callable[[], DoctorResult], *, host: str, port: int, interval: float,
                 fail_on: Severity, progress: Callable[[str], None] = lambda text: None,
                 stop_wait: float = 10.0) -> None:
        from prometheus_client import CollectorRegistry

        self.progress = progress
        self.stop_wait = stop_wait
        self.fail_on = fail_on
        self.runner = CachedRunner(run, interval, on_run=self._report)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ResultCollector(lambda: self.runner.snapshot))
        try:
            self._httpd = _Server((host, port), _Handler)
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self._httpd.exporter = self
        self._serving = False

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{f'[{host}]' if ':' in str(host) else host}:{port}"

    def respond(self, path: str, accept: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for one request; only ever reads the cached result."""
        import json

        if path == "/healthz":
            status, body = healthz(self.runner.snapshot, self.fail_on)
            return status, "application/json", (json.dumps(body) + "\n").encode()
        if path == "/metrics":
            from prometheus_client.exposition import choose_encoder

            encoder, content_type = choose_encoder(accept)
            return 200, content_type, encoder(self.registry)
        return 404, "text/plain; charset=utf-8", b"not found: try /healthz or /metrics\n"

    def serve_forever(self) -> None:
        """Start the runs and answer requests until `close()` (from another thread) or Ctrl-C/SIGTERM."""
        self.progress(f"serving {self.url}/healthz and /metrics; checks every "
                      f"{format_duration(timedelta(seconds=self.runner.interval))}")
        self.runner.start()
        self._serving = True
        try:
            self._httpd.serve_forever(poll_interval=0.25)
        finally:
            self._serving = False

    def close(self) -> None:
        """Stop answering and stop the runs; idempotent."""
        if self._serving:
            self._httpd.shutdown()  # only valid while serve_forever runs in another thread
        self._httpd.server_close()
        if self.runner.in_flight:
            self.progress(f"stopping: waiting up to {self.stop_wait:.0f}s for the run in flight")
        self.runner.stop(self.stop_wait)

    def _report(self, snapshot: Snapshot) -> None:
        status, body = healthz(snapshot, self.fail_on)
        self.progress(redactor(f"{body['checked_at'] or '-'} {body['status']} ({status}): {body['summary']}"))


def serve(exporter: Exporter) -> int:
    """Run until Ctrl-C or SIGTERM (which pipectl's main turns into KeyboardInterrupt); then exit 0."""
    try:
        exporter.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        exporter.close()  # a second Ctrl-C while it waits for the run in flight: pipectl's usual exit 130
    exporter.progress("stopped")
    return 0
