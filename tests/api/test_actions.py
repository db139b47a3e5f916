"""Power actions change desired state: start/stop always, pause/restart need running, unpause needs paused."""

from __future__ import annotations

import pytest

from tests.api.helpers import assert_envelope, assert_error, assert_names_field, get_vm


def act(api, token, vm_id, action):
    return api.call("POST", f"/api/vms/{vm_id}/action", token, json={"action": action})


def vm_in_state(api, token, state):
    vm = api.create_vm(token, name=f"vm-{state}")
    if state == "running":
        assert_envelope(act(api, token, vm["id"], "start"))
    elif state == "paused":
        assert_envelope(act(api, token, vm["id"], "start"))
        assert_envelope(act(api, token, vm["id"], "pause"))
    return get_vm(api, token, vm["id"])


# (desired state before, action, desired state after) for every accepted combination
ACCEPTED = [
    ("stopped", "start", "running"),
    ("running", "start", "running"),
    ("paused", "start", "running"),
    ("stopped", "stop", "stopped"),
    ("running", "stop", "stopped"),
    ("paused", "stop", "stopped"),
    ("running", "pause", "paused"),
    ("paused", "unpause", "running"),
    ("running", "restart", "running"),
]

REFUSED = [
    ("stopped", "pause"),
    ("paused", "pause"),
    ("stopped", "restart"),
    ("paused", "restart"),
    ("stopped", "unpause"),
    ("running", "unpause"),
]


@pytest.mark.parametrize(("before", "action", "after"), ACCEPTED)
def test_accepted_action_answers_200_with_the_vm(api, user_token, before, action, after):
    vm = vm_in_state(api, user_token, before)
    data = assert_envelope(act(api, user_token, vm["id"], action))
    assert data["id"] == vm["id"]
    assert data["power_state"] == after
    assert get_vm(api, user_token, vm["id"])["power_state"] == after


@pytest.mark.parametrize(("before", "action"), REFUSED)
def test_refused_action_is_409_saying_why(api, user_token, before, action):
    vm = vm_in_state(api, user_token, before)
    body = assert_error(act(api, user_token, vm["id"], action), 409)
    message = body["error"].lower()
    assert action in message
    assert before in message or ("running" if action != "unpause" else "paused") in message, body
    after = get_vm(api, user_token, vm["id"])
    assert after["power_state"] == before and after["generation"] == vm["generation"]


@pytest.mark.parametrize("action", ["start", "stop"])
def test_start_and_stop_are_idempotent(api, user_token, action):
    vm = api.create_vm(user_token)
    first = assert_envelope(act(api, user_token, vm["id"], action))
    second = assert_envelope(act(api, user_token, vm["id"], action))
    assert first["power_state"] == second["power_state"] == ("running" if action == "start" else "stopped")
    assert second["generation"] == first["generation"]


def test_stop_on_a_new_vm_changes_nothing(api, user_token):
    vm = api.create_vm(user_token)
    data = assert_envelope(act(api, user_token, vm["id"], "stop"))
    assert data["generation"] == vm["generation"] and data["power_state"] == "stopped"


@pytest.mark.parametrize(("before", "action"), [("stopped", "start"), ("running", "stop"), ("running", "pause"),
                                                ("paused", "unpause"), ("running", "restart")])
def test_an_effective_action_bumps_generation_once_and_sets_pending(api, user_token, before, action):
    vm = vm_in_state(api, user_token, before)
    data = assert_envelope(act(api, user_token, vm["id"], action))
    assert data["generation"] == vm["generation"] + 1
    assert data["sync_status"] == "pending"


def test_restart_sets_restart_pending(api, user_token):
    vm = vm_in_state(api, user_token, "running")
    assert vm.get("restart_pending") is False
    data = assert_envelope(act(api, user_token, vm["id"], "restart"))
    assert data["restart_pending"] is True
    assert data["power_state"] == "running"
    assert get_vm(api, user_token, vm["id"])["restart_pending"] is True


@pytest.mark.parametrize("action", ["reboot", "destroy", "", "shutdown", "resume"])
def test_unknown_action_is_400(api, user_token, action):
    vm = api.create_vm(user_token)
    body = assert_error(act(api, user_token, vm["id"], action), 400)
    assert "action" in body["error"]


@pytest.mark.parametrize("body", [{}, {"action": None}, {"action": 1}, {"action": "start", "force": True}])
def test_malformed_action_request_is_400(api, user_token, body):
    vm = api.create_vm(user_token)
    assert_error(api.call("POST", f"/api/vms/{vm['id']}/action", user_token, json=body), 400)


def test_missing_action_names_the_field(api, user_token):
    vm = api.create_vm(user_token)
    assert_names_field(api.call("POST", f"/api/vms/{vm['id']}/action", user_token, json={}), "action")


def test_action_on_unknown_vm_is_404(api, user_token):
    assert_error(act(api, user_token, "00000000-0000-0000-0000-000000000000", "start"), 404)


@pytest.mark.parametrize("action", ["start", "stop", "restart", "pause", "unpause"])
def test_action_on_a_vm_being_deleted_is_409(api, user_token, action):
    vm = vm_in_state(api, user_token, "running")
    assert api.call("DELETE", f"/api/vms/{vm['id']}", user_token).status_code == 200
    assert_error(act(api, user_token, vm["id"], action), 409)
    assert get_vm(api, user_token, vm["id"])["sync_status"] == "deleting"
