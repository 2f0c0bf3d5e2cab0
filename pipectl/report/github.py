"""`--format github`: workflow commands, so a GitHub Actions run annotates each failing finding."""

from __future__ import annotations

from pipectl.interface import RenderOptions
from pipectl.model import DoctorResult, Status
from pipectl.report.common import fix_text, summary_line, suppressed_text

_COMMAND = {Status.FAIL: "error", Status.ERROR: "warning", Status.WARN: "warning"}


def render(result: DoctorResult, options: RenderOptions = RenderOptions()) -> str:
    lines = []
    for finding in result.findings:
        command = _COMMAND.get(finding.status)
        if command:
            message = finding.summary + (f" — {fix_text(finding)}" if fix_text(finding) else "")
            lines.append(f"::{command} title={_escape(f'{finding.severity.value} {finding.id}', True)}::"
                         f"{_escape(message)}")
    for finding in result.suppressed:
        lines.append(f"::notice title={_escape(f'suppressed {finding.id}', True)}::"
                     f"{_escape(f'{finding.summary} ({suppressed_text(finding)})')}")
    lines.append(f"::notice title=pipectl doctor::{_escape(summary_line(result))}")
    return "\n".join(lines) + "\n"


def _escape(text: str, property_value: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if property_value else text
