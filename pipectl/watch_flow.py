"""The watchdog as a Prefect flow: what `pipectl watch deploy` registers, run by any worker with pipectl
installed (entrypoint `pipectl.watch_flow.watchdog`). Kept apart from `pipectl.watch` because defining a
flow imports Prefect, which the CLI does not pay for until it needs it.

The run ends Completed when doctor would exit 0 and Failed otherwise (a FAIL at or above the config's
`doctor.fail_on`, or a check that could not tell), with the run's summary as the state's message, so
automations on flow-run states work too. Those fire on every unhealthy run; the `pipectl.finding.*`
events fire only on change.
"""

from __future__ import annotations

from prefect import flow

from pipectl.watch import FLOW_NAME


@flow(name=FLOW_NAME, persist_result=False, validate_parameters=True)
def watchdog(config: str, context: str | None = None, timeout: float | None = None):
    """Run pipectl doctor with CONFIG (a path on the worker), publish the report, emit changed findings.

    `context` is the config's [contexts.NAME] to use; `timeout` the seconds each check may take (default:
    the config's `doctor.timeout`)."""
    from pipectl.connectors import prefect_watch
    from pipectl.errors import PipectlError
    from pipectl.redact import redactor
    from pipectl.watch import run_once

    try:
        healthy, line = run_once(config, context, timeout)
    except PipectlError as exc:  # a config the worker cannot read, nothing to check: one line, as the CLI says it
        raise RuntimeError(redactor(str(exc))) from None
    except Exception as exc:  # noqa: BLE001 - Prefect logs it: never a secret a message might hold
        raise RuntimeError(f"internal error: {type(exc).__name__}: {redactor(str(exc))}") from None
    return prefect_watch.final_state(healthy, line)
