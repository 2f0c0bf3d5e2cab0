"""`pipectl sandbox`: a whole pipeline on loopback to try pipectl on, and the drills that break it."""

from __future__ import annotations

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
    """Start the sandbox and point ./pipectl.toml at it."""
    from rich.console import Console

    from pipectl.sandbox import config_file, stack

    from pipectl.errors import PipectlError, UsageError

    layout = _layout(folder)
    if layout.load() is not None and any(c.healthy for c in stack.status(layout)):
        raise UsageError(f"a sandbox is already running in {layout.root}: `pipectl sandbox down` first")
    console = Console(stderr=True)
    with console.status("starting the sandbox") as spinner:
        try:
            stack.up(layout, progress=lambda step: spinner.update(step), dsn=dsn)
        except BaseException as exc:
            stack.down(layout)  # nothing half-started is left behind
            if isinstance(exc, (PipectlError, KeyboardInterrupt)):
                raise
            raise PipectlError(f"sandbox up failed: {exc} (logs: {layout.run_dir})") from None
    linked = config_file.link_into(Path.cwd(), layout)
    from pipectl.report.sandbox import render_status

    write(render_status(stack.status(layout)))
    if linked:
        note(f"wrote {linked}: `pipectl doctor` now looks at the sandbox")
    else:
        note(f"./pipectl.toml is not the sandbox's: use `pipectl doctor --config {layout.config_file}`")
    return 0


@sandbox_app.command()
def down(folder: DirOption = None) -> int:
    """Stop every sandbox process; nothing is left listening."""
    from pipectl.sandbox import stack

    stopped = stack.down(_layout(folder))
    note(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    return 0


@sandbox_app.command()
def status(
    folder: DirOption = None,
    format: Annotated[str, typer.Option("--format", "-f", help="terminal or json")] = "terminal",
) -> int:
    """Each component, its address, and whether it answers. Exit 1 if any is down."""
    from pipectl.report.sandbox import render_status
    from pipectl.sandbox import stack

    components = stack.status(_layout(folder))
    write(render_status(components, format))
    return 0 if components and all(c.healthy for c in components) else 1


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
    SCENARIOS[scenario].apply(layout, state)
    state.broken.append(scenario)
    layout.save(state)
    _relink(layout)
    note(f"broke the sandbox: {scenario}. `pipectl doctor` should name it; `pipectl sandbox heal` undoes it")
    return 0


@sandbox_app.command()
def heal(folder: DirOption = None) -> int:
    """Undo every drill: the sandbox is as `up` left it."""
    from pipectl.sandbox.scenarios import heal as heal_all

    layout = _layout(folder)
    heal_all(layout, _running_state(layout))
    _relink(layout)
    note("the sandbox is healthy again")
    return 0


def _relink(layout) -> None:
    from pipectl.sandbox import config_file

    config_file.link_into(Path.cwd(), layout)
