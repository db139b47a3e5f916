"""Manifest loading, JSON's side: a document object, a list of documents, or {"items": [documents]}.

The same rules as the YAML side (`loader.py`) where JSON has the question: duplicate keys are refused
(naming the key and the document), integers past Python's digit limit are refused in words, nesting
and the document count are bounded, and strings that cannot be encoded are named.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from controller.manifests.loader import DEFAULT_LIMITS, Limits, ManifestSyntaxError, RawDocument, _show, _unencodable

__all__ = ["load_json"]


class _DuplicateKeys(dict[str, Any]):
    """A JSON object that repeated a key: reported, with its document, once the stream is split into documents."""

    duplicate: str = ""


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            marked = _DuplicateKeys(pairs)
            marked.duplicate = key
            return marked
        data[key] = value
    return data


def _json_int(text: str) -> int:
    limit = sys.get_int_max_str_digits()  # 0: no limit
    if limit and len(text.lstrip("-")) > limit:
        # Raised out of json.loads as is: int() would raise a ValueError worded for Python programmers.
        raise ManifestSyntaxError(f"integer too large (more than {limit} digits)")
    return int(text)


def load_json(text: str, limits: Limits = DEFAULT_LIMITS) -> list[RawDocument]:
    """A document object, a list of documents, or {"items": [documents]}; index = position in the list."""
    try:
        data = json.loads(text, object_pairs_hook=_json_object, parse_int=_json_int)
    except json.JSONDecodeError as exc:
        raise ManifestSyntaxError(exc.msg, line=exc.lineno, column=exc.colno) from None
    except RecursionError:  # nesting deeper than the interpreter allows, far past max_depth
        raise ManifestSyntaxError(f"nested deeper than {limits.max_depth} levels") from None
    except ValueError as exc:
        raise ManifestSyntaxError(f"invalid JSON: {exc}") from None
    if isinstance(data, dict) and set(data) == {"items"}:
        if isinstance(data, _DuplicateKeys):
            raise ManifestSyntaxError("duplicate key 'items'")
        data = data["items"]
        if not isinstance(data, list):
            raise ManifestSyntaxError('"items" must be a list of documents')
    elif not isinstance(data, list):
        data = [data]
    if len(data) > limits.max_documents:
        raise ManifestSyntaxError(f"too many documents: at most {limits.max_documents} are allowed",
                                  document=limits.max_documents)
    for index, document in enumerate(data):
        _check_json_document(document, index, limits)
    return [RawDocument(index, document, None) for index, document in enumerate(data)]


def _check_json_document(document: Any, index: int, limits: Limits) -> None:
    stack = [(document, 0)]  # iterative: the depth is what is being checked
    while stack:
        value, depth = stack.pop()
        if isinstance(value, _DuplicateKeys):
            raise ManifestSyntaxError(f"duplicate key {_show(value.duplicate)}", document=index)
        if isinstance(value, str) and (problem := _unencodable(value)):
            raise ManifestSyntaxError(problem, document=index)
        if isinstance(value, dict | list):
            if depth + 1 > limits.max_depth:
                raise ManifestSyntaxError(f"nested deeper than {limits.max_depth} levels", document=index)
            children = [*value, *value.values()] if isinstance(value, dict) else value  # keys are strings too
            stack.extend((child, depth + 1) for child in children)
