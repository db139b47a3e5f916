"""The web console in a real browser against a real `pvem serve --demo`: login, the live VM table, every
row button, the New VM form and its validation errors, a VM's page, tenancy, and the other pages.

Every wait is bounded (Playwright's expect/wait timeouts); the live table's 2 s is the issue's promise.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from tests.console.conftest import ADMIN, Account, Watch, log_in, make_account, new_page, screenshot
from tests.test_serve_e2e import request

sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests skipped: the playwright package is "
                               "not installed (pip install -e '.[test]')")
expect = sync_api.expect

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

SYNC_TIMEOUT = 30_000  # the demo cluster's tasks take short real time; the reconciler is nudged


def name() -> str:
    return f"web-{uuid.uuid4().hex[:8]}"


def create_vm(server: str, token: str, **fields: Any) -> dict[str, Any]:
    status, body = request("POST", f"{server}/api/vms", {"name": name(), "node": "pve1", **fields}, token)
    assert status == 201, body
    return body["data"]


def get_vm(server: str, token: str, vm_id: str) -> tuple[int, Any]:
    return request("GET", f"{server}/api/vms/{vm_id}", token=token)


def row(page: Page, vm_id: str) -> Any:
    return page.locator(f'tr[data-vm-id="{vm_id}"]')


def test_login_page_logs_in_and_out(page: Page, account: Account) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))
    screenshot(page, "login")
    page.get_by_label("Email").fill(account.email)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong email or password")

    log_in(page, account.email, account.password)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "pvem_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login"))
    assert not [c for c in page.context.cookies() if c["name"] == "pvem_session"]
    # The session was revoked server-side, not only forgotten: a copy of the cookie's token is refused.
    status, _body = request("GET", f"{page.url.split('/login')[0]}/api/auth/me", token=cookie["value"])
    assert status == 401
    page.goto("/vms")
    expect(page).to_have_url(re.compile(r"/login\?next="))


def test_registration_from_the_login_page(page: Page) -> None:
    suffix = uuid.uuid4().hex[:8]
    page.goto("/login")
    page.get_by_role("link", name="Register").click()
    page.get_by_label("Username").fill(f"reg{suffix}")
    page.get_by_label("Email").fill("not-an-email")
    page.get_by_label("Password").fill("password-123")
    page.get_by_role("button", name="Register").click()
    expect(page.locator("#reg-email-error")).to_be_visible()
    page.get_by_label("Email").fill(f"reg-{suffix}@example.com")
    page.get_by_label("Password").fill("password-123")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def test_vm_created_elsewhere_appears_live_and_syncs(page: Page, server: str, account: Account) -> None:
    log_in(page, account.email, account.password)
    page.goto("/vms")
    expect(page.locator("#vm-empty")).to_be_visible()
    vm = create_vm(server, account.token, power_state="running")
    expect(row(page, vm["id"])).to_be_visible(timeout=2_000)  # no reload: the live table
    expect(row(page, vm["id"]).get_by_role("link", name=vm["name"])).to_have_attribute("href", f"/vms/{vm['id']}")
    expect(row(page, vm["id"]).locator('[data-field="sync_status"]')).to_have_text("synced", timeout=SYNC_TIMEOUT)
    expect(row(page, vm["id"]).locator('[data-field="status"]')).to_have_text("running", timeout=SYNC_TIMEOUT)
    screenshot(page, "vms")

    status, _ = request("DELETE", f"{server}/api/vms/{vm['id']}", token=account.token)
    assert status == 200
    expect(row(page, vm["id"])).to_have_count(0, timeout=SYNC_TIMEOUT)


def test_each_row_button(page: Page, server: str, account: Account) -> None:
    vm = create_vm(server, account.token, power_state="running")
    log_in(page, account.email, account.password)
    page.goto("/vms")
    tr = row(page, vm["id"])
    desired = tr.locator('[data-field="power_state"]')
    expect(tr.get_by_role("button", name="Start", exact=True)).to_be_hidden()
    expect(tr.get_by_role("button", name="Resume")).to_be_hidden()

    steps = [("Pause", "paused", ["Resume", "Stop"]), ("Resume", "running", ["Stop", "Restart", "Pause"]),
             ("Stop", "stopped", ["Start"]), ("Start", "running", ["Stop", "Restart", "Pause"])]
    for button, state, offered in steps:
        tr.get_by_role("button", name=button, exact=True).click()
        expect(desired).to_have_text(state)
        for label in offered:
            expect(tr.get_by_role("button", name=label, exact=True)).to_be_visible()
        assert get_vm(server, account.token, vm["id"])[1]["data"]["power_state"] == state

    tr.get_by_role("button", name="Restart").click()
    expect(page.get_by_role("status")).to_contain_text("Restart: accepted")
    _, audit = request("GET", f"{server}/api/audit-logs?resource_id={vm['id']}&action=restart_vm",
                       token=account.token)
    assert len(audit["data"]) == 1

    page.once("dialog", lambda dialog: dialog.dismiss())
    tr.get_by_role("button", name="Delete").click()
    expect(tr).to_be_visible()
    assert get_vm(server, account.token, vm["id"])[1]["data"]["sync_status"] != "deleting"
    page.once("dialog", lambda dialog: dialog.accept())
    tr.get_by_role("button", name="Delete").click()
    expect(tr).to_have_count(0, timeout=SYNC_TIMEOUT)
    assert get_vm(server, account.token, vm["id"])[0] == 404


def test_new_vm_form_shows_validation_errors_beside_fields(page: Page, server: str, account: Account) -> None:
    log_in(page, account.email, account.password)
    page.goto("/vms")
    page.get_by_role("button", name="New VM").click()
    vm_name = name()
    page.get_by_label("Name").fill("Not A Valid Name!")
    page.get_by_label("Node").fill("pve1")
    page.get_by_label("CPU cores").fill("2")
    page.get_by_label("Memory (MB)").fill("1024")
    page.get_by_label("Disk (GB)").fill("12")
    page.get_by_role("button", name="Create").click()
    error = page.locator("#f-name-error")
    expect(error).to_be_visible()
    expect(error).not_to_be_empty()
    expect(page.get_by_label("Name")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Memory (MB)")).to_have_value("1024")  # nothing typed is lost
    screenshot(page, "vm-new-error")

    page.get_by_label("Name").fill(vm_name)
    page.get_by_label("CPU cores").fill("0")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#f-cpu_cores-error")).to_be_visible()
    expect(page.locator("#f-name-error")).to_be_hidden()

    page.get_by_label("CPU cores").fill("2")
    page.get_by_role("button", name="Create").click()
    expect(page).to_have_url(re.compile(r"/vms\?notice="))
    tr = page.locator("tr", has=page.get_by_role("link", name=vm_name))
    expect(tr.locator('[data-field="sync_status"]')).to_have_text("synced", timeout=SYNC_TIMEOUT)
    expect(tr.locator('[data-field="status"]')).to_have_text("running", timeout=SYNC_TIMEOUT)
    expect(tr.locator('[data-field="sizes"]')).to_have_text("2 CPU · 1024 MB · 12 GB")


def test_cloud_init_fields_reach_the_api(page: Page, server: str, account: Account) -> None:
    """Filled cloud-init fields are sent as `cloud_init`: a server whose VM spec has it (issue 7) takes
    them; one without it refuses the field, and that error is shown beside the Cloud-init user field."""
    _, document = request("GET", f"{server}/api/openapi.json")
    supported = "cloud_init" in document["components"]["schemas"].get("VmCreate", {}).get("properties", {})
    log_in(page, account.email, account.password)
    page.goto("/vms/new")
    page.get_by_label("Name").fill(name())
    page.get_by_label("Node").fill("pve1")
    page.get_by_label("Cloud-init user").fill("ops")
    page.get_by_label("SSH keys").fill("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2wQ5b1 ops@example")
    page.get_by_role("button", name="Create").click()
    if supported:
        expect(page).to_have_url(re.compile(r"/vms\?notice="))
    else:
        expect(page.locator("#f-ci_user-error")).to_contain_text("unknown field")
        expect(page.get_by_label("Cloud-init user")).to_have_value("ops")


def test_vm_page_firewall_rule_and_snapshot(page: Page, server: str, account: Account) -> None:
    vm = create_vm(server, account.token)
    log_in(page, account.email, account.password)
    page.goto("/vms")
    row(page, vm["id"]).get_by_role("link", name=vm["name"]).click()
    expect(page.get_by_role("heading", name="Firewall rules")).to_be_visible()
    expect(page.get_by_role("heading", name="Desired (spec)")).to_be_visible()

    firewall = page.locator("#firewall")
    firewall.get_by_label("Protocol").last.select_option("tcp")
    page.locator("#new-rule-port").fill("22")
    page.locator("#new-rule-source").fill("10.0.0.0/8")
    page.locator("#new-rule-comment").fill("ssh from the lan")
    page.get_by_role("button", name="Add rule").click()
    expect(page.get_by_role("status")).to_contain_text("Firewall rule added")
    expect(firewall.locator("tbody tr", has_text="ssh from the lan")).to_be_visible()
    page.locator("#new-rule-protocol").select_option("tcp")
    page.locator("#new-rule-port").fill("443")
    page.locator("#new-rule-comment").fill("https")
    page.get_by_role("button", name="Add rule").click()
    expect(firewall.locator("tbody tr", has_text="https")).to_be_visible()
    _, rules = request("GET", f"{server}/api/vms/{vm['id']}/firewall", token=account.token)
    assert [(r["port"], r["source"], r["comment"]) for r in rules["data"]] == \
        [(22, "10.0.0.0/8", "ssh from the lan"), (443, None, "https")]
    expect(firewall.locator('tbody [data-field="sync_status"]')).to_have_text(["synced", "synced"],
                                                                               timeout=SYNC_TIMEOUT)

    page.get_by_role("button", name="Move down rule 0").click()
    expect(page.get_by_role("status")).to_contain_text("Firewall rule moved")
    _, rules = request("GET", f"{server}/api/vms/{vm['id']}/firewall", token=account.token)
    assert [r["port"] for r in rules["data"]] == [443, 22]

    page.get_by_text("Edit", exact=True).last.click()
    edit_port = firewall.locator("details[open] input[name=port]")
    edit_port.fill("2222")
    firewall.locator("details[open]").get_by_role("button", name="Save rule").click()
    expect(page.get_by_role("status")).to_contain_text("Firewall rule saved")
    _, rules = request("GET", f"{server}/api/vms/{vm['id']}/firewall", token=account.token)
    assert [r["port"] for r in rules["data"]] == [443, 2222]

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete rule 0").click()
    expect(page.get_by_role("status")).to_contain_text("Firewall rule deleted")
    _, rules = request("GET", f"{server}/api/vms/{vm['id']}/firewall", token=account.token)
    assert [r["port"] for r in rules["data"]] == [2222]

    page.get_by_label("Snapshot name").fill("baseline")
    page.get_by_label("Description").fill("before the upgrade")
    page.get_by_role("button", name="Create snapshot").click()
    snapshot_row = page.locator("#snapshots tbody tr", has_text="baseline")
    expect(snapshot_row).to_be_visible()
    expect(snapshot_row.locator('[data-field="sync_status"]')).to_have_text("synced", timeout=SYNC_TIMEOUT)
    _, snaps = request("GET", f"{server}/api/vms/{vm['id']}/snapshots", token=account.token)
    assert [s["name"] for s in snaps["data"]] == ["baseline"]

    page.get_by_label("Snapshot name").fill("bad name")
    page.get_by_role("button", name="Create snapshot").click()
    expect(page.get_by_role("alert")).to_contain_text("name")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Roll back to baseline").click()
    expect(page.get_by_role("status")).to_contain_text("Rollback requested")
    page.reload()
    expect(page.locator("#audit")).to_contain_text("rollback_snapshot")
    expect(page.locator("#audit")).to_contain_text("create_firewall_rule")
    screenshot(page, "vm-page")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete snapshot baseline").click()
    expect(page.get_by_role("status")).to_contain_text("Snapshot deletion requested")


def test_a_user_sees_only_their_vms(browser: Browser, watched: tuple[BrowserContext, Watch], server: str,
                                    account: Account) -> None:
    other = make_account(server, "other")
    mine, theirs = create_vm(server, account.token), create_vm(server, other.token)
    page = new_page(*watched)
    log_in(page, account.email, account.password)
    page.goto("/vms")
    expect(row(page, mine["id"])).to_be_visible()
    late = create_vm(server, other.token)  # created while the page is open: not pushed to this user
    expect(row(page, theirs["id"])).to_have_count(0)
    page.goto(f"/vms/{theirs['id']}")
    expect(page.get_by_role("alert")).to_contain_text("not found")
    page.goto("/vms")
    page.wait_for_timeout(1_600)  # one polling period (and any pushed events) for the late VM to not show up
    expect(row(page, late["id"])).to_have_count(0)
    expect(page.get_by_role("link", name="Users")).to_have_count(0)

    admin_context = browser.new_context(base_url=server)
    try:
        admin_page = new_page(admin_context, watched[1])
        log_in(admin_page, *ADMIN)
        admin_page.goto("/vms")
        for vm in (mine, theirs, late):
            expect(row(admin_page, vm["id"])).to_be_visible()
    finally:
        admin_context.close()


def test_csrf_is_required_for_cookie_writes(page: Page, server: str, account: Account) -> None:
    vm = create_vm(server, account.token)
    log_in(page, account.email, account.password)
    api = page.context.request
    listed = api.get(f"{server}/api/vms")  # the session cookie authenticates /api reads
    assert listed.status == 200 and [v["id"] for v in listed.json()["data"]] == [vm["id"]]
    refused = api.post(f"{server}/api/vms/{vm['id']}/action", data={"action": "start"})
    assert refused.status == 403 and "CSRF" in refused.json()["error"]
    refused_form = api.post(f"{server}/vms/{vm['id']}/action", form={"action": "start"}, max_redirects=0)
    assert refused_form.status == 403
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    accepted = api.post(f"{server}/api/vms/{vm['id']}/action", data={"action": "start"},
                        headers={"X-CSRF-Token": token or ""})
    assert accepted.status == 200 and accepted.json()["data"]["power_state"] == "running"
    headers = page.goto("/vms").headers  # type: ignore[union-attr]
    assert "default-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"]


def test_dashboard_audit_manifests_and_users_pages(page: Page, server: str, admin: Account) -> None:
    log_in(page, *ADMIN)
    expect(page.get_by_role("heading", name="Cluster now")).to_be_visible()
    expect(page.locator("figure[data-chart=cpu_usage] polyline")).to_have_count(1)
    expect(page.get_by_role("heading", name="VMs by sync status")).to_be_visible()
    expect(page.get_by_role("heading", name="Latest errors")).to_be_visible()
    screenshot(page, "dashboard")

    vm_name = name()
    page.get_by_role("link", name="Manifests").click()
    page.get_by_label("Manifest YAML").fill(
        f"apiVersion: pvem/v1\nkind: VirtualMachine\nmetadata:\n  name: {vm_name}\nspec:\n  node: pve2\n"
        "  cpu_cores: 2\n")
    page.get_by_role("button", name="Plan").click()
    expect(page.locator("#plan")).to_contain_text("Plan")
    expect(page.locator("#plan")).to_contain_text(vm_name)
    expect(page.locator("#plan")).to_contain_text("create")
    screenshot(page, "manifests-plan")
    _, body = request("GET", f"{server}/api/vms?name={vm_name}", token=admin.token)
    assert body["data"] == []
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#plan")).to_contain_text("Applied")
    _, body = request("GET", f"{server}/api/vms?name={vm_name}", token=admin.token)
    assert [vm["node"] for vm in body["data"]] == ["pve2"]
    page.get_by_label("Manifest YAML").fill("kind: [unclosed")
    page.get_by_role("button", name="Plan").click()
    expect(page.get_by_role("alert")).to_be_visible()

    page.get_by_role("link", name="Audit").click()
    page.get_by_label("Action").fill("create_vm")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"action=create_vm"))
    actions = page.locator("#audit-table tbody td[data-label=Action]").all_inner_texts()
    assert actions and set(actions) == {"create_vm"}
    screenshot(page, "audit")

    page.get_by_role("link", name="Users").click()
    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    screenshot(page, "users")


def test_phone_layout(browser: Browser, server: str, account: Account, watched: tuple[BrowserContext, Watch]) -> None:
    context = browser.new_context(base_url=server, viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = new_page(context, watched[1])
        vm = create_vm(server, account.token)
        log_in(page, account.email, account.password)
        page.goto("/vms")
        tr = row(page, vm["id"])
        expect(tr.get_by_role("button", name="Start", exact=True)).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
        screenshot(page, "vms-phone")
    finally:
        context.close()


def test_done_when_walkthrough(page: Page, server: str, admin: Account) -> None:
    """The issue's "done when": log in as the demo admin, create a VM from the form, watch it go from
    pending to synced and running without a reload, stop it from its row, add a firewall rule on its page."""
    log_in(page, *ADMIN)
    page.get_by_role("link", name="VMs").click()
    page.get_by_role("button", name="New VM").click()
    vm_name = name()
    page.get_by_label("Name").fill(vm_name)
    page.get_by_role("button", name="Create").click()
    tr = page.locator("tr", has=page.get_by_role("link", name=vm_name))
    expect(tr).to_be_visible()
    page.evaluate("window.__same_document = true")  # gone if the page reloads
    expect(tr.locator('[data-field="sync_status"]')).to_have_text("synced", timeout=SYNC_TIMEOUT)
    expect(tr.locator('[data-field="status"]')).to_have_text("running", timeout=SYNC_TIMEOUT)
    tr.get_by_role("button", name="Stop", exact=True).click()
    expect(tr.locator('[data-field="status"]')).to_have_text("stopped", timeout=SYNC_TIMEOUT)
    assert page.evaluate("window.__same_document") is True
    tr.get_by_role("link", name=vm_name).click()
    page.locator("#new-rule-protocol").select_option("tcp")
    page.locator("#new-rule-port").fill("80")
    page.get_by_role("button", name="Add rule").click()
    rule = page.locator("#firewall tbody tr[data-rule-id]")
    expect(rule).to_have_count(1)
    expect(rule.locator('[data-field="sync_status"]')).to_have_text("synced", timeout=SYNC_TIMEOUT)


def test_live_stream_events_update_the_pages(page: Page, server: str, account: Account) -> None:
    """The /api/events client: the stream is answered here (page.route) so the test does not depend on
    which server build serves it; the session cookie must ride along (EventSource sends no headers)."""
    vm = create_vm(server, account.token)
    seen_cookies: list[str] = []

    def stream(route: Any) -> None:
        seen_cookies.append(route.request.headers.get("cookie", ""))
        changed = {**vm, "sync_status": "error", "last_error": "boom from the stream"}
        other = {**vm, "id": "0" * 8 + "-stream", "name": "pushed-only", "vmid": 4242}
        stats = {"cpu_usage": 42.5, "memory_usage": 10.0, "disk_usage": 20.0, "network_rx": 1.0,
                 "network_tx": 2.0, "timestamp": "2030-01-01T00:00:00Z", "source": "cluster"}
        body = (f"retry: 60000\n: heartbeat\n\nid: 1\nevent: vm\ndata: {json.dumps(changed)}\n\n"
                f"id: 2\nevent: vm\ndata: {json.dumps(other)}\n\n"
                f"id: 3\nevent: stats\ndata: {json.dumps(stats)}\n\n")
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
                      body=body)

    page.route("**/api/events", stream)
    log_in(page, account.email, account.password)
    expect(page.locator('[data-stat="cpu_usage"]')).to_have_text("42.5")
    page.goto("/vms")
    expect(row(page, vm["id"]).locator('[data-field="last_error"]')).to_have_text("boom from the stream")
    expect(page.get_by_role("link", name="pushed-only")).to_be_visible()
    assert seen_cookies and all("pvem_session=" in cookie for cookie in seen_cookies)


def test_controls_are_labelled_and_reachable_by_keyboard(page: Page, server: str, account: Account) -> None:
    vm = create_vm(server, account.token)
    page.goto("/login")
    expect(page.get_by_label("Email")).to_be_focused()  # the form starts at Email; Tab moves on
    page.keyboard.type(account.email)
    page.keyboard.press("Tab")
    page.keyboard.type(account.password)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    unlabelled_js = """() => [...document.querySelectorAll(
            'input:not([type=hidden]), select, textarea, button, a[href]')]
        .filter(el => !(el.closest('template')))
        .filter(el => {
            const named = el.getAttribute('aria-label') || (el.labels && el.labels.length) || el.textContent.trim();
            return !named;
        }).map(el => el.outerHTML.slice(0, 120))"""
    for path in ("/", "/vms", "/vms/new", f"/vms/{vm['id']}", "/audit", "/manifests"):
        page.goto(path)
        assert page.evaluate(unlabelled_js) == [], path


def test_pages_work_without_javascript(browser: Browser, server: str, account: Account,
                                       watched: tuple[BrowserContext, Watch]) -> None:
    context = browser.new_context(base_url=server, java_script_enabled=False)
    try:
        page = new_page(context, watched[1])
        log_in(page, account.email, account.password)
        page.goto("/vms/new")
        vm_name = name()
        page.get_by_label("Name").fill(vm_name)
        page.get_by_label("Node").fill("pve1")
        page.get_by_role("button", name="Create").click()
        tr = page.locator("tr", has=page.get_by_role("link", name=vm_name))
        expect(tr).to_be_visible()
        tr.get_by_role("button", name="Stop", exact=True).click()  # a form post, redirected back
        expect(page.get_by_role("status")).to_contain_text("Action stop accepted")
        expect(tr.locator('[data-field="power_state"]')).to_have_text("stopped")
        tr.get_by_role("button", name="Delete").click()  # no confirm() without JavaScript: a page asks
        expect(page.get_by_role("heading", name=f"Delete {vm_name}?")).to_be_visible()
        page.get_by_role("button", name="Delete").click()
        expect(page.get_by_role("status")).to_contain_text("Deletion requested")
        _, body = request("GET", f"{server}/api/vms?name={vm_name}", token=account.token)
        assert [vm["sync_status"] for vm in body["data"]] in ([], ["deleting"])
    finally:
        context.close()
