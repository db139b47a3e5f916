"""The console's browser session without a browser: the cookie, CSRF on every cookie-authenticated write
(console forms and /api), the login/logout forms, page security headers and safe redirects."""

from __future__ import annotations

import re
from typing import Any

import falcon.testing

from api import session as console_session
from api.console.base import local_path
from api.console.pages_vms import field_errors, vm_create_body
from tests.conftest import ADMIN, Api


def console_login(api: Api, email: str, password: str) -> str:
    result = api.client.simulate_post("/login", body=f"email={email}&password={password}",
                                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert result.status_code == 303, result.text
    cookie = result.cookies[console_session.COOKIE]
    assert cookie.http_only and cookie.same_site == "Strict" and cookie.path == "/"
    return str(cookie.value)


def form(api: Api, path: str, cookie: str | None, **fields: Any) -> falcon.testing.Result:
    body = "&".join(f"{key}={value}" for key, value in fields.items())
    return api.client.simulate_post(path, body=body, cookies={console_session.COOKIE: cookie} if cookie else None,
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})


def test_pages_need_a_session_and_carry_security_headers(api: Api) -> None:
    result = api.client.simulate_get("/vms")
    assert result.status_code == 303 and result.headers["Location"].startswith("/login?next=")
    page = api.client.simulate_get("/login")
    assert page.status_code == 200
    assert re.search(r'<label for="email">Email</label>', page.text)
    assert re.search(r'<label for="password">Password</label>', page.text)
    assert ">Log in</button>" in page.text
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp and "script-src 'self'" in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff" and page.headers["Referrer-Policy"]
    assert "<script>" not in page.text and " style=" not in page.text and " onclick=" not in page.text
    static = api.client.simulate_get("/static/console.js")
    assert static.status_code == 200 and static.headers["Content-Type"].startswith("text/javascript")
    assert api.client.simulate_get("/static/../app.py").status_code == 404


def test_cookie_authenticates_api_reads_and_csrf_guards_writes(api: Api, user_token: str) -> None:
    vm = api.create_vm(user_token)
    cookie = console_login(api, "alice@example.com", "password123")
    cookies = {console_session.COOKIE: cookie}
    listed = api.client.simulate_get("/api/vms", cookies=cookies)
    assert listed.status_code == 200 and [item["id"] for item in listed.json["data"]] == [vm["id"]]

    no_token = api.client.simulate_post(f"/api/vms/{vm['id']}/action", cookies=cookies, json={"action": "start"})
    assert no_token.status_code == 403 and "CSRF" in no_token.json["error"]
    wrong = api.client.simulate_post(f"/api/vms/{vm['id']}/action", cookies=cookies, json={"action": "start"},
                                     headers={console_session.CSRF_HEADER: "0" * 64})
    assert wrong.status_code == 403
    assert api.call("GET", f"/api/vms/{vm['id']}", user_token).json["data"]["power_state"] == "stopped"
    ok = api.client.simulate_post(f"/api/vms/{vm['id']}/action", cookies=cookies, json={"action": "start"},
                                  headers={console_session.CSRF_HEADER: console_session.csrf_for(cookie)})
    assert ok.status_code == 200 and ok.json["data"]["power_state"] == "running"

    refused = form(api, f"/vms/{vm['id']}/action", cookie, action="stop")
    assert refused.status_code == 403 and "CSRF" in refused.text and refused.headers["Content-Type"].startswith(
        "text/html")
    accepted = form(api, f"/vms/{vm['id']}/action", cookie, action="stop",
                    csrf_token=console_session.csrf_for(cookie))
    assert accepted.status_code == 303 and "notice=" in accepted.headers["Location"]
    assert api.call("GET", f"/api/vms/{vm['id']}", user_token).json["data"]["power_state"] == "stopped"
    # A bearer token still needs no CSRF token, and a forged cookie is no session.
    assert api.call("POST", f"/api/vms/{vm['id']}/action", user_token, json={"action": "start"}).status_code == 200
    assert api.client.simulate_get("/api/vms", cookies={console_session.COOKIE: "forged"}).status_code == 401


def test_console_forms_use_the_api_and_its_errors(api: Api, user_token: str) -> None:
    cookie = console_login(api, "alice@example.com", "password123")
    csrf = console_session.csrf_for(cookie)
    bad = form(api, "/vms", cookie, csrf_token=csrf, name="Bad Name", node="pve1", cpu_cores="2", memory_mb="512",
               disk_gb="10")
    assert bad.status_code == 400
    assert re.search(r'id="f-name-error" data-error-for="name">[^<]+<', bad.text)
    assert 'value="Bad Name"' in bad.text
    good = form(api, "/vms", cookie, csrf_token=csrf, name="web-1", node="pve1", cpu_cores="2", memory_mb="512",
                disk_gb="10", start="on")
    assert good.status_code == 303
    created = api.call("GET", "/api/vms?name=web-1", user_token).json["data"]
    assert [(vm["cpu_cores"], vm["power_state"]) for vm in created] == [(2, "running")]
    audit = api.call("GET", "/api/audit-logs?action=create_vm", user_token).json["data"]
    assert audit[0]["user_id"] is not None and audit[0]["resource_id"] == created[0]["id"]


def test_login_failure_logout_and_cross_origin_login(api: Api, user_token: str) -> None:
    wrong = form(api, "/login", None, email="alice@example.com", password="nope")
    assert wrong.status_code == 401 and "Wrong email or password" in wrong.text
    foreign = api.client.simulate_post("/login", body="email=alice@example.com&password=password123",
                                       headers={"Content-Type": "application/x-www-form-urlencoded",
                                                "Origin": "https://evil.example"})
    assert foreign.status_code == 403
    cookie = console_login(api, *ADMIN)
    assert form(api, "/logout", cookie).status_code == 403  # logging out needs the CSRF token too
    out = form(api, "/logout", cookie, csrf_token=console_session.csrf_for(cookie))
    assert out.status_code == 303 and out.cookies[console_session.COOKIE].value == ""


def test_redirect_targets_stay_on_this_origin() -> None:
    assert local_path("/vms/1#firewall") == "/vms/1#firewall"
    for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", None, ""):
        assert local_path(evil) == "/"


def test_optional_create_fields_are_sent_only_when_filled() -> None:
    body, errors = vm_create_body({"name": "web-1", "node": "", "cpu_cores": "2", "memory_mb": "", "disk_gb": "",
                                   "template": " ", "ci_user": "", "ssh_keys": "\n"})
    assert (body, errors) == ({"name": "web-1", "cpu_cores": 2}, {})
    body, errors = vm_create_body({"name": "web-1", "template": "debian-12", "ci_user": "ops",
                                   "ssh_keys": "ssh-ed25519 AAA a@b\n\nssh-rsa BBB c@d\n", "cpu_cores": "two",
                                   "start": "on"})
    assert body == {"name": "web-1", "template": "debian-12", "power_state": "running",
                    "cloud_init": {"user": "ops", "ssh_keys": ["ssh-ed25519 AAA a@b", "ssh-rsa BBB c@d"]}}
    assert errors == {"cpu_cores": "must be a whole number"}
    assert vm_create_body({"name": "web-1", "template": "9000"})[0]["template"] == 9000
    assert field_errors([{"field": "cloud_init.ssh_keys.1", "message": "bad key"},
                         {"field": "cloud_init", "message": "unknown field"}], None, "x") == \
        {"ssh_keys": "bad key", "ci_user": "unknown field"}
