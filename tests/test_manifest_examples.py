"""The example manifests in manifests/ are valid, apply cleanly and are idempotent."""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "manifests").glob("*.yaml"))
YAML = {"Content-Type": "application/yaml"}


def test_the_examples_exist():
    assert {path.name for path in EXAMPLES} >= {"web-tier.yaml", "lab.yaml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_applies_then_is_unchanged(api, user_token, path):
    text = path.read_text()
    first = api.call("POST", "/api/manifests?apply_set=example", user_token, body=text, headers=YAML)
    assert first.status_code == 200, first.text
    assert first.json["data"]["summary"]["create"] == len(first.json["data"]["objects"]) > 0
    second = api.call("POST", "/api/manifests?apply_set=example", user_token, body=text, headers=YAML)
    assert second.json["data"]["changed"] is False


def test_web_tier_is_three_vms_with_firewalls(api, user_token):
    text = (Path(__file__).parent.parent / "manifests" / "web-tier.yaml").read_text()
    result = api.call("POST", "/api/manifests", user_token, body=text, headers=YAML)
    objects = result.json["data"]["objects"]
    assert len(objects) == 3
    for item in objects:
        rules = api.call("GET", f"/api/vms/{item['id']}/firewall", user_token).json["data"]
        assert rules and rules[-1]["action"] == "drop"
