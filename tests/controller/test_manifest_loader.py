"""The manifest loader: hostile YAML/JSON text in, plain documents with their positions out, or one clear error."""

from __future__ import annotations

import json
import random

import pytest
import yaml

from controller.manifests.json_loader import load_json
from controller.manifests.loader import Limits, ManifestSyntaxError, RawDocument, load, load_yaml

VM = """\
apiVersion: pvem/v1
kind: VirtualMachine
metadata:
  name: {name}
  labels: {{tier: web}}
spec:
  cpu_cores: 2
  firewall:
    - {{direction: inbound, action: accept, protocol: tcp, port: 22, source: 10.0.0.0/8}}
"""


def vm(name: str) -> dict:
    return {"apiVersion": "pvem/v1", "kind": "VirtualMachine", "metadata": {"name": name, "labels": {"tier": "web"}},
            "spec": {"cpu_cores": 2, "firewall": [{"direction": "inbound", "action": "accept", "protocol": "tcp",
                                                   "port": 22, "source": "10.0.0.0/8"}]}}


def positions(documents: list[RawDocument]) -> list[tuple[int, int | None]]:
    return [(document.index, document.line) for document in documents]


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# --- YAML: what loads, and where each document starts --------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("", [], id="empty text"),
    pytest.param("# only a comment\n", [], id="comments only"),
    pytest.param("a: 1\n", [(0, 1)], id="one implicit document"),
    pytest.param("# header\n\n---\na: 1\n", [(0, 3)], id="explicit start after comments: the --- line"),
    pytest.param(VM.format(name="a") + "---\n" + VM.format(name="b"), [(0, 1), (1, 10)], id="two documents"),
    pytest.param("---\n---\n# nothing\n---\na: 1\n---\n", [(2, 4)], id="empty documents are skipped but counted"),
    pytest.param("a: 1\n...\n---\nb: 2\n", [(0, 1), (1, 3)], id="explicit document end"),
    pytest.param("%YAML 1.1\n---\na: 1\n", [(0, 1)], id="YAML directive"),
    pytest.param("--- ~\n--- ''\n", [(0, 1), (1, 2)], id="null and empty string are documents, not empty ones"),
])
def test_yaml_documents_keep_their_position_in_the_file(text, expected):
    assert positions(load_yaml(text)) == expected


def test_yaml_documents_carry_their_data():
    documents = load_yaml(VM.format(name="web-1") + "---\n" + VM.format(name="web-2"))
    assert [document.data for document in documents] == [vm("web-1"), vm("web-2")]


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("on: yes\n", {"on": True}, id="YAML 1.1 booleans as values, keys stay text"),
    pytest.param("off: no\ny: n\n", {"off": False, "y": "n"}, id="off/no are booleans, y/n are not"),
    pytest.param("date: 2024-01-01\n", {"date": "2024-01-01"}, id="dates stay strings"),
    pytest.param("at: 2024-01-01T10:00:00Z\n", {"at": "2024-01-01T10:00:00Z"}, id="timestamps stay strings"),
    pytest.param("1: a\n2.5: b\nnull: c\ntrue: d\n~: e\n", {"1": "a", "2.5": "b", "null": "c", "true": "d", "~": "e"},
                 id="keys are their source text"),
    pytest.param("'<<': 1\nv: <<\n", {"<<": 1, "v": "<<"}, id="quoted << key and << value are plain text"),
    pytest.param("n: ~\nm: null\ne:\n", {"n": None, "m": None, "e": None}, id="nulls"),
    pytest.param("i: 0x1F\nj: -12\nk: 1_000\n", {"i": 31, "j": -12, "k": 1000}, id="integers"),
    pytest.param("f: 1.5\ng: .inf\nh: 1e3\n", {"f": 1.5, "g": float("inf"), "h": "1e3"}, id="floats (YAML 1.1)"),
    pytest.param("s: !!str 22\nt: !!int '7'\nu: !!float 2\n", {"s": "22", "t": 7, "u": 2.0}, id="explicit core tags"),
    pytest.param("op: =\n", {"op": "="}, id="a lone = is text"),
    pytest.param("a: &x [1, {b: 2}]\nc: *x\n", {"a": [1, {"b": 2}], "c": [1, {"b": 2}]}, id="aliases"),
    pytest.param("\ufeffa: 1\n", {"a": 1}, id="byte order mark"),
    pytest.param("d: |\n  two\n  lines\n", {"d": "two\nlines\n"}, id="block scalar"),
])
def test_yaml_values(text, expected):
    [document] = load_yaml(text)
    assert document.data == expected


def test_aliases_expand_into_independent_copies():
    [document] = load_yaml("a: &x {k: [1]}\nb: *x\n")
    document.data["a"]["k"].append(2)
    assert document.data["b"] == {"k": [1]}


def test_the_global_safe_loader_still_resolves_timestamps():
    load_yaml("d: 2024-01-01\n")
    assert not isinstance(yaml.safe_load("d: 2024-01-01\n")["d"], str)


# --- YAML: what is rejected, and where -------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "document", "line", "column", "message"), [
    pytest.param("a: b: c\n", 0, 1, 5, "mapping values are not allowed here", id="syntax error"),
    pytest.param("a: 1\n---\nb: 2\n---\nc:\n  d: 1\n e: 2\n", 2, 7, 2, "expected <block end>",
                 id="syntax error in the third document"),
    pytest.param("a: 1\n---\nb:\n\tc: 1\n", 1, 4, 1, "found character '\\t' that cannot start any token",
                 id="tab indentation"),
    pytest.param("a: [1, 2\n", 0, 2, 1, "expected ',' or ']'", id="unclosed flow sequence"),
    pytest.param("a: 'x\n", 0, 2, 1, "found unexpected end of stream", id="unclosed quote"),
    pytest.param("a: *nope\n", 0, 1, 4, "found undefined alias 'nope'", id="undefined alias"),
    pytest.param("a: &x 1\n---\nb: *x\n", 1, 3, 4, "found undefined alias 'x'", id="anchors do not cross documents"),
    pytest.param("a: &x 1\nb: &x 2\n", 0, 2, 4, "duplicate anchor &x (first defined on line 1)", id="duplicate anchor"),
    pytest.param("name: a\nspec: {}\nname: b\n", 0, 3, 1, "duplicate key 'name' (first defined on line 1)",
                 id="duplicate key"),
    pytest.param("---\nx: 1\n---\nm: {a: 1, 'a': 2}\n", 1, 4, 11, "duplicate key 'a' (first defined on line 4)",
                 id="duplicate key in flow mapping, quoted"),
    pytest.param("1: a\n'1': b\n", 0, 2, 1, "duplicate key '1'", id="keys compare as text"),
    pytest.param("base: &b {x: 1}\nvm:\n  <<: *b\n", 0, 3, 3, "merge keys (<<) are not supported", id="merge key"),
    pytest.param("? [a, b]\n: 1\n", 0, 1, 3, "a mapping key must be a plain value", id="sequence as key"),
    pytest.param("? {a: b}\n: 1\n", 0, 1, 3, "a mapping key must be a plain value", id="mapping as key"),
    pytest.param("a: !!python/object/apply:os.system ['true']\n", 0, 1, 4,
                 "unsupported tag !!python/object/apply:os.system", id="python object tag"),
    pytest.param("a: !!python/name:os.system\n", 0, 1, 4, "unsupported tag !!python/name:os.system",
                 id="python name tag"),
    pytest.param("a: !!binary aGVsbG8=\n", 0, 1, 4, "unsupported tag !!binary", id="binary"),
    pytest.param("a: !!set {x, y}\n", 0, 1, 4, "unsupported tag !!set", id="set"),
    pytest.param("a: !!omap [{x: 1}]\n", 0, 1, 4, "unsupported tag !!omap", id="omap"),
    pytest.param("a: !!timestamp 2024-01-01\n", 0, 1, 4, "unsupported tag !!timestamp", id="explicit timestamp"),
    pytest.param("a: !foo bar\n", 0, 1, 4, "unsupported tag !foo", id="custom local tag"),
    pytest.param("!!binary aGk=: 1\n", 0, 1, 1, "unsupported tag !!binary", id="tag on a key"),
    pytest.param("%TAG !! tag:evil.example,2000:\n---\na: !!str x\n", 0, 3, 4, "unsupported tag tag:evil.example",
                 id="!! redirected by a TAG directive"),
    pytest.param("a: !!str [1]\n", 0, 1, 4, "tag !!str cannot be used on a list", id="scalar tag on a list"),
    pytest.param("a: !!seq x\n", 0, 1, 4, "tag !!seq cannot be used on a value", id="list tag on a scalar"),
    pytest.param("a: !!int abc\n", 0, 1, 4, "'abc' is not a valid !!int value", id="explicit int on text"),
    pytest.param("a: !!bool maybe\n", 0, 1, 4, "'maybe' is not a valid !!bool value", id="explicit bool on text"),
    pytest.param("a: " + "9" * 5000 + "\n", 0, 1, 4, "integer too large", id="huge integer"),
    pytest.param('a: "\\ud800"\n', 0, 1, 4, "lone surrogates are not allowed", id="surrogate escape"),
    pytest.param('a: "\\U00110000"\n', 0, 1, 7, "invalid YAML", id="escape beyond Unicode"),
    pytest.param("a: 1\nb: \x00\n", None, 2, 4, "unacceptable character #x0000", id="NUL character"),
    pytest.param("a: \udcff\n", None, 1, 4, "unacceptable character #xdcff", id="undecodable byte, surrogateescaped"),
    pytest.param("a: \x1b[31m\n", None, 1, 4, "unacceptable character #x001b", id="terminal escape"),
])
def test_yaml_errors_name_document_line_and_column(text, document, line, column, message):
    with pytest.raises(ManifestSyntaxError) as caught:
        load_yaml(text)
    error = caught.value
    assert (error.document, error.line, error.column) == (document, line, column)
    assert message in error.message
    assert "\n" not in str(error)


@pytest.mark.parametrize(("error", "expected"), [
    pytest.param(ManifestSyntaxError("mapping values are not allowed here", document=2, line=14, column=3),
                 "document 2, line 14, column 3: mapping values are not allowed here", id="full position"),
    pytest.param(ManifestSyntaxError("bad", line=1, column=4), "line 1, column 4: bad", id="no document"),
    pytest.param(ManifestSyntaxError("bad", document=0), "document 0: bad", id="document only"),
    pytest.param(ManifestSyntaxError("bad"), "bad", id="no position"),
    pytest.param(ManifestSyntaxError("two\n  lines"), "two lines", id="always one line"),
])
def test_error_reads_as_one_line(error, expected):
    assert str(error) == expected


# --- YAML: limits ----------------------------------------------------------------------------------------------

# The classic: nine levels, each nine aliases of the one before: 9**9 "lol"s from under 1 KB of text.
LOL = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{level}: &{level} [{', '.join([f'*{below}'] * 9)}]\n" for below, level in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(("text", "limits", "message"), [
    pytest.param(LOL, Limits(), "more than 100000 nodes once aliases are expanded", id="billion laughs"),
    pytest.param("a: &a [x, x]\nb: [*a, *a]\n", Limits(max_nodes=12), "more than 12 nodes", id="nodes, small limit"),
    pytest.param("a: &a [*a]\n", Limits(), "recursive alias *a", id="recursive alias"),
    pytest.param("a: &a {b: [1, {c: *a}]}\n", Limits(), "recursive alias *a", id="indirectly recursive alias"),
    pytest.param(nested(10_000), Limits(), "nested deeper than 32 levels", id="10000 nested flow lists"),
    pytest.param("{a: " * 10_000, Limits(), "nested deeper than 32 levels", id="10000 nested flow mappings"),
    pytest.param("- " * 10_000 + "x\n", Limits(), "nested deeper than 32 levels", id="10000 nested block lists"),
    pytest.param(nested(33), Limits(), "nested deeper than 32 levels", id="33 levels"),
    pytest.param("a: &a " + nested(20) + "\nb: " + "[" * 20 + "*a" + "]" * 20 + "\n", Limits(),
                 "nested deeper than 32 levels once aliases are expanded", id="depth through aliases"),
    pytest.param("a: &a x\nb: [" + ", ".join(["*a"] * 101) + "]\n", Limits(), "too many aliases: at most 100",
                 id="101 aliases"),
    pytest.param("a: &a x\nb: *a\n---\nc: &c x\nd: *c\n", Limits(max_aliases=1), "too many aliases: at most 1",
                 id="aliases counted across documents"),
])
def test_yaml_limits(text, limits, message):
    with pytest.raises(ManifestSyntaxError) as caught:
        load_yaml(text, limits)
    assert message in caught.value.message
    assert caught.value.document is not None and caught.value.line is not None


@pytest.mark.parametrize(("text", "limits"), [
    pytest.param(nested(32), Limits(), id="32 levels"),
    pytest.param("a: &a x\nb: [" + ", ".join(["*a"] * 100) + "]\n", Limits(), id="100 aliases"),
    pytest.param("a: &a [x, x]\nb: [*a, *a]\n", Limits(max_nodes=13), id="exactly max_nodes after expansion"),
    pytest.param("---\n" * 500, Limits(), id="500 documents"),
])
def test_yaml_at_the_limits_loads(text, limits):
    load_yaml(text, limits)


def test_too_many_documents_stops_reading():
    text = "a: 1\n---\n" * 3 + "[unclosed\n"
    with pytest.raises(ManifestSyntaxError) as caught:
        load_yaml(text, Limits(max_documents=3))
    error = caught.value
    assert (error.document, error.line) == (3, 6)  # the fourth document's ---
    assert "too many documents: at most 3" in error.message


def test_huge_but_legal_document_loads():
    rules = "".join(f"    - {{direction: inbound, action: accept, protocol: tcp, port: {port}, source: 10.0.0.0/8}}\n"
                    for port in range(2000))
    [document] = load_yaml("kind: VirtualMachine\nspec:\n  firewall:\n" + rules)
    assert len(document.data["spec"]["firewall"]) == 2000
    assert document.data["spec"]["firewall"][-1]["port"] == 1999


def test_many_documents_load():
    documents = load_yaml("---\n".join(VM.format(name=f"vm-{i}") for i in range(500)))
    assert [document.index for document in documents] == list(range(500))
    assert documents[-1].data == vm("vm-499")


# --- JSON ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param(json.dumps(vm("a")), [vm("a")], id="one document"),
    pytest.param(json.dumps([vm("a"), vm("b")]), [vm("a"), vm("b")], id="list of documents"),
    pytest.param(json.dumps({"items": [vm("a"), vm("b")]}), [vm("a"), vm("b")], id="items wrapper"),
    pytest.param("[]", [], id="empty list"),
    pytest.param('{"items": []}', [], id="empty items"),
    pytest.param('[{"a": 1}, 2, null, "x"]', [{"a": 1}, 2, None, "x"], id="non-objects are left to the validator"),
    pytest.param('{"items": [1], "kind": "x"}', [{"items": [1], "kind": "x"}], id="items beside other keys: document"),
    pytest.param('{"d": "2024-01-01", "on": true}', [{"d": "2024-01-01", "on": True}], id="values as given"),
])
def test_json_forms(text, expected):
    documents = load_json(text)
    assert [document.data for document in documents] == expected
    assert positions(documents) == [(index, None) for index in range(len(expected))]


@pytest.mark.parametrize(("text", "limits", "document", "line", "message"), [
    pytest.param('{"a": 1,}', Limits(), None, 1, "Expecting property name", id="syntax error"),
    pytest.param('[\n{"a": 1}\n{"b": 2}]', Limits(), None, 3, "Expecting ',' delimiter", id="syntax error, line 3"),
    pytest.param("", Limits(), None, 1, "Expecting value", id="empty body"),
    pytest.param(nested(10_000), Limits(), None, None, "nested deeper than 32 levels", id="10000 nested lists"),
    pytest.param("[" + nested(33) + "]", Limits(), 0, None, "nested deeper than 32 levels", id="33 levels"),
    pytest.param('[{}, {"a": ' + nested(33) + "}]", Limits(), 1, None, "nested deeper", id="second document too deep"),
    pytest.param('{"items": {"a": 1}}', Limits(), None, None, '"items" must be a list', id="items not a list"),
    pytest.param("[{}, {}, {}]", Limits(max_documents=2), 2, None, "too many documents: at most 2",
                 id="too many documents"),
    pytest.param('[{"a": 1}, {"a": {"x": 1, "x": 2}}]', Limits(), 1, None, "duplicate key 'x'", id="duplicate key"),
    pytest.param('{"items": [], "items": [{}]}', Limits(), None, None, "duplicate key 'items'", id="duplicate items"),
    pytest.param('{"a": ' + "9" * 5000 + "}", Limits(), None, None, "integer too large", id="huge integer"),
    pytest.param('[{"a": "\\ud800"}]', Limits(), 0, None, "lone surrogates", id="surrogate escape"),
])
def test_json_errors(text, limits, document, line, message):
    with pytest.raises(ManifestSyntaxError) as caught:
        load_json(text, limits)
    assert (caught.value.document, caught.value.line) == (document, line)
    assert message in caught.value.message


# --- Both ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "media"), [
    pytest.param("a: 1\n", "yaml", id="yaml"),
    pytest.param('{"a": 1}', "json", id="json"),
    pytest.param('{"a": 1}', "yaml", id="JSON is YAML too"),
])
def test_load_dispatches_on_media(text, media):
    assert load(text, media, Limits()) == [RawDocument(0, {"a": 1}, 1 if media == "yaml" else None)]


def test_load_rejects_an_unknown_media():
    with pytest.raises(ValueError, match="unknown manifest media"):
        load("a: 1", "toml", Limits())


def test_no_input_escapes_as_another_exception():
    """Mangled manifests must come back as ManifestSyntaxError (a 400), never as anything else (a 500)."""
    seeds = [VM.format(name="a") + "---\nx: &x [1, {y: *x}]\nz: !!str |\n  t\n", json.dumps([vm("a")])]
    pieces = [*"-:{}[],&*!|>'\"%@`#?<=~\t\n\r \\0123456789xU", "\x00", "\ud800", "\u2028", "---", "!!", "<<"]
    rng = random.Random(4)
    for _ in range(300):
        text = rng.choice(seeds)
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(len(text) + 1)
            text = text[:at] + rng.choice(pieces) + text[at + rng.randint(0, 2):]
        for loader in (load_yaml, load_json):
            try:
                loader(text, Limits(max_depth=3, max_aliases=1, max_nodes=30, max_documents=2))
            except ManifestSyntaxError as error:
                assert "\n" not in str(error)
