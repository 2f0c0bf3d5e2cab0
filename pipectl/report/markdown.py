"""`--format markdown`: a report in the shape of a post-mortem, causes first, each with its fix."""

from __future__ import annotations

from pipectl.interface import RenderOptions
from pipectl.model import DoctorResult, Finding, Status
from pipectl.report.common import display_order, summary_line, suppressed_text

_NOT_OK = (Status.FAIL, Status.ERROR, Status.WARN)


def render(result: DoctorResult, options: RenderOptions = RenderOptions()) -> str:
    causes = [f for f in display_order(result.causes()) if f.status in _NOT_OK]
    lines = [
        f"# Pipeline diagnosis: {result.pipeline}",
        "",
        f"**Date**: {result.started_at:%Y-%m-%d %H:%M:%S} UTC  ",
        f"**Result**: {summary_line(result)}",
        "",
        "## Executive Summary",
        "",
    ]
    lines += _executive_summary(result, causes)
    if causes:
        lines += ["", "| Priority | Issue | Component | Impact | Evidence |", "|---|---|---|---|---|"]
        lines += [
            f"| {f.severity.value} | {_cell(f.summary)} | {f.component} | {_cell(f.impact)} | "
            f"{_cell(_evidence_inline(f))} |"
            for f in causes
        ]
        lines += ["", "## Root Causes", ""]
        for number, cause in enumerate(causes, 1):
            lines += _section(number, cause, result)
    if result.suppressed:
        lines += ["## Suppressed findings", ""]
        lines += [f"- `{f.id}` ({f.status.value}, {f.severity.value}): {f.summary} — {suppressed_text(f)}"
                  for f in display_order(list(result.suppressed))] + [""]
    healthy = [f for f in result.findings if f.status is Status.OK]
    if healthy:
        lines += ["## Checks that passed", ""] + [f"- `{f.id}`: {f.summary}" for f in healthy] + [""]
    skipped = [f for f in result.findings if f.status is Status.SKIPPED]
    if skipped:
        lines += ["## Checks skipped", ""] + [f"- `{f.id}`: {f.summary}" for f in skipped] + [""]
    return "\n".join(lines).rstrip() + "\n"


def _executive_summary(result: DoctorResult, causes: list[Finding]) -> list[str]:
    failing = [f for f in causes if f.status is Status.FAIL]
    if not causes:
        return ["Every check passed: nothing is blocking the pipeline."]
    top = (failing or causes)[0]
    symptoms = result.symptoms_of(top)
    lines = [f"**Problem:** {symptoms[0].summary if symptoms else top.summary}", ""]
    lines.append(f"**Root cause:** {top.summary}" + (f" ({top.impact})" if top.impact else ""))
    if top.fix or top.advice:
        lines += ["", "**Fix:**", "", *fix_block(top.fix, top.advice)]
    lines += ["", f"{len(failing)} failing root cause(s), {len(causes) - len(failing)} other finding(s) to look at."]
    return lines


def _section(number: int, finding: Finding, result: DoctorResult) -> list[str]:
    lines = [
        f"### {finding.status.value.upper()} #{number}: {finding.summary}",
        "",
        f"**Check**: `{finding.id}` · **Severity**: {finding.severity.value} · **Component**: {finding.component}",
        "",
    ]
    if finding.impact:
        lines += [f"**Impact**: {finding.impact}", ""]
    if finding.evidence:
        lines += ["**Evidence**:", ""] + [f"- {k}: {_value(v)}" for k, v in finding.evidence.items()] + [""]
    symptoms = display_order(result.symptoms_of(finding))
    if symptoms:
        lines += ["**Symptoms it explains**:", ""]
        lines += [f"- `{s.id}` ({s.status.value}): {s.summary}" for s in symptoms] + [""]
    if finding.fix or finding.advice:
        lines += ["**Fix**:", "", *fix_block(finding.fix, finding.advice), ""]
    return lines


def fix_block(fix: tuple[str, ...] | list[str], advice: str = "") -> list[str]:
    """The commands as one `bash` block to copy (nothing but commands in it), the advice as prose."""
    lines = ["```bash", *fix, "```"] if fix else []
    return lines + ([""] if lines and advice else []) + ([advice] if advice else [])


def _evidence_inline(finding: Finding) -> str:
    return "; ".join(f"{k}: {_value(v)}" for k, v in list(finding.evidence.items())[:4])


def _value(value: object) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
