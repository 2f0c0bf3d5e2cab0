import base64
import json
import logging
import secrets as random_source
from urllib.parse import quote

import pytest

from pipectl.redact import FRAGMENT, MASK, RedactingFilter, Redactor, redactor


def fragments(value: str, size: int = FRAGMENT) -> list[str]:
    return [value[i : i + size] for i in range(len(value) - size + 1)]


def leaked(value: str, text: str) -> list[str]:
    return [piece for piece in fragments(value) if piece in text]


def random_token(prefix: str = "") -> str:
    return prefix + random_source.token_urlsafe(24)


def test_whole_value_its_encodings_and_every_fragment_of_eight_are_masked():
    r = Redactor()
    secret = random_token("as-")
    r.add(secret)
    basic = base64.b64encode(f"user:{secret}".encode()).decode()
    text = (f"token={secret}; half={secret[5:17]}; json={json.dumps(secret)}; url={quote(secret, safe='')}; "
            f"Authorization: Basic {basic}; quoted='{secret}'")
    out = r(text)
    for form in (secret, quote(secret, safe=""), basic[8:]):
        assert leaked(form, out) == [], out
    assert "token=as-" + MASK in out  # the public prefix says which credential it was
    assert out.count(";") == text.count(";")


@pytest.mark.parametrize("shift", [0, 1, 2])
def test_a_secret_inside_any_base64_blob_is_masked_whatever_its_alignment(shift):
    r = Redactor()
    secret = random_token()
    r.add(secret)
    blob = base64.b64encode(b"x" * shift + secret.encode() + b"-tail").decode()
    out = r(f"header {blob} end")
    assert MASK in out and out.startswith("header ") and out.endswith(" end")


def test_text_sharing_a_few_letters_with_a_secret_is_left_alone():
    r = Redactor()
    r.add("Zq81xWv3Lm0Pk")
    assert r("Zq81 xWv3 nothing secret here 1234567") == "Zq81 xWv3 nothing secret here 1234567"
    r.add("abc")
    r.add("")
    r.add(None)
    assert r("abc def") == "abc def"


@pytest.mark.parametrize("word", ["postgres", "prefect", "secret", "severity", "2026", "internal"])
def test_an_everyday_word_secret_is_masked_only_whole_and_never_inside_protected_structure(word):
    r = Redactor()
    r.add(word)
    r.protect("prefect.api", "20261201-150000-ab12cd", f"pipectl patch x --env K=secret:{word}-block")
    text = (f"PostgreSQL {word}ly pre{word} prefect.api run 20261201-150000-ab12cd "
            f"fix: pipectl patch x --env K=secret:{word}-block; value: {word}.")
    out = r(text)
    assert out.endswith(f"value: {MASK}.")
    assert "prefect.api run 20261201-150000-ab12cd" in out
    assert f"pipectl patch x --env K=secret:{word}-block" in out
    assert f"{word}ly pre{word}" in out and "PostgreSQL" in out


def test_a_url_password_is_masked_even_when_short_and_unregistered():
    out = Redactor()("endpoint http://user:pw@127.0.0.1:4566/q and postgresql://app:s3@db/app ok")
    assert out == f"endpoint http://user:{MASK}@127.0.0.1:4566/q and postgresql://app:{MASK}@db/app ok"


def test_log_records_pass_through_the_redactor(caplog):
    secret = random_token()
    redactor.add(secret)
    logger = logging.getLogger("pipectl.test")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.WARNING):
        logger.warning("connecting with %s", secret)
    assert leaked(secret, caplog.text) == []
    assert MASK in caplog.text


def test_structured_redaction_keeps_keys_numbers_and_json_valid(tmp_path):
    from pipectl.journal import Journal

    redactor.add("hunter2024x")
    redactor.add("severity")
    book = Journal(tmp_path / "j.sqlite3")
    run = book.start("pipectl reset", "t")
    book.record(run.id, "change", {"kind": "rows", "ids": [12023, 2024, 52024], "note": "pw hunter2024x"})
    (event,) = book.events(run.id, "change")
    assert event.data["ids"] == [12023, 2024, 52024]
    assert event.data["note"] == "pw " + MASK
    text = redactor.json_text(json.dumps({"rows": 2024, "dsn": "x:hunter2024x@h", "severity": "P1"}))
    assert json.loads(text) == {"rows": 2024, "dsn": "x:" + MASK + "@h", "severity": "P1"}
    assert redactor.json_text("not json") is None


def test_a_public_prefix_and_pem_armour_are_not_secret_fragments():
    r = Redactor()
    r.add("sb_" + "secret_" + random_source.token_urlsafe(24))
    begin, end = "-----" + "BEGIN PRIVATE KEY-----", "-----" + "END PRIVATE KEY-----"
    key = begin + "\n" + random_source.token_urlsafe(48) + "\n" + end
    r.add(key)
    text = f"/srv/client_secret_rotation/pipectl.toml {begin} is a header"
    assert r(text) == text
    assert MASK in r(key) and "BEGIN PRIVATE KEY" in r(key)


def test_an_everyday_word_secret_is_left_inside_compounds():
    r = Redactor()
    for word in ("2026", "secret", "internal", "prefect"):
        r.add(word)
    text = ("started 2026-12-01T15:00:00 block modal-token-secret path /x/internal/journal.sqlite3 prefect.api "
            "--env MODAL_TOKEN_ID=secret:modal-token-id")
    assert r(text) == text
    assert r("password: secret, year 2026. internal") == f"password: {MASK}, year {MASK}. {MASK}"
