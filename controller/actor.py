"""Who is acting: the authenticated user (or the controller) and the client address, for authz and audit."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Actor:
    user_id: str | None
    role: str = "user"
    ip_address: str | None = None
    kind: str = "user"  # user | controller | system
    # Set when the request came with an API token (not a login JWT): audit names it, `read` scope
    # may only read, and no API token may create tokens or change a password.
    token_id: str | None = None
    token_name: str | None = None
    scope: str = "write"
    jti: str | None = None  # the login JWT's id and expiry (logout revokes exactly that token)
    token_expires: float | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


CONTROLLER = Actor(user_id=None, role="admin", kind="controller")
SYSTEM = Actor(user_id=None, role="admin", kind="system")
