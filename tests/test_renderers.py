"""Renderers are pure: the same result always gives the same text, compared here in full."""

import json
from dataclasses import replace
from pathlib import Path

from pipectl.interface import RenderOptions
from pipectl.registry import load_renderers
from pipectl.model import Finding, Severity, Status
from pipectl.report import json as json_report
from pipectl.report import markdown, terminal
from tests.sample_result import CAUSE, HEALTHY, RESULT, SKIPPED, SYMPTOM

GOLDEN = Path(__file__).parent / "golden"
FINDING_KEYS = {"check", "status", "severity", "component", "summary", "impact", "evidence", "fix", "advice",
                "caused_by"}


def test_terminal_tree_puts_symptoms_under_their_cause():
    assert terminal.render(RESULT) == (GOLDEN / "incident.txt").read_text()


def test_terminal_colour_only_when_asked():
    assert "\x1b[" not in terminal.render(RESULT, RenderOptions(color=False))
    assert "\x1b[" in terminal.render(RESULT, RenderOptions(color=True))


def test_markdown_has_the_shape_of_the_incident_documents():
    assert markdown.render(RESULT) == (GOLDEN / "incident.md").read_text()


def test_json_is_the_v2_contract():
    data = json.loads(json_report.render(RESULT))
    assert data["schema"] == "pipectl.report/v2"
    assert data["pipeline"] == "enrichment"
    assert data["started_at"] == "2026-01-01T02:14:00+00:00"
    assert data["summary"] == {"ok": 1, "warn": 0, "fail": 2, "error": 0, "skipped": 1, "suppressed": 0}
    assert all(FINDING_KEYS <= set(f) for f in data["findings"])
    symptom = next(f for f in data["findings"] if f["check"] == "db.stuck")
    assert symptom["caused_by"] == [CAUSE.id]
    assert symptom["evidence"] == {"rows": 40, "status": "QUEUED", "oldest": "12m"}
    assert [f["id"] for f in data["findings"]] == [f.id for f in RESULT.findings]
    assert symptom["fix"] == ["pipectl reset --status QUEUED --to PENDING"] and symptom["advice"] == ""


def test_passing_checks_fold_into_one_line_per_component_unless_all():
    folded, every = terminal.render(RESULT), terminal.render(RESULT, RenderOptions(show_all=True))
    assert HEALTHY.summary not in folded and "prefect  1 passed" in folded and "SKIPPED sqs  1 skipped" in folded
    assert HEALTHY.summary in every and SKIPPED.summary in every
    assert folded.index(CAUSE.summary) < folded.index("1 passed")  # problems first


def test_a_symptom_of_two_causes_is_shown_once_and_named_under_the_other():
    other = replace(CAUSE, check="modal.auth", summary="the token is rejected by Modal")
    symptom = replace(SYMPTOM, caused_by=(CAUSE.id, other.id))
    text = terminal.render(replace(RESULT, findings=(CAUSE, other, symptom)), RenderOptions(width=250))
    assert text.count(symptom.summary) == 1
    assert f"also explains: {symptom.id} (shown above)" in text


def test_the_tree_fits_the_terminal_width():
    for width in (60, 140):
        lines = terminal.render(RESULT, RenderOptions(width=width)).splitlines()
        assert max(len(line) for line in lines) <= width


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
