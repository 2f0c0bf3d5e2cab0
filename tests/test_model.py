import dataclasses

import pytest

from pipectl.durations import format_duration, parse_duration
from pipectl.exit_codes import exit_code
from pipectl.model import Finding, Severity, Status


def finding(status: Status, severity: Severity = Severity.P1, check: str = "x.y", **kw) -> Finding:
    return Finding(check=check, status=status, severity=severity, component="c", summary="s", **kw)


def test_severity_is_ordered_with_p0_most_urgent():
    assert Severity.P0 < Severity.P1 < Severity.P2
    assert sorted([Severity.P2, Severity.P0, Severity.P1]) == [Severity.P0, Severity.P1, Severity.P2]
    assert Severity.parse(" p1 ") is Severity.P1
    with pytest.raises(ValueError, match="P0, P1, P2"):
        Severity.parse("high")


def test_finding_is_frozen_and_identified_by_check_and_subject():
    f = finding(Status.FAIL, subject="workflow_states", evidence={"rows": 40})
    assert f.id == "x.y:workflow_states"
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.status = Status.OK  # type: ignore[misc]
    with pytest.raises(TypeError):
        f.evidence["rows"] = 1  # type: ignore[index]


@pytest.mark.parametrize(
    "statuses, fail_on, expected",
    [
        ([], Severity.P2, 0),
        ([(Status.OK, Severity.P0), (Status.WARN, Severity.P0)], Severity.P2, 0),
        ([(Status.FAIL, Severity.P2)], Severity.P2, 1),
        ([(Status.FAIL, Severity.P2)], Severity.P1, 0),
        ([(Status.FAIL, Severity.P1), (Status.ERROR, Severity.P0)], Severity.P1, 1),
        ([(Status.ERROR, Severity.P2), (Status.OK, Severity.P0)], Severity.P0, 3),
        ([(Status.FAIL, Severity.P2), (Status.ERROR, Severity.P2)], Severity.P0, 3),
        ([(Status.SKIPPED, Severity.P0)], Severity.P2, 0),
    ],
)
def test_exit_code_is_a_function_of_findings_and_threshold(statuses, fail_on, expected):
    assert exit_code([finding(s, sev) for s, sev in statuses], fail_on) == expected


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("10m", 600), ("1.5h", 5400), ("2d", 172800), (" 5 m ", 300)])
def test_durations(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["10", "ten minutes", "5w", "-5m", ""])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_format_duration():
    assert [format_duration(s) for s in (5, 600, 3600, 3900, 90000)] == ["5s", "10m", "1h", "1h 5m", "1d 1h"]
