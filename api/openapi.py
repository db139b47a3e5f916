"""The OpenAPI 3.1 document, built from the routes and the pydantic models the responders use.

Each resource class declares `docs = {METHOD: Op(...)}` naming its request and response models; this
module walks the registered routes, so a route cannot exist without appearing here (a test checks).
"""

from __future__ import annotations

import re
from typing import Any, get_args

import falcon
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api.resources import Op
from api.schemas import ErrorOut
from controller.firewall_specs import Direction, RuleAction
from controller.specs import PowerAction

REF = "#/components/schemas/{model}"
_PARAM = re.compile(r"{(\w+)}")
_DESCRIPTIONS = {
    200: "OK", 201: "Created", 400: "Bad request (validation failed)", 401: "Unauthorised",
    403: "Forbidden", 404: "Not found", 409: "Conflict", 413: "Body too large", 415: "Unsupported media type",
    429: "Too many requests", 503: "Not ready",
}
_PROTOCOLS = ["tcp", "udp", "icmp"]  # the canonical spelling; the API accepts any case (the contract shows "TCP")
# (schema, property) -> allowed values, where the models keep a plain str (for their own error wording).
_ENUMS: dict[tuple[str, str], list[str]] = {
    ("VmActionRequest", "action"): list(get_args(PowerAction)),
    ("RuleCreate", "protocol"): _PROTOCOLS, ("RuleUpdate", "protocol"): _PROTOCOLS,
    ("RuleSpec", "protocol"): _PROTOCOLS,
    ("RuleOut", "action"): list(get_args(RuleAction)), ("RuleOut", "direction"): list(get_args(Direction)),
}
_UUID_PROPERTIES = {"id", "vm_id", "owner_id", "user_id", "snapshot_id", "rule_id"}
_NOT_UUID = {"ProblemOut", "ErrorOut", "ChangeOut", "PlannedOut"}  # `id` there is not always one
_GROUPS = {"auth": "auth", "vms": "vms", "firewall": "firewall", "manifests": "manifests", "stats": "stats",
           "audit-logs": "audit", "health": "health", "openapi.json": "meta", "metrics": "meta"}
_TAGS = [
    {"name": "auth", "description": "Accounts and tokens"},
    {"name": "vms", "description": "Virtual machines: desired state, power actions, snapshots, rules per VM"},
    {"name": "firewall", "description": "Firewall rules by id"},
    {"name": "manifests", "description": "Server-side apply and export of manifest documents"},
    {"name": "stats", "description": "System figures"},
    {"name": "audit", "description": "The audit trail"},
    {"name": "health", "description": "Liveness and readiness"},
    {"name": "meta", "description": "This document and Prometheus metrics"},
]


def build(routes: list[tuple[str, object]], version: str) -> dict[str, Any]:
    ops: list[tuple[str, str, Op]] = []
    for path, resource in routes:
        for method, op in getattr(resource, "docs", {}).items():
            ops.append((path, method, op))

    keys: list[tuple[type[BaseModel], Any]] = [(ErrorOut, "serialization")]
    for _path, _method, op in ops:
        if op.request is not None:
            keys.append((op.request, "validation"))
        if op.response is not None:
            keys.append((op.response, "serialization"))
    refs, definitions = models_json_schema(keys, ref_template=REF)

    paths: dict[str, dict[str, Any]] = {}
    for path, method, op in ops:
        paths.setdefault(path, {})[method.lower()] = _operation(path, method, op, refs,
                                                                public=getattr(_resource(routes, path),
                                                                               "public", False))
    schemas = definitions.get("$defs", {})
    _tighten(schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "pvem — PVE Manager API", "version": version,
                 "description": "Declarative Proxmox VE management: desired state in, converged cluster out."},
        "servers": [{"url": "/"}],
        "tags": _TAGS,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "security": [{"bearerAuth": []}],
    }


def _resource(routes: list[tuple[str, object]], path: str) -> object:
    return next(resource for route, resource in routes if route == path)


def _operation(path: str, method: str, op: Op, refs: dict[Any, Any], public: bool) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": op.summary,
        "operationId": _operation_id(method, path),
        "tags": [_group(path)],
        "responses": {},
    }
    parameters = [{"name": name, "in": "path", "required": True,
                   "schema": {"type": "string", "format": "uuid"} if name in _UUID_PROPERTIES else {"type": "string"}}
                  for name in _PARAM.findall(path)]
    parameters += [{"name": name, "in": "query", "required": False, "description": text,
                    "schema": op.query_schemas.get(name, {"type": "string"})} for name, text in op.query.items()]
    if parameters:
        operation["parameters"] = parameters
    if op.request is not None:
        schema = refs[(op.request, "validation")]
        operation["requestBody"] = {"required": True, "content": {
            media: {"schema": schema} for media in op.request_types}}
    success: dict[str, Any] = {"description": _DESCRIPTIONS.get(op.status, "OK")}
    if op.response is not None:
        schema = refs[(op.response, "serialization")]
        success["content"] = {media: {"schema": schema if "json" in media else {"type": "string"}}
                              for media in op.response_types}
    elif "application/json" not in op.response_types:
        success["content"] = {media: {"schema": {"type": "string"}} for media in op.response_types}
    operation["responses"][str(op.status)] = success
    error_ref = refs[(ErrorOut, "serialization")]
    for code in sorted({*op.errors, *(() if public else (401,))}):
        operation["responses"][str(code)] = {
            "description": _DESCRIPTIONS.get(code, falcon.code_to_http_status(code)),
            "content": {"application/json": {"schema": error_ref}},
        }
    if public:
        operation["security"] = []
    return operation


def _group(path: str) -> str:
    parts = [part for part in path.split("/") if part]
    first = parts[1] if parts[:1] == ["api"] and len(parts) > 1 else (parts[0] if parts else "meta")
    return _GROUPS.get(first, first)


def _tighten(schemas: dict[str, Any]) -> None:
    """Formats and enums pydantic cannot see: timestamps are date-time, ids uuid, some strings enums."""
    for name, schema in schemas.items():
        for prop, spec in (schema.get("properties") or {}).items():
            values = _ENUMS.get((name, prop))
            if values is not None:
                _on_strings(spec, {"enum": values})
            if prop.endswith("_at") or prop == "timestamp":
                _on_strings(spec, {"format": "date-time"})
            elif prop in _UUID_PROPERTIES and name not in _NOT_UUID:
                _on_strings(spec, {"format": "uuid"})


def _on_strings(spec: dict[str, Any], extra: dict[str, Any]) -> None:
    """Add `extra` to the string branch of `spec` (itself, or inside anyOf for optional fields)."""
    if spec.get("type") == "string":
        spec.update(extra)
    for branch in spec.get("anyOf", []):
        if branch.get("type") == "string":
            branch.update(extra)


def _operation_id(method: str, path: str) -> str:
    words = [part.strip("{}") for part in path.removeprefix("/api/").split("/") if part]
    return method.lower() + "_" + "_".join(re.sub(r"\W", "_", word) for word in words)
