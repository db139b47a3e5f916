"""Request parsing: JSON bodies into pydantic specs, query parameters into bounded integers.

Every failure is a 400 naming the field, in the contract's error shape; `details` lists all problems.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import falcon
from pydantic import BaseModel, ValidationError

from api.errors import ApiError
from controller import pages
from controller.specs import error_messages, parse_label_selector

M = TypeVar("M", bound=BaseModel)

def validation_error(exc: ValidationError, prefix: str = "") -> ApiError:
    problems = [{"field": ".".join(str(part) for part in loc) or "body", "message": message}
                for loc, message in error_messages(exc)]
    for problem in problems:
        problem["field"] = f"{prefix}{problem['field']}"
    first = problems[0]
    return ApiError(400, f"{first['field']}: {first['message']}", field=first["field"], details=problems)


class DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object_pairs_hook: a key given twice is an error, not "the last one wins"."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise DuplicateKey(key)
        found[key] = value
    return found


def read_json_object(req: falcon.Request) -> dict[str, Any]:
    if not req.content_length:
        raise ApiError(400, "request body is empty; expected a JSON object")
    media_type = (req.content_type or falcon.MEDIA_JSON).split(";", 1)[0].strip().lower()
    if media_type != falcon.MEDIA_JSON and not media_type.endswith("+json"):
        raise ApiError(415, f"unsupported media type {req.content_type!r}; send application/json")
    raw = req.bounded_stream.read()
    try:
        body = json.loads(raw, object_pairs_hook=_unique_keys)
    except DuplicateKey as exc:
        raise ApiError(400, f"{exc.key}: duplicate key in the JSON body", field=exc.key,
                       details=[{"field": exc.key, "message": "duplicate key"}]) from None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "request body is not valid JSON") from None
    except RecursionError:
        raise ApiError(400, "request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"request body must be a JSON object, not {type(body).__name__}")
    return body


def parse_body(req: falcon.Request, model: type[M]) -> M:
    body = read_json_object(req)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from None


MAX_QUERY_INT = 2**31 - 1


def int_param(req: falcon.Request, name: str, default: int, minimum: int, maximum: int = MAX_QUERY_INT) -> int:
    raw = req.get_param(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name}: must be an integer", field=name) from None
    if value < minimum or value > maximum:
        raise ApiError(400, f"{name}: must be between {minimum} and {maximum}", field=name)
    return value


def label_selector_param(req: falcon.Request) -> dict[str, str] | None:
    """`?label_selector=tier=web,env=prod` as a dict, or None when absent."""
    raw = req.get_param("label_selector")
    if raw is None or not raw.strip():
        return None
    try:
        return parse_label_selector(raw)
    except ValueError as exc:
        raise ApiError(400, f"label_selector: {exc}", field="label_selector") from None


PAGE_QUERY = {
    "limit": f"Page size (1..{pages.MAX_LIMIT}). Without it (and without continue) the whole list is answered.",
    "continue": "The `pagination.continue` value of the previous page (an opaque keyset cursor).",
}


PAGE_QUERY_SCHEMAS: dict[str, dict[str, Any]] = {
    "limit": {"type": "integer", "minimum": 1, "maximum": pages.MAX_LIMIT},
}


def page_param(req: falcon.Request, max_limit: int = pages.MAX_LIMIT) -> pages.PageRequest:
    """`?limit=N&continue=...`; an empty value counts as absent. A bad cursor is refused when decoded."""
    raw = req.get_param("limit")
    limit = None if raw is None or raw == "" else int_param(req, "limit", 0, 1, max_limit)
    token = req.get_param("continue") or None
    if token is not None and (len(token) > 1024 or not token.isascii()):
        raise ApiError(400, "continue: is not a cursor of this list", field="continue")
    return pages.PageRequest(limit=limit, token=token)
