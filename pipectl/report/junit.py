"""`--format junit`: one test case per finding, so any CI shows pipeline health like a test run."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from pipectl.interface import RenderOptions
from pipectl.model import DoctorResult, Status
from pipectl.report.common import evidence_text, fix_text, suppressed_text


def render(result: DoctorResult, options: RenderOptions = RenderOptions()) -> str:
    counts = result.counts()
    suite = ET.Element("testsuite", {
        "name": f"pipectl doctor: {result.pipeline}",
        "tests": str(len(result.findings) + len(result.suppressed)),
        "failures": str(counts["fail"]),
        "errors": str(counts["error"]),
        "skipped": str(counts["skipped"] + counts["suppressed"]),
        "time": f"{result.duration_s:.3f}",
        "timestamp": result.started_at.isoformat(),
    })
    for finding in result.findings:
        case = ET.SubElement(suite, "testcase", {"classname": finding.component, "name": finding.id})
        detail = "\n".join(x for x in (finding.impact, evidence_text(finding), fix_text(finding)) if x)
        tag = {Status.FAIL: "failure", Status.ERROR: "error", Status.SKIPPED: "skipped"}.get(finding.status)
        if tag:
            node = ET.SubElement(case, tag, {"message": f"{finding.severity.value} {finding.summary}"})
            node.text = detail
        elif finding.status is Status.WARN:
            ET.SubElement(case, "system-out").text = f"WARN {finding.severity.value} {finding.summary}\n{detail}"
    for finding in result.suppressed:
        case = ET.SubElement(suite, "testcase", {"classname": finding.component, "name": finding.id})
        ET.SubElement(case, "skipped", {"message": f"{finding.status.value.upper()} {finding.severity.value} "
                                                   f"{finding.summary} ({suppressed_text(finding)})"})
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
