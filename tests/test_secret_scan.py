"""The secret scanner on single lines: what it reports, what it leaves alone, and that it never shows a value.

Credential-shaped values are assembled at run time, so this file itself holds none (the pre-commit hook
greps for them). AWS's documented example keys are placeholders, reported by nothing.
"""

from __future__ import annotations

import pytest

from pipectl.secret_scan import Hit, is_placeholder, scan_lines, scan_text

AWS_KEY_ID = "AKIA" + "Q7WM2XPH" + "D3NF5JC0"
AWS_SECRET = "Jc0Ga8Rt/Vb2Kp9Lm4Zr" + "+Tw1Ys6Hd3Nf5Jc0GaQz"
AWS_EXAMPLE_ID = "AKIA" + "IOSFODNN7" + "EXAMPLE"
AWS_EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"
PREFECT = "pnu_" + "Qz7Wm2Xp" * 4 + "Hd3N"
MODAL_ID = "ak-" + "Vb2Kp9Lm" * 3
MODAL_SECRET = "as-" + "Tw1Ys6Hd" * 3
STRIPE = "sk_" + "live_" + "Jc0Ga8Rt" * 3
GITHUB = "ghp_" + "Nf5Jc0Ga" * 4 + "Xk2V"
PASSWORD = "Pw9" + "Xk2Vm7Qz4Rt"
SHORT_PASSWORD = "Xk2" + "Vm7"
STRIPE_TEST = "sk_" + "test_" + "Jc0Ga8Rt" * 3
BEARER = "Qz7Wm2Xp" + "Hd3Nf5Jc0GaVb2Kp9Lm4"
PEM_HEADER = "-" * 5 + "BEGIN RSA " + "PRIVATE KEY" + "-" * 5
PEM_FOOTER = "-" * 5 + "END RSA " + "PRIVATE KEY" + "-" * 5
PEM_BODY = "MIIEow" + "IBAAKCAQEAx7Vb2Kp9Lm4Zr8Tw1Ys6Hd3Nf5Jc0GaQz7Wm2Xp"


def _jwt(payload: str) -> str:
    import base64

    def part(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    header = part('{"alg":"HS256","typ":"JWT"}')
    return f"{header}.{part(payload)}.{'Sg7Wm2XpQz' * 4}"


SERVICE_JWT = _jwt('{"role":"service_role","iss":"supabase"}')
ANON_JWT = _jwt('{"role":"anon","iss":"supabase"}')

# (file, line, rule expected or None for "nothing")
CASES = [
    ("deploy/.env", f"AWS_ACCESS_KEY_ID={AWS_KEY_ID}", "AWS Access Key"),
    ("deploy/.env", f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}", "Secret assigned to AWS_SECRET_ACCESS_KEY"),
    ("settings.py", f'aws_secret_access_key = "{AWS_SECRET}"', "AWS Access Key"),
    ("pipectl.toml", f'api_key = "{PREFECT}"', "Prefect API Key"),
    ("modal.env", f"MODAL_TOKEN_ID={MODAL_ID}", "Modal Token ID"),
    ("modal.env", f"MODAL_TOKEN_SECRET={MODAL_SECRET}", "Modal Token Secret"),
    ("billing.py", f'stripe.api_key = "{STRIPE}"', "Stripe Access Key"),
    ("ci.yml", f"token: {GITHUB}", "GitHub Token"),
    ("app.js", f"const supabaseKey = '{SERVICE_JWT}'", "JSON Web Token"),
    ("app.env", f"DATABASE_URL=postgresql://app:{PASSWORD}@db.internal:5432/app", "Basic Auth Credentials"),
    ("config.py", f'DB_PASSWORD = "{PASSWORD}"', "Secret assigned to DB_PASSWORD"),
    ("client.ts", f'const clientSecret = "{PASSWORD}";', "Secret assigned to clientSecret"),
    ("secrets.json", f'{{"webhook_secret": "{PASSWORD}"}}', "Secret assigned to webhook_secret"),
    ("values.yaml", f"  api_token: {PASSWORD}", "Secret assigned to api_token"),
    # placeholders and references
    ("pipectl.toml", 'api_key = "env:PREFECT_API_KEY"', None),
    ("values.yaml", 'password: "<REDACTED>"', None),
    ("values.yaml", "api_key: xxxxxxxxxxxxxxxx", None),
    ("README.md", "export PREFECT_API_KEY=your-key-here", None),
    ("compose.yml", "      PASSWORD: ${DB_PASSWORD}", None),
    ("deploy.yaml", "  secret: '{{ prefect.blocks.secret.modal-token }}'", None),
    ("billing.py", 'stripe.api_key = "sk_' + 'live_xxxxxxxxxxxxxxxxxxxxxxxx"', None),
    ("config.py", 'SECRET_KEY = os.environ["SECRET_KEY"]', None),
    ("config.py", "password = get_password()", None),
    ("config.py", "api_key: str | None = None", None),
    ("config.py", 'keys = {"api_key": "PREFECT_API_KEY"}', None),
    ("config.py", 'MODAL_TOKEN_SECRET = "modal-token-secret"', None),
    ("app.env", "DATABASE_URL=postgresql://postgres:postgres@localhost/app", None),
    ("app.js", f"const anonKey = '{ANON_JWT}'", None),
    # ordinary code that only looks like it
    ("main.py", "for key in sorted(keys): print(key)", None),
    ("main.py", "max_tokens = 4096", None),
    ("main.py", 'if password == "":', None),
    ("models.py", 'primary_key = "company_id_and_date"', None),
    ("main.py", 'token_type = "bearer"', None),
    ("pipeline.py", f'job = "{MODAL_ID[:10]}"', None),
    ("logo.png", f"AWS_ACCESS_KEY_ID={AWS_KEY_ID}", "AWS Access Key"),  # scan_lines judges lines, not names
    # passwords in connection strings, whatever their length
    ("dump.sh", f"PGPASSWORD={PASSWORD} psql -h db -U app app", "Secret assigned to PGPASSWORD"),
    ("app.env", f"DATABASE_URL=postgresql://app:{SHORT_PASSWORD}@db:5432/app", "Basic Auth Credentials"),
    ("db.py", f'psycopg.connect("host=db user=app password={SHORT_PASSWORD} dbname=app")',
     "Password in connection string"),
    ("app.properties", f"url=jdbc:postgresql://db:5432/app?user=app&password={SHORT_PASSWORD}",
     "Password in connection string"),
    ("call.sh", f'curl -H "Authorization: Bearer {BEARER}" https://api.internal/v1/jobs', "Bearer Token"),
    ("billing.env", f"STRIPE_KEY={STRIPE_TEST}", "Stripe Access Key"),
    # look-alikes
    ("deploy/.env", f"AWS_ACCESS_KEY_ID={AWS_EXAMPLE_ID}", None),
    ("deploy/.env", f"AWS_SECRET_ACCESS_KEY={AWS_EXAMPLE_SECRET}", None),
    ("deploy/.env", "PREFECT_API_KEY=pnu_" + "1234567890abcdef" * 2 + "1234", None),
    ("deploy/.env", "MODAL_TOKEN_ID=ak-" + "0" * 22, None),
    ("form.env", "csrf-token=" + PASSWORD * 2, None),
    ("values.yaml", "  csrf_token: " + PASSWORD * 2, None),
    ("app.ts", f"const supabaseKey = '{ANON_JWT}'", None),
    ("db.py", "conn = connect(host=h, user=u, password=self.password)", None),
    ("call.sh", 'curl -H "Authorization: Bearer $API_TOKEN" https://api.internal', None),
    ("auth.py", 'password_reset_url = "https://app.internal/reset"', None),
    ("app.env", "DATABASE_URL=postgresql://app@db.internal:5432/app", None),
    # shapes found in real code (site-packages) that are documentation or field names, not credentials
    ("engine.py", 'create_engine("postgresql+psycopg2://scott:tiger@localhost/test")', None),
    ("gist.py", "gist://username:TOKEN@<gist_id>/file.txt", None),
    ("storage.py", '- GitLab PAT: "https://oauth2:my-token@gitlab.com/org/repo.git"', None),
    ("paginators.json", '"limit_key": "MaxResults",', None),
    ("paginators.json", '"result_key": "SSECustomerKeyList"', None),
    ("test_regex.py", "'TATCGTCGAAATCTACGGACCGGAATCTTCCGGTAAAACCACGCTGACGCTGCAGG'", None),
    ("settings.py", 'DB_PASSWORD = "CorrectHorseBatteryStaple"', "Secret assigned to DB_PASSWORD"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "line", "rule"), CASES, ids=[f"{i}-{c[0]}" for i, c in enumerate(CASES)])
def test_a_line(path, line, rule):
    hits = scan_lines(path, [(7, line)], commit=None)
    assert [h.rule for h in hits][:1] == ([rule] if rule else [])
    for hit in hits:
        assert (hit.file, hit.line, hit.commit, hit.where) == (path, 7, None, "working tree")
        assert hit.value and hit.value in line
        assert hit.value not in repr(hit)


def test_a_private_key_is_found_with_its_body_as_the_value():
    text = "\n".join(["# deploy key", PEM_HEADER, PEM_BODY, PEM_BODY[::-1], PEM_FOOTER, ""])
    [hit] = scan_text("deploy/id_rsa", text, commit="a" * 40)
    assert (hit.rule, hit.line, hit.where) == ("Private Key", 2, "a" * 12)
    assert PEM_BODY in hit.value and "PRIVATE" not in hit.value


def test_a_service_account_key_on_one_line_is_found():
    header, footer = PEM_HEADER.replace("RSA ", ""), PEM_FOOTER.replace("RSA ", "")
    key = "\\n".join([header, PEM_BODY, PEM_BODY[::-1], footer, ""])
    text = f'{{\n  "type": "service_account",\n  "private_key": "{key}",\n  "client_email": "x@y.iam"\n}}\n'
    [hit] = scan_text("sa.json", text)
    assert (hit.rule, hit.line) == ("Private Key", 3)
    assert PEM_BODY in hit.value and PEM_BODY[::-1] in hit.value and "PRIVATE" not in hit.value


def test_a_mention_of_a_private_key_header_is_not_a_key():
    text = f'if line.startswith("{PEM_HEADER}"):\n    raise ValueError("no keys here")\n'
    assert scan_text("check.py", text) == []


def test_line_numbers_and_several_hits_in_one_file():
    text = "\n".join(
        [
            "# creds",
            f"AWS_ACCESS_KEY_ID={AWS_KEY_ID}",
            "",
            f"MODAL_TOKEN_ID={MODAL_ID}",
            f"MODAL_TOKEN_SECRET={MODAL_SECRET}",
        ]
    )
    hits = scan_text(".env", text)
    assert [(h.rule, h.line) for h in hits] == [
        ("AWS Access Key", 2), ("Modal Token ID", 4), ("Modal Token Secret", 5),
    ]  # fmt: skip


def test_a_file_without_any_trigger_is_not_scanned_line_by_line():
    from pipectl.secret_scan import might_contain_secret

    text = "x = 1\n" * 200_000
    assert not might_contain_secret(text)  # the cheap whole-file filter decides: no line is looked at
    assert scan_text("big.py", text) == []


@pytest.mark.parametrize(
    "value",
    ["<REDACTED>", "xxxx-xxxx", "your-key-here", "${VAR}", "env:NAME", "{{ prefect.blocks.secret.x }}",
     "changeme", "********", "$MODAL_TOKEN_SECRET", AWS_EXAMPLE_ID, AWS_EXAMPLE_SECRET,
     "pnu_" + "1234567890abcdef" * 2 + "1234", "ak-" + "0" * 22, "sk_" + "live_" + "abcdefgh" * 3],
)  # fmt: skip
def test_placeholders(value):
    assert is_placeholder(value)


@pytest.mark.parametrize("value", [AWS_KEY_ID, AWS_SECRET, PREFECT, MODAL_ID, PASSWORD])
def test_real_looking_values_are_not_placeholders(value):
    assert not is_placeholder(value)


def test_the_detect_secrets_allowlist_pragma_is_honoured():
    text = "\n".join([
        f"AWS_ACCESS_KEY_ID={AWS_KEY_ID}  # pragma: allowlist secret",
        "# pragma: allowlist nextline secret",
        f"MODAL_TOKEN_ID={MODAL_ID}",
        f"MODAL_TOKEN_SECRET={MODAL_SECRET}",
    ])  # fmt: skip
    assert [(h.rule, h.line) for h in scan_text(".env", text)] == [("Modal Token Secret", 4)]


def test_hits_compare_without_their_values():
    assert Hit("r", "f", 1, None, "one") == Hit("r", "f", 1, None, "two")
