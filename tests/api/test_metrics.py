"""`GET /metrics`: Prometheus text, no auth, counts by route template and status, never ids or names."""

from __future__ import annotations

import re

import pytest

from controller import metrics


def scrape(api) -> str:
    result = api.call("GET", "/metrics")
    assert result.status_code == 200, result.text
    assert result.headers["content-type"].startswith("text/plain")
    return result.text


def test_metrics_need_no_token_and_name_the_documented_families(api):
    text = scrape(api)
    for name in ("pvem_vms", "pvem_reconcile_duration_seconds", "pvem_reconcile_errors_total", "pvem_queue_depth",
                 "pvem_proxmox_requests_total", "pvem_proxmox_request_duration_seconds",
                 "pvem_http_requests_total", "pvem_http_request_duration_seconds"):
        assert f"# TYPE {name} " in text, name


def test_vm_counts_by_sync_status_and_power_state(api, user_token):
    api.create_vm(user_token, name="a", power_state="running")
    api.create_vm(user_token, name="b", power_state="running")
    api.create_vm(user_token, name="c")
    text = scrape(api)
    assert 'pvem_vms{power_state="running",sync_status="pending"} 2.0' in text
    assert 'pvem_vms{power_state="stopped",sync_status="pending"} 1.0' in text


def test_http_requests_are_labelled_by_route_template_not_path(api, user_token):
    vm = api.create_vm(user_token, name="secret-name")
    before = _value(scrape(api), 'pvem_http_requests_total{method="GET",route="/api/vms/{vm_id}",status="200"}')
    api.call("GET", f"/api/vms/{vm['id']}", user_token)
    api.call("GET", "/api/vms/no-such-vm", user_token)
    text = scrape(api)
    assert _value(text, 'pvem_http_requests_total{method="GET",route="/api/vms/{vm_id}",status="200"}') == before + 1
    assert 'route="/api/vms/{vm_id}",status="404"' in text
    assert vm["id"] not in text and "secret-name" not in text and "no-such-vm" not in text


@pytest.mark.filterwarnings("ignore::wsgiref.validate.WSGIWarning")
def test_unrouted_paths_and_odd_methods_share_one_label(api):
    api.call("GET", "/api/definitely/not/here/12345")
    api.call("BREW", "/api/health")
    text = scrape(api)
    assert "12345" not in text and "BREW" not in text
    assert 'route="unmatched"' in text


def test_proxmox_request_metrics_record_method_and_status():
    before = _value(metrics.render().decode(), 'pvem_proxmox_requests_total{method="GET",status="200"}')
    metrics.observe_proxmox("get", 200, 0.01)
    metrics.observe_proxmox("POST", "error", 0.5)
    text = metrics.render().decode()
    assert _value(text, 'pvem_proxmox_requests_total{method="GET",status="200"}') == before + 1
    assert 'pvem_proxmox_requests_total{method="POST",status="error"}' in text


def _value(text: str, series: str) -> float:
    match = re.search(re.escape(series) + r" ([0-9.e+]+)", text)
    return float(match.group(1)) if match else 0.0
