"""A labelled corpus for the secret scanner, generated at run time from a seed (shared by the corpus test and
`bench/secret_scan_corpus.py`).

True positives are credentials in the shapes gitleaks', trufflehog's and detect-secrets' rule tests use,
each in several file contexts (.env, .py, .yaml, .json, .sh, Dockerfile, .md…); negatives are look-alikes
that must stay quiet. No realistic value is written here: prefixes are joined at run time and the random
parts come from `random.Random(seed)`.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable
from dataclasses import dataclass

from pipectl.secret_scan import Hit, scan_text, scannable

B62 = string.ascii_letters + string.digits
B64 = B62 + "+/"
B64URL = B62 + "-_"
HEX = "0123456789abcdef"
UPPER = string.ascii_uppercase + string.digits
PASSWORD_CHARS = B62 + "-_.~"
DASH5 = "-" * 5
PRIVATE_KEY = "PRIVATE" + " KEY"
SK, RK, PK, LIVE, TEST = "sk" + "_", "rk" + "_", "pk" + "_", "live" + "_", "test" + "_"
AKIA = "AK" + "IA"

Make = Callable[[random.Random], str]
Forms = list[tuple[str, str]]


@dataclass(frozen=True)
class Sample:
    """One planted line in a whole file: `secret` is the planted credential, None for a look-alike."""

    kind: str
    path: str
    text: str
    line: int
    secret: str | None

    @property
    def positive(self) -> bool:
        return self.secret is not None


def rand(rng: random.Random, alphabet: str, length: int) -> str:
    """`length` characters drawn from `alphabet`."""
    return "".join(rng.choice(alphabet) for _ in range(length))


def token(prefix: str, alphabet: str, *lengths: int) -> Make:
    """A maker of `prefix` + random characters, of one of `lengths`."""
    return lambda rng: prefix + rand(rng, alphabet, rng.choice(lengths))


def jwt(claims: Callable[[random.Random], dict]) -> Make:
    """A maker of JWT-shaped tokens with these claims and a random signature."""

    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return lambda rng: f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims(rng))}.{rand(rng, B64URL, 43)}"


def uuid(rng: random.Random) -> str:
    """A random UUID-shaped string."""
    return "-".join(rand(rng, HEX, n) for n in (8, 4, 4, 4, 12))


def assigned(name: str) -> Forms:
    """A value assigned to `name` in .env, Python, YAML, JSON, shell, Dockerfile and Markdown."""
    camel = "".join(w.capitalize() if i else w.lower() for i, w in enumerate(name.split("_")))
    return [("deploy/.env", f"{name}={{v}}"), ("app/settings.py", f'{name} = "{{v}}"'),
            ("k8s/values.yaml", f"  {name.lower()}: {{v}}"), ("config/app.json", f'  "{camel}": "{{v}}",'),
            ("scripts/deploy.sh", f'export {name}="{{v}}"'), ("Dockerfile", f"ENV {name}={{v}}"),
            ("docs/setup.md", f"    {name}={{v}}")]  # fmt: skip


_SUPABASE_REF = lambda rng: rand(rng, string.ascii_lowercase, 20)
_PASSWORD = token("", PASSWORD_CHARS, 6, 7, 10, 16, 24)
_GENERIC = lambda rng: rand(rng, rng.choice((B62, HEX, B64URL)), rng.choice((20, 32, 40)))
_CURL = 'curl -H "Authorization: Bearer {v}" https://api.internal/v1/jobs'
_STRIPE_CURL = "curl https://api.stripe.com/v1/refunds -u {v}: -d charge=ch_1"

POSITIVES: dict[str, tuple[Make, Forms]] = {
    "aws-access-key-id": (token(AKIA, UPPER, 16), [*assigned("AWS_ACCESS_KEY_ID"),
        (".aws/credentials", "aws_access_key_id = {v}"), ("app/s3.py", 's3 = boto3.client("s3", aws_access_key_id="{v}")')]),
    "aws-secret-access-key": (token("", B64, 40), [*assigned("AWS_SECRET_ACCESS_KEY"),
        (".aws/credentials", "aws_secret_access_key = {v}"), ("app/s3.py", '    aws_secret_access_key="{v}",')]),
    "stripe-sk-live": (token(SK + LIVE, B62, 24, 34, 99), [*assigned("STRIPE_SECRET_KEY"), ("scripts/refund.sh", _STRIPE_CURL),
        ("app/billing.py", 'stripe.api_key = "{v}"')]),
    "stripe-sk-test": (token(SK + TEST, B62, 24, 34, 99), [*assigned("STRIPE_KEY"), ("scripts/refund.sh", _STRIPE_CURL),
        ("tests/conftest.py", 'stripe.api_key = "{v}"')]),
    "stripe-rk-live": (token(RK + LIVE, B62, 24, 34, 99), [*assigned("STRIPE_RESTRICTED_KEY"), ("docs/billing.md", _STRIPE_CURL)]),
    "jwt": (jwt(lambda rng: {"sub": uuid(rng), "iat": rng.randrange(1_600_000_000, 1_700_000_000)}),
            [*assigned("SESSION"), ("web/client.ts", 'const session = "{v}";')]),
    "supabase-service-role-jwt": (jwt(lambda rng: {"iss": "supabase", "ref": _SUPABASE_REF(rng), "role": "service_" + "role"}),
        [*assigned("SUPABASE_SERVICE_ROLE_KEY"), ("web/admin.ts", "const supabase = createClient(url, '{v}')")]),
    "supabase-sb-secret": (token("sb_" + "secret_", B62, 31), assigned("SUPABASE_SECRET_KEY")),
    "modal-token-id": (token("ak" + "-", B62, 22), [*assigned("MODAL_TOKEN_ID"), ("modal.toml", 'token_id = "{v}"')]),
    "modal-token-secret": (token("as" + "-", B62, 22), [*assigned("MODAL_TOKEN_SECRET"), ("modal.toml", 'token_secret = "{v}"')]),
    "prefect-api-key": (token("pn" + "u_", B62, 36), [*assigned("PREFECT_API_KEY"), ("scripts/login.sh", "prefect cloud login --key {v}")]),
    "github-pat": (token("gh" + "p_", B62, 36), [*assigned("GH_TOKEN"), ("requirements.txt", "git+https://{v}@github.com/acme/lib.git")]),
    "gitlab-pat": (token("gl" + "pat-", B64URL, 20), [*assigned("GITLAB_TOKEN"), ("ci/values.yaml", "  token: {v}")]),
    "slack-bot-token": (lambda rng: "xo" + "xb-" + rand(rng, string.digits, 11) + "-" + rand(rng, string.digits, 13) + "-"
                        + rand(rng, B62, 24), [*assigned("SLACK_BOT_TOKEN"), ("app/notify.py", 'client = WebClient(token="{v}")')]),
    "url-password": (_PASSWORD, [
        ("deploy/.env", "DATABASE_URL=postgresql://app:{v}@db.internal:5432/app"),
        ("app/db.py", 'engine = create_engine("postgresql+psycopg://app:{v}@db:5432/app")'),
        ("k8s/values.yaml", "  cache: redis://:{v}@cache:6379/0"), ("config/app.json", '  "broker": "amqp://worker:{v}@mq:5672/",'),
        ("Dockerfile", "ENV MONGO_URL=mongodb://root:{v}@mongo:27017/?authSource=admin"),
        ("docs/db.md", "psql postgresql://app:{v}@db.internal/app"), ("scripts/dump.sh", 'pg_dump "postgres://app:{v}@db/app" > dump.sql')]),
    "pgpassword": (token("", PASSWORD_CHARS, 8, 12, 20), [*assigned("PGPASSWORD")[:2], ("Dockerfile", "ENV PGPASSWORD={v}"),
        ("scripts/dump.sh", "PGPASSWORD={v} psql -h db -U app app"), ("docs/db.md", "PGPASSWORD={v} pg_restore -d app dump")]),
    "dsn-password": (_PASSWORD, [
        ("deploy/.env", 'PG_DSN="host=db.internal port=5432 dbname=app user=app password={v} sslmode=require"'),
        ("app/db.py", 'conn = psycopg.connect("host=db user=app password={v} dbname=app")'),
        ("k8s/values.yaml", "  dsn: host=db user=app password={v}"),
        ("config/app.json", '  "db": "Server=tcp:db,1433;Database=app;User Id=app;Password={v};",'),
        ("scripts/check.sh", "psql 'host=db user=app password={v} dbname=app' -c 'select 1'")]),
    "jdbc-password": (_PASSWORD, [
        ("config/application.properties", "spring.datasource.url=jdbc:postgresql://db:5432/app?user=app&password={v}"),
        ("k8s/values.yaml", "  url: jdbc:mysql://db:3306/app?user=app&password={v}&useSSL=true"),
        ("deploy/.env", "JDBC_URL=jdbc:postgresql://db:5432/app?user=app&password={v}")]),
    "bearer-token": (lambda rng: rand(rng, rng.choice((B62, B64URL)), rng.choice((32, 40, 64))), [
        ("scripts/call.sh", _CURL), ("docs/api.md", _CURL.replace('"', "'")), ("Dockerfile", "RUN " + _CURL),
        ("app/client.py", 'HEADERS = {{"Authorization": "Bearer {v}"}}'), ("requests/jobs.http", "Authorization: Bearer {v}")]),
    "generic-api-key": (_GENERIC, [*assigned("API_KEY"), ("scripts/fetch.sh", "export WEATHER_API_KEY={v}")]),
    "generic-client-secret": (_GENERIC, [*assigned("CLIENT_SECRET"), ("config/auth.toml", 'client_secret = "{v}"'),
        ("k8s/oauth.yaml", "  client_secret: {v}")]),
}  # fmt: skip

_EXAMPLE_ID, _EXAMPLE_SECRET = AKIA + "IOSFODNN7" + "EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"
_RANDOM = token("", B62, 24, 32)
_SSH = lambda rng: rand(rng, B64, 60)
_ANON = jwt(lambda rng: {"iss": "supabase", "ref": _SUPABASE_REF(rng), "role": "anon"})

NEGATIVES: dict[str, tuple[Make | None, Forms]] = {
    "aws-documented-example": (None, [*assigned("AWS_ACCESS_KEY_ID"), *assigned("AWS_SECRET_ACCESS_KEY")]),
    "sequential-placeholder": (None, [
        ("deploy/.env", "PREFECT_API_KEY=" + "pn" + "u_" + "1234567890abcdef" * 2 + "1234"),
        ("deploy/.env", "STRIPE_SECRET_KEY=" + SK + LIVE + "x" * 24), ("deploy/.env", "MODAL_TOKEN_ID=" + "ak" + "-" + "0" * 22),
        ("deploy/.env", "MODAL_TOKEN_SECRET=" + "as" + "-" + "a" * 22), ("ci/values.yaml", "  token: " + "gh" + "p_" + "x" * 36),
        ("ci/values.yaml", "  token: " + "gh" + "p_" + string.ascii_uppercase + "0123456789"),
        ("app/settings.py", 'API_KEY = "' + "1234567890abcdef" * 2 + '"'), ("scripts/setup.sh", "export AWS_ACCESS_KEY_ID=" + AKIA + "0" * 16),
        ("docs/setup.md", "SUPABASE_SECRET_KEY=" + "sb_" + "secret_" + "0" * 31)]),
    "csrf-token": (_RANDOM, [("web/form.html", "<input type=hidden name=csrf-token value={v}>"), ("k8s/values.yaml", "  csrf_token: {v}"),
        ("deploy/.env", "CSRF_TOKEN={v}"), ("fixtures/session.json", '  "csrfToken": "{v}",'),
        ("scripts/post.sh", "curl -b csrf-token={v} https://app.internal/form")]),
    "reference-or-template": (None, [
        ("compose.yml", "      PASSWORD: ${{DB_PASSWORD}}"), ("deploy/.env", "API_KEY=${{API_KEY}}"),
        ("pipectl.toml", 'api_key = "env:PREFECT_API_KEY"'), ("deploy.yaml", "  secret: '{{{{ prefect.blocks.secret.modal-token }}}}'"),
        ("ci/deploy.yaml", "  token: ${{{{ secrets.GITHUB_TOKEN }}}}"), ("app/settings.py", 'PASSWORD = os.environ["DB_PASSWORD"]'),
        ("scripts/call.sh", 'curl -H "Authorization: Bearer $API_TOKEN" https://api.internal'),
        ("app/client.py", 'headers = {{"Authorization": f"Bearer {{token}}"}}')]),
    "dummy-value": (None, [
        ("deploy/.env", "password=changeme"), ("deploy/.env", "DB_PASSWORD=password"), ("compose.yml", "  POSTGRES_PASSWORD: postgres"),
        ("deploy/.env", "DATABASE_URL=postgresql://postgres:postgres@localhost:5432/app"), ("k8s/values.yaml", "  password: <your-password>"),
        ("docs/setup.md", "API_KEY=<your-api-key>"), ("k8s/values.yaml", '  api_key: "YOUR_API_KEY"'), ("docs/setup.md", "token: your-token-here"),
        ("docs/api.md", "curl -H 'Authorization: Bearer <token>' https://api.internal"), ("deploy/.env", "SECRET_KEY=replace-me")]),
    "uuid": (uuid, [("fixtures/run.json", '  "idempotency_key": "{v}",'), ("k8s/values.yaml", "  flow_run_key: {v}"),
        ("app/settings.py", 'API_KEY_ID = "{v}"'), ("deploy/.env", "PREFECT_WORKSPACE_TOKEN_ID={v}")]),
    "git-sha": (token("", HEX, 40), [("ci/values.yaml", "  commit_sha: {v}"), ("deploy/.env", "GIT_COMMIT={v}"),
        (".pre-commit-config.yaml", "    rev: {v}"), ("ci/cache.yaml", "  cache_key: deps-{v}")]),
    "checksum": (token("", HEX, 64), [("ci/tools.yaml", "  checksum: sha256:{v}"), ("tools.py", 'TOOL_SHA256 = "{v}"'),
        ("Dockerfile", "ARG TOOL_SHA256={v}"), ("scripts/install.sh", 'echo "{v}  tool.tar.gz" | sha256sum -c'),
        ("fixtures/blob.json", '  "sha": "{v}",')]),
    "non-secret-key-name": (_RANDOM, [("deploy/.env", "SORT_KEY={v}"), ("k8s/values.yaml", "  partition_key: {v}"),
        ("fixtures/page.json", '  "next_page_token": "{v}",'), ("app/cache.py", 'CACHE_KEY = "{v}"'),
        ("fixtures/table.json", '  "primaryKey": "{v}",'), ("deploy/.env", "STRIPE_PUBLISHABLE_KEY=" + PK + LIVE + "{v}")]),
    "supabase-anon-jwt": (_ANON, [("deploy/.env", "SUPABASE_ANON_KEY={v}"), ("web/client.ts", "const supabaseKey = '{v}'"),
        ("deploy/.env", "NEXT_PUBLIC_SUPABASE_ANON_KEY={v}"), ("k8s/values.yaml", "  anon_key: {v}")]),
    "public-key": (_SSH, [("deploy/authorized_keys", "ssh-rsa AAAAB3NzaC1yc2E{v} deploy@ci"),
        ("k8s/values.yaml", "  ssh_public_key: ssh-ed25519 AAAAC3{v} ops@host"), ("docs/ssh.md", "ssh-rsa AAAAB3NzaC1yc2E{v} me@laptop"),
        ("config/keys.json", '  "publicKey": "{v}",')]),
    "url-without-password": (None, [
        ("deploy/.env", "DATABASE_URL=postgresql://app@db.internal:5432/app"), ("deploy/.env", "REDIS_URL=redis://cache:6379/0"),
        ("docs/setup.md", "git clone https://github.com/acme/pipeline.git"), ("app/settings.py", 'BROKER = "amqp://guest@mq:5672//"'),
        ("k8s/values.yaml", "  url: postgresql://db.internal:5432/app?sslmode=require")]),
    "url-named-like-secret": (None, [
        ("app/settings.py", 'token_url = "https://auth.internal/oauth/token"'), ("deploy/.env", "TOKEN_URL=https://auth.internal/token"),
        ("k8s/values.yaml", "  password_reset_url: https://app.internal/reset"), ("deploy/.env", "PASSWORD_RESET_URL=https://app/reset?u=1"),
        ("config/auth.json", '  "token_endpoint": "https://auth.internal/token",')]),
    "lock-file-integrity": (token("", B64, 86), [("package-lock.json", '      "integrity": "sha512-{v}==",'),
        ("yarn.lock", "  integrity sha512-{v}=="), ("pnpm-lock.yaml", "    resolution: {{integrity: sha512-{v}==}}"),
        ("poetry.lock", '    {{file = "lib-1.0.tar.gz", hash = "sha256:{v}"}},')]),
    "ordinary-code": (None, [
        ("app/auth.py", "password = get_password()"), ("app/auth.py", "if token == expected_token:"), ("app/llm.py", "max_tokens = 4096"),
        ("app/auth.py", 'token_type = "bearer"'), ("app/settings.py", "api_key: str | None = None"),
        ("app/settings.py", "self.secret_key = settings.SECRET_KEY"), ("app/db.py", "conn = connect(host=h, user=u, password=self.password)"),
        ("app/pem.py", f'if line.startswith("{DASH5}BEGIN {PRIVATE_KEY}{DASH5}"):'), ("docs/auth.md", "Send it as `Authorization: Bearer` header.")]),
}  # fmt: skip


def _wrap(kind: str, path: str, line: str, secret: str | None) -> Sample:
    context = {".env": (["# settings", "LOG_LEVEL=info"], ["PORT=8080"]), ".py": (['"""Settings."""', "import os", ""], ["TIMEOUT = 30"]),
               ".yaml": (["service:", "  name: worker"], ["  replicas: 2"]), ".json": (["{", '  "name": "worker",'], ['  "n": 1', "}"]),
               ".sh": (["#!/usr/bin/env bash", "set -euo pipefail"], ['echo "done"']), ".md": (["# Deploy", "", "```bash"], ["```"]),
               "Dockerfile": (["FROM python:3.12-slim", "WORKDIR /app"], ['CMD ["python", "-m", "worker"]'])}  # fmt: skip
    name = path.rsplit("/", 1)[-1]
    before, after = context.get(
        name if name == "Dockerfile" else "." + name.rsplit(".", 1)[-1], ([f"# {name}"], [])
    )
    return Sample(kind, path, "\n".join([*before, line, *after, ""]), len(before) + 1, secret)


def _private_keys(rng: random.Random) -> list[Sample]:
    """PEM blocks in key files, YAML, Python and Markdown; one-line `\\n`-escaped keys in service-account JSON."""
    out = []
    for path, opening, indent in (("keys/deploy.pem", "", ""), ("deploy/id_rsa", "", ""), ("k8s/tls.yaml", "  tls.key: |", "    "),
                                  ("app/keys.py", 'KEY = """', ""), ("docs/keys.md", "```", "")):  # fmt: skip
        label = rng.choice(("RSA ", "EC ", "OPENSSH ", ""))
        body = [rand(rng, B64, 64) for _ in range(rng.randint(4, 9))]
        header, footer = (
            f"{DASH5}BEGIN {label}{PRIVATE_KEY}{DASH5}",
            f"{DASH5}END {label}{PRIVATE_KEY}{DASH5}",
        )
        lines = (
            ["# deploy key", opening + header]
            if opening.endswith('"""')
            else ["# deploy key", opening, indent + header]
        )
        out.append(Sample("private-key-pem", path, "\n".join([*lines, *(indent + b for b in body), indent + footer, ""]),
                          len(lines), body[0]))  # fmt: skip
    for path, wrap in (("keys/service-account.json", '  "private_key": "{k}",'),
                       ("deploy/.env", 'GOOGLE_CREDENTIALS={{"type": "service_account", "private_key": "{k}"}}'),
                       ("app/gcp.py", 'INFO = {{"type": "service_account", "private_key": "{k}"}}'),
                       ("k8s/values.yaml", '  gcp_json: \'{{"type": "service_account", "private_key": "{k}"}}\'')):  # fmt: skip
        body = [rand(rng, B64, 64) for _ in range(rng.randint(6, 12))]
        key = "\\n".join(
            [f"{DASH5}BEGIN {PRIVATE_KEY}{DASH5}", *body, f"{DASH5}END {PRIVATE_KEY}{DASH5}", ""]
        )
        out.append(_wrap("gcp-service-account-json", path, wrap.format(k=key), body[1]))
    return out


def build_corpus(rng: random.Random) -> list[Sample]:
    """Every positive kind in each of its forms, then every look-alike; values drawn from `rng`."""
    out = []
    for kind, (make, forms) in POSITIVES.items():
        for path, line in forms:
            value = make(rng)
            out.append(_wrap(kind, path, line.format(v=value), value))
    out += _private_keys(rng)
    examples = iter([_EXAMPLE_ID] * 7 + [_EXAMPLE_SECRET] * 7)
    for kind, (make, forms) in NEGATIVES.items():
        for path, line in forms:
            value = next(examples) if kind == "aws-documented-example" else make(rng) if make else ""
            out.append(_wrap(kind, path, line.format(v=value), None))
    return out


def hits_for(sample: Sample) -> list[Hit]:
    """What the scanner reports on the sample's line, scanning the file as `repo.secrets` does."""
    if not scannable(sample.path):
        return []
    return [hit for hit in scan_text(sample.path, sample.text) if hit.line == sample.line]


def detected(sample: Sample, hits: list[Hit]) -> bool:
    """A positive is found by a hit whose value holds the planted secret (or most of it); a look-alike by any hit."""
    if sample.secret is None:
        return bool(hits)
    secret = sample.secret
    return any(
        h.value and (secret in h.value or (h.value in secret and 2 * len(h.value) >= len(secret)))
        for h in hits
    )


def score(samples: list[Sample]) -> dict[str, tuple[bool, int, int]]:
    """kind → (positive, samples, detected): planted credentials found, or look-alikes reported."""
    table: dict[str, tuple[bool, int, int]] = {}
    for sample in samples:
        positive, total, count = table.get(sample.kind, (sample.positive, 0, 0))
        table[sample.kind] = (positive, total + 1, count + detected(sample, hits_for(sample)))
    return table


def overall(table: dict[str, tuple[bool, int, int]]) -> tuple[float, float]:
    """(recall, false-positive rate) over all samples of the table."""
    planted, found = (sum(row[i] for row in table.values() if row[0]) for i in (1, 2))
    negatives, reported = (sum(row[i] for row in table.values() if not row[0]) for i in (1, 2))
    return found / planted, reported / negatives
