"""The libyaml fast path gives exactly what the pure-Python loader gives, and never judges a hostile stream
itself: it hands those to the full loader (whose errors tests/controller/test_manifest_loader.py checks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.manifests import fastyaml, loader

pytestmark = pytest.mark.skipif(not fastyaml.AVAILABLE, reason="PyYAML without libyaml")
ROOT = Path(__file__).resolve().parents[2]

VALID = [
    *(path.read_text() for path in sorted((ROOT / "manifests").glob("*.yaml"))),
    "a: 2024-01-01\non: yes\n1: x\nb: [1, 2.5, ~, true, null, 0x1f, .inf, '']\nc:\nd: !!str 12\n",
    "---\n---\n# only a comment\n---\nkind: VirtualMachine\n...\n---\n[1, [2, [3]]]\n",
    "plain scalar document\n",
    "key: |\n  a literal\n  block\nother: >\n  folded\n  text\n",
    "\"quoted key\": {nested: {deeper: [a, b]}}\n'<<': ordinary\n",
]
HOSTILE = [
    "a: 1\na: 2\n", "b: &b {x: 1}\nc:\n  <<: *b\n", "a: &x 1\nb: *x\n", "a: " + "[" * 40 + "]" * 40 + "\n",
    "a: !!python/object:os.system x\n", "a: !!binary aGk=\n", "a: !!timestamp 2024-01-01\n",
    "a: b: c\n", "a: \"\\ud800\"\n", "a: \udcff\n", "a: !!int abc\n", "{[1]: x}\n",
]


def python_only(text: str) -> list[loader.RawDocument]:
    return loader._load_yaml(loader._ManifestLoader, text, loader.DEFAULT_LIMITS)


@pytest.mark.parametrize("text", VALID)
def test_fast_path_equals_the_pure_python_loader(text):
    limits = loader.DEFAULT_LIMITS
    fast = [loader.RawDocument(*found) for found in
            fastyaml.load(text, limits.max_documents, limits.max_depth, limits.max_nodes)]
    assert fast == python_only(text)
    assert loader.load_yaml(text) == fast


@pytest.mark.parametrize("text", HOSTILE)
def test_fast_path_hands_hostile_streams_to_the_full_loader(text):
    with pytest.raises(fastyaml.Unsupported):
        fastyaml.load(text, 5000, 32, 100_000)


def test_limits_are_not_for_the_fast_path_to_waive():
    with pytest.raises(fastyaml.Unsupported):
        fastyaml.load("---\na: 1\n" * 6, 5, 32, 100_000)
    with pytest.raises(fastyaml.Unsupported):
        fastyaml.load("a: [1, 2, 3, 4, 5]\n", 10, 32, 5)
    with pytest.raises(loader.ManifestSyntaxError, match="too many documents"):
        loader.load_yaml("---\na: 1\n" * 6, loader.Limits(max_documents=5))
