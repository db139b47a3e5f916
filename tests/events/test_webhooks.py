"""Webhooks: subscriptions over the API, and deliveries by the controller's worker to a real receiver
on 127.0.0.1: signed, retried with backoff, kept in the database across a restart, refused for private
targets unless allowed."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import falcon.testing
import pytest

from api.schemas import snapshot_dict, vm_dict
from controller.reconcile.model import DesiredVm
from controller.reconcile.state import StatusWriter
from controller.store import Store
from controller.store.models import VirtualMachine
from controller.webhooks.worker import Render, WebhookWorker
from tests.conftest import Api
from tests.events.helpers import Receiver

SECRET = "hook-secret-42"
LOOPBACK = {"allowed_networks": ["127.0.0.0/8"]}
ALL_EVENTS = ["vm.created", "vm.synced", "vm.error", "vm.drift", "vm.deleted", "snapshot.created",
              "snapshot.deleted"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    target = Receiver()
    yield target
    target.close()


@pytest.fixture
def hooks_api(api: Api, app_factory: Callable[..., Any], settings_factory: Callable[..., Any]) -> Api:
    """The API with 127.0.0.0/8 allowed as a webhook target (the receiver lives there)."""
    return Api(falcon.testing.TestClient(app_factory(settings_factory(webhooks=LOOPBACK))))


def make_worker(store: Store, settings_factory: Callable[..., Any], **webhooks: Any) -> WebhookWorker:
    settings = settings_factory(webhooks={**LOOPBACK, "retry_base_seconds": 0.05, "timeout_seconds": 2,
                                          **webhooks})
    return WebhookWorker(store, settings.webhooks, Render(vm=vm_dict, snapshot=snapshot_dict))


def drive(worker: WebhookWorker, done: Callable[[], bool], timeout: float = 15.0) -> None:
    """Run the worker's job (as the controller's scheduler does) until `done()`, bounded in time."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError("webhook deliveries did not finish in time")
        worker.run_once()
        time.sleep(0.02)


def subscribe(api: Api, token: str, url: str, events: list[str] | None = None) -> dict[str, Any]:
    result = api.call("POST", "/api/webhooks", token, json={"url": url, "events": events or ["vm.created"],
                                                            "secret": SECRET})
    assert result.status_code == 201, result.text
    return dict(result.json["data"])


def deliveries(api: Api, token: str, hook_id: str) -> list[dict[str, Any]]:
    result = api.call("GET", f"/api/webhooks/{hook_id}/deliveries", token)
    assert result.status_code == 200, result.text
    return list(result.json["data"])


# ------------------------------------------------------------------ the API


def test_create_list_get_delete_and_the_secret_is_never_answered(hooks_api: Api, user_token: str,
                                                                receiver: Receiver) -> None:
    created = hooks_api.call("POST", "/api/webhooks", user_token,
                             json={"url": receiver.url, "events": ["vm.created", "vm.synced"], "secret": SECRET})
    assert created.status_code == 201
    hook = created.json["data"]
    assert set(hook) == {"id", "url", "events", "owner_id", "created_at"}
    assert hook["events"] == ["vm.created", "vm.synced"]
    answers = [created, hooks_api.call("GET", "/api/webhooks", user_token),
               hooks_api.call("GET", f"/api/webhooks/{hook['id']}", user_token),
               hooks_api.call("GET", f"/api/webhooks/{hook['id']}/deliveries", user_token),
               hooks_api.call("GET", "/api/audit-logs", user_token)]
    for answer in answers:
        assert answer.status_code == 200 or answer is created
        assert SECRET not in answer.text
    assert [item["id"] for item in answers[1].json["data"]] == [hook["id"]]
    deleted = hooks_api.call("DELETE", f"/api/webhooks/{hook['id']}", user_token)
    assert deleted.status_code == 200 and deleted.json["data"] == {"deleted": True}
    assert hooks_api.call("GET", f"/api/webhooks/{hook['id']}", user_token).status_code == 404
    assert hooks_api.call("GET", "/api/webhooks", user_token).json["data"] == []


def test_other_users_webhooks_are_invisible_admins_see_all(hooks_api: Api, user_token: str, admin_token: str,
                                                          receiver: Receiver) -> None:
    hook = subscribe(hooks_api, user_token, receiver.url)
    hooks_api.register("bob")
    bob = hooks_api.token_for("bob@example.com", "password123")
    assert hooks_api.call("GET", "/api/webhooks", bob).json["data"] == []
    for method, path in (("GET", ""), ("DELETE", ""), ("GET", "/deliveries")):
        assert hooks_api.call(method, f"/api/webhooks/{hook['id']}{path}", bob).status_code == 404
    assert [item["id"] for item in hooks_api.call("GET", "/api/webhooks", admin_token).json["data"]] == [hook["id"]]


@pytest.mark.parametrize(("body", "field"), [
    ({"url": "ftp://example.com/x", "events": ["vm.created"], "secret": "s"}, "url"),
    ({"url": "not a url", "events": ["vm.created"], "secret": "s"}, "url"),
    ({"url": "http://127.0.0.1:9/x", "events": ["vm.exploded"], "secret": "s"}, "events.0"),
    ({"url": "http://127.0.0.1:9/x", "events": [], "secret": "s"}, "events"),
    ({"url": "http://127.0.0.1:9/x", "events": ["vm.created"]}, "secret"),
])
def test_bad_subscriptions_are_400_naming_the_field(hooks_api: Api, user_token: str, body: dict[str, Any],
                                                    field: str) -> None:
    result = hooks_api.call("POST", "/api/webhooks", user_token, json=body)
    assert result.status_code == 400, result.text
    assert result.json["field"] == field


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.1.2.3/hook",
                                 "https://192.168.1.10/hook", "http://169.254.169.254/latest/meta-data",
                                 "http://[::1]:8080/hook", "http://[::ffff:127.0.0.1]/hook", "http://0.0.0.0/"])
def test_private_loopback_and_link_local_targets_are_refused(api: Api, user_token: str, url: str) -> None:
    result = api.call("POST", "/api/webhooks", user_token, json={"url": url, "events": ["vm.created"],
                                                                 "secret": SECRET})
    assert result.status_code == 400, result.text
    assert result.json["field"] == "url"
    assert "webhooks.allowed_networks" in result.json["error"]
    assert api.call("GET", "/api/webhooks", user_token).json["data"] == []


# ------------------------------------------------------------ deliveries


def test_a_delivery_is_signed_and_carries_the_vm_object(hooks_api: Api, user_token: str, receiver: Receiver,
                                                        store: Store, settings_factory: Any) -> None:
    hook = subscribe(hooks_api, user_token, receiver.url)
    vm = hooks_api.create_vm(user_token, name="hooked")
    worker = make_worker(store, settings_factory)
    drive(worker, lambda: len(receiver.received) >= 1)
    got = receiver.received[0]
    assert got.headers["X-Pvem-Event"] == "vm.created"
    expected = "sha256=" + hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers["X-Pvem-Signature"] == expected
    body = json.loads(got.body)
    assert set(body) == {"event", "id", "time", "data"}
    assert body["event"] == "vm.created" and body["time"].endswith("Z")
    assert body["data"]["vm"] == hooks_api.call("GET", f"/api/vms/{vm['id']}", user_token).json["data"]
    assert got.headers["X-Pvem-Delivery"] == body["id"]
    [record] = deliveries(hooks_api, user_token, hook["id"])
    assert record["id"] == body["id"] and record["status"] == "delivered" and record["attempts"] == 1
    assert record["response_status"] == 200
    worker.close()


def test_users_webhooks_hear_only_their_vms_admins_hear_all(hooks_api: Api, user_token: str, admin_token: str,
                                                            store: Store, settings_factory: Any) -> None:
    hooks_api.register("bob")
    bob = hooks_api.token_for("bob@example.com", "password123")
    receivers = {name: Receiver() for name in ("alice", "bob", "admin")}
    try:
        for name, token in (("alice", user_token), ("bob", bob), ("admin", admin_token)):
            subscribe(hooks_api, token, receivers[name].url)
        alices = hooks_api.create_vm(user_token, name="alices")
        bobs = hooks_api.create_vm(bob, name="bobs")
        worker = make_worker(store, settings_factory)
        drive(worker, lambda: len(receivers["admin"].received) >= 2 and len(receivers["alice"].received) >= 1
              and len(receivers["bob"].received) >= 1)
        worker.run_once()
        ids = {name: [json.loads(item.body)["data"]["vm"]["id"] for item in target.received]
               for name, target in receivers.items()}
        assert ids["alice"] == [alices["id"]]
        assert ids["bob"] == [bobs["id"]]
        assert sorted(ids["admin"]) == sorted([alices["id"], bobs["id"]])
        worker.close()
    finally:
        for target in receivers.values():
            target.close()


def test_every_event_kind_is_delivered(hooks_api: Api, user_token: str, receiver: Receiver, store: Store,
                                       settings_factory: Any) -> None:
    subscribe(hooks_api, user_token, receiver.url, ALL_EVENTS)
    vm = hooks_api.create_vm(user_token, name="lifecycle")
    snapshot = hooks_api.call("POST", f"/api/vms/{vm['id']}/snapshots", user_token, json={"name": "before"})
    assert snapshot.status_code == 201
    writer = StatusWriter(store)
    with store.read() as session:
        row = session.get(VirtualMachine, vm["id"])
        assert row is not None
        generation = row.generation
    desired = DesiredVm(id=vm["id"], vmid=vm["vmid"], name=vm["name"], node="pve1", cores=2, memory_mb=2048,
                        disk_gb=20, power_state="stopped", restart_pending=False, deleting=False,
                        generation=generation, observed_generation=0, provisioned=True, applied_disk_gb=None,
                        migrated_generation=None, snapshots=(), rules=())
    assert writer.synced(desired, {}, "stopped", "pve1", reboot_required=False)
    writer.audit("drift_corrected", vm["id"], vm["owner_id"], {"vm_name": vm["name"], "fields": {
        "cores": {"before": 4, "after": 2}}, "actions": ["update_config"]})
    with store.write() as session:  # what the reconciler records on a permanent failure
        failing = session.get(VirtualMachine, vm["id"])
        assert failing is not None
        failing.sync_status, failing.last_error = "error", "boom"
    writer.forget_vm(desired, vm["owner_id"], vm["name"])
    worker = make_worker(store, settings_factory)
    drive(worker, lambda: len(receiver.received) >= 7)
    bodies = [json.loads(item.body) for item in receiver.received]
    assert sorted(body["event"] for body in bodies) == sorted(ALL_EVENTS)
    by_event = {body["event"]: body["data"] for body in bodies}
    assert by_event["vm.drift"]["drift"]["fields"] == {"cores": {"before": 4, "after": 2}}
    assert by_event["snapshot.created"]["snapshot"]["name"] == "before"
    assert by_event["snapshot.deleted"]["snapshot"]["name"] == "before"
    assert by_event["vm.deleted"]["vm"]["id"] == vm["id"]
    assert by_event["vm.synced"]["vm"]["id"] == vm["id"]
    worker.close()


def test_failed_deliveries_are_retried_with_backoff(hooks_api: Api, user_token: str, store: Store,
                                                    settings_factory: Any) -> None:
    receiver = Receiver(statuses=[500, 503])
    try:
        hook = subscribe(hooks_api, user_token, receiver.url)
        hooks_api.create_vm(user_token, name="flaky")
        worker = make_worker(store, settings_factory, retry_base_seconds=0.2)
        worker.run_once()
        [first] = deliveries(hooks_api, user_token, hook["id"])
        assert first["status"] == "pending" and first["attempts"] == 1 and first["response_status"] == 500
        assert first["next_attempt_at"] is not None and first["last_error"]
        drive(worker, lambda: len(receiver.received) >= 1)
        assert receiver.attempts == 3
        [record] = deliveries(hooks_api, user_token, hook["id"])
        assert record["status"] == "delivered" and record["attempts"] == 3
        assert json.loads(receiver.received[0].body)["id"] == first["id"]  # the same delivery, retried
        worker.close()
    finally:
        receiver.close()


def test_a_delivery_gives_up_after_max_attempts(hooks_api: Api, user_token: str, store: Store,
                                                settings_factory: Any) -> None:
    receiver = Receiver(statuses=[500] * 10)
    try:
        hook = subscribe(hooks_api, user_token, receiver.url)
        hooks_api.create_vm(user_token, name="doomed")
        worker = make_worker(store, settings_factory, max_attempts=2)
        drive(worker, lambda: [item["status"] for item in deliveries(hooks_api, user_token, hook["id"])] == ["failed"])
        [record] = deliveries(hooks_api, user_token, hook["id"])
        assert record["status"] == "failed" and record["attempts"] == 2
        worker.close()
    finally:
        receiver.close()


def test_a_pending_delivery_survives_a_restart(hooks_api: Api, user_token: str, database_url: str,
                                               settings_factory: Any) -> None:
    receiver = Receiver(statuses=[503])
    try:
        hook = subscribe(hooks_api, user_token, receiver.url)
        hooks_api.create_vm(user_token, name="survivor")
        first_store = Store(database_url)
        first = make_worker(first_store, settings_factory, retry_base_seconds=0.2)
        first.run_once()  # the receiver was down: the delivery stays pending in the database
        first.close()
        first_store.dispose()  # the controller process is gone
        [pending] = deliveries(hooks_api, user_token, hook["id"])
        assert pending["status"] == "pending"
        second_store = Store(database_url)
        second = make_worker(second_store, settings_factory, retry_base_seconds=0.2)
        drive(second, lambda: len(receiver.received) >= 1)
        second.run_once()
        assert [json.loads(item.body)["id"] for item in receiver.received] == [pending["id"]]
        second.close()
        second_store.dispose()
    finally:
        receiver.close()


def test_targets_are_checked_again_at_delivery_time(hooks_api: Api, user_token: str, receiver: Receiver,
                                                    store: Store, settings_factory: Any) -> None:
    hook = subscribe(hooks_api, user_token, receiver.url)
    hooks_api.create_vm(user_token, name="rebound")
    worker = make_worker(store, settings_factory, allowed_networks=[])  # e.g. the name now resolves inside
    worker.run_once()
    [record] = deliveries(hooks_api, user_token, hook["id"])
    assert record["status"] == "pending" and "loopback" in record["last_error"]
    assert receiver.attempts == 0
    worker.close()
