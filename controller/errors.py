"""Domain errors: what went wrong, in words a client can act on. The API maps each kind to a status."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base: `message` is shown to the client as is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    pass


class Conflict(DomainError):
    pass


class Forbidden(DomainError):
    pass


class Unauthorized(DomainError):
    pass


class Invalid(DomainError):
    """A request that is well-formed but not acceptable; `field` names the culprit, `extra` adds
    machine-readable detail to the error body (e.g. a manifest's document index)."""

    def __init__(self, message: str, field: str | None = None, **extra: Any) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.extra = extra


class Throttled(DomainError):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QuotaExceeded(Forbidden):
    """A change that would take the owner past one of their quotas; `quota` names it (e.g. max_vms)."""

    def __init__(self, message: str, quota: str) -> None:
        super().__init__(message)
        self.quota = quota

class Unavailable(DomainError):
    """A dependency (Proxmox) cannot answer now, or is not configured: 503."""
