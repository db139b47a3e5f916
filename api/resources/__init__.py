"""One small module per resource group: parse, authorise, call the domain, answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class Op:
    """OpenAPI facts about one responder: the same models the responder validates with."""

    summary: str
    response: type[BaseModel] | None = None
    request: type[BaseModel] | None = None
    status: int = 200
    list_response: bool = False
    enveloped: bool = True
    errors: tuple[int, ...] = (400, 401, 404)
    query: dict[str, str] = field(default_factory=dict)
    request_types: tuple[str, ...] = ("application/json",)
    response_types: tuple[str, ...] = ("application/json",)
    # JSON Schemas of query parameters that are not free strings (booleans, integers, enums).
    query_schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
