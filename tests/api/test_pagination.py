"""Keyset pagination: `limit` + opaque `continue` on every list; without them, the whole list as before."""

from __future__ import annotations

import pytest

from tests.api.helpers import RULE_BODY, assert_envelope, assert_error, assert_names_field


def pages(api, token, path, limit, bound=50, query=""):
    """Every page of `path` at `limit`, following `continue` (bounded)."""
    seen, token_value = [], None
    for _ in range(bound):
        qs = f"limit={limit}" + (f"&continue={token_value}" if token_value else "") + (f"&{query}" if query else "")
        result = api.call("GET", path, token, query_string=qs)
        assert result.status_code == 200, result.text
        body = result.json
        assert body["pagination"]["limit"] == limit
        seen.append([item["id"] for item in body["data"]])
        token_value = body["pagination"]["continue"]
        if token_value is None:
            return seen
    raise AssertionError("pagination did not end")


def test_vm_pages_cover_the_full_list_in_order_without_repeats(api, user_token):
    ids = [api.create_vm(user_token, name=f"vm-{index}")["id"] for index in range(7)]
    full = assert_envelope(api.call("GET", "/api/vms", user_token))
    assert [vm["id"] for vm in full] == ids
    found = pages(api, user_token, "/api/vms", 3)
    assert [len(page) for page in found] == [3, 3, 1]
    assert [vm_id for page in found for vm_id in page] == ids


def test_without_limit_the_answer_has_no_pagination_object(api, user_token):
    api.create_vm(user_token)
    body = api.call("GET", "/api/vms", user_token).json
    assert "pagination" not in body and len(body["data"]) == 1


def test_an_exact_last_page_ends_with_a_null_cursor(api, user_token):
    for index in range(4):
        api.create_vm(user_token, name=f"vm-{index}")
    found = pages(api, user_token, "/api/vms", 2)
    assert [len(page) for page in found] == [2, 2]


def test_vms_created_between_pages_are_neither_repeated_nor_skipped(api, user_token):
    first = [api.create_vm(user_token, name=f"vm-{index}")["id"] for index in range(3)]
    body = api.call("GET", "/api/vms", user_token, query_string="limit=2").json
    later = api.create_vm(user_token, name="vm-late")["id"]
    rest = api.call("GET", "/api/vms", user_token,
                    query_string=f"limit=10&continue={body['pagination']['continue']}").json
    assert [vm["id"] for vm in body["data"] + rest["data"]] == [*first, later]


def test_label_selector_pages_are_filled(api, user_token):
    wanted = []
    for index in range(6):
        vm = api.create_vm(user_token, name=f"vm-{index}", labels={"tier": "web" if index % 2 else "db"})
        if index % 2:
            wanted.append(vm["id"])
    found = pages(api, user_token, "/api/vms", 2, query="label_selector=tier=web")
    assert [vm_id for page in found for vm_id in page] == wanted
    assert len(found[0]) == 2


@pytest.mark.parametrize("query", ["limit=0", "limit=-1", "limit=abc", "limit=1001", "limit=1.5"])
def test_a_bad_limit_is_400_naming_it(api, user_token, query):
    assert_names_field(api.call("GET", "/api/vms", user_token, query_string=query), "limit")


@pytest.mark.parametrize("cursor", ["nonsense", "e30", "WyJ2bXMiXQ", "%00", "x" * 2000])
def test_a_bad_cursor_is_400_naming_continue(api, user_token, cursor):
    api.create_vm(user_token)
    assert_names_field(api.call("GET", "/api/vms", user_token, query_string=f"limit=1&continue={cursor}"),
                       "continue")


def test_a_cursor_of_another_list_is_refused(api, user_token):
    vm = api.create_vm(user_token)
    for name in ("snap-a", "snap-b"):
        api.call("POST", f"/api/vms/{vm['id']}/snapshots", user_token, json={"name": name})
    cursor = api.call("GET", f"/api/vms/{vm['id']}/snapshots", user_token,
                      query_string="limit=1").json["pagination"]["continue"]
    assert cursor
    assert_names_field(api.call("GET", "/api/vms", user_token, query_string=f"limit=1&continue={cursor}"),
                       "continue")


def test_snapshot_and_rule_lists_paginate(api, user_token):
    vm = api.create_vm(user_token)
    snaps = [assert_envelope(api.call("POST", f"/api/vms/{vm['id']}/snapshots", user_token,
                                      json={"name": f"s{index}"}), 201)["id"] for index in range(3)]
    rules = [assert_envelope(api.call("POST", f"/api/vms/{vm['id']}/firewall", user_token,
                                      json={**RULE_BODY, "port": 20 + index}), 201)["id"] for index in range(3)]
    assert [i for page in pages(api, user_token, f"/api/vms/{vm['id']}/snapshots", 2) for i in page] == snaps
    assert [i for page in pages(api, user_token, f"/api/vms/{vm['id']}/firewall", 2) for i in page] == rules


def test_audit_pages_by_cursor_match_offset_pages(api, user_token):
    for index in range(5):
        api.create_vm(user_token, name=f"vm-{index}")
    every = [entry["id"] for entry in assert_envelope(api.call("GET", "/api/audit-logs", user_token,
                                                                query_string="limit=500"))]
    by_cursor = [i for page in pages(api, user_token, "/api/audit-logs", 2) for i in page]
    assert by_cursor == every
    offset_page = assert_envelope(api.call("GET", "/api/audit-logs", user_token, query_string="limit=2&offset=2"))
    assert [entry["id"] for entry in offset_page] == every[2:4]


def test_audit_offset_and_continue_together_is_400(api, user_token):
    for index in range(3):
        api.create_vm(user_token, name=f"vm-{index}")
    cursor = api.call("GET", "/api/audit-logs", user_token, query_string="limit=1").json["pagination"]["continue"]
    assert_names_field(api.call("GET", "/api/audit-logs", user_token,
                                query_string=f"limit=1&offset=1&continue={cursor}"), "offset")


def test_empty_limit_and_continue_values_count_as_absent(api, user_token):
    api.create_vm(user_token)
    body = api.call("GET", "/api/vms", user_token, query_string="limit=&continue=").json
    assert len(body["data"]) == 1 and "pagination" not in body


def test_pagination_needs_authentication(api):
    assert_error(api.call("GET", "/api/vms", query_string="limit=1"), 401)
