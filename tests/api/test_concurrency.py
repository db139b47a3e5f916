"""Concurrent requests against the real store: vmids stay unique, names stay unique, nothing is lost."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import falcon.testing

from tests.api.helpers import VM_BODY, assert_envelope
from tests.conftest import Api

THREADS = 20


def clients(app_factory, settings, count):
    """One TestClient per worker, all over the same app settings and database."""
    app = app_factory(settings)
    return [Api(falcon.testing.TestClient(app)) for _ in range(count)]


def run_all(calls):
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]


def test_simultaneous_creates_all_succeed_with_distinct_vmids(api, admin_token, app_factory, settings):
    workers = clients(app_factory, settings, THREADS)
    results = run_all([
        (lambda client=client, index=index: client.call("POST", "/api/vms", admin_token,
                                                        json={**VM_BODY, "name": f"c-{index}"}))
        for index, client in enumerate(workers)
    ])
    assert [result.status_code for result in results] == [201] * THREADS, [r.text for r in results if
                                                                            r.status_code != 201]
    vmids = [result.json["data"]["vmid"] for result in results]
    assert len(set(vmids)) == THREADS
    listed = assert_envelope(api.call("GET", "/api/vms", admin_token))
    assert sorted(vm["vmid"] for vm in listed) == sorted(vmids)


def test_simultaneous_creates_fill_a_small_vmid_range_exactly(api, admin_token, app_factory, settings_factory):
    narrow = settings_factory(proxmox={"vmid_min": 700, "vmid_max": 700 + THREADS - 1, "default_node": "pve1"})
    workers = clients(app_factory, narrow, THREADS + 4)
    results = run_all([
        (lambda client=client, index=index: client.call("POST", "/api/vms", admin_token,
                                                        json={**VM_BODY, "name": f"n-{index}"}))
        for index, client in enumerate(workers)
    ])
    statuses = sorted(result.status_code for result in results)
    assert statuses == [201] * THREADS + [409] * 4, [result.text for result in results]
    vmids = sorted(result.json["data"]["vmid"] for result in results if result.status_code == 201)
    assert vmids == list(range(700, 700 + THREADS))


def test_simultaneous_creates_with_one_name_give_one_vm(api, user_token, app_factory, settings):
    workers = clients(app_factory, settings, 10)
    results = run_all([
        (lambda client=client: client.call("POST", "/api/vms", user_token, json={**VM_BODY, "name": "same"}))
        for client in workers
    ])
    statuses = sorted(result.status_code for result in results)
    assert statuses == [201] + [409] * 9, [result.text for result in results]
    assert len(assert_envelope(api.call("GET", "/api/vms", user_token))) == 1


def test_simultaneous_registrations_of_one_email_give_one_user(api, app_factory, settings):
    workers = clients(app_factory, settings, 8)
    results = run_all([
        (lambda client=client, index=index: client.call(
            "POST", "/api/auth/register",
            json={"username": f"racer{index}", "email": "race@example.com", "password": "password123"}))
        for index, client in enumerate(workers)
    ])
    statuses = sorted(result.status_code for result in results)
    assert statuses == [201] + [409] * 7, [result.text for result in results]


def test_simultaneous_rule_creates_get_distinct_positions(api, user_token, vm, app_factory, settings):
    workers = clients(app_factory, settings, 10)
    results = run_all([
        (lambda client=client, index=index: client.call(
            "POST", f"/api/vms/{vm['id']}/firewall", user_token,
            json={"direction": "inbound", "action": "accept", "protocol": "tcp", "port": 1000 + index}))
        for index, client in enumerate(workers)
    ])
    assert [result.status_code for result in results] == [201] * 10
    listed = assert_envelope(api.call("GET", f"/api/vms/{vm['id']}/firewall", user_token))
    assert [rule["position"] for rule in listed] == list(range(10))


def test_simultaneous_updates_bump_generation_once_each(api, user_token, vm, app_factory, settings):
    workers = clients(app_factory, settings, 10)
    results = run_all([
        (lambda client=client, index=index: client.call(
            "PUT", f"/api/vms/{vm['id']}", user_token, json={"memory_mb": 1024 + index}))
        for index, client in enumerate(workers)
    ])
    assert [result.status_code for result in results] == [200] * 10
    after = assert_envelope(api.call("GET", f"/api/vms/{vm['id']}", user_token))
    assert after["generation"] == vm["generation"] + 10


def test_simultaneous_restarts_are_each_counted(api, user_token, vm, app_factory, settings, store):
    from controller.store.models import VirtualMachine

    assert api.call("POST", f"/api/vms/{vm['id']}/action", user_token, json={"action": "start"}).status_code == 200
    workers = clients(app_factory, settings, 10)
    results = run_all([
        (lambda client=client: client.call("POST", f"/api/vms/{vm['id']}/action", user_token,
                                           json={"action": "restart"}))
        for client in workers
    ])
    assert [result.status_code for result in results] == [200] * 10
    with store.read() as session:
        row = session.get(VirtualMachine, vm["id"])
        assert row is not None and row.restart_requests == 10
        assert row.generation == vm["generation"] + 11


def test_simultaneous_rule_moves_and_creates_keep_positions_dense_and_unique(api, user_token, vm, app_factory,
                                                                            settings):
    base = f"/api/vms/{vm['id']}/firewall"
    ids = [assert_envelope(api.call("POST", base, user_token, json={
        "direction": "inbound", "action": "accept", "protocol": "tcp", "port": 2000 + n}), 201)["id"] for n in range(5)]
    workers = clients(app_factory, settings, 12)
    calls = []
    for index, client in enumerate(workers):
        if index % 2:
            calls.append(lambda client=client, index=index: client.call(
                "PUT", f"/api/firewall/{ids[index % 5]}", user_token, json={"position": (index * 3) % 7}))
        else:
            calls.append(lambda client=client, index=index: client.call(
                "POST", base, user_token, json={"direction": "inbound", "action": "drop", "protocol": "tcp",
                                                "port": 3000 + index, "position": index % 4}))
    results = run_all(calls)
    assert sorted({result.status_code for result in results}) == [200, 201], [r.text for r in results]
    listed = assert_envelope(api.call("GET", base, user_token))
    assert [rule["position"] for rule in listed] == list(range(5 + 6))
    assert len({rule["id"] for rule in listed}) == 11
