"""Account specs: registration, login, password change, API tokens, and the admin's user and quota changes."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator

from controller.specs import Spec

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,31}$")


class RegisterRequest(Spec):
    # Passwords are taken exactly as typed: whitespace is part of them.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    username: str
    email: str = Field(max_length=254)
    password: str = Field(min_length=8, max_length=1024)

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        if not _USERNAME.match(value):
            raise ValueError("must be 2 to 32 characters: letters, digits, '_', '.' or '-'")
        return value

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        # NFKC first: a full-width look-alike is the same address as its ASCII twin.
        if not _EMAIL.match(unicodedata.normalize("NFKC", value)):
            raise ValueError("must look like local@domain")
        return value


class LoginRequest(Spec):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


Password = Annotated[str, Field(min_length=8, max_length=1024)]


class PasswordChange(Spec):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    current_password: str = Field(min_length=1, max_length=1024)
    new_password: Password


class TokenCreate(Spec):
    name: str = Field(min_length=1, max_length=64)
    scope: Literal["read", "write"] = Field("write", description="read: GET only; write: everything the user may do.")
    expires_in_days: Annotated[int, Field(ge=1, le=3650, strict=True)] | None = Field(
        None, description="Days until the token expires; null (the default) for no expiry.")


class UserAdminUpdate(Spec):
    role: Literal["user", "admin"] | None = None
    disabled: Annotated[bool, Field(strict=True)] | None = None

    @field_validator("role", "disabled")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must not be null")
        return value


QuotaLimit = Annotated[int, Field(ge=0, le=2**31 - 1, strict=True)] | None


class QuotaUpdate(Spec):
    """Omitted fields keep their value; null is unlimited."""

    max_vms: QuotaLimit = None
    max_cpu_cores: QuotaLimit = None
    max_memory_mb: QuotaLimit = None
    max_disk_gb: QuotaLimit = None
