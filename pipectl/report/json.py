"""`--format json`: the stable machine contract, schema `pipectl.report/v2`."""

from __future__ import annotations

import json

from pipectl.interface import RenderOptions
from pipectl.model import DoctorResult

SCHEMA = "pipectl.report/v2"


def to_dict(result: DoctorResult) -> dict:
    return {
        "schema": SCHEMA,
        "pipeline": result.pipeline,
        "started_at": result.started_at.isoformat(),
        "duration_s": round(result.duration_s, 3),
        "findings": [f.as_dict() for f in (*result.findings, *result.suppressed)],
        "summary": result.counts(),
    }


def render(result: DoctorResult, options: RenderOptions = RenderOptions()) -> str:
    return json.dumps(to_dict(result), indent=2, default=str) + "\n"
