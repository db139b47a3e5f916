"""The OpenAPI 3.1 document, built from the routes and the pydantic models the responders use.

Each resource class declares `docs = {METHOD: Op(...)}` naming its request and response models; this
module walks the registered routes, so a route cannot exist without appearing here (a test checks).
"""

from __future__ import annotations

import re
from typing import Any

import falcon
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api.resources import Op
from api.schemas import ErrorOut

REF = "#/components/schemas/{model}"
_PARAM = re.compile(r"{(\w+)}")
_DESCRIPTIONS = {
    200: "OK", 201: "Created", 400: "Bad request (validation failed)", 401: "Unauthorised",
    403: "Forbidden", 404: "Not found", 409: "Conflict", 413: "Body too large", 415: "Unsupported media type",
    429: "Too many requests", 503: "Not ready",
}


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
    return {
        "openapi": "3.1.0",
        "info": {"title": "pvem — PVE Manager API", "version": version,
                 "description": "Declarative Proxmox VE management: desired state in, converged cluster out."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
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
        "responses": {},
    }
    parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in _PARAM.findall(path)]
    parameters += [{"name": name, "in": "query", "required": False, "description": text,
                    "schema": {"type": "string"}} for name, text in op.query.items()]
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


def _operation_id(method: str, path: str) -> str:
    words = [part.strip("{}") for part in path.removeprefix("/api/").split("/") if part]
    return method.lower() + "_" + "_".join(re.sub(r"\W", "_", word) for word in words)
