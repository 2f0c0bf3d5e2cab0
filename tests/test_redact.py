import logging

from pipectl.redact import MASK, RedactingFilter, Redactor, redactor


def test_whole_value_and_every_four_character_piece_is_masked():
    r = Redactor()
    secret = "as-Zq81xWv3Lm0Pk"
    r.add(secret)
    text = f"token={secret}; hint={secret[:6]}; tail={secret[-4:]}; mid={secret[5:11]}"
    out = r(text)
    for i in range(len(secret) - 3):
        assert secret[i : i + 4] not in out
    assert out.startswith("token=" + MASK)
    assert "hint=" in out and "tail=" in out


def test_unrelated_text_is_untouched_and_short_values_are_ignored():
    r = Redactor()
    r.add("abc")
    r.add("")
    r.add(None)
    assert r("abc def") == "abc def"
    r.add("Zq81xWv3")
    assert r("nothing secret here") == "nothing secret here"


def test_json_escaped_form_is_masked_too():
    r = Redactor()
    r.add('pa"ss\\word')
    assert "ss\\\\wo" not in r('{"v": "pa\\"ss\\\\word"}')


def test_log_records_pass_through_the_redactor(caplog):
    redactor.add("Zq81xWv3Lm0Pk")
    logger = logging.getLogger("pipectl.test")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.WARNING):
        logger.warning("connecting with %s", "Zq81xWv3Lm0Pk")
    assert "Zq81" not in caplog.text
    assert MASK in caplog.text


def test_structured_redaction_keeps_numbers_and_json_valid(tmp_path):
    import json

    from pipectl.journal import Journal

    redactor.add("hunter2024")
    book = Journal(tmp_path / "j.sqlite3")
    run = book.start("pipectl reset", "t")
    book.record(run.id, "change", {"kind": "rows", "ids": [12023, 2024, 52024], "note": "pw hunter2024"})
    (event,) = book.events(run.id, "change")
    assert event.data["ids"] == [12023, 2024, 52024]
    assert event.data["note"] == "pw " + MASK
    text = redactor.json_text(json.dumps({"rows": 2024, "dsn": "x:hunter2024@h"}))
    assert json.loads(text) == {"rows": 2024, "dsn": "x:" + MASK + "@h"}
    assert redactor.json_text("not json") is None
