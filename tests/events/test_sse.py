"""`GET /api/events` over real HTTP (waitress): what a console or a script listening for changes sees."""

from __future__ import annotations

from typing import Any

from controller import stats
from controller.events import feed as feed_rows
from controller.reconcile.model import DesiredVm
from controller.reconcile.state import StatusWriter
from tests.conftest import Api
from tests.events.helpers import SseClient


def _vm_event(vm_id: str) -> Any:
    return lambda event: event.event == "vm" and event.data["id"] == vm_id


def _desired(vm: dict[str, Any]) -> DesiredVm:
    return DesiredVm(id=vm["id"], vmid=vm["vmid"], name=vm["name"], node=vm["node"], cores=vm["cpu_cores"],
                     memory_mb=vm["memory_mb"], disk_gb=vm["disk_gb"], power_state=vm["power_state"],
                     restart_pending=False, deleting=True, generation=vm["generation"],
                     observed_generation=vm["observed_generation"], provisioned=True, applied_disk_gb=None,
                     migrated_generation=None, snapshots=(), rules=())


def test_a_stream_needs_a_token(live: Any) -> None:
    base = live()
    client = SseClient(base, None)
    assert client.status == 401
    assert client.body()["code"] == 401
    client.close()


def test_a_stream_starts_with_its_position_and_the_vm_object_arrives_as_get_answers_it(
        live: Any, api: Api, admin_token: str) -> None:
    base = live()
    client = SseClient(base, admin_token)
    assert client.status == 200
    assert client.headers["Content-Type"].startswith("text/event-stream")
    ready = client.next()
    assert ready.event == "ready" and ready.id is not None
    vm = api.create_vm(admin_token, name="live-1")
    event = client.until(_vm_event(vm["id"]))
    assert int(event.id or 0) > int(ready.id)
    assert event.data == api.call("GET", f"/api/vms/{vm['id']}", admin_token).json["data"]
    client.close()


def test_users_hear_only_about_their_own_vms(live: Any, api: Api, admin_token: str, user_token: str) -> None:
    api.register("bob")
    bob_token = api.token_for("bob@example.com", "password123")
    base = live()
    alice, bob, admin = (SseClient(base, token) for token in (user_token, bob_token, admin_token))
    for client in (alice, bob, admin):
        assert client.next().event == "ready"
    alices = api.create_vm(user_token, name="alice-vm")
    bobs = api.create_vm(bob_token, name="bob-vm")
    assert alice.until(lambda e: e.event == "vm").data["id"] == alices["id"]
    assert bob.until(lambda e: e.event == "vm").data["id"] == bobs["id"]  # Alice's came first, and was not sent
    seen = {admin.until(lambda e: e.event == "vm").data["id"] for _ in range(2)}
    assert seen == {alices["id"], bobs["id"]}
    # Bob changes his VM, then Alice hers: Bob's next VM event is still his own.
    api.call("POST", f"/api/vms/{bobs['id']}/action", bob_token, json={"action": "start"})
    api.call("POST", f"/api/vms/{alices['id']}/action", user_token, json={"action": "start"})
    assert alice.until(lambda e: e.event == "vm").data == {
        **api.call("GET", f"/api/vms/{alices['id']}", user_token).json["data"]}
    assert bob.until(lambda e: e.event == "vm").data["power_state"] == "running"
    for client in (alice, bob, admin):
        client.close()


def test_last_event_id_resumes_after_a_disconnect(live: Any, api: Api, user_token: str) -> None:
    base = live()
    vm = api.create_vm(user_token, name="resume-me")
    client = SseClient(base, user_token)
    position = client.next().id
    client.close()
    # Changes made while nobody listened.
    api.call("PUT", f"/api/vms/{vm['id']}", user_token, json={"cpu_cores": 4})
    second = api.create_vm(user_token, name="made-while-away")
    resumed = SseClient(base, user_token, last_event_id=position)
    assert resumed.next().event == "ready"
    got = [resumed.until(lambda e: e.event == "vm") for _ in range(2)]
    assert [event.data["id"] for event in got] == [vm["id"], second["id"]]
    assert got[0].data["cpu_cores"] == 4
    resumed.close()
    # The query parameter works too (EventSource cannot set headers on its first request).
    by_param = SseClient(base, user_token, query=f"?last_event_id={position}")
    by_param.next()
    assert by_param.until(lambda e: e.event == "vm").data["id"] == vm["id"]
    by_param.close()


def test_a_bad_last_event_id_is_a_400(live: Any, user_token: str) -> None:
    client = SseClient(live(), user_token, last_event_id="yesterday")
    assert client.status == 400
    assert client.body()["field"] == "last_event_id"
    client.close()


def test_a_resume_point_older_than_the_feed_asks_for_a_reload(live: Any, api: Api, user_token: str,
                                                             store: Any) -> None:
    api.create_vm(user_token, name="old-news")
    with store.write() as session:
        feed_rows.set_cursor(session, feed_rows.PRUNED, feed_rows.latest_seq(session))
    client = SseClient(live(), user_token, last_event_id=0)
    assert client.next().event == "reset"
    assert client.next().event == "ready"
    client.close()


def test_changes_written_by_another_process_reach_the_stream(live: Any, api: Api, user_token: str,
                                                            other_store: Any) -> None:
    base = live()
    vm = api.create_vm(user_token, name="watched")
    client = SseClient(base, user_token)
    client.next()
    # What a separate `pvem controller` does: status writes through its own Store on the same database.
    writer = StatusWriter(other_store)
    writer.set_vm(vm["id"], sync_status="syncing")
    assert client.until(_vm_event(vm["id"])).data["sync_status"] == "syncing"
    writer.forget_vm(_desired(vm), vm["owner_id"], vm["name"])
    assert client.until(lambda e: e.event == "vm_deleted").data == {"id": vm["id"]}
    client.close()


def test_stats_samples_arrive_as_the_stats_endpoint_answers(live: Any, api: Api, user_token: str,
                                                            other_store: Any) -> None:
    client = SseClient(live(), user_token)
    client.next()
    with other_store.write() as session:
        stats.store_sample(session, stats.HOST, 12.5, 40.0, 55.0, 1000, 2000)
    event = client.until(lambda e: e.event == "stats")
    assert event.data == api.call("GET", "/api/stats/system", user_token).json["data"]
    client.close()


def test_an_idle_stream_sends_heartbeat_comments(live: Any, user_token: str) -> None:
    client = SseClient(live(), user_token)
    client.next()
    assert "heartbeat" in client.next(comments=True).comments
    client.close()


def test_streams_beyond_the_cap_are_refused_with_503(live: Any, user_token: str) -> None:
    base = live(events={"max_streams": 1})
    first = SseClient(base, user_token)
    assert first.status == 200
    second = SseClient(base, user_token)
    assert second.status == 503
    assert second.headers.get("Retry-After")
    second.close()
    first.close()
