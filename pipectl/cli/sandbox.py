"""`pipectl sandbox`: a whole pipeline on loopback to try pipectl on, and the drills that break it."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from pipectl.cli.common import note, write

sandbox_app = typer.Typer(help="A local pipeline (Postgres, Prefect, SQS, Modal fake) and its failure drills.",
                          no_args_is_help=True)

DirOption = Annotated[Path | None, typer.Option("--dir", help="Sandbox folder (default: ./.pipectl-sandbox).")]


def _layout(folder: Path | None):
    from pipectl.sandbox.layout import Layout

    return Layout.at(folder)


def _running_state(layout):
    from pipectl.errors import UsageError

    state = layout.load()
    if state is None:
        raise UsageError(f"no sandbox in {layout.root}: run `pipectl sandbox up` first")
    return state


@sandbox_app.command()
def up(
    folder: DirOption = None,
    dsn: Annotated[str | None, typer.Option(help="Use this Postgres instead of starting one.")] = None,
) -> int:
    """Start the sandbox and point ./pipectl.toml at it; a failed start leaves nothing running."""
    from rich.console import Console

    from pipectl.sandbox import config_file, stack

    layout = _layout(folder)
    console = Console(stderr=True)
    with console.status("starting the sandbox") as spinner, _one_line_errors("sandbox up failed",
                                                                            f" (logs: {layout.run_dir})"):
        stack.up(layout, progress=lambda step: spinner.update(step), dsn=dsn)  # stops what it started on failure
    linked = config_file.link_into(Path.cwd(), layout)
    from pipectl.report.sandbox import render_status

    write(render_status(stack.status(layout)))
    if linked:
        note(f"wrote {linked}: `pipectl doctor` now looks at the sandbox")
    else:
        note(f"./pipectl.toml is not the sandbox's: use `pipectl doctor --config {layout.config_file}`")
    return 0


@sandbox_app.command()
def down(
    folder: DirOption = None,
    purge: Annotated[bool, typer.Option("--purge", help="Also delete the sandbox folder (state, Postgres data, "
                                        "Prefect home) and the pipectl.toml `up` wrote, if unchanged.")] = False,
) -> int:
    """Stop every sandbox process; nothing is left listening. With --purge, nothing is left on disk either."""
    from pipectl.sandbox import purge as purging
    from pipectl.sandbox import stack

    layout = _layout(folder)
    if purge:
        purging.check(layout)  # refuse before stopping anything
    with _one_line_errors("sandbox down failed"):
        stopped = stack.down(layout)
    note(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    if purge:
        existed = layout.root.exists()
        with _one_line_errors("sandbox down --purge failed"):
            deleted, kept = purging.purge(layout, Path.cwd())
        for path in deleted:
            note(f"deleted {path}")
        for path in kept:
            note(f"kept {path}: it changed since the sandbox wrote it")
        note(f"deleted {layout.root}" if existed else f"no sandbox folder at {layout.root}")
    return 0


@sandbox_app.command()
def status(
    folder: DirOption = None,
    format: Annotated[str, typer.Option("--format", "-f", help="terminal or json")] = "terminal",
) -> int:
    """Each component, its address, and whether it answers. Exit 1 if any is down."""
    from pipectl.report.sandbox import render_status
    from pipectl.sandbox import stack

    layout = _layout(folder)
    components = stack.status(layout)
    write(render_status(components, format))
    complete = layout.load() is not None
    return 0 if complete and components and all(c.healthy for c in components) else 1


@sandbox_app.command()
def env(folder: DirOption = None) -> int:
    """How to point pipectl (or a shell) at the sandbox; secret values stay in the env file."""
    from pipectl.report.sandbox import render_env

    layout = _layout(folder)
    state = _running_state(layout)
    exports = {"PREFECT_API_URL": state.prefect_api_url, "SQS_QUEUE_URL": state.queue_url,
               "SQS_DLQ_URL": state.dlq_url, "MODAL_SERVER_URL": state.modal_server_url}
    write(render_env(str(layout.config_file), str(layout.env_file), exports))
    return 0


@sandbox_app.command("break")
def break_(
    scenario: Annotated[str | None, typer.Argument(help="A drill from `pipectl sandbox break --list`.")] = None,
    list_: Annotated[bool, typer.Option("--list", help="Describe the drills.")] = False,
    folder: DirOption = None,
) -> int:
    """Reproduce one failure of the incidents on the running sandbox."""
    from pipectl.errors import UsageError
    from pipectl.report.sandbox import render_scenarios
    from pipectl.sandbox.scenarios import SCENARIOS

    if list_ or scenario is None:
        write(render_scenarios(list(SCENARIOS.values())))
        return 0
    if scenario not in SCENARIOS:
        raise UsageError(f"unknown scenario {scenario!r}: choose one of {', '.join(SCENARIOS)}")
    layout = _layout(folder)
    state = _running_state(layout)
    with _one_line_errors(f"sandbox break {scenario} failed"):
        SCENARIOS[scenario].apply(layout, state)
    state.broken.append(scenario)
    layout.save(state)
    _relink(layout)
    note(f"broke the sandbox: {scenario}. `pipectl doctor` should name it; `pipectl sandbox heal` undoes it")
    return 0


@sandbox_app.command()
def heal(folder: DirOption = None) -> int:
    """Undo every drill and any hand-made damage, then run doctor's checks: exit 1 unless all pass."""
    from rich.console import Console

    from pipectl.errors import PipectlError
    from pipectl.sandbox.heal import restore, still_failing

    layout = _layout(folder)
    state = _running_state(layout)
    with Console(stderr=True).status("healing the sandbox") as spinner, _one_line_errors("sandbox heal failed"):
        restore(layout, state, progress=lambda step: spinner.update(step))
        _relink(layout)
        spinner.update("running doctor's checks")
        failing = still_failing(layout)
    if failing:
        headline = (f"the sandbox is still not healthy: {len(failing)} finding(s) fail "
                    f"(`pipectl doctor --config {layout.config_file}` shows them)")
        raise PipectlError("\n".join([headline, *(f"  {line}" for line in failing)]))
    note("the sandbox is healthy again: every doctor check passes")
    return 0


def _relink(layout) -> None:
    from pipectl.sandbox import config_file

    config_file.link_into(Path.cwd(), layout)


@contextlib.contextmanager
def _one_line_errors(what: str, suffix: str = ""):
    """Any failure becomes one line and exit 1 (a usage error keeps its own code): never a traceback."""
    from pipectl.errors import PipectlError

    try:
        yield
    except PipectlError:
        raise
    except Exception as exc:  # noqa: BLE001 - the last word on an outside system's failure
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise PipectlError(f"{what}: {lines[0] if lines else type(exc).__name__}{suffix}") from None
