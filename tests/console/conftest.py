"""Browser tests: a real `pvem serve --demo` on a free loopback port, driven by Debian's chromium via Playwright.

Skipped, with the reason, when the playwright package or /usr/bin/chromium is missing (`.ci/run`
installs chromium when it runs as root). Every page records the requests it makes and its uncaught
errors; a test fails if any request left pvem's origin or any script error was raised.
Screenshots go to var/test-artifacts/console/ (gitignored); the path is printed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.test_serve_e2e import demo_server, request

CHROMIUM = Path(os.environ.get("PVEM_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts" / "console"
ADMIN = ("admin@pve.local", "admin123")

try:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None  # type: ignore[assignment]


def _skip_reason() -> str | None:
    if sync_playwright is None:
        return "browser tests skipped: the playwright package is not installed (pip install -e '.[test]')"
    if not CHROMIUM.exists():
        return f"browser tests skipped: no chromium at {CHROMIUM} (apt-get install -y chromium)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _skip_reason()
    if reason is None:
        return
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.skip(reason=reason))


# Module scope, not session: Playwright's sync API runs an event loop in the main thread while it is
# started, and later tests that call asyncio.run() must not find it running.
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with demo_server(tmp_path_factory.mktemp("console-server"), PVEM_AUTH__LOGIN_MAX_FAILURES="1000",
                     PVEM_AUTH__LOGIN_MAX_FAILURES_PER_ADDRESS="1000") as base:
        yield base


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    assert sync_playwright is not None
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@dataclass
class Watch:
    """What a page did that a test may not allow: requests elsewhere, uncaught script errors."""

    origin: str
    foreign: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


def _watch(context: BrowserContext, origin: str) -> Watch:
    watch = Watch(origin)

    def on_request(req: Any) -> None:
        if not (req.url.startswith(origin + "/") or req.url == origin or req.url.startswith("data:")):
            watch.foreign.append(req.url)

    def route(route: Any) -> None:
        # Nothing may leave pvem's origin: anything else is recorded and aborted, never fetched.
        if route.request.url.startswith(origin + "/") or route.request.url.startswith("data:"):
            route.continue_()
        else:
            watch.foreign.append(route.request.url)
            route.abort()

    context.on("request", on_request)
    context.route("**/*", route)
    return watch


@pytest.fixture
def watched(browser: Browser, server: str) -> Iterator[tuple[BrowserContext, Watch]]:
    context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    watch = _watch(context, server)
    yield context, watch
    context.close()
    assert not watch.foreign, f"requests left pvem's origin: {watch.foreign}"
    assert not watch.errors, f"uncaught page errors: {watch.errors}"


def new_page(context: BrowserContext, watch: Watch) -> Page:
    page = context.new_page()
    page.on("pageerror", lambda exc: watch.errors.append(str(exc)))
    page.on("console", lambda msg: watch.console_errors.append(msg.text) if msg.type == "error" else None)
    return page


@pytest.fixture
def page(watched: tuple[BrowserContext, Watch]) -> Page:
    return new_page(*watched)


@dataclass
class Account:
    email: str
    password: str
    token: str
    id: str


def make_account(server: str, prefix: str = "web") -> Account:
    suffix = uuid.uuid4().hex[:10]
    email, password = f"{prefix}-{suffix}@example.com", "browser-password-1"
    status, body = request("POST", f"{server}/api/auth/register",
                           {"username": f"{prefix}{suffix}", "email": email, "password": password})
    assert status == 201, body
    return Account(email, password, body["token"], body["user"]["id"])


@pytest.fixture
def account(server: str) -> Account:
    return make_account(server)


@pytest.fixture(scope="module")
def admin(server: str) -> Account:
    status, body = request("POST", f"{server}/api/auth/login", {"email": ADMIN[0], "password": ADMIN[1]})
    assert status == 200, body
    return Account(ADMIN[0], ADMIN[1], body["token"], body["user"]["id"])


def log_in(page: Page, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login" not in url)


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path
