"""`pipectl doctor`: every check at once, findings grouped under their root cause."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipectl.cli.common import (
    ConfigOption,
    command_line,
    load,
    note,
    split_list,
    terminal_width,
    use_color,
    write,
)


def doctor(
    config: ConfigOption = None,
    only: Annotated[list[str] | None, typer.Option(help="Run only these checks or components (comma-separated).")] = None,
    skip: Annotated[list[str] | None, typer.Option(help="Skip these checks or components (comma-separated).")] = None,
    format: Annotated[str | None, typer.Option(
        "--output", "-o", "--format", "-f",
        help="terminal, json, markdown, junit, sarif, github, or a plugin renderer (as -o in kubectl, the AWS "
             "and Prefect CLIs).")] = None,
    outputs: Annotated[list[str] | None, typer.Option(
        "--output-file", metavar="[FORMAT=]PATH",
        help="Write the report to PATH instead of stdout; FORMAT=PATH writes one more file in that format "
             "(repeatable: --output-file json=report.json --output-file junit=junit.xml).")] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds each check may take (default: config, else 5).")] = None,
    fail_on: Annotated[str | None, typer.Option(help="Exit 1 only for FAIL findings at or above P0, P1 or P2.")] = None,
    journal: Annotated[Path | None, typer.Option("--journal", help="Journal file (default: user state dir).")] = None,
    no_journal: Annotated[bool, typer.Option("--no-journal", help="Do not record this run.")] = False,
    ci: Annotated[bool, typer.Option("--ci", help="Smoke gate: also write JUnit XML and SARIF, and annotate "
                                     "GitHub Actions runs.")] = False,
    junit: Annotated[Path, typer.Option(help="With --ci: where the JUnit XML goes.")] = Path("pipectl-junit.xml"),
    sarif: Annotated[Path, typer.Option(help="With --ci: where the SARIF goes.")] = Path("pipectl.sarif"),
    show_all: Annotated[bool, typer.Option("--all", help="List every passing check, not one line per "
                                           "component.")] = False,
    probe: Annotated[bool, typer.Option("--probe", help="Also send a canary item through the pipeline "
                                        "(`pipectl probe`: it writes, then cleans up).")] = False,
    wait_healthy: Annotated[str | None, typer.Option(
        "--wait-healthy", metavar="DURATION", help="Post-deploy gate: rerun until healthy or DURATION (e.g. 5m) "
        "has passed, then report the last run and exit with its code.")] = None,
) -> int:
    """Run every check concurrently and name the root cause of what is stuck."""
    from pipectl import spread

    spread.start_helper()  # its libraries load while this process reads the config
    from pipectl.config_load import environment
    from pipectl.errors import UsageError
    from pipectl.exit_codes import exit_code
    from pipectl.interface import Context, RenderOptions
    from pipectl.model import Severity
    from pipectl.registry import load_checks, load_renderers
    from pipectl.runner import require_something_checked, run_checks, select

    renderers = load_renderers()
    format = format or "terminal"
    if format not in renderers.items:
        hint = "; to write a file use --output-file FILE" if ("." in format or "/" in format) else ""
        raise UsageError(f"unknown output format {format!r}: choose one of "
                         f"{', '.join(sorted(renderers.items))}{hint}")
    if timeout is not None and timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    try:
        threshold = Severity.parse(fail_on) if fail_on else None
    except ValueError as exc:
        raise UsageError(f"--fail-on: {exc}") from None
    deadline = _wait_seconds(wait_healthy)
    output, extra = _destinations(outputs or [], renderers.items)

    from pipectl.files import refuse_symlink

    for target in (output, *extra, *((junit, sarif) if ci else ())):
        if target is not None:
            refuse_symlink(target)  # bad input, before anything runs or is journaled
    cfg = load(config)
    checks = load_checks()
    for warning in checks.warnings + renderers.warnings:
        note(f"pipectl: warning: {warning}")
    chosen = select(checks.items, split_list(only), split_list(skip))
    ctx = Context(config=cfg, timeout=timeout or cfg.doctor.timeout, environ=environment(cfg.source))
    result = run_checks(chosen, ctx)
    if deadline is not None:
        result = _until_healthy(result, lambda: run_checks(chosen, ctx), deadline, threshold or cfg.doctor.fail_on)
    require_something_checked(result, cfg.source.path, selected=bool(only))
    if probe:
        result = _with_probe(cfg, ctx, result)
    if not no_journal:
        _journal(result, journal, cfg)
    options = RenderOptions(color=use_color(output) and format == "terminal", width=terminal_width(output),
                            show_all=show_all)
    write(renderers.items[format](result, options), output)
    if output is not None:
        note(f"report written to {output}")
    for path, name in extra.items():
        write(renderers.items[name](result, RenderOptions(show_all=show_all)), path)
        note(f"{name} report written to {path}")
    if ci:
        _ci_outputs(result, renderers.items, junit, sarif)
    return exit_code(result.findings, threshold or cfg.doctor.fail_on)


def _destinations(specs: list[str], formats) -> tuple[Path | None, dict[Path, str]]:
    """`--output-file` values: at most one plain PATH (for `-o`'s format), and FORMAT=PATH files beside it.

    `name=...` is a format only when `name` is one (a file called `a=b.txt` stays a file)."""
    from pipectl.errors import UsageError

    plain: list[Path] = []
    extra: dict[Path, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if sep and name in formats:
            if not path:
                raise UsageError(f"--output-file {spec}: give a file after '=', e.g. {name}=report.{name}")
            target = Path(path)
            if target in extra:
                raise UsageError(f"--output-file: {target} is named twice")
            extra[target] = name
        elif spec:
            plain.append(Path(spec))
        else:
            raise UsageError("--output-file: give a file name")
    if len(plain) > 1:
        raise UsageError(f"--output-file: {len(plain)} files without a format ({', '.join(map(str, plain))}); "
                         "name the others' formats, e.g. --output-file json=report.json")
    if plain and plain[0] in extra:
        raise UsageError(f"--output-file: {plain[0]} is named twice")
    return (plain[0] if plain else None), extra


def _wait_seconds(text: str | None) -> float | None:
    from pipectl.durations import option_seconds

    return None if text is None else option_seconds(text, "--wait-healthy")


def _until_healthy(result, rerun, seconds: float, threshold):
    """Rerun while doctor would not exit 0 and time is left; progress on stderr; the last run is the verdict."""
    import time

    from pipectl.exit_codes import exit_code

    deadline, attempt = time.monotonic() + seconds, 1
    while exit_code(result.findings, threshold) != 0 and time.monotonic() < deadline:
        failing = [f.id for f in result.findings if f.status.value in ("fail", "error")]
        note(f"not healthy yet (run {attempt}: {', '.join(failing[:3])}{' …' if len(failing) > 3 else ''}); "
             f"rerunning for up to {max(0.0, deadline - time.monotonic()):.0f}s more")
        time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
        result, attempt = rerun(), attempt + 1
    if exit_code(result.findings, threshold) == 0 and attempt > 1:
        note(f"healthy after {attempt} runs")
    return result


def _with_probe(cfg, ctx, result):
    """The doctor's result with the probe's finding added, its causes taken from the findings at hand."""
    from dataclasses import replace

    from pipectl.probe import as_finding, run_probe

    outcome = run_probe(cfg, ctx.environ, known=list(result.findings), progress=lambda text: None)
    return replace(result, findings=(*result.findings, as_finding(outcome)))


def _ci_outputs(result, renderers, junit: Path, sarif: Path) -> None:
    """The smoke gate's artefacts; GitHub annotations only when running inside GitHub Actions."""
    import os

    from pipectl.interface import RenderOptions

    write(renderers["junit"](result, RenderOptions()), junit)
    write(renderers["sarif"](result, RenderOptions()), sarif)
    note(f"CI artefacts: {junit}, {sarif}")
    if os.environ.get("GITHUB_ACTIONS") == "true":
        write(renderers["github"](result, RenderOptions()))


def _journal(result, path: Path | None, config) -> None:
    """Record the findings; a journal that cannot be written is a warning, never a failed doctor run."""
    from pipectl.identity import identity_of
    from pipectl.journal import Journal
    from pipectl.playbook import record_findings
    from pipectl.repair import JournalRun

    try:
        book = Journal(path)
        record_findings(JournalRun(book, book.start(command_line(), result.pipeline, identity_of(config))),
                        result, "doctor")
    except Exception as exc:  # noqa: BLE001 - the diagnosis matters more than its record
        note(f"pipectl: warning: could not write the journal: {exc}")
