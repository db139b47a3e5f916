"""Proxmox failures as one exception type, and the rules deciding which of them are worth retrying.

This module owns the transient/permanent split the reconciler's backoff relies on. Proxmox reports most
failures as HTTP 500 and tells them apart only by text (a lost quorum, a locked VM, a missing storage),
so the rules here look at the text first and at the status code second.
"""

from __future__ import annotations

import re

import requests
from proxmoxer import AuthenticationError, ResourceException

# Substrings (lower case) of Proxmox texts that describe a passing condition: retrying later can succeed.
TRANSIENT_TEXTS = (
    "got timeout",
    "vm is locked",
    "ct is locked",
    "no quorum",
    "can't lock file",
    "checksum mismatch",
    "digest mismatch",
    "detected modified configuration",
    "invalid pve ticket",
    "no route to host",
    "connection refused",
    "connection timed out",
    "temporarily unavailable",
)

# Texts that no retry fixes, even when Proxmox sends them with a 5xx status.
PERMANENT_TEXTS = (
    "already exists",
    "already used",
    "permission check failed",
    "not implemented",
    # A full storage needs an operator (free space, or a smaller disk in the spec): shown as an error, not
    # hidden behind retries. The loop's slow periodic retry of errored objects still notices freed space.
    "no space left on device",
    # Clones (issue 7) that cannot work as asked: local storage on another node, a linked clone of a non-base
    # volume. The spec (node, clone_mode) or the template must change.
    "can't clone",
    "linked clone feature is not supported",
    "not allowed for linked clones",
)

_TLS_CONFIG_TEXTS = ("certificate verify failed", "certificate_verify_failed", "hostname mismatch", "doesn't match")


class ProxmoxError(Exception):
    """A failed Proxmox call: Proxmox's own message, whether a retry may help, and the HTTP status if any."""

    def __init__(self, message: str, transient: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.status = status

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, transient={self.transient}, status={self.status})"


class TaskFailed(ProxmoxError):
    """A Proxmox task that ended with an exit status other than "OK"; the message is that exit status."""

    def __init__(self, exitstatus: str, *, upid: str | None = None) -> None:
        text = clean_text(exitstatus) or "task failed without an exit status"
        # Unknown task errors (QEMU exited, storage errors) do not heal by themselves, so they are permanent.
        super().__init__(text, transient=_text_is_transient(text))
        self.upid = upid


def clean_text(text: object) -> str:
    """Proxmox's text without the trailing newlines and blank padding PVE puts on its messages."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return re.sub(r"\s*\n\s*", "; ", str(text).strip())


def _text_is_transient(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in TRANSIENT_TEXTS)


def _text_is_permanent(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in PERMANENT_TEXTS)


def _field_errors(errors: object) -> str:
    # A non-JSON answer (a reverse proxy's HTML page) arrives as {"errors": b"<html>..."}: not worth quoting.
    if not isinstance(errors, dict) or not errors or any(isinstance(v, bytes) for v in errors.values()):
        return ""
    return "; ".join(f"{field}: {clean_text(text)}" for field, text in sorted(errors.items()))


def _from_resource(exc: ResourceException) -> ProxmoxError:
    status = exc.status_code if isinstance(exc.status_code, int) else None
    text = clean_text(exc.content) or clean_text(exc.status_message) or f"HTTP {status}"
    fields = _field_errors(exc.errors)
    if fields:
        # PVE's 400 text is only "Parameter verification failed."; the per-field texts are what a person needs.
        text = f"{text.rstrip('.')}: {fields}"
    if status == 401:
        # An expired or revoked ticket heals by logging in again; a refused token or password does not.
        return ProxmoxError(text, transient=_text_is_transient(text), status=status)
    if _text_is_transient(text):
        return ProxmoxError(text, transient=True, status=status)
    if _text_is_permanent(text):
        return ProxmoxError(text, transient=False, status=status)
    return ProxmoxError(text, transient=status is None or status >= 500, status=status)


def _from_requests(exc: requests.RequestException) -> ProxmoxError:
    text = clean_text(exc) or type(exc).__name__
    if isinstance(exc, requests.exceptions.SSLError):
        lowered = text.lower()
        # A certificate that does not verify is a configuration problem, not a network blip.
        transient = not any(marker in lowered for marker in _TLS_CONFIG_TEXTS)
        return ProxmoxError(f"TLS error talking to Proxmox: {text}", transient=transient)
    if isinstance(exc, requests.exceptions.Timeout):
        return ProxmoxError(f"Proxmox did not answer in time: {text}", transient=True)
    if isinstance(exc, requests.exceptions.ConnectionError):
        return ProxmoxError(f"cannot reach Proxmox: {text}", transient=True)
    return ProxmoxError(f"HTTP request to Proxmox failed: {text}", transient=False)


def classify(exc: BaseException) -> ProxmoxError:
    """The ProxmoxError for any exception a proxmoxer call raised (returned unchanged if it already is one)."""
    if isinstance(exc, ProxmoxError):
        return exc
    if isinstance(exc, ResourceException):
        return _from_resource(exc)
    if isinstance(exc, requests.RequestException):
        return _from_requests(exc)
    if isinstance(exc, AuthenticationError):
        # The login itself was refused: wrong credentials do not become right by waiting.
        return ProxmoxError(f"Proxmox login failed: {clean_text(exc)}", transient=False, status=401)
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return ProxmoxError(f"cannot reach Proxmox: {clean_text(exc) or type(exc).__name__}", transient=True)
    # Anything else is a response we could not make sense of; repeating the call will not change that.
    return ProxmoxError(f"unexpected Proxmox failure: {type(exc).__name__}: {clean_text(exc)}", transient=False)
