"""`pipectl serve`: doctor's checks behind /healthz and /metrics (see `pipectl.serve`)."""

from __future__ import annotations

from typing import Annotated

import typer

from pipectl.cli.common import ConfigOption, load, note, split_list


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free one).")] = 9464,
    interval: Annotated[str, typer.Option(help="How often the checks run, at most (30s, 5m, …); requests "
                                          "never start a run.")] = "30s",
    config: ConfigOption = None,
    only: Annotated[list[str] | None, typer.Option(help="Run only these checks or components "
                                                   "(comma-separated).")] = None,
    skip: Annotated[list[str] | None, typer.Option(help="Skip these checks or components (comma-separated).")] = None,
) -> int:
    """Serve doctor's verdict for load balancers (GET /healthz: 200 or 503) and dashboards (GET /metrics,
    Prometheus), running the checks in the background at most once per --interval. Ctrl-C stops it."""
    from pipectl.serve import build, parse_interval
    from pipectl.serve import serve as run_server

    seconds = parse_interval(interval)  # bad input first, before the config is even read
    exporter = build(load(config), only=split_list(only), skip=split_list(skip), host=host, port=port,
                     interval=seconds, progress=note)
    return run_server(exporter)
