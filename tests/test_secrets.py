"""The one classifier: which names and which values are credentials, and what of a value is secret."""

from __future__ import annotations

import secrets as random_source

import pytest

from pipectl.redact import redactor
from pipectl.secrets import fingerprint, is_secret_key, placeholder, scrub, secret_parts

STRIPE = "sk_" + "live_" + random_source.token_hex(16)


@pytest.mark.parametrize(("name", "secret"), [
    ("MODAL_TOKEN_ID", True), ("MODAL_TOKEN_SECRET", True), ("AWS_SECRET_ACCESS_KEY", True),
    ("AWS_ACCESS_KEY_ID", True), ("STRIPE_KEY", True), ("stripe_webhook.signing_secret", True),
    ("PGPASSWORD", True), ("clientSecret", True), ("DB_PASS", True), ("SENTRY_DSN", True), ("api_token", True),
    ("LOG_LEVEL", False), ("SORT_KEY", False), ("SECRET_NAME", False), ("SUPABASE_ANON_KEY", False),
    ("csrf_token", False), ("TOKEN_URL", False), ("PWD", False), ("OLDPWD", False), ("SSH_AUTH_SOCK", False),
    ("DATABASE_URL", False), ("page_token", False), ("key", False),
])  # fmt: skip
def test_names(name, secret):
    assert is_secret_key(name) is secret


@pytest.mark.parametrize(("key", "value", "parts"), [
    ("database.dsn", "postgresql://app:pw@db:5432/app", ["pw"]),  # the password, not the place
    ("database.dsn", "postgresql://postgres:@/postgres?host=/tmp/x/.pipectl-sandbox/pg", []),
    ("database.dsn", "host=/tmp/x dbname=app", []),
    ("database.dsn", "host=db user=app password=s3cr3t", ["s3cr3t"]),
    ("url", "https://api.example.invalid/v1?token=abcdef123456&page=2", ["abcdef123456"]),
    ("DB_PASSWORD", "postgres", ["postgres"]),  # an everyday word is still the password here
    ("DB_PASSWORD", "Klbe=A0I+v~VkLc", ["Klbe=A0I+v~VkLc"]),  # an `=` inside does not make it a DSN
    ("GOOGLE_APPLICATION_CREDENTIALS", "/etc/gcp/key.json", []),  # a path to a key file
    ("LOG_SINK", STRIPE, [STRIPE]),  # an ordinary name, a credential's shape
    ("MODAL_TOKEN_ID", "{{ prefect.blocks.secret.modal-token-id }}", []),  # a reference
    ("MODAL_TOKEN_ID", "env:MODAL_TOKEN_ID", []),
    ("LOG_LEVEL", "DEBUG", []),
], ids=lambda value: "a-stripe-key" if value == STRIPE else None)  # fmt: skip; the same ids in every process
def test_the_secret_parts_of_a_value(key, value, parts):
    assert secret_parts(key, value) == parts


def test_scrub_keeps_the_structure_and_registers_what_it_replaces():
    data = {"env": {"STRIPE_KEY": STRIPE, "LOG_LEVEL": "DEBUG"}, "ids": list(range(5)),
            "nested": {"signing_secret": "whsec_" + random_source.token_hex(12)}, "again": placeholder(STRIPE)}
    clean = scrub(data)
    assert clean["env"] == {"STRIPE_KEY": f"‹secret {fingerprint(STRIPE)}›", "LOG_LEVEL": "DEBUG"}
    assert clean["ids"] == [0, 1, 2, 3, 4] and clean["nested"]["signing_secret"].startswith("‹secret sha256:")
    assert clean["again"] == placeholder(STRIPE)  # a placeholder is never taken for a secret itself
    assert STRIPE[8:20] not in redactor(f"said {STRIPE}")


def test_a_typed_key_with_a_known_prefix_is_masked_even_without_a_digit():
    """One Stripe key in a hundred drawn at random has no digit: the prefix alone says what it is."""
    from pipectl.redact import redactor
    from pipectl.secrets import register_arguments

    key = "sk_" + "live_" + "jvqPVStNKiaEdFrRgSnRFsTH"
    register_arguments(["secret", "set", "stripe-key", key])
    assert "jvqPVStN" not in redactor(f"Got unexpected extra argument ({key})")


@pytest.mark.parametrize("char", list("!#%*+-.=^_~?&;$,"))
def test_a_url_password_with_any_unencoded_character_is_taken_whole(char):
    """`#` or `?` in a password ends urlsplit's netloc: the rest of the password must not pass for a path."""
    password = f"Xb{char}5Y=lIJSd{char}q7"
    url = f"postgresql://app:{password}@db.internal:5432/app"
    assert secret_parts("DATABASE_URL", url) == [password]
