"""-f sources (file, directory, stdin) and mapping a server 400 on document i back to its file."""

from __future__ import annotations

import io
import json

import pytest

from api.client import sources
from api.client.errors import UsageError


def vm(name: str, **spec: object) -> str:
    return f"apiVersion: pvem/v1\nkind: VirtualMachine\nmetadata:\n  name: {name}\nspec: {json.dumps(spec)}\n"


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "b.yaml").write_text(vm("b-1") + "---\n" + vm("b-2"))
    (tmp_path / "a.yml").write_text(vm("a-1"))
    (tmp_path / "c.json").write_text(json.dumps([{"kind": "VirtualMachine", "metadata": {"name": "c-1"}}]))
    (tmp_path / "notes.txt").write_text("not a manifest")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.yaml").write_text(vm("deep-1"))
    return tmp_path


def names(documents):
    return [doc.name for doc in documents]


def test_a_directory_gives_its_manifest_files_sorted_not_recursively(tree):
    documents = sources.read([str(tree)], io.StringIO())
    assert names(documents) == ["a-1", "b-1", "b-2", "c-1"]
    b2 = documents[2]
    assert (b2.source, b2.index, b2.line) == (str(tree / "b.yaml"), 1, 6)
    assert documents[3].line is None and documents[3].source.endswith("c.json")


def test_files_and_stdin_keep_the_order_given(tree):
    stdin = io.StringIO(vm("in-1"))
    documents = sources.read([str(tree / "a.yml"), "-", str(tree / "b.yaml")], stdin)
    assert names(documents) == ["a-1", "in-1", "b-1", "b-2"]
    assert documents[1].source == "<stdin>"


def test_stdin_may_be_json(tree):
    stdin = io.StringIO(json.dumps({"items": [{"kind": "VirtualMachine", "metadata": {"name": "j-1"}}]}))
    assert names(sources.read(["-"], stdin)) == ["j-1"]


@pytest.mark.parametrize(("paths", "message"), [
    (["missing.yaml"], "missing.yaml: no such file or directory"),
    (["-", "-"], "stdin) given more than once"),
])
def test_bad_paths_are_usage_errors(tree, monkeypatch, paths, message):
    monkeypatch.chdir(tree)
    with pytest.raises(UsageError) as caught:
        sources.read(paths, io.StringIO(vm("x")))
    assert message in caught.value.message and caught.value.exit_code == 2


def test_no_documents_at_all_is_a_usage_error(tmp_path):
    (tmp_path / "empty.yaml").write_text("# nothing here\n---\n")
    with pytest.raises(UsageError, match="no manifests found"):
        sources.read([str(tmp_path)], io.StringIO())


def test_a_yaml_error_names_the_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(vm("ok") + "---\nmetadata:\n  name: [unclosed\n")
    with pytest.raises(UsageError) as caught:
        sources.read([str(path)], io.StringIO())
    assert caught.value.message.startswith(f"{path}: document 1, line ")
    assert "\n" not in caught.value.message


def test_unreadable_bytes_are_a_usage_error(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(UsageError, match="not UTF-8"):
        sources.read([str(path)], io.StringIO())


def test_a_server_400_on_document_i_is_told_against_its_file(tree):
    documents = sources.read([str(tree / "a.yml"), str(tree / "b.yaml")], io.StringIO())
    problem = "Input should be less than or equal to 512"
    body = {"error": f"document 2 (b-2): spec.cpu_cores: {problem}", "code": 400, "document": 2,
            "field": "spec.cpu_cores", "details": [{"document": 2, "field": "spec.cpu_cores", "message": problem}]}
    assert sources.explain(documents, body) == \
        f"{tree / 'b.yaml'}: document 1 (b-2, line 6): spec.cpu_cores: Input should be less than or equal to 512"


def test_more_problems_are_counted_and_the_error_text_is_used_without_details(tree):
    documents = sources.read([str(tree / "b.yaml")], io.StringIO())
    body = {"error": "x", "document": 0, "details": [
        {"document": 0, "field": "spec.cpux", "message": "unknown field"},
        {"document": 0, "field": "spec.memory_mb", "message": "too small"},
        {"document": 1, "field": "kind", "message": "unknown kind"}]}
    assert sources.explain(documents, body) == \
        f"{tree / 'b.yaml'}: document 0 (b-1, line 1): spec.cpux: unknown field (and 2 more problems)"
    bare = {"error": "document 1 (b-2): metadata.name: duplicate name", "document": 1, "field": "metadata.name"}
    assert sources.explain(documents, bare) == \
        f"{tree / 'b.yaml'}: document 1 (b-2, line 6): metadata.name: duplicate name"


@pytest.mark.parametrize("body", [None, "text", {"error": "prune needs an apply_set"}, {"document": 9},
                                  {"document": True}])
def test_a_400_that_names_no_known_document_is_left_as_it_is(tree, body):
    documents = sources.read([str(tree / "a.yml")], io.StringIO())
    assert sources.explain(documents, body) is None
