"""HTTP-level behaviour: unknown routes, wrong methods, oversized bodies, 500s, health and system stats."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from controller.stats import HostSampler
from tests.api.helpers import VM_BODY, assert_envelope, assert_error, assert_timestamp


@pytest.mark.parametrize("path", ["/api/nope", "/api/vms/x/y/z/w", "/nope", "/api", "/api/firewall",
                                  "/api/vms/x/snapshots/y/restore"])
def test_unknown_route_is_404_in_the_error_shape(api, admin_token, path):
    assert_error(api.call("GET", path, admin_token), 404)


def test_unknown_route_without_a_token_is_still_404(api):
    assert_error(api.call("GET", "/api/nope"), 404)


@pytest.mark.parametrize(("method", "path"), [
    ("PATCH", "/api/vms"), ("DELETE", "/api/vms"), ("PUT", "/api/vms"), ("POST", "/api/vms/{vm}"),
    ("PATCH", "/api/vms/{vm}"), ("GET", "/api/vms/{vm}/action"), ("PUT", "/api/vms/{vm}/snapshots"),
    ("GET", "/api/vms/{vm}/snapshots/x/rollback"), ("POST", "/api/firewall/x"), ("GET", "/api/auth/login"),
    ("GET", "/api/auth/register"), ("POST", "/api/health"), ("DELETE", "/api/audit-logs"),
    ("POST", "/api/stats/system"),
])
def test_wrong_method_is_405_in_the_error_shape(api, admin_token, method, path):
    vm = api.create_vm(admin_token)
    result = api.call(method, path.format(vm=vm["id"]), admin_token)
    assert_error(result, 405)
    assert result.headers.get("allow"), result.headers


def test_body_over_the_default_1_mib_limit_is_413(api, admin_token):
    body = json.dumps({**VM_BODY, "padding": "x" * (1024 * 1024)})
    result = api.call("POST", "/api/vms", admin_token, body=body, headers={"Content-Type": "application/json"})
    assert_error(result, 413)


def test_body_just_under_the_limit_is_read(api, admin_token):
    body = json.dumps({**VM_BODY, "padding": "x" * (1024 * 1024 - 200)})
    assert len(body) <= 1024 * 1024
    result = api.call("POST", "/api/vms", admin_token, body=body, headers={"Content-Type": "application/json"})
    assert_error(result, 400)  # read and rejected for its unknown field, not for its size


@pytest.mark.parametrize(("method", "path"), [("POST", "/api/auth/login"), ("POST", "/api/auth/register"),
                                              ("POST", "/api/vms")])
def test_max_body_bytes_is_configurable_and_checked_before_auth(api_with, method, path):
    client = api_with(server={"max_body_bytes": 2048})
    result = client.call(method, path, body="{" + " " * 3000 + "}", headers={"Content-Type": "application/json"})
    body = assert_error(result, 413)
    assert "2048" in body["error"] or "large" in body["error"].lower()


def test_unexpected_exception_is_500_in_the_error_shape(api, admin_token, app_factory, settings):
    import falcon.testing

    from tests.conftest import Api

    def explode(_vm_id):
        raise RuntimeError("secret internal detail")

    broken = Api(falcon.testing.TestClient(app_factory(settings, nudge=explode)))
    result = broken.call("POST", "/api/vms", admin_token, json=VM_BODY)
    assert_error(result, 500)
    assert "secret internal detail" not in result.text
    assert "Traceback" not in result.text


def test_errors_carry_a_json_content_type_and_no_envelope(api):
    result = api.call("GET", "/api/vms")
    body = assert_error(result, 401)
    assert "data" not in body


# --- health -------------------------------------------------------------------------------------------------


def test_health_answers_exactly_status_and_timestamp_without_auth(api):
    result = api.call("GET", "/api/health")
    assert result.status_code == 200
    body = result.json
    assert set(body) == {"status", "timestamp"}
    assert body["status"] == "ok"
    when = assert_timestamp(body["timestamp"])
    assert body["timestamp"].endswith("Z")
    assert abs(datetime.now(UTC) - when) < timedelta(minutes=1)


def test_health_ignores_a_bad_token(api):
    assert api.call("GET", "/api/health", "garbage").status_code == 200


# --- system stats -------------------------------------------------------------------------------------------


def test_stats_without_any_sample_says_so(api, admin_token):
    result = api.call("GET", "/api/stats/system", admin_token)
    body = assert_error(result, 503)
    assert "sample" in body["error"].lower() or "stats" in body["error"].lower()


def test_stats_answers_the_latest_sample(api, admin_token, store):
    with store.write() as session:
        HostSampler().sample(session, 60)
    result = api.call("GET", "/api/stats/system", admin_token)
    data = assert_envelope(result)
    assert {"cpu_usage", "memory_usage", "disk_usage", "network_rx", "network_tx", "timestamp"} <= set(data)
    for key in ("cpu_usage", "memory_usage", "disk_usage"):
        assert isinstance(data[key], int | float) and not isinstance(data[key], bool), data
        assert 0 <= data[key] <= 100, data
    for key in ("network_rx", "network_tx"):
        assert isinstance(data[key], int | float) and data[key] >= 0, data
    when = assert_timestamp(data["timestamp"])
    assert abs(datetime.now(UTC) - when) < timedelta(minutes=1)


def test_stats_are_readable_by_plain_users(api, user_token, store):
    with store.write() as session:
        HostSampler().sample(session, 60)
    assert_envelope(api.call("GET", "/api/stats/system", user_token))


def test_stats_need_a_token(api, store):
    with store.write() as session:
        HostSampler().sample(session, 60)
    assert_error(api.call("GET", "/api/stats/system"), 401)
