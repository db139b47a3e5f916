"""Invalid manifests: exact error locations (document, field path or line/column), every problem listed, the
request applied all-or-nothing, hostile YAML (bombs, tags, nesting) and size limits refused."""

from __future__ import annotations

import itertools
import json

import pytest

from tests.api.helpers import assert_envelope, assert_error
from tests.api.manifest_helpers import (
    HEADER,
    apply,
    as_yaml,
    doc,
    post,
    post_json,
    post_yaml,
    rule_specs,
    state,
    vms,
)

VALID = HEADER + "metadata: {name: ok-1}\nspec: {cpu_cores: 2}\n"


def assert_nothing_created(api, token):
    assert vms(api, token) == {}


def assert_problem(body, document, field, fragment):
    """The first problem named in the message and the top-level fields, and listed in `details`."""
    assert (body["document"], body["field"]) == (document, field), body
    assert body["error"].startswith(f"document {document}"), body
    assert (f": {field}: " if field else ": ") in body["error"] and fragment in body["error"], body
    assert {"document": document, "field": field, "message": body["error"].split(f"{field}: ", 1)[1]
            if field else body["error"].split(": ", 1)[1]} in body["details"], body
    assert all(set(problem) == {"document", "field", "message"} for problem in body["details"]), body


# --- invalid documents: document index, field path, message -------------------------------------------------

# Each bad document is sent as document 1, after a valid one: the error names document 1 and nothing is created.
INVALID = {
    "unknown-kind": ("apiVersion: pvem/v1\nkind: Container\nmetadata: {name: x}\n", "kind",
                     "unknown kind 'Container'"),
    "missing-kind": ("apiVersion: pvem/v1\nmetadata: {name: x}\n", "kind", "field required"),
    "wrong-api-version": ("apiVersion: pvem/v2\nkind: VirtualMachine\nmetadata: {name: x}\n", "apiVersion",
                          "unsupported apiVersion 'pvem/v2'; expected pvem/v1"),
    "k8s-api-version": ("apiVersion: v1\nkind: VirtualMachine\nmetadata: {name: x}\n", "apiVersion",
                        "unsupported apiVersion 'v1'"),
    "missing-api-version": ("kind: VirtualMachine\nmetadata: {name: x}\n", "apiVersion",
                            "field required (expected pvem/v1)"),
    "unknown-top-level-field": (HEADER + "metadata: {name: x}\nstatus: {}\n", "status", "unknown field"),
    "unknown-metadata-field": (HEADER + "metadata: {name: x, namespace: y}\n", "metadata.namespace",
                               "unknown field"),
    "unknown-spec-field": (HEADER + "metadata: {name: x}\nspec: {cpus: 2}\n", "spec.cpus", "unknown field"),
    "unknown-rule-field": (HEADER + "metadata: {name: x}\nspec:\n  firewall:\n"
                           "    - {direction: inbound, action: accept}\n"
                           "    - {direction: inbound, action: drop, proto: tcp}\n",
                           "spec.firewall[1].proto", "unknown field"),
    "unknown-snapshot-field": (HEADER + "metadata: {name: x}\nspec: {snapshots: [{name: ab, desc: x}]}\n",
                               "spec.snapshots[0].desc", "unknown field"),
    "missing-metadata": (HEADER + "spec: {cpu_cores: 1}\n", "metadata", "field required"),
    "missing-name": (HEADER + "metadata: {labels: {a: b}}\n", "metadata.name", "field required"),
    "bad-name": (HEADER + "metadata: {name: web_1}\n", "metadata.name", "must be a DNS name"),
    "cpu-cores-zero": (HEADER + "metadata: {name: x}\nspec: {cpu_cores: 0}\n", "spec.cpu_cores",
                       "greater than or equal to 1"),
    "cpu-cores-too-many": (HEADER + "metadata: {name: x}\nspec: {cpu_cores: 513}\n", "spec.cpu_cores",
                           "less than or equal to 512"),
    "memory-too-big": (HEADER + "metadata: {name: x}\nspec: {memory_mb: 4194305}\n", "spec.memory_mb",
                       "less than or equal to 4194304"),
    "memory-too-small": (HEADER + "metadata: {name: x}\nspec: {memory_mb: 15}\n", "spec.memory_mb",
                         "greater than or equal to 16"),
    "disk-zero": (HEADER + "metadata: {name: x}\nspec: {disk_gb: 0}\n", "spec.disk_gb", "greater than or equal"),
    "bad-power-state": (HEADER + "metadata: {name: x}\nspec: {power_state: hibernating}\n", "spec.power_state",
                        "'running', 'stopped' or 'paused'"),
    "bad-node": (HEADER + "metadata: {name: x}\nspec: {node: pve_1}\n", "spec.node", "Proxmox node name"),
    "null-node": (HEADER + "metadata: {name: x}\nspec: {node: null}\n", "spec.node", "must not be null"),
    "port-zero": (HEADER + "metadata: {name: x}\nspec: {firewall: [{direction: inbound, action: accept, port: 0}]}\n",
                  "spec.firewall[0].port", "greater than or equal to 1"),
    "port-too-big": (HEADER + "metadata: {name: x}\nspec:\n  firewall:\n"
                     "    - {direction: inbound, action: accept, port: 65536}\n",
                     "spec.firewall[0].port", "less than or equal to 65535"),
    "bad-cidr": (HEADER + "metadata: {name: x}\nspec:\n  firewall:\n"
                 "    - {direction: inbound, action: accept, source: 10.0.0.0/33}\n",
                 "spec.firewall[0].source", "must be an IPv4/IPv6 address or CIDR"),
    "bad-destination": (HEADER + "metadata: {name: x}\nspec:\n  firewall:\n"
                        "    - {direction: outbound, action: accept, destination: example.com}\n",
                        "spec.firewall[0].destination", "must be an IPv4/IPv6 address or CIDR"),
    "bad-protocol": (HEADER + "metadata: {name: x}\nspec: {firewall: [{direction: inbound, action: accept, "
                     "protocol: sctp}]}\n", "spec.firewall[0].protocol", "tcp, udp or icmp"),
    "bad-direction": (HEADER + "metadata: {name: x}\nspec: {firewall: [{direction: sideways, action: accept}]}\n",
                      "spec.firewall[0].direction", "'inbound' or 'outbound'"),
    "rule-without-action": (HEADER + "metadata: {name: x}\nspec: {firewall: [{direction: inbound}]}\n",
                            "spec.firewall[0].action", "field required"),
    "long-comment": (HEADER + "metadata: {name: x}\nspec: {firewall: [{direction: inbound, action: accept, "
                     f"comment: {'c' * 201}}}]}}\n", "spec.firewall[0].comment", "at most 200 characters"),
    "bad-label-key": (HEADER + "metadata: {name: x, labels: {'bad key': v}}\n", "metadata.labels",
                      "label key 'bad key' is not valid"),
    "bad-label-value": (HEADER + "metadata: {name: x, labels: {tier: 'web tier'}}\n", "metadata.labels",
                        "label 'tier' has an invalid value 'web tier'"),
    "label-value-yaml-bool": (HEADER + "metadata: {name: x, labels: {enabled: yes}}\n",
                              "metadata.labels.enabled", "valid string"),
    "labels-not-a-mapping": (HEADER + "metadata: {name: x, labels: [a, b]}\n", "metadata.labels",
                             "valid dictionary"),
    "bad-snapshot-name": (HEADER + "metadata: {name: x}\nspec: {snapshots: [{name: ok}, {name: 1abc}]}\n",
                          "spec.snapshots[1].name", "must start with a letter"),
    "reserved-snapshot-name": (HEADER + "metadata: {name: x}\nspec: {snapshots: [{name: current}]}\n",
                               "spec.snapshots[0].name", "'current' is reserved"),
    "duplicate-snapshot-names": (HEADER + "metadata: {name: x}\nspec: {snapshots: [{name: ab}, {name: cd}, "
                                 "{name: ab, description: again}]}\n", "spec.snapshots",
                                 "snapshot 'ab' is listed twice"),
    "cores-as-string": (HEADER + "metadata: {name: x}\nspec: {cpu_cores: '2'}\n", "spec.cpu_cores",
                        "valid integer"),
    "cores-as-float": (HEADER + "metadata: {name: x}\nspec: {cpu_cores: 2.0}\n", "spec.cpu_cores", "valid integer"),
    "cores-as-bool": (HEADER + "metadata: {name: x}\nspec: {cpu_cores: true}\n", "spec.cpu_cores", "valid integer"),
    "port-as-string": (HEADER + "metadata: {name: x}\nspec: {firewall: [{direction: inbound, action: accept, "
                       "port: '22'}]}\n", "spec.firewall[0].port", "valid integer"),
    "enabled-as-string": (HEADER + "metadata: {name: x}\nspec: {firewall: [{direction: inbound, action: accept, "
                          "enabled: 'no'}]}\n", "spec.firewall[0].enabled", "valid boolean"),
    "power-state-yaml-bool": (HEADER + "metadata: {name: x}\nspec: {power_state: on}\n", "spec.power_state",
                              "'running', 'stopped' or 'paused'"),
    "snapshots-as-mapping": (HEADER + "metadata: {name: x}\nspec: {snapshots: {name: ab}}\n", "spec.snapshots",
                             "valid list"),
    "firewall-as-string": (HEADER + "metadata: {name: x}\nspec: {firewall: allow-all}\n", "spec.firewall",
                           "valid list"),
    "spec-as-list": (HEADER + "metadata: {name: x}\nspec: [cpu_cores]\n", "spec", "valid dictionary"),
    "name-as-number": (HEADER + "metadata: {name: 42}\n", "metadata.name", "valid string"),
    "document-is-a-list": ("- apiVersion: pvem/v1\n- kind: VirtualMachine\n", "",
                           "a document must be a mapping, not a list"),
    "document-is-a-string": ("just some text\n", "", "a document must be a mapping, not a string"),
    "document-is-null": ("null\n", "", "a document must be a mapping, not null"),
}


@pytest.mark.parametrize(("text", "field", "fragment"), INVALID.values(), ids=INVALID.keys())
def test_an_invalid_document_is_400_naming_document_field_and_problem_and_nothing_is_applied(
        api, user_token, text, field, fragment):
    body = assert_error(post(api, user_token, f"{VALID}---\n{text}"), 400)
    assert_problem(body, 1, field, fragment)
    assert_nothing_created(api, user_token)


def test_the_error_names_the_vm_of_the_failing_document(api, user_token):
    body = assert_error(post(api, user_token, f"{VALID}---\n{HEADER}metadata: {{name: web-2}}\n"
                                              "spec: {cpu_cores: 1000}\n"), 400)
    assert body["error"] == "document 1 (web-2): spec.cpu_cores: Input should be less than or equal to 512"


def test_duplicate_names_across_documents_are_400_naming_the_later_document(api, user_token):
    body = assert_error(post_yaml(api, user_token, doc("a-1"), doc("web"), doc("a-2"), doc("web", cpu_cores=2)), 400)
    assert_problem(body, 3, "metadata.name", "duplicate name 'web': document 1 already declares it")
    assert_nothing_created(api, user_token)


def test_details_list_every_problem_across_documents(api, user_token):
    text = (f"{HEADER}metadata: {{name: a-1}}\nspec: {{cpu_cores: 0, memory_mb: 1}}\n"  # document 0: two problems
            f"---\n{VALID}"  # document 1: fine
            "---\n# document 2: empty, still counted\n"
            f"---\n{HEADER}metadata: {{name: a-3}}\nspec: {{firewall: [{{direction: in, action: accept}}]}}\n"
            "---\napiVersion: pvem/v1\nkind: Vm\nmetadata: {name: a-4}\n"
            f"---\n{HEADER}metadata: {{name: a-1}}\n")  # a duplicate of an invalid document is not reported
    body = assert_error(post(api, user_token, text), 400)
    assert (body["document"], body["field"]) == (0, "spec.cpu_cores")
    assert [(problem["document"], problem["field"]) for problem in body["details"]] == [
        (0, "spec.cpu_cores"), (0, "spec.memory_mb"), (3, "spec.firewall[0].direction"), (4, "kind")]
    assert_nothing_created(api, user_token)


def test_json_documents_are_validated_with_their_list_index(api, user_token):
    body = assert_error(post_json(api, user_token, {"items": [doc("a-1"), doc("a-2", disk_gb=-1)]}), 400)
    assert_problem(body, 1, "spec.disk_gb", "greater than or equal to 1")
    body = assert_error(post_json(api, user_token, [doc("a-1"), "text", [doc("a-2")], 5]), 400)
    assert [(problem["document"], problem["message"]) for problem in body["details"]] == [
        (1, "a document must be a mapping, not a string"), (2, "a document must be a mapping, not a list"),
        (3, "a document must be a mapping, not a number")]
    assert_nothing_created(api, user_token)


def test_yaml_scalars_are_not_coerced_into_other_types(api, user_token):
    # Timestamps stay strings and `on:` stays a key: they apply as the text the user wrote.
    apply_text = f"{HEADER}metadata:\n  name: x\n  labels: {{on: '1', built: 2024-01-01}}\n"
    data = assert_envelope(post(api, user_token, apply_text))
    assert [item["action"] for item in data["objects"]] == ["create"]
    assert vms(api, user_token)["x"]["labels"] == {"on": "1", "built": "2024-01-01"}


def test_a_utf8_byte_order_mark_is_accepted(api, user_token):
    assert_envelope(post(api, user_token, "\ufeff".encode() + VALID.encode()))
    assert list(vms(api, user_token)) == ["ok-1"]


# --- all or nothing -----------------------------------------------------------------------------------------


def test_a_disk_shrink_is_400_naming_document_and_field_and_nothing_changes(api, user_token, admin_token):
    apply(api, user_token, doc("a-1", cpu_cores=1), doc("big", disk_gb=40))
    before = state(api, user_token, admin_token)
    result = post_yaml(api, user_token, doc("a-1", cpu_cores=4), doc("big", disk_gb=20), doc("new"))
    body = assert_error(result, 400)
    assert_problem(body, 1, "spec.disk_gb", "cannot shrink the disk from 40 GB to 20 GB")
    assert body["error"].startswith("document 1 (big): spec.disk_gb: ")
    assert state(api, user_token, admin_token) == before
    assert_error(post_yaml(api, user_token, doc("big", disk_gb=20), query="dry_run=true"), 400)


def test_a_failure_while_writing_rolls_back_the_whole_apply(api, user_token, admin_token, api_with):
    tight = api_with(proxmox={"vmid_min": 100, "vmid_max": 101})
    apply(tight, user_token, doc("a-1"))
    before = state(api, user_token, admin_token)
    # a-1 is updated and b-1 created before c-1 finds no free vmid: neither may remain.
    body = assert_error(post_yaml(tight, user_token, doc("a-1", cpu_cores=4), doc("b-1"), doc("c-1")), 409)
    assert "vmid" in body["error"]
    assert state(api, user_token, admin_token) == before


def test_a_create_without_a_node_and_no_default_node_is_400(api, user_token, api_with):
    nodeless = api_with(proxmox={"default_node": None})
    body = assert_error(post_yaml(nodeless, user_token, doc("a-1", node="pve2"), doc("b-1")), 400)
    assert_problem(body, 1, "spec.node", "field required")
    assert_nothing_created(api, user_token)


# --- YAML syntax errors: document, line, column -------------------------------------------------------------

SYNTAX = {
    "unclosed-flow-sequence": ("a: [1\n", 0, 2, 1, "expected ',' or ']'"),
    "mapping-in-plain-value": (f"{VALID}---\nfoo: bar: baz\n", 1, 6, 9, "mapping values are not allowed here"),
    "bad-indentation": (f"{VALID}---\n{VALID}---\n{HEADER}metadata:\n  name: x\n labels: {{}}\n", 2, 15, 2,
                        "expected <block end>"),
    "tab-indentation": (f"{HEADER}metadata:\n\tname: x\n", 0, 4, 1, "found character '\\t'"),
    "unclosed-quote": (f"{HEADER}metadata: {{name: \"x}}\n", 0, 4, 1, "found unexpected end of stream"),
    "duplicate-key": (f"{HEADER}metadata: {{name: x}}\nspec:\n  cpu_cores: 1\n  cpu_cores: 2\n", 0, 6, 3,
                      "duplicate key 'cpu_cores' (first defined on line 5)"),
    "duplicate-anchor": ("a: &x 1\nb: &x 2\n", 0, 2, 4, "duplicate anchor &x"),
    "merge-key": ("base: &b {cpu_cores: 1}\nspec:\n  <<: *b\n", 0, 3, 3, "merge keys (<<) are not supported"),
    "undefined-alias": ("a: *nope\n", 0, 1, 4, "found undefined alias"),
    "binary-tag": (f"{VALID}---\n{HEADER}metadata: {{name: !!binary aGk=}}\n", 1, 8, 18,
                   "unsupported tag !!binary"),
    "set-tag": ("a: !!set {x, y}\n", 0, 1, 4, "unsupported tag !!set"),
    "custom-tag": ("a: !vault secret\n", 0, 1, 4, "unsupported tag !vault"),
    "timestamp-tag": ("a: !!timestamp 2024-01-01\n", 0, 1, 4, "unsupported tag !!timestamp"),
    "int-tag-on-text": ("a: !!int twelve\n", 0, 1, 4, "'twelve' is not a valid !!int value"),
    "null-byte": ("a: b\x00\n", None, 1, 5, "unacceptable character #x0000"),
}


@pytest.mark.parametrize(("text", "document", "line", "column", "fragment"), SYNTAX.values(), ids=SYNTAX.keys())
def test_a_yaml_syntax_error_is_400_with_document_line_and_column(api, user_token, text, document, line, column,
                                                                 fragment):
    body = assert_error(post(api, user_token, text), 400)
    assert (body.get("document"), body["line"], body["column"]) == (document, line, column), body
    where = ", ".join(f"{key} {value}" for key, value in (("document", document), ("line", line),
                                                          ("column", column)) if value is not None)
    assert body["error"].startswith(f"{where}: ") and fragment in body["error"], body
    assert "\n" not in body["error"]
    assert_nothing_created(api, user_token)


@pytest.mark.parametrize(("text", "fragment", "location"), [
    ('{"apiVersion": ', "Expecting value", {"line": 1, "column": 16}),
    ('[{"a": 1},\n {"a": 2}', "Expecting ',' delimiter", {"line": 2, "column": 10}),
    ('[{"kind": "VirtualMachine"}, {"a": 1, "a": 2}]', "duplicate key 'a'", {"document": 1}),
    ('{"items": {"a": 1}}', '"items" must be a list of documents', {}),
    ("[" * 100_000 + "]" * 100_000, "nested deeper than", {}),
    ("[" + "[" * 40 + "]" * 40 + "]", "nested deeper than 32 levels", {"document": 0}),
], ids=["truncated", "missing-comma", "duplicate-key", "items-not-a-list", "deep-recursion", "too-deep"])
def test_a_json_syntax_error_is_400_with_its_location(api, user_token, text, fragment, location):
    body = assert_error(post(api, user_token, text, "application/json"), 400)
    assert fragment in body["error"], body
    assert {key: body[key] for key in ("document", "line", "column") if key in body} == location
    assert_nothing_created(api, user_token)


# --- bodies that hold no documents, or are not text -------------------------------------------------------


@pytest.mark.parametrize(("body", "content_type", "fragment"), [
    (b"", "application/yaml", "request body is empty"),
    (b"", "application/json", "request body is empty"),
    (b"# only a comment\n", "application/yaml", "the manifest has no documents"),
    (b"---\n# one\n---\n...\n---\n", "application/yaml", "the manifest has no documents"),
    (b"  \n\n", "application/yaml", "the manifest has no documents"),
    (b"[]", "application/json", "the manifest has no documents"),
    (b'{"items": []}', "application/json", "the manifest has no documents"),
    (VALID.encode("utf-16"), "application/yaml", "not UTF-8"),
    (b"metadata: {name: caf\xe9}\n", "application/yaml", "not UTF-8"),
])
def test_a_body_without_documents_or_not_utf8_is_400(api, user_token, body, content_type, fragment):
    result = post(api, user_token, body, content_type)
    assert fragment in assert_error(result, 400)["error"]
    assert_nothing_created(api, user_token)


@pytest.mark.parametrize("content_type", ["text/html", "application/xml", "multipart/form-data; boundary=x",
                                          "application/octet-stream", "image/png"])
def test_an_unsupported_media_type_is_415(api, user_token, content_type):
    body = assert_error(post(api, user_token, VALID, content_type), 415)
    assert "application/yaml" in body["error"] and "application/json" in body["error"]
    assert_nothing_created(api, user_token)


def test_apply_needs_authentication(api):
    assert_error(post(api, None, VALID), 401)


# --- hostile YAML and size limits ---------------------------------------------------------------------------


def billion_laughs() -> str:
    """Nine levels of nine aliases each: 9**9 strings once expanded, from 81 aliases."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, current in itertools.pairwise("abcdefghi"):
        lines.append(f"{current}: &{current} [{', '.join([f'*{previous}'] * 9)}]")
    return "\n".join(lines) + "\n"


def alias_deep_nesting() -> str:
    """Each part shallow, the expansion 40 levels deep."""
    return f"a: &a {'[' * 20}1{']' * 20}\nb: {'[' * 20}*a{']' * 20}\n"


HOSTILE = {
    "billion-laughs": (billion_laughs(), "more than 100000 nodes once aliases are expanded"),
    "too-many-aliases": ("a: &a x\nb: [" + ", ".join(["*a"] * 101) + "]\n", "too many aliases: at most 100"),
    "recursive-alias-sequence": ("a: &a [*a]\n", "recursive alias *a"),
    "recursive-alias-mapping": ("a: &x {b: {c: *x}}\n", "recursive alias *x"),
    "deep-flow-nesting": ("[" * 50_000 + "]" * 50_000, "nested deeper than 32 levels"),
    "deep-block-nesting": ("a:\n" + "".join(f"{'  ' * depth}- \n" for depth in range(1, 40)),
                           "nested deeper than 32 levels"),
    "deep-nesting-through-aliases": (alias_deep_nesting(), "nested deeper than 32 levels once aliases are expanded"),
    "python-object-apply": ("!!python/object/apply:os.system ['touch {marker}']\n",
                            "unsupported tag !!python/object/apply:os.system"),
    "python-object-apply-nested": (f"{HEADER}metadata:\n  name: !!python/object/apply:os.system ['touch {{marker}}']\n",
                                   "unsupported tag !!python/object/apply:os.system"),
    "python-name": ("a: !!python/name:os.system\n", "unsupported tag !!python/name:os.system"),
    "python-object-new": ("!!python/object/new:subprocess.Popen [['touch', '{marker}']]\n",
                          "unsupported tag !!python/object/new:subprocess.Popen"),
}


@pytest.mark.parametrize(("text", "fragment"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_yaml_is_refused_without_being_expanded_or_executed(api, user_token, tmp_path, text, fragment):
    marker = tmp_path / "executed"
    body = assert_error(post(api, user_token, text.replace("{marker}", str(marker))), 400)
    assert fragment in body["error"], body
    assert {"document", "line", "column"} <= set(body), body
    assert not marker.exists()
    assert_nothing_created(api, user_token)


def test_a_billion_laughs_is_refused_even_as_a_valid_looking_manifest(api, user_token):
    text = billion_laughs() + f"{HEADER}metadata: {{name: x}}\n"
    assert "more than 100000 nodes" in assert_error(post(api, user_token, text), 400)["error"]
    assert_nothing_created(api, user_token)


def test_aliases_within_the_limits_apply_as_their_expansion(api, user_token):
    text = (f"{HEADER}metadata: {{name: a-1, labels: &labels {{tier: web}}}}\n"
            "spec: {firewall: [&ssh {direction: inbound, action: accept, protocol: tcp, port: 22}, *ssh]}\n"
            f"---\n{HEADER}metadata: {{name: a-2, labels: *labels}}\n")
    assert_error(post(api, user_token, text), 400)  # anchors do not cross documents
    assert_envelope(post(api, user_token, text.split("---")[0]))
    vm = vms(api, user_token)["a-1"]
    assert vm["labels"] == {"tier": "web"}
    ssh = {"direction": "inbound", "action": "accept", "protocol": "tcp", "port": 22}
    assert rule_specs(api, user_token, vm["id"]) == [ssh] * 2


@pytest.mark.parametrize("media", ["yaml", "json"])
def test_more_documents_than_manifests_max_documents_is_400(api, user_token, api_with, media):
    limited = api_with(manifests={"max_documents": 3})
    documents = [doc(f"a-{index}") for index in range(4)]
    send = (lambda docs: post_json(limited, user_token, docs)) if media == "json" else \
        (lambda docs: post(limited, user_token, as_yaml(*docs)))
    body = assert_error(send(documents), 400)
    assert "too many documents: at most 3" in body["error"]
    assert body["document"] == 3
    assert_nothing_created(api, user_token)
    assert_envelope(send(documents[:3]))
    assert len(vms(api, user_token)) == 3


def test_empty_yaml_documents_count_towards_max_documents(api, user_token, api_with):
    limited = api_with(manifests={"max_documents": 3})
    body = assert_error(post(limited, user_token, "---\n" * 4 + VALID), 400)  # documents 0-2 are empty
    assert "too many documents" in body["error"]
    assert_nothing_created(api, user_token)


def test_a_body_over_max_body_bytes_is_413(api, user_token, api_with):
    small = api_with(server={"max_body_bytes": 1024})
    text = VALID + f"# {'x' * 1024}\n"
    body = assert_error(post(small, user_token, text), 413)
    assert "too large" in body["error"]
    assert_error(post_json(small, user_token, [doc(f"a-{index}") for index in range(20)]), 413)
    assert_nothing_created(api, user_token)
    assert_envelope(post(small, user_token, VALID))  # under the limit: fine


def test_the_default_limits_accept_a_realistic_manifest(api, user_token):
    rules = [{"direction": "inbound", "action": "accept", "protocol": "tcp", "port": port} for port in range(1, 60)]
    documents = [doc(f"web-{index}", {"tier": "web"}, cpu_cores=2, firewall=rules,
                     snapshots=[{"name": f"s{day}-day"} for day in range(10, 20)]) for index in range(30)]
    data = assert_envelope(post(api, user_token, json.dumps(documents), "application/json"))
    assert data["summary"]["create"] == 30
