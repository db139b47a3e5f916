"""The proxmoxer connection behind ProxmoxClient: lazy login, logging in again, one HTTP session per thread.

This module owns authentication and the sharing of one login between worker threads. The login (ticket
or API token) is shared; each thread gets its own requests session on top of it, because a requests
Session is not documented as safe for concurrent use. Every failure leaves here as a ProxmoxError.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from http import client as httplib
from typing import Any, TypeVar, cast
from urllib.parse import urlencode

import requests
import urllib3
from proxmoxer import AuthenticationError, ProxmoxResource, ResourceException
from proxmoxer.backends.https import Backend
from proxmoxer.core import ANYEVENT_HTTP_STATUS_CODES
from requests.utils import get_environ_proxies

from controller import metrics
from controller.config import ProxmoxSettings
from controller.log import get_logger
from controller.proxmox.errors import ProxmoxError, classify

T = TypeVar("T")
log = get_logger("controller.proxmox")

# proxmoxer renews a ticket after 3600 s by posting the old ticket as the password; some servers (fakepve
# among them) refuse that. A fresh password login before then works everywhere, and tickets live 7200 s.
RELOGIN_AFTER_SECONDS = 3000.0


def verify_option(settings: ProxmoxSettings) -> bool | str:
    """What proxmoxer (and so requests) gets as `verify_ssl`: a CA file path, or True/False."""
    if settings.ca_file:
        return settings.ca_file
    return settings.verify_ssl


class Connection:
    """A lazily made, shared Proxmox login; call() runs one proxmoxer request function against it."""

    def __init__(self, settings: ProxmoxSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._backend: Any = None
        self._generation = 0
        self._logged_in_at = 0.0
        self._local = threading.local()
        self._sessions: weakref.WeakSet[Any] = weakref.WeakSet()
        self.uses_token = bool(settings.token_name and settings.token_value)

    def call(self, fn: Callable[[Any], T]) -> T:
        """fn(root) where root is proxmoxer's `/api2/json` resource; a 401 on a ticket is retried once."""
        for attempt in (1, 2):
            root, generation = self._root()
            try:
                return fn(root)
            except ResourceException as exc:
                # Proxmox rejects a 401 before doing anything, so repeating even a write is safe.
                if attempt == 1 and exc.status_code == 401 and not self.uses_token:
                    log.info("proxmox ticket refused; logging in again", error=str(exc.content))
                    self._invalidate(generation)
                    continue
                raise classify(exc) from exc
            except AuthenticationError as exc:
                # proxmoxer's own ticket renewal, inside the request, was refused: log in from scratch.
                if attempt == 1 and not self.uses_token:
                    log.info("proxmox ticket renewal refused; logging in again")
                    self._invalidate(generation)
                    continue
                raise classify(exc) from exc
            except ProxmoxError:
                raise
            except Exception as exc:
                raise classify(exc) from exc
        raise AssertionError("unreachable: the second attempt returns or raises")

    def get(self, path: str, fallback: Callable[[Any], T]) -> T:
        """GET /api2/json/{path}: its `data`. Sent straight through urllib3 on this thread's pooled connection,
        with the headers requests would send (requests' per-request machinery costs about three times the HTTP
        exchange itself); anything but a 2xx JSON answer is repeated as `fallback` through call(), which
        raises and classifies as for every other request. Reads only: repeating a GET is harmless."""
        try:
            root, generation = self._root()
            local = self._fast(root, generation)
            answer = local.fast_pool.urlopen(
                "GET", f"{local.fast_prefix}/{path}", headers=local.fast_headers, retries=False, redirect=False,
                timeout=urllib3.Timeout(total=self._settings.timeout_seconds), preload_content=True)
            if 200 <= answer.status < 300:
                return cast(T, json.loads(answer.data)["data"])
        except ProxmoxError:
            raise
        except Exception:
            pass
        return self.call(fallback)

    def post(self, path: str, data: Mapping[str, Any]) -> Any:
        """POST /api2/json/{path} with `data` as a form: its `data`. Sent like get(), but a write is never
        repeated, except after a ticket's 401 (Proxmox refuses those before doing anything). Failures leave
        as call()'s do: Proxmox's answer classified as the ResourceException proxmoxer would raise, a failed
        exchange as the requests exception it would have been. Counted in the request metrics."""
        body = urlencode(data, doseq=True)
        for attempt in (1, 2):
            root, generation = self._root()
            local = self._fast(root, generation)
            started = time.perf_counter()
            try:
                answer = local.fast_pool.urlopen(
                    "POST", f"{local.fast_prefix}/{path}", body=body, headers=local.fast_write_headers,
                    retries=False, redirect=False, timeout=urllib3.Timeout(total=self._settings.timeout_seconds),
                    preload_content=True)
            except Exception as exc:
                metrics.observe_proxmox("POST", "error", time.perf_counter() - started)
                raise classify(_as_requests_error(exc)) from exc
            metrics.observe_proxmox("POST", answer.status, time.perf_counter() - started)
            if 200 <= answer.status < 300:
                try:
                    return json.loads(answer.data)["data"]
                except (ValueError, KeyError, TypeError) as exc:
                    raise classify(exc) from exc
            if answer.status == 401 and attempt == 1 and not self.uses_token:
                log.info("proxmox ticket refused; logging in again", error=str(answer.reason))
                self._invalidate(generation)
                continue
            raise classify(_resource_exception(answer))
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _fast(self, root: Any, generation: int) -> Any:
        """This thread's urllib3 pool and the headers requests would send for a read and a write (per login)."""
        local = self._local
        if getattr(local, "fast_generation", None) != generation:
            base = str(root._store["base_url"])
            session = local.session
            cookies = session.auth.get_cookies()
            prepared = session.prepare_request(requests.Request("GET", base + "/version", cookies=cookies))
            local.fast_pool = session.get_adapter(base).get_connection_with_tls_context(
                prepared, verify=verify_option(self._settings), cert=session.cert)
            local.fast_prefix = urllib3.util.parse_url(base).path or ""
            local.fast_headers = dict(prepared.headers)
            # A write's headers: proxmoxer's ticket auth adds the CSRF token to anything but a GET.
            written = session.prepare_request(requests.Request("POST", base + "/version", cookies=cookies))
            local.fast_write_headers = {key: value for key, value in written.headers.items()
                                        if key.lower() != "content-length"}
            local.fast_write_headers["Content-Type"] = "application/x-www-form-urlencoded"
            local.fast_generation = generation
        return local

    def close(self) -> None:
        """Forget the login and close every thread's HTTP session; the next call logs in again."""
        with self._lock:
            self._backend = None
            self._generation += 1
            for session in list(self._sessions):
                session.close()

    def _root(self) -> tuple[Any, int]:
        with self._lock:
            stale = not self.uses_token and time.monotonic() - self._logged_in_at > RELOGIN_AFTER_SECONDS
            if self._backend is None or stale:
                self._backend = self._login()
                self._generation += 1
                self._logged_in_at = time.monotonic()
            backend, generation = self._backend, self._generation
        local = self._local
        if getattr(local, "generation", None) != generation:
            old = getattr(local, "session", None)
            if old is not None:
                old.close()
            local.session = _instrumented(backend.get_session())
            # requests reads the proxy variables and ~/.netrc again on every request when trust_env is on
            # (a third of a request's CPU here); read the proxies once, per login, instead.
            local.session.proxies.update(get_environ_proxies(backend.get_base_url()))
            local.session.trust_env = False
            self._sessions.add(local.session)
            local.root = ProxmoxResource(
                base_url=backend.get_base_url(), session=local.session, serializer=backend.get_serializer()
            )
            local.generation = generation
        return local.root, generation

    def _invalidate(self, generation: int) -> None:
        # Several threads may see the same 401; only the first one throws the login away.
        with self._lock:
            if self._generation == generation:
                self._backend = None

    def _login(self) -> Any:
        settings = self._settings
        if not settings.host:
            raise ProxmoxError("proxmox.host is not set", transient=False)
        verify = verify_option(settings)
        if verify is False:
            log.warning("proxmox TLS certificate verification is off", host=settings.host)
        kwargs: dict[str, Any] = {
            "host": settings.host,
            "port": settings.port,
            "verify_ssl": verify,
            "timeout": settings.timeout_seconds,
        }
        if self.uses_token:
            assert settings.token_value is not None
            # "user@realm!tokenid" written into `user` is accepted too: the token id goes in token_name.
            kwargs["user"] = settings.user.split("!", 1)[0]
            kwargs["token_name"] = settings.token_name
            kwargs["token_value"] = settings.token_value.get_secret_value()
        elif settings.password is not None:
            kwargs["user"] = settings.user
            kwargs["password"] = settings.password.get_secret_value()
        else:
            raise ProxmoxError(
                "no Proxmox credentials: set proxmox.password, or proxmox.token_name and proxmox.token_value",
                transient=False,
            )
        try:
            backend = Backend(**kwargs)
        except Exception as exc:
            raise classify(exc) from exc
        log.info("proxmox connected", host=settings.host, port=settings.port,
                 auth="token" if self.uses_token else "ticket", user=kwargs["user"])
        return backend


def _as_requests_error(exc: Exception) -> Exception:
    """A urllib3 failure as the requests exception requests would have raised for it (classify() knows those)."""
    if isinstance(exc, urllib3.exceptions.SSLError):
        return requests.exceptions.SSLError(str(exc))
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return requests.exceptions.ConnectTimeout(str(exc))
    if isinstance(exc, urllib3.exceptions.TimeoutError):
        return requests.exceptions.ReadTimeout(str(exc))
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return requests.exceptions.ConnectionError(str(exc))
    return exc


def _resource_exception(answer: Any) -> ResourceException:
    """Proxmox's refusal as proxmoxer raises it: PVE's message is the HTTP reason, per-field errors in the body."""
    try:
        errors = json.loads(answer.data.decode("utf-8")).get("errors")
    except (UnicodeDecodeError, ValueError, AttributeError):
        errors = {"errors": answer.data}
    status = int(answer.status)
    return ResourceException(status, httplib.responses.get(status, ANYEVENT_HTTP_STATUS_CODES.get(status)),
                             answer.reason, errors=errors)


def _instrumented(session: Any) -> Any:
    """The requests session, recording every Proxmox request in pvem_proxmox_requests_total/_duration."""
    send = session.request

    def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            response = send(method, url, *args, **kwargs)
        except Exception:
            metrics.observe_proxmox(method, "error", time.perf_counter() - started)
            raise
        metrics.observe_proxmox(method, response.status_code, time.perf_counter() - started)
        return response

    session.request = request
    return session
