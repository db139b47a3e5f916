"""Who is acting: the authenticated user (or the controller) and the client address, for authz and audit."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Actor:
    user_id: str | None
    role: str = "user"
    ip_address: str | None = None
    kind: str = "user"  # user | controller | system

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


CONTROLLER = Actor(user_id=None, role="admin", kind="controller")
SYSTEM = Actor(user_id=None, role="admin", kind="system")
