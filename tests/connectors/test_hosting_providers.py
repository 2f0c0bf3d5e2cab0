"""The Render and Netlify fakes, exercised through pipectl's real connectors and through plain HTTP.

The shape tests pin the field names of the published APIs (Render's OpenAPI document, Netlify's
swagger.yml): a fake that drifts from them fails here, and so does a connector that reads other names.
"""

from __future__ import annotations

import json
import re
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from pipectl.connectors import netlify as netlify_module
from pipectl.connectors import render as render_module
from pipectl.connectors.hosting import (
    HIDDEN,
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ServiceStatus,
    load_provider,
)
from pipectl.connectors.netlify import Netlify
from pipectl.connectors.render import Render
from pipectl.errors import UsageError
from pipectl.redact import redactor
from pipectl.sandbox.hosted_fake import HostedStore, serve
from pipectl.sandbox.procs import free_port

# Built at run time so no credential-shaped literal sits in the source.
RENDER_KEY = "rnd_" + "sandboxRenderKey0123456789"
NETLIFY_TOKEN = "nfp_" + "sandboxNetlifyToken0123456789"
STRIPE = "sk_live_" + "51HsandboxStripeKey0123456789abcdef"
DEPLOY_STATUSES = {"created", "queued", "build_in_progress", "update_in_progress", "live", "deactivated",
                   "build_failed", "update_failed", "canceled", "pre_deploy_in_progress", "pre_deploy_failed"}


@dataclass
class Fakes:
    store: HostedStore
    render_url: str
    netlify_url: str
    path: object

    def render(self, token: str = RENDER_KEY) -> Render:
        return Render(token, self.render_url, timeout=5)

    def netlify(self, token: str = NETLIFY_TOKEN) -> Netlify:
        return Netlify(token, self.netlify_url, timeout=5)

    def get(self, url: str, token: str | None, **params) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(url, params=params, headers=headers, timeout=5)


@pytest.fixture
def fakes(tmp_path) -> Iterator[Fakes]:
    path = tmp_path / "hosted" / "state.json"
    store = HostedStore.load(path)
    store.set_tokens(render=RENDER_KEY, netlify=NETLIFY_TOKEN)
    render_port, netlify_port = free_port(), free_port()
    servers = serve(store, render_port, netlify_port)
    try:
        yield Fakes(store, f"http://127.0.0.1:{render_port}/v1", f"http://127.0.0.1:{netlify_port}/api/v1", path)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def _wait(event: threading.Event) -> None:
    assert event.wait(5), "the on_deploy hook was not called within 5 s"


# ---- authentication ------------------------------------------------------------------------------------


def test_both_apis_want_the_bearer_token(fakes):
    sid = fakes.store.add_render_service("worker", "background_worker", {})
    site = fakes.store.add_netlify_site("push", {})
    for token in (None, "wrong-token"):
        answer = fakes.get(f"{fakes.render_url}/services/{sid}", token)
        assert answer.status_code == 401 and set(answer.json()) == {"id", "message"}
        answer = fakes.get(f"{fakes.netlify_url}/sites/{site}", token)
        assert answer.status_code == 401 and set(answer.json()) == {"code", "message"}
        assert answer.json()["code"] == 401
    assert fakes.get(f"{fakes.render_url}/services/{sid}", RENDER_KEY).status_code == 200
    assert fakes.get(f"{fakes.netlify_url}/sites/{site}", NETLIFY_TOKEN).status_code == 200
    assert fakes.get(f"{fakes.netlify_url}/sites/{site}", RENDER_KEY).status_code == 401  # one token per platform


def test_a_wrong_token_is_an_auth_error_that_never_shows_it(fakes):
    sid = fakes.store.add_render_service("worker", "background_worker", {})
    site = fakes.store.add_netlify_site("push", {})
    wrong = "rnd_" + "someoneElsesKey9876543210"
    with pytest.raises(ProviderAuthError) as render_error:
        fakes.render(wrong).service(sid)
    with pytest.raises(ProviderAuthError) as netlify_error:
        fakes.netlify(wrong).env(site)
    for error in (render_error.value, netlify_error.value):
        assert "401" in str(error) and wrong not in str(error)
    assert "Render" in str(render_error.value) and "Netlify" in str(netlify_error.value)
    with pytest.raises(ProviderAuthError):
        Render("token-with-newline\n", fakes.render_url)


# ---- pagination ----------------------------------------------------------------------------------------


def test_render_env_comes_back_whole_across_pages(fakes, monkeypatch):
    env = {f"VAR_{i:02d}": f"value-{i}" for i in range(30)}
    sid = fakes.store.add_render_service("worker", "background_worker", env)
    first = fakes.get(f"{fakes.render_url}/services/{sid}/env-vars", RENDER_KEY, limit=20).json()
    assert len(first) == 20 and all(set(item) == {"envVar", "cursor"} for item in first)
    rest = fakes.get(f"{fakes.render_url}/services/{sid}/env-vars", RENDER_KEY, limit=20,
                     cursor=first[-1]["cursor"]).json()
    assert [i["envVar"]["key"] for i in first + rest] == list(env)
    assert fakes.get(f"{fakes.render_url}/services/{sid}/env-vars", RENDER_KEY, limit=101).status_code == 400

    monkeypatch.setattr(render_module, "PAGE", 20)
    with fakes.render() as render:
        assert render.env(sid) == env


def test_render_services_are_listed_by_cursor_and_filtered_by_name(fakes):
    ids = [fakes.store.add_render_service(f"svc-{i:02d}", "web_service", {}) for i in range(25)]
    first = fakes.get(f"{fakes.render_url}/services", RENDER_KEY, limit=20).json()
    rest = fakes.get(f"{fakes.render_url}/services", RENDER_KEY, limit=20, cursor=first[-1]["cursor"]).json()
    assert len(first) == 20 and [i["service"]["id"] for i in first + rest] == ids
    named = fakes.get(f"{fakes.render_url}/services", RENDER_KEY, name="svc-07").json()
    assert [i["service"]["id"] for i in named] == [ids[7]]
    with fakes.render() as render:
        assert render.find("svc-24") == ids[24] and render.find("nope") is None


def test_netlify_lists_pages_with_a_link_header(fakes, monkeypatch):
    ids = [fakes.store.add_netlify_site(f"push-{i}", {}) for i in range(5)]
    answer = fakes.get(f"{fakes.netlify_url}/sites", NETLIFY_TOKEN, page=1, per_page=2)
    assert [s["id"] for s in answer.json()] == ids[:2]
    assert re.search(r'<http://[^>]*[?&]page=2[^>]*>; rel="next"', answer.headers["link"])
    assert 'rel="last"' in answer.headers["link"] and "per_page=2" in answer.headers["link"]
    last = fakes.get(f"{fakes.netlify_url}/sites", NETLIFY_TOKEN, page=3, per_page=2)
    assert [s["id"] for s in last.json()] == ids[4:] and 'rel="next"' not in last.headers["link"]

    monkeypatch.setattr(netlify_module, "PER_PAGE", 2)
    with fakes.netlify() as netlify:
        assert netlify.find("push-4") == ids[4]  # on the third page of sites named like it


# ---- environment ---------------------------------------------------------------------------------------


def test_env_set_is_read_back_and_secrets_are_registered(fakes):
    sid = fakes.store.add_render_service("worker", "background_worker", {"LOG_LEVEL": "info"})
    site = fakes.store.add_netlify_site("push", {"LOG_LEVEL": "info"})
    with fakes.render() as render, fakes.netlify() as netlify:
        render.set_env(sid, "PREFECT_API_URL", "http://prefect:4200/api")
        render.set_env(sid, "LOG_LEVEL", "debug")
        assert render.env(sid) == {"LOG_LEVEL": "debug", "PREFECT_API_URL": "http://prefect:4200/api"}
        netlify.set_env(site, "STRIPE_API_KEY", STRIPE)  # a new variable: created
        netlify.set_env(site, "LOG_LEVEL", "debug")  # an existing one: replaced
        assert netlify.env(site) == {"LOG_LEVEL": "debug", "STRIPE_API_KEY": STRIPE}
    assert fakes.store.env("netlify", site)["STRIPE_API_KEY"] == STRIPE
    assert STRIPE not in redactor(f"the key is {STRIPE}")
    assert "debug" in redactor("level debug")  # an ordinary value stays readable


def test_env_delete_removes_one_variable_and_is_idempotent(fakes):
    sid = fakes.store.add_render_service("subscriber", "background_worker", {"SQS_DLQ_URL": "http://q", "A": "1"})
    site = fakes.store.add_netlify_site("push", {"AWS_REGION": "eu-west-1", "B": "2"})
    with fakes.render() as render, fakes.netlify() as netlify:
        for _ in range(2):
            render.delete_env(sid, "SQS_DLQ_URL")
            netlify.delete_env(site, "AWS_REGION")
        assert render.env(sid) == {"A": "1"} and netlify.env(site) == {"B": "2"}
        with pytest.raises(ProviderNotFound):
            render.delete_env("srv-nope", "A")
        with pytest.raises(ProviderNotFound):
            netlify.delete_env("nope", "B")


def test_netlify_env_is_per_site_within_the_account(fakes):
    a = fakes.store.add_netlify_site("site-a", {"ONLY_A": "1", "SHARED": "a"})
    b = fakes.store.add_netlify_site("site-b", {"ONLY_B": "2", "SHARED": "b"})
    with fakes.netlify() as netlify:
        assert netlify.env(a) == {"ONLY_A": "1", "SHARED": "a"}
        assert netlify.env(b) == {"ONLY_B": "2", "SHARED": "b"}
    account = fakes.get(f"{fakes.netlify_url}/sites/{a}", NETLIFY_TOKEN).json()["account_id"]
    listed = fakes.get(f"{fakes.netlify_url}/accounts/{account}/env", NETLIFY_TOKEN, site_id=b).json()
    assert sorted(v["key"] for v in listed) == ["ONLY_B", "SHARED"]


def test_netlify_secret_values_are_write_only(fakes):
    site = fakes.store.add_netlify_site("push", {})
    account = fakes.get(f"{fakes.netlify_url}/sites/{site}", NETLIFY_TOKEN).json()["account_id"]
    body = [{"key": "WEBHOOK_SECRET", "is_secret": True, "scopes": ["functions"],
             "values": [{"context": "production", "value": STRIPE}, {"context": "dev", "value": "local"}]}]
    created = httpx.post(f"{fakes.netlify_url}/accounts/{account}/env", params={"site_id": site}, json=body,
                         headers={"Authorization": f"Bearer {NETLIFY_TOKEN}"}, timeout=5)
    assert created.status_code == 201 and STRIPE not in created.text
    shown = fakes.get(f"{fakes.netlify_url}/accounts/{account}/env/WEBHOOK_SECRET", NETLIFY_TOKEN,
                      site_id=site).json()
    assert [v.get("value") for v in shown["values"]] == [None, "local"]
    with fakes.netlify() as netlify:
        assert netlify.env(site) == {"WEBHOOK_SECRET": HIDDEN}
    assert fakes.store.env("netlify", site) == {"WEBHOOK_SECRET": STRIPE}  # the platform itself still has it


# ---- deploys and status --------------------------------------------------------------------------------


def test_a_deploy_without_a_hook_goes_live(fakes):
    sid = fakes.store.add_render_service("worker", "background_worker", {})
    site = fakes.store.add_netlify_site("push", {})
    with fakes.render() as render, fakes.netlify() as netlify:
        first, second = render.deploy(sid), render.deploy(sid)
        assert render.deploy_state(sid, second) is ServiceStatus.RUNNING
        assert render.service(sid).status is ServiceStatus.RUNNING
        assert render.service(sid).dashboard_url.endswith(f"/worker/{sid}")
        assert netlify.deploy_state(site, netlify.deploy(site)) is ServiceStatus.RUNNING
        assert netlify.service(site).status is ServiceStatus.RUNNING
    statuses = {d["deploy"]["id"]: d["deploy"]["status"]
                for d in fakes.get(f"{fakes.render_url}/services/{sid}/deploys", RENDER_KEY).json()}
    assert statuses == {second: "live", first: "deactivated"}


def test_a_failed_deploy_is_deploy_failed(fakes):
    sid = fakes.store.add_render_service("worker", "background_worker", {})
    site = fakes.store.add_netlify_site("push", {})
    rdep = fakes.store.start_deploy("render", sid)
    ndep = fakes.store.start_deploy("netlify", site)
    with fakes.render() as render, fakes.netlify() as netlify:
        assert render.service(sid).status is ServiceStatus.DEPLOYING
        assert netlify.deploy_state(site, ndep) is ServiceStatus.DEPLOYING
        fakes.store.finish_deploy("render", sid, rdep, False, "exited with code 1")
        fakes.store.finish_deploy("netlify", site, ndep, False, "DATABASE_URL is not set")
        info = render.service(sid)
        assert info.status is ServiceStatus.DEPLOY_FAILED and rdep in info.detail and "update_failed" in info.detail
        assert render.deploy_state(sid, rdep) is ServiceStatus.DEPLOY_FAILED
        info = netlify.service(site)
        assert info.status is ServiceStatus.DEPLOY_FAILED and "DATABASE_URL is not set" in info.detail
        assert netlify.deploy_state(site, ndep) is ServiceStatus.DEPLOY_FAILED


def test_suspended_is_suspended(fakes):
    sid = fakes.store.add_render_service("subscriber", "background_worker", {})
    fakes.store.finish_deploy("render", sid, fakes.store.start_deploy("render", sid), True)
    headers = {"Authorization": f"Bearer {RENDER_KEY}"}
    assert httpx.post(f"{fakes.render_url}/services/{sid}/suspend", headers=headers).status_code == 202
    with fakes.render() as render:
        assert render.service(sid).status is ServiceStatus.SUSPENDED
        assert httpx.post(f"{fakes.render_url}/services/{sid}/resume", headers=headers).status_code == 202
        assert render.service(sid).status is ServiceStatus.RUNNING
        fakes.store.set_suspended(sid, True)
        assert render.service(sid).status is ServiceStatus.SUSPENDED


def test_a_server_failure_after_the_live_deploy_is_a_crash(fakes):
    sid = fakes.store.add_render_service("worker", "background_worker", {})
    deploy = fakes.store.start_deploy("render", sid)
    fakes.store.finish_deploy("render", sid, deploy, True)
    with fakes.render() as render:
        assert render.service(sid).status is ServiceStatus.RUNNING
        fakes.store.add_event(sid, "server_failed", {"reason": {"nonZeroExit": 3}})
        info = render.service(sid)
        assert info.status is ServiceStatus.CRASHED and "exit code 3" in info.detail
        assert render.deploy_state(sid, deploy) is ServiceStatus.CRASHED
        fakes.store.add_event(sid, "server_available", {})
        assert render.service(sid).status is ServiceStatus.RUNNING
        fakes.store.add_event(sid, "server_failed", {"reason": {"nonZeroExit": 1}})
        later = fakes.store.start_deploy("render", sid)
        fakes.store.finish_deploy("render", sid, later, True)  # a failure before the newest deploy is history
        assert render.service(sid).status is ServiceStatus.RUNNING


def test_on_deploy_is_called_with_provider_id_and_deploy(fakes):
    sid = fakes.store.add_render_service("worker", "background_worker", {})
    site = fakes.store.add_netlify_site("push", {})
    calls: list[tuple[str, str, str]] = []
    called = threading.Event()

    def hook(provider: str, resource_id: str, deploy_id: str) -> None:
        calls.append((provider, resource_id, deploy_id))
        called.set()

    fakes.store.on_deploy = hook
    with fakes.render() as render, fakes.netlify() as netlify:
        deploy = render.deploy(sid)
        _wait(called)
        assert calls == [("render", sid, deploy)]
        assert render.deploy_state(sid, deploy) is ServiceStatus.DEPLOYING  # the hook decides when it ends
        fakes.store.finish_deploy("render", sid, deploy, True)
        assert render.deploy_state(sid, deploy) is ServiceStatus.RUNNING

        called.clear()
        restart = httpx.post(f"{fakes.render_url}/services/{sid}/restart",
                             headers={"Authorization": f"Bearer {RENDER_KEY}"}, timeout=5)
        assert restart.status_code == 200
        _wait(called)
        assert calls[-1][:2] == ("render", sid) and calls[-1][2].startswith("dep-")
        events = fakes.get(f"{fakes.render_url}/services/{sid}/events", RENDER_KEY).json()
        assert "server_restarted" in [e["event"]["type"] for e in events]

        called.clear()
        build = netlify.deploy(site)
        _wait(called)
        assert calls[-1] == ("netlify", site, build)
        assert netlify.deploy_state(site, build) is ServiceStatus.DEPLOYING


# ---- errors --------------------------------------------------------------------------------------------


def test_unknown_ids_are_not_found_and_errors_hold_no_secret(fakes):
    sid = fakes.store.add_render_service("worker", "background_worker", {})
    site = fakes.store.add_netlify_site("push", {})
    with fakes.render() as render, fakes.netlify() as netlify:
        failures = []
        for call in (lambda: render.service("srv-" + "0" * 20), lambda: render.env("srv-nope"),
                     lambda: render.set_env("srv-nope", "STRIPE_API_KEY", STRIPE),
                     lambda: render.deploy_state(sid, "dep-nope"),
                     lambda: netlify.service("00000000-0000-0000-0000-000000000000"),
                     lambda: netlify.set_env("nope", "STRIPE_API_KEY", STRIPE),
                     lambda: netlify.deploy_state(site, "nope")):
            with pytest.raises(ProviderNotFound) as caught:
                call()
            failures.append(str(caught.value))
    assert all("404" in text for text in failures)
    for text in failures:
        assert RENDER_KEY not in text and NETLIFY_TOKEN not in text and STRIPE not in text
    not_found = fakes.get(f"{fakes.render_url}/services/srv-nope", RENDER_KEY)
    assert not_found.status_code == 404 and set(not_found.json()) == {"id", "message"}
    not_found = fakes.get(f"{fakes.netlify_url}/sites/nope", NETLIFY_TOKEN)
    assert not_found.status_code == 404 and not_found.json()["code"] == 404


def test_a_value_the_platform_echoes_back_is_masked_in_the_error(fakes):
    sid = fakes.store.add_render_service("worker", "background_worker", {})
    plain = "plainvalue42"  # nothing about it looks secret, so only the connector can know to hide it

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"id": "bad_request", "message": f"invalid value {plain!r} for LOG_LEVEL"})

    render = fakes.render()
    render._client = httpx.Client(base_url=fakes.render_url, transport=httpx.MockTransport(answer))
    with pytest.raises(ProviderError) as caught, render:
        render.set_env(sid, "LOG_LEVEL", plain)
    assert "HTTP 400" in str(caught.value) and "LOG_LEVEL" in str(caught.value) and plain not in str(caught.value)


def test_a_platform_that_cannot_be_reached_is_a_provider_error(fakes):
    closed = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ProviderError) as caught, Render(RENDER_KEY, closed, timeout=2) as render:
        render.service("srv-x")
    assert RENDER_KEY not in str(caught.value)


def test_an_unknown_provider_names_the_installed_ones():
    assert load_provider("render") is Render and load_provider("netlify") is Netlify
    with pytest.raises(UsageError, match="render") as caught:
        load_provider("heroku")
    assert "netlify" in str(caught.value)


# ---- persistence ---------------------------------------------------------------------------------------


def test_state_is_private_and_survives_a_reload(fakes):
    sid = fakes.store.add_render_service("worker", "background_worker", {"DATABASE_URL": "postgresql://db"})
    site = fakes.store.add_netlify_site("push", {"LOG_LEVEL": "info"})
    fakes.store.finish_deploy("render", sid, fakes.store.start_deploy("render", sid), True)
    assert stat.S_IMODE(fakes.path.stat().st_mode) == 0o600
    again = HostedStore.load(fakes.path)
    assert again.find("render", "worker") == sid and again.find("netlify", "push") == site
    assert again.env("render", sid) == {"DATABASE_URL": "postgresql://db"}
    assert again.env("netlify", site) == {"LOG_LEVEL": "info"}
    assert json.loads(fakes.path.read_text())["render"]["services"][sid]["deploys"][0]["status"] == "live"


def test_a_change_saved_by_another_process_is_served(fakes):
    sid = fakes.store.add_render_service("subscriber", "background_worker", {"SQS_DLQ_URL": "http://q", "A": "1"})
    outside = HostedStore.load(fakes.path)  # as a drill run from the CLI would
    outside.delete_env("render", sid, "SQS_DLQ_URL")
    with fakes.render() as render:
        assert render.env(sid) == {"A": "1"}


# ---- shapes of the published APIs ----------------------------------------------------------------------


def test_render_shapes(fakes):
    sid = fakes.store.add_render_service("worker", "background_worker", {"K": "v"})
    deploy = fakes.store.start_deploy("render", sid)
    fakes.store.finish_deploy("render", sid, deploy, True)
    fakes.store.add_event(sid, "server_failed", {"reason": {"nonZeroExit": 1}})
    service = fakes.get(f"{fakes.render_url}/services/{sid}", RENDER_KEY).json()
    assert {"id", "autoDeploy", "createdAt", "dashboardUrl", "name", "notifyOnFail", "ownerId", "rootDir", "slug",
            "suspended", "suspenders", "type", "updatedAt", "serviceDetails"} <= set(service)
    assert re.fullmatch(r"srv-[0-9a-z]{20}", service["id"]) and service["suspended"] in ("suspended", "not_suspended")
    assert {"env", "runtime", "plan", "region", "numInstances", "buildPlan"} <= set(service["serviceDetails"])
    assert fakes.get(f"{fakes.render_url}/services/{sid}/env-vars/K", RENDER_KEY).json() == {"key": "K", "value": "v"}
    put = httpx.put(f"{fakes.render_url}/services/{sid}/env-vars/K", json={"value": "w"},
                    headers={"Authorization": f"Bearer {RENDER_KEY}"}, timeout=5)
    assert put.json() == {"key": "K", "value": "w"}
    deploys = fakes.get(f"{fakes.render_url}/services/{sid}/deploys", RENDER_KEY).json()
    assert set(deploys[0]) == {"deploy", "cursor"}
    assert {"id", "status", "trigger", "createdAt", "updatedAt", "finishedAt"} <= set(deploys[0]["deploy"])
    assert deploys[0]["deploy"]["status"] in DEPLOY_STATUSES and deploys[0]["deploy"]["id"].startswith("dep-")
    events = fakes.get(f"{fakes.render_url}/services/{sid}/events", RENDER_KEY).json()
    assert [e["event"]["type"] for e in events] == ["server_failed", "deploy_ended", "deploy_started"]
    event = events[0]["event"]
    assert set(event) == {"id", "timestamp", "serviceId", "type", "details"} and event["serviceId"] == sid
    assert re.fullmatch(r"evt-[0-9a-z]{20}", event["id"]) and event["details"]["reason"]["evicted"] is False
    ended = events[1]["event"]["details"]
    assert ended["deployId"] == deploy and ended["deployStatus"] == "succeeded"
    only = fakes.get(f"{fakes.render_url}/services/{sid}/events", RENDER_KEY, type="deploy_ended").json()
    assert [e["event"]["type"] for e in only] == ["deploy_ended"]
    deleted = httpx.delete(f"{fakes.render_url}/services/{sid}/env-vars/K",
                           headers={"Authorization": f"Bearer {RENDER_KEY}"}, timeout=5)
    assert deleted.status_code == 204 and fakes.store.env("render", sid) == {}


def test_netlify_shapes(fakes):
    site = fakes.store.add_netlify_site("push", {"LOG_LEVEL": "info"})
    got = fakes.get(f"{fakes.netlify_url}/sites/{site}", NETLIFY_TOKEN).json()
    assert {"id", "name", "url", "ssl_url", "admin_url", "account_id", "account_slug", "account_name", "state",
            "created_at", "updated_at", "published_deploy"} <= set(got)
    account, slug = got["account_id"], got["account_slug"]
    env = fakes.get(f"{fakes.netlify_url}/accounts/{slug}/env", NETLIFY_TOKEN, site_id=site).json()
    assert {"key", "scopes", "values", "is_secret", "updated_at"} <= set(env[0])
    assert set(env[0]["values"][0]) == {"id", "value", "context", "context_parameter"}
    assert env[0]["values"][0]["context"] == "all"
    headers = {"Authorization": f"Bearer {NETLIFY_TOKEN}"}
    patched = httpx.patch(f"{fakes.netlify_url}/accounts/{account}/env/LOG_LEVEL", params={"site_id": site},
                          json={"context": "production", "value": "warn"}, headers=headers, timeout=5)
    assert patched.status_code == 201
    assert {v["context"]: v["value"] for v in patched.json()["values"]} == {"all": "info", "production": "warn"}
    build = httpx.post(f"{fakes.netlify_url}/sites/{site}/builds", headers=headers, timeout=5)
    assert build.status_code == 200 and {"id", "deploy_id", "sha", "done", "error", "created_at"} <= set(build.json())
    deploys = fakes.get(f"{fakes.netlify_url}/sites/{site}/deploys", NETLIFY_TOKEN).json()
    assert {"id", "site_id", "build_id", "state", "error_message", "created_at", "deploy_url"} <= set(deploys[0])
    assert deploys[0]["id"] == build.json()["deploy_id"] and deploys[0]["state"] == "ready"
    one = fakes.get(f"{fakes.netlify_url}/deploys/{deploys[0]['id']}", NETLIFY_TOKEN).json()
    assert one["site_id"] == site
    gone = httpx.delete(f"{fakes.netlify_url}/accounts/{account}/env/LOG_LEVEL", params={"site_id": site},
                        headers=headers, timeout=5)
    assert gone.status_code == 204 and fakes.store.env("netlify", site) == {}
