"""The fast path of manifest YAML loading: libyaml events straight to plain data, for the common stream.

No nodes are composed and nothing is measured afterwards: values are built as libyaml's events arrive,
with the loader's rules applied on the way (core tags only, keys as their source text, no duplicate
keys, no merge keys, timestamps left as strings, depth, node and document limits). It handles only
streams without anchors and aliases; on those, and on anything the rules refuse, it gives up
(`Unsupported`) and the full loader in loader.py reads the text and reports the error exactly as
without libyaml. So this module never decides that a stream is invalid, only that it is plainly valid.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

AVAILABLE = bool(getattr(yaml, "__with_libyaml__", False))

_CORE = "tag:yaml.org,2002:"
_NULL, _BOOL, _INT, _FLOAT, _STR = (_CORE + name for name in ("null", "bool", "int", "float", "str"))
_SEQ, _MAP, _MERGE = _CORE + "seq", _CORE + "map", _CORE + "merge"
_VALUE_TAGS = {_NULL, _BOOL, _INT, _FLOAT, _STR, _MERGE}


class Unsupported(Exception):
    """Not for the fast path: let the full loader read this stream."""


class _Resolver(yaml.resolver.Resolver):
    """Implicit tags as the full loader resolves them: core scalars and merge only (no timestamps, no `=`)."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag in _VALUE_TAGS]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


_constructor = SafeConstructor()
_SCALARS = {_BOOL: _constructor.construct_yaml_bool, _INT: _constructor.construct_yaml_int,
            _FLOAT: _constructor.construct_yaml_float}


def load(text: str, max_documents: int, max_depth: int, max_nodes: int) -> list[tuple[int, Any, int]]:
    """(index, data, 1-based start line) of every non-empty document, or Unsupported."""
    from yaml._yaml import CParser

    try:
        parser = CParser(text)
    except Exception:  # e.g. a lone surrogate libyaml cannot encode
        raise Unsupported from None
    resolver = _Resolver()
    try:
        if not isinstance(parser.get_event(), StreamStartEvent):
            raise Unsupported
        documents: list[tuple[int, Any, int]] = []
        index = 0
        while not parser.check_event(StreamEndEvent):
            start = parser.get_event()
            if not isinstance(start, DocumentStartEvent) or index >= max_documents:
                raise Unsupported
            empty, data = _document(parser, resolver, max_depth, max_nodes)
            if not isinstance(parser.get_event(), DocumentEndEvent):
                raise Unsupported
            if not empty:
                documents.append((index, data, start.start_mark.line + 1 if start.start_mark else 0))
            index += 1
        return documents
    except Unsupported:
        raise
    except Exception:  # any parser error, RecursionError, ValueError...: the full loader words it
        raise Unsupported from None
    finally:
        parser.dispose()


def _text(value: str) -> str:
    if not value.isascii():
        value.encode("utf-8")  # a lone surrogate raises: Unsupported
    return value


def _document(parser: Any, resolver: _Resolver, max_depth: int, max_nodes: int) -> tuple[bool, Any]:
    """(empty document?, data). Containers are [value, is_mapping, pending key or None]."""
    stack: list[list[Any]] = []
    nodes = 0
    while True:
        event = parser.get_event()
        kind = type(event)
        if kind is MappingEndEvent or kind is SequenceEndEvent:
            finished = stack.pop()[0]
            if not stack:
                return False, finished
            continue
        if kind is AliasEvent or event.anchor is not None:
            raise Unsupported
        nodes += 1
        if nodes > max_nodes:
            raise Unsupported
        tag = event.tag
        parent = stack[-1] if stack else None
        wants_key = parent is not None and parent[1] and parent[2] is None
        if kind is ScalarEvent:
            if tag is None or tag == "!":
                tag = resolver.resolve(ScalarNode, event.value, event.implicit)
            if tag not in _VALUE_TAGS:
                raise Unsupported
            if wants_key:
                if tag == _MERGE or event.value in parent[0]:  # type: ignore[index]
                    raise Unsupported
                parent[2] = _text(event.value)  # type: ignore[index]
                continue
            if tag in (_STR, _MERGE):
                value: Any = _text(event.value)
            elif tag == _NULL:
                if parent is None and event.value == "" and not event.style:
                    return True, None  # an empty document
                value = None
            else:
                value = _SCALARS[tag](ScalarNode(tag, event.value))
            if parent is None:
                return False, value
        elif kind is MappingStartEvent or kind is SequenceStartEvent:
            mapping = kind is MappingStartEvent
            if tag is None or tag == "!":
                tag = resolver.resolve(MappingNode if mapping else SequenceNode, None, event.implicit)
            if tag != (_MAP if mapping else _SEQ) or wants_key or len(stack) + 1 > max_depth:
                raise Unsupported
            value = {} if mapping else []
            stack.append([value, mapping, None])
            if parent is None:
                continue
        else:
            raise Unsupported
        assert parent is not None
        if parent[1]:
            parent[0][parent[2]] = value
            parent[2] = None
        else:
            parent[0].append(value)
