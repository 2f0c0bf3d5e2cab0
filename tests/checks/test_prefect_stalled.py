"""prefect.stalled's judgement: what counts as a zombie run, from the deployment's own history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipectl.checks.prefect_stalled import FLOOR, WITHOUT_HISTORY, PrefectStalled, allowed_runtime
from pipectl.config import PipelineConfig
from pipectl.connectors.prefect_runs import FlowRunInfo
from pipectl.interface import Context
from pipectl.model import Status

NOW = datetime.now(UTC)
CTX = Context(config=PipelineConfig(prefect={"api_url": "http://127.0.0.1:9/api"}), timeout=5)


def run(state: str, started_ago: timedelta | None, in_state_for: timedelta, expected_ago: timedelta,
        run_id: str = "7f1c0c9e-1111-4a4a-8888-000000000001") -> FlowRunInfo:
    return FlowRunInfo(id=run_id, name="brave-otter", deployment_id=None, state_type=state, state_name=state.title(),
                       expected_start_time=NOW - expected_ago,
                       start_time=NOW - started_ago if started_ago else None,
                       end_time=None, work_pool_name="pool", state_since=NOW - in_state_for)


def completed(seconds: int) -> FlowRunInfo:
    return FlowRunInfo(id="x", name="x", deployment_id=None, state_type="COMPLETED", state_name="Completed",
                       expected_start_time=NOW, start_time=NOW - timedelta(seconds=seconds + 60),
                       end_time=NOW - timedelta(seconds=60), work_pool_name="pool")


def test_allowed_runtime_comes_from_config_then_history_then_a_default():
    assert allowed_runtime(timedelta(minutes=3), [completed(100)]) == timedelta(minutes=3)
    assert allowed_runtime(None, [completed(100), completed(300)]) == timedelta(seconds=3000)
    assert allowed_runtime(None, [completed(5)]) == FLOOR
    assert allowed_runtime(None, []) == WITHOUT_HISTORY


def test_a_run_running_far_too_long_is_stalled_and_its_fix_forces_cancelled():
    finding = PrefectStalled()._judge(CTX, "a/b", timedelta(hours=1),
                                      [run("RUNNING", timedelta(hours=3), timedelta(hours=3), timedelta(hours=3))])
    assert finding.status is Status.FAIL and "RUNNING for 3h" in finding.summary
    (command,) = finding.fix
    assert "/flow_runs/7f1c0c9e-1111-4a4a-8888-000000000001/set_state" in command and '"force": true' in command


def test_a_late_run_just_picked_up_is_pending_but_not_stalled():
    """PENDING for seconds, though its expected start was hours ago (it was Late until a worker came)."""
    late = run("PENDING", None, timedelta(seconds=3), timedelta(hours=5))
    assert PrefectStalled()._judge(CTX, "a/b", timedelta(hours=1), [late]).status is Status.OK


def test_a_run_cancelling_with_nobody_to_finish_it_is_stalled():
    stuck = run("CANCELLING", timedelta(hours=4), timedelta(hours=2), timedelta(hours=4))
    assert PrefectStalled()._judge(CTX, "a/b", timedelta(hours=1), [stuck]).status is Status.FAIL
