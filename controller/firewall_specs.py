"""Firewall rule specs: the fields of one rule, the checks Proxmox would make of a whole rule."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator

from controller.specs import Spec


def check_address(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        if "/" in value:
            ipaddress.ip_network(value, strict=False)
        else:
            ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("must be an IPv4/IPv6 address or CIDR") from None
    return value


Direction = Literal["inbound", "outbound"]
RuleAction = Literal["accept", "drop", "reject"]
Port = Annotated[int, Field(ge=1, le=65535, strict=True)]


class _RuleFields(Spec):
    @field_validator("direction", "action", mode="before", check_fields=False)
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("protocol", check_fields=False)
    @classmethod
    def _protocol(cls, value: str | None) -> str | None:
        # Stored as given (the contract's example answers "TCP"); any case is accepted.
        if value is not None and value.lower() not in ("tcp", "udp", "icmp"):
            raise ValueError("must be tcp, udp or icmp (any case)")
        return value

    @field_validator("source", "destination", check_fields=False)
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return check_address(value)


def address_family(value: str) -> int:
    return ipaddress.ip_network(value, strict=False).version


def rule_problem(protocol: str | None, port: int | None, source: str | None,
                 destination: str | None) -> tuple[str, str] | None:
    """What Proxmox would refuse in a whole rule, as (field, message); None when it can apply it.

    A port only means something for tcp or udp; source and destination must be one address family.
    """
    if port is not None and (protocol or "").lower() not in ("tcp", "udp"):
        return "port", "a port needs protocol tcp or udp"
    if source is not None and destination is not None:
        try:
            if address_family(source) != address_family(destination):
                return "destination", (f"must be in the same address family as source {source!r} "
                                       "(IPv4 with IPv4, IPv6 with IPv6)")
        except ValueError:
            return None  # the address check itself reports a bad address
    return None


class RuleSpec(_RuleFields):
    """One firewall rule's desired fields; a manifest's `firewall` list holds these, in order."""

    direction: Direction
    action: RuleAction
    protocol: str | None = None
    port: Port | None = None
    source: str | None = None
    destination: str | None = None
    enabled: Annotated[bool, Field(strict=True)] = True
    comment: str | None = Field(None, max_length=200)

    @field_validator("port")
    @classmethod
    def _port_needs_tcp_or_udp(cls, value: int | None, info: ValidationInfo) -> int | None:
        problem = rule_problem(info.data.get("protocol"), value, None, None)
        if problem:
            raise ValueError(problem[1])
        return value

    @field_validator("destination")
    @classmethod
    def _same_family(cls, value: str | None, info: ValidationInfo) -> str | None:
        value = check_address(value)
        problem = rule_problem(None, None, info.data.get("source"), value)
        if problem:
            raise ValueError(problem[1])
        return value


class RuleCreate(RuleSpec):
    position: Annotated[int, Field(ge=0, strict=True)] | None = Field(
        None, description="Insert at this 0-based position; default: append."
    )


class RuleUpdate(_RuleFields):
    direction: Direction | None = None
    action: RuleAction | None = None
    protocol: str | None = None
    port: Port | None = None
    source: str | None = None
    destination: str | None = None
    enabled: Annotated[bool, Field(strict=True)] | None = None
    comment: str | None = Field(None, max_length=200)
    position: Annotated[int, Field(ge=0, strict=True)] | None = None

    @field_validator("direction", "action", "enabled", "position")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must not be null")
        return value
