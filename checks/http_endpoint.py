"""http.endpoint — each configured endpoint answers as expected, and its body says it did the work."""

from __future__ import annotations

import asyncio
import json
import shlex
from typing import TYPE_CHECKING, Any

from pipectl.errors import PipectlError, Unreachable
from pipectl.interface import Check, Context
from pipectl.model import Finding, Severity

if TYPE_CHECKING:
    from pipectl.config import HttpEndpoint as EndpointConfig
    from pipectl.connectors.http import HttpAnswer

_BUDGET = 0.8
"""Share of the run's timeout one request may take, so an unreachable endpoint is an ERROR, not a hang."""
_MISSING = object()


class HttpEndpoint(Check):
    """Detects: an endpoint listed under [[http]] that cannot be reached, answers with another status than
    `expect_status`, or whose JSON body contradicts it: with `json_field = "data.queued"` the value at that
    dotted path must equal `json_value` (or, without `json_value`, be present and not false/null/0/empty).

    Why it matters: in the second incident the enqueue endpoint answered 201 `{"success": true}` while
    queuing nothing, so every caller believed the work had started. A status code alone cannot tell.

    Fix: look at the service's logs for the request (the endpoint is reached with the method configured,
    without following redirects), then correct the code path that reports success without doing the work.
    Re-check with `pipectl doctor --only http`.
    """

    id = "http.endpoint"
    libraries = ("httpx",)
    component = "http"
    severity = Severity.P1

    def applies(self, ctx: Context) -> str | None:
        return None if ctx.config.http else "no [[http]] endpoints in the config"

    async def run(self, ctx: Context) -> list[Finding]:
        from pipectl.connectors import http

        for endpoint in ctx.config.http:
            http.register_url_secrets(endpoint.url)
        timeout = max(ctx.timeout * _BUDGET, 0.1)
        return list(await asyncio.gather(*(self._one(http, e, timeout) for e in ctx.config.http)))

    async def _one(self, http: Any, endpoint: EndpointConfig, timeout: float) -> Finding:
        url = http.safe_url(endpoint.url)
        method = endpoint.method.upper()
        subject = endpoint.name or (url if method == "GET" else f"{method} {url}")
        try:
            answer = await http.aprobe(endpoint.url, method, timeout)
        except Unreachable as exc:
            return self.error(
                str(exc),
                subject=subject,
                evidence={"url": url, "method": method},
                impact="Could not tell whether it works; its callers probably cannot reach it either.",
                advice=f"Is the service up? Look with `curl -i -X {method} {shlex.quote(url)}`.",
            )
        except PipectlError as exc:
            return self.error(str(exc), subject=subject, evidence={"url": url, "method": method},
                              advice="Correct the [[http]] entry in the config.")  # fmt: skip
        return self._judge(endpoint, answer, subject, url, method)

    def _judge(
        self, endpoint: EndpointConfig, answer: HttpAnswer, subject: str, url: str, method: str
    ) -> Finding:
        evidence: dict[str, Any] = {"url": url, "method": method, "status": answer.status,
                                    "expected_status": endpoint.expect_status,
                                    "elapsed_ms": round(answer.elapsed * 1000)}  # fmt: skip
        problems: list[str] = []
        if answer.status != endpoint.expect_status:
            problems.append(f"answered {answer.status}, expected {endpoint.expect_status}")
        field = endpoint.json_field
        if field:
            got = lookup(answer.json, field) if answer.is_json else _MISSING
            expected = endpoint.json_value
            evidence["field"] = field
            evidence["expected"] = _shown(expected) if expected is not None else "present and truthy"
            evidence["got"] = None if got is _MISSING else _shown(got)
            if not answer.is_json:
                problems.append(f"body is not JSON, so {field} cannot be read")
            elif got is _MISSING:
                problems.append(f"body has no {field}")
            elif expected is None and not got:
                problems.append(f"{field} is {_text(got)}")
            elif expected is not None and not same_json(got, expected):
                problems.append(f"{field} is {_text(got)}, expected {_text(expected)}")
        if not problems:
            told = f", {field} = {_text(lookup(answer.json, field))}" if field else ""
            return self.ok(f"{subject}: {answer.status} in {evidence['elapsed_ms']} ms{told}",
                           subject=subject, evidence=evidence)  # fmt: skip
        claims_success = answer.status == endpoint.expect_status and 200 <= answer.status < 300
        impact = (
            "The endpoint reports success without doing the work: callers believe jobs were queued when "
            "nothing was (the second incident's failure)."
            if claims_success
            else "Callers get an error or an unexpected answer; the work behind the endpoint does not run."
        )
        if field and answer.status == endpoint.expect_status:
            look = f"curl -s -X {method} {shlex.quote(url)} | jq {shlex.quote(_jq_path(field))}"
        else:
            look = f"curl -s -i -X {method} {shlex.quote(url)}"
        return self.fail(
            f"{subject}: {'; '.join(problems)}", subject=subject, impact=impact, evidence=evidence,
            advice=f"See the answer with `{look}`, then read the service's logs for this request.",
        )


def lookup(document: Any, path: str) -> Any:
    """The value at a dotted path (`data.queued`, `items.0.id`), or the module's _MISSING marker."""
    value = document
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def same_json(got: Any, expected: Any) -> bool:
    """Equality without Python's coercions: true is not 1, "1" is not 1; 1 and 1.0 are the same number."""
    if isinstance(got, bool) or isinstance(expected, bool):
        return isinstance(got, bool) and isinstance(expected, bool) and got == expected
    if isinstance(got, (int, float)) and isinstance(expected, (int, float)):
        return got == expected
    if isinstance(got, list) and isinstance(expected, list):
        return len(got) == len(expected) and all(same_json(g, e) for g, e in zip(got, expected, strict=True))
    if isinstance(got, dict) and isinstance(expected, dict):
        return got.keys() == expected.keys() and all(same_json(got[k], expected[k]) for k in got)
    return type(got) is type(expected) and got == expected


def _shown(value: Any) -> Any:
    """A JSON value as evidence: scalars as they are (long strings cut), containers as compact JSON."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _text(value: Any) -> str:
    """A JSON value as it reads in a summary: `false`, `"false"`, `1`, `null`, `{"a":1}`."""
    if value is _MISSING:
        return "missing"
    if isinstance(value, (dict, list)):
        return _shown(value)
    return json.dumps(_shown(value))


def _jq_path(field: str) -> str:
    return (
        "".join(f"[{part}]" if part.lstrip("-").isdigit() else f".{part}" for part in field.split(".")) or "."
    )
