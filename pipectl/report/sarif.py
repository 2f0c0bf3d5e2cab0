"""`--format sarif`: findings as SARIF 2.1.0 results, for code-scanning dashboards."""

from __future__ import annotations

import json

from pipectl import __version__
from pipectl.interface import RenderOptions
from pipectl.model import DoctorResult, Severity, Status
from pipectl.report.common import fix_text

_LEVEL = {Severity.P0: "error", Severity.P1: "error", Severity.P2: "warning"}


def render(result: DoctorResult, options: RenderOptions = RenderOptions()) -> str:
    shown = [f for f in result.findings if f.status in (Status.FAIL, Status.ERROR, Status.WARN)]
    shown += result.suppressed
    rules = sorted({f.check for f in shown})
    results = []
    for finding in shown:
        entry = {
            "ruleId": finding.check,
            "level": "warning" if finding.status is not Status.FAIL else _LEVEL[finding.severity],
            "message": {"text": finding.summary + (f" ({fix_text(finding)})" if fix_text(finding) else "")},
            "properties": {"severity": finding.severity.value, "status": finding.status.value,
                           "component": finding.component, "evidence": dict(finding.evidence),
                           "caused_by": list(finding.caused_by)},
            "partialFingerprints": {"pipectl/v1": finding.id},
        }
        if finding.suppression is not None:
            entry["suppressions"] = [{
                "kind": "external", "status": "accepted", "justification": finding.suppression.reason,
                "properties": finding.suppression.as_dict()}]
        path = finding.evidence.get("file")
        if isinstance(path, str):
            region = {"startLine": finding.evidence["line"]} if isinstance(finding.evidence.get("line"), int) else {}
            entry["locations"] = [{"physicalLocation": {"artifactLocation": {"uri": path}, **(
                {"region": region} if region else {})}}]
        results.append(entry)
    document = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "pipectl", "version": __version__,
                                "rules": [{"id": rule, "name": rule} for rule in rules]}},
            "results": results,
        }],
    }
    return json.dumps(document, indent=2, default=str) + "\n"
