"""Manifest loading: untrusted YAML or JSON text in, plain JSON-compatible documents out, or one ManifestSyntaxError.
(JSON's side is `json_loader.py`; the types and error positions shared by both are here.)

This module owns the parsing step only: it turns a request body (or a file) into a list of RawDocument, each
holding dicts, lists, strings, numbers, booleans and None, and the document's position in the stream. Whether a
document is a valid manifest is the validator's job.

The text is hostile until proven otherwise, so the YAML side is a loader (libyaml's C parser when PyYAML has it,
else yaml.SafeLoader's pure-Python one; this module composes the nodes itself either way) that:

- bounds the number of documents, the nesting depth, the alias (``*ref``) uses per request and, per document, the
  number of nodes after expanding aliases (computed on the node graph with memoisation, so a "billion laughs"
  document is rejected without ever being expanded); recursive aliases (``&a [*a]``) are rejected;
- accepts only the core tags (null, bool, int, float, str, seq, map) and names any other tag in its error
  (``!!python/object/...``, ``!!binary``, ``!!set``, ``!!timestamp``, ``!custom``...);
- never resolves timestamps (``2024-01-01`` stays a string), nor the YAML 1.1 ``=`` value tag;
- keeps every mapping key as its source text (``on: yes`` gives ``{"on": True}``; ``1: x`` gives ``{"1": "x"}``)
  and rejects duplicate keys, naming the key and the line of its first occurrence;
- rejects merge keys (``<<: *base``): they hide where a field's value comes from, which is what a reviewer of a
  manifest needs to see, and PyYAML's merge semantics have surprising corners; a quoted ``"<<"`` is an ordinary key.

Empty documents (``---`` with nothing, or only comments, after it) are skipped, but still counted, so that
RawDocument.index and error positions name a document's position in the file.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Protocol

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from controller.manifests import fastyaml

__all__ = ["DEFAULT_LIMITS", "Limits", "ManifestSyntaxError", "RawDocument", "load", "load_yaml"]


@dataclass(frozen=True)
class Limits:
    max_documents: int = 5000
    max_depth: int = 32  # nesting of mappings/sequences
    max_aliases: int = 100  # alias (*ref) uses per request
    max_nodes: int = 100_000  # nodes of one document after expanding aliases (billion laughs)


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class RawDocument:
    index: int  # 0-based position of the document in the stream, counting empty ones
    data: Any  # JSON-compatible: dict/list/str/int/float/bool/None only
    line: int | None  # 1-based line where the document starts (None for JSON input)


class ManifestSyntaxError(Exception):
    """The text is not a loadable manifest stream. Positions are 0-based (document) and 1-based (line, column)."""

    def __init__(
        self, message: str, *, document: int | None = None, line: int | None = None, column: int | None = None
    ) -> None:
        message = " ".join(message.split())  # one line, whatever PyYAML put in it
        super().__init__(message)
        self.message = message
        self.document = document
        self.line = line
        self.column = column

    def __str__(self) -> str:
        where = [f"{name} {value}" for name, value in
                 (("document", self.document), ("line", self.line), ("column", self.column)) if value is not None]
        return f"{', '.join(where)}: {self.message}" if where else self.message


def load(text: str, media: str, limits: Limits = DEFAULT_LIMITS) -> list[RawDocument]:
    """Load `text` as `media` ("yaml" or "json")."""
    if media == "yaml":
        return load_yaml(text, limits)
    if media == "json":
        from controller.manifests.json_loader import load_json  # it builds on this module's types

        return load_json(text, limits)
    raise ValueError(f"unknown manifest media {media!r}; expected 'yaml' or 'json'")


# --- YAML -------------------------------------------------------------------------------------------------------

_CORE = "tag:yaml.org,2002:"
_NULL, _BOOL, _INT, _FLOAT, _STR = (_CORE + name for name in ("null", "bool", "int", "float", "str"))
_SEQ, _MAP, _MERGE = _CORE + "seq", _CORE + "map", _CORE + "merge"
_SCALAR_TAGS = {_NULL, _BOOL, _INT, _FLOAT, _STR}
# Implicit resolvers we keep: the core scalar types, plus merge so that a plain `<<` key can be refused by name.
_RESOLVED_TAGS = _SCALAR_TAGS | {_MERGE}


def load_yaml(text: str, limits: Limits = DEFAULT_LIMITS) -> list[RawDocument]:
    """Every non-empty document of a YAML stream, in order.

    With libyaml, a valid stream is parsed in C; a stream it refuses is read again by the pure-Python parser,
    whose error (wording, position) is the one reported, so errors read the same with or without libyaml."""
    if fastyaml.AVAILABLE:  # no anchors or aliases, nothing refused: straight from libyaml's events
        try:
            found = fastyaml.load(text, limits.max_documents, limits.max_depth, limits.max_nodes)
            return [RawDocument(index, data, line) for index, data, line in found]
        except fastyaml.Unsupported:
            pass
    if _C_LOADER is not None:
        try:
            return _load_yaml(_C_LOADER, text, limits)
        except ManifestSyntaxError:
            pass
    return _load_yaml(_ManifestLoader, text, limits)


def _load_yaml(loader_class: Any, text: str, limits: Limits) -> list[RawDocument]:
    loader: _Limited | None = None
    try:
        loader = loader_class(text, limits)  # PyYAML checks for unprintable characters right here
        return loader.load_documents()
    except yaml.reader.ReaderError as exc:
        line, column = _position(text, exc.position)
        raise ManifestSyntaxError(f"unacceptable character #x{exc.character:04x}: {exc.reason}",
                                  line=line, column=column) from None
    except yaml.MarkedYAMLError as exc:
        raise _marked_error(exc, loader.document if loader else None) from None
    except yaml.YAMLError as exc:
        raise ManifestSyntaxError(str(exc) or "invalid YAML", document=loader.document if loader else None) from None
    except RecursionError:
        raise ManifestSyntaxError("nested too deeply", document=loader.document if loader else None) from None
    except ValueError as exc:  # PyYAML's scanner lets a few through, e.g. "\U00110000" or a 5000-digit %YAML version
        where = (loader.document, loader.mark()) if loader else (None, None)
        raise _located(f"invalid YAML: {exc}", *where) from None
    finally:
        if loader is not None:
            loader.dispose()


class _Limited:
    """Composes nodes under the limits, then builds plain data from them itself (no PyYAML constructor tables).

    A mixin over a parser (events in), PyYAML's Composer (nodes out), SafeConstructor (its scalar helpers)
    and Resolver; see _ManifestLoader and _CManifestLoader for the two parsers."""

    anchors: dict[str, Node]
    peek_event: Any
    check_node: Any
    get_node: Any
    construct_yaml_bool: Any
    construct_yaml_int: Any
    construct_yaml_float: Any

    # A copy on this class: yaml.SafeLoader itself must keep resolving timestamps for everyone else.
    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag in _RESOLVED_TAGS]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def _setup(self, limits: Limits) -> None:
        self.limits = limits
        self.document = 0  # index of the document being read, for error positions
        self._aliases = 0  # per request, not per document: each document could otherwise spend the whole budget
        self._depth = 0
        self._open_anchors: set[str] = set()  # anchors of the collections being composed right now

    def load_documents(self) -> list[RawDocument]:
        documents = []
        while self.check_node():
            start = self.peek_event().start_mark
            if self.document >= self.limits.max_documents:  # stop here: don't read the rest
                raise self._error(f"too many documents: at most {self.limits.max_documents} are allowed", start)
            node = self.get_node()
            if node is not None and not _is_empty(node):
                self._measure(node, 0, {})
                documents.append(RawDocument(self.document, self._construct(node), start.line + 1))
            self.document += 1
        return documents

    # Composition: the only point where depth and alias use are visible before anything is built.

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            self._aliases += 1
            if self._aliases > self.limits.max_aliases:
                raise self._error(f"too many aliases: at most {self.limits.max_aliases} are allowed", event.start_mark)
            if event.anchor in self._open_anchors:
                raise self._error(f"recursive alias *{event.anchor}: it refers to a node that contains it",
                                  event.start_mark)
            return super().compose_node(parent, index)  # type: ignore[misc]
        anchor = event.anchor
        if anchor is not None and anchor in self.anchors:
            first = self.anchors[anchor].start_mark.line + 1
            raise self._error(f"duplicate anchor &{anchor} (first defined on line {first})", event.start_mark)
        if not isinstance(event, SequenceStartEvent | MappingStartEvent):
            return super().compose_node(parent, index)  # type: ignore[misc]
        self._depth += 1
        if self._depth > self.limits.max_depth:
            raise self._error(f"nested deeper than {self.limits.max_depth} levels", event.start_mark)
        if anchor is not None:
            self._open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)  # type: ignore[misc]
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open_anchors.discard(anchor)

    # After composition: measure the document as if aliases were expanded, without expanding them.

    def _measure(self, node: Node, depth: int, memo: dict[int, tuple[int, int]]) -> tuple[int, int]:
        """(node count, collection height) of `node` expanded; `depth` collections enclose it here."""
        known = memo.get(id(node))  # the same node object stands for every alias of it
        if known is None:
            if isinstance(node, ScalarNode):
                known = (1, 0)
            else:
                # Check before descending, so that recursion never goes deeper than max_depth.
                self._check_depth(depth + 1, node)
                children = node.value if isinstance(node, SequenceNode) else [n for pair in node.value for n in pair]
                size, height = 1, 0
                for child in children:
                    child_size, child_height = self._measure(child, depth + 1, memo)
                    size, height = size + child_size, max(height, child_height)
                    self._check_size(size, node)
                known = (size, height + 1)
            memo[id(node)] = known
        self._check_depth(depth + known[1], node)
        self._check_size(known[0], node)
        return known

    def _check_depth(self, depth: int, node: Node) -> None:
        if depth > self.limits.max_depth:
            raise self._error(f"nested deeper than {self.limits.max_depth} levels once aliases are expanded",
                              node.start_mark)

    def _check_size(self, size: int, node: Node) -> None:
        if size > self.limits.max_nodes:
            raise self._error(f"document too large: more than {self.limits.max_nodes} nodes once aliases are "
                              "expanded", node.start_mark)

    # Construction: aliases are expanded into fresh objects (bounded by _measure), so no two places share one.

    def _construct(self, node: Node) -> Any:
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        if isinstance(node, SequenceNode):
            self._check_tag(node, _SEQ, "a list")
            return [self._construct(child) for child in node.value]
        assert isinstance(node, MappingNode)
        self._check_tag(node, _MAP, "a mapping")
        data: dict[str, Any] = {}
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node)
            if key in data:
                raise self._error(f"duplicate key {_show(key)} (first defined on line {lines[key]})",
                                  key_node.start_mark)
            lines[key] = key_node.start_mark.line + 1
            data[key] = self._construct(value_node)
        return data

    def _key(self, node: Node) -> str:
        if not isinstance(node, ScalarNode):
            raise self._error("a mapping key must be a plain value, not a list or mapping", node.start_mark)
        if node.tag == _MERGE:
            raise self._error("merge keys (<<) are not supported: write the fields out in full", node.start_mark)
        self._check_tag(node, None, "a value")
        return self._text(node)  # the source text: `on:` stays "on", `1:` is "1"

    def _scalar(self, node: ScalarNode) -> Any:
        self._check_tag(node, None, "a value")
        tag = node.tag
        if tag in (_STR, _MERGE):  # a plain `<<` in value position is just text
            return self._text(node)
        try:
            if tag == _NULL:
                return None
            if tag == _BOOL:
                return self.construct_yaml_bool(node)
            if tag == _INT:
                return self.construct_yaml_int(node)
            return self.construct_yaml_float(node)
        except (ValueError, KeyError):  # an explicit tag on text it does not fit, or an int past Python's digit limit
            if tag == _INT and node.value.lstrip("+-").replace("_", "").isdigit():
                message = f"integer too large (more than {sys.get_int_max_str_digits()} digits)"
            else:
                message = f"{_show(node.value)} is not a valid {_tag_name(tag)} value"
            raise self._error(message, node.start_mark) from None

    def _text(self, node: ScalarNode) -> str:
        text: str = node.value
        problem = _unencodable(text)
        if problem:
            raise self._error(problem, node.start_mark)
        return text

    def _check_tag(self, node: Node, expected: str | None, kind: str) -> None:
        """`expected` None means any core scalar tag."""
        tag = node.tag
        if tag in (_RESOLVED_TAGS if expected is None else {expected}):
            return
        if tag in _SCALAR_TAGS | {_SEQ, _MAP}:
            raise self._error(f"tag {_tag_name(tag)} cannot be used on {kind}", node.start_mark)
        raise self._error(f"unsupported tag {_tag_name(tag)}: only strings, numbers, booleans, null, lists and "
                          "mappings are allowed", node.start_mark)

    def _error(self, message: str, mark: _Mark | None) -> ManifestSyntaxError:
        return _located(message, self.document, mark)

    def mark(self) -> _Mark | None:
        get_mark = getattr(self, "get_mark", None)  # the pure-Python reader's position; libyaml has none
        return get_mark() if get_mark is not None else None

    def dispose(self) -> None:
        pass


class _ManifestLoader(_Limited, yaml.SafeLoader):
    """Pure-Python scanning and parsing (when PyYAML was built without libyaml)."""

    def __init__(self, text: str, limits: Limits) -> None:
        yaml.SafeLoader.__init__(self, text)
        self._setup(limits)


_C_LOADER: Any = None
if getattr(yaml, "__with_libyaml__", False):
    from yaml._yaml import CParser

    class _CManifestLoader(_Limited, Composer, CParser, SafeConstructor, yaml.resolver.Resolver):
        """libyaml scans and parses (the bulk of the time, some 10-20 times faster than pure Python); the
        composition above it is PyYAML's Composer in Python, so every limit is checked exactly as above."""

        def __init__(self, text: str, limits: Limits) -> None:
            CParser.__init__(self, text)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            self._setup(limits)

        def dispose(self) -> None:
            CParser.dispose(self)

    _C_LOADER = _CManifestLoader


class _Mark(Protocol):
    """What an error needs from a PyYAML mark (the pure-Python and the libyaml classes both fit)."""

    line: int  # 0-based
    column: int  # 0-based


def _is_empty(node: Node) -> bool:
    """An empty document composes to a plain, untagged empty scalar (unlike `~`, `null` or `''`)."""
    return isinstance(node, ScalarNode) and node.tag == _NULL and node.value == "" and not node.style


def _unencodable(text: str) -> str | None:
    """Why `text` cannot be stored or sent as UTF-8 (a lone surrogate, from a "\\ud800" escape), or None."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"invalid character #x{ord(text[exc.start]):04x} in {_show(text)}: lone surrogates are not allowed"
    return None


def _marked_error(exc: yaml.MarkedYAMLError, document: int | None) -> ManifestSyntaxError:
    mark = exc.problem_mark or exc.context_mark
    message = exc.problem or exc.context or "invalid YAML"
    if exc.problem and exc.context:  # e.g. "could not find expected ':' (while scanning a simple key on line 3)"
        started = exc.context_mark.line + 1 if exc.context_mark else None
        on_line = f" on line {started}" if started is not None and mark and started != mark.line + 1 else ""
        message = f"{message} ({exc.context}{on_line})"
    return _located(message, document, mark)


def _located(message: str, document: int | None, mark: _Mark | None) -> ManifestSyntaxError:
    if mark is None:
        return ManifestSyntaxError(message, document=document)
    return ManifestSyntaxError(message, document=document, line=mark.line + 1, column=mark.column + 1)


def _position(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


def _tag_name(tag: str) -> str:
    """A tag as written in YAML (`!!binary`, `!custom`), escaped: tags may carry %-encoded control characters."""
    name = "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag
    return _shorten(name).encode("unicode_escape").decode("ascii")


def _show(text: str) -> str:
    """Untrusted text, quoted and shortened, for an error message."""
    return repr(_shorten(text))


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
