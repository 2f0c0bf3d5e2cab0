"""Renderers are pure: the same result always gives the same text, compared here in full."""

import json
from pathlib import Path

from pipectl.interface import RenderOptions
from pipectl.registry import load_renderers
from pipectl.model import Finding, Severity, Status
from pipectl.report import json as json_report
from pipectl.report import markdown, terminal
from tests.sample_result import CAUSE, RESULT, SYMPTOM

GOLDEN = Path(__file__).parent / "golden"
FINDING_KEYS = {"check", "status", "severity", "component", "summary", "impact", "evidence", "fix", "caused_by"}


def test_terminal_tree_puts_symptoms_under_their_cause():
    assert terminal.render(RESULT) == (GOLDEN / "incident.txt").read_text()


def test_terminal_colour_only_when_asked():
    assert "\x1b[" not in terminal.render(RESULT, RenderOptions(color=False))
    assert "\x1b[" in terminal.render(RESULT, RenderOptions(color=True))


def test_markdown_has_the_shape_of_the_incident_documents():
    assert markdown.render(RESULT) == (GOLDEN / "incident.md").read_text()


def test_json_is_the_v1_contract():
    data = json.loads(json_report.render(RESULT))
    assert data["schema"] == "pipectl.report/v2"
    assert data["pipeline"] == "enrichment"
    assert data["started_at"] == "2026-01-01T02:14:00+00:00"
    assert data["summary"] == {"ok": 1, "warn": 0, "fail": 2, "error": 0, "skipped": 1}
    assert all(FINDING_KEYS <= set(f) for f in data["findings"])
    symptom = next(f for f in data["findings"] if f["check"] == "db.stuck")
    assert symptom["caused_by"] == [CAUSE.id]
    assert symptom["evidence"] == {"rows": 40, "status": "QUEUED", "oldest": "12m"}
    assert [f["id"] for f in data["findings"]] == [f.id for f in RESULT.findings]


def test_renderers_are_registered_as_plugins():
    loaded = load_renderers()
    assert {"terminal", "json", "markdown"} <= set(loaded.items)
    assert loaded.items["json"] is json_report.render
    assert SYMPTOM.caused_by == (CAUSE.id,)


def test_the_fix_block_holds_only_commands_and_advice_stays_prose():
    from pipectl.report.markdown import fix_block

    commands = ["pipectl secret set x --from-env X", "pipectl patch a/b --env K=secret:k"]
    advice = "Make sure the token works first (`modal token new` makes one)."
    assert fix_block(commands) == ["```bash", *commands, "```"]
    assert fix_block(commands, advice) == ["```bash", *commands, "```", "", advice]
    assert fix_block((), advice) == [advice]


def test_a_fix_given_as_one_string_is_one_command():
    assert Finding(check="c", status=Status.FAIL, severity=Severity.P0, component="x", summary="s",
                   fix="pipectl redrive jobs").fix == ("pipectl redrive jobs",)
