"""--wait: converging, failing, timing out (bounded), deletions and progress output, with a scripted API."""

from __future__ import annotations

import io
from typing import Any

import pytest

from api.client.errors import CliError
from api.client.http import ApiError
from api.client.wait import Watch, wait


def vm(id_: str, sync: str, generation: int = 1, observed: int = 1, error: str | None = None) -> dict[str, Any]:
    return {"id": id_, "sync_status": sync, "generation": generation, "observed_generation": observed,
            "last_error": error}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedApi:
    """Answers GET vms from a script; the last answer repeats."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        self.calls.append({"method": method, "path": path, **kwargs})
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def run(api: ScriptedApi, watches: list[Watch], timeout: float = 10, tty: bool = False) -> tuple[str, Clock]:
    out, clock = io.StringIO(), Clock()
    wait(api, watches, timeout, out, tty=tty, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    return out.getvalue(), clock


def test_waits_until_every_object_converged_printing_each_change():
    api = ScriptedApi([vm("a", "pending", 1, 0), vm("b", "synced")],
                      [vm("a", "syncing", 1, 0), vm("b", "synced")],
                      [vm("a", "synced", 2, 1), vm("b", "synced")],  # synced, but an older generation
                      [vm("a", "synced", 2, 2), vm("b", "synced")])
    out, clock = run(api, [Watch("web-1", "a"), Watch("web-2", "b")])
    assert out.splitlines() == ["web-1: pending", "web-2: synced", "web-1: pending -> syncing",
                                "web-1: syncing -> pending", "web-1: pending -> synced"]
    assert len(api.calls) == 4 and clock.sleeps == [0.5, 0.5, 0.5]


def test_an_error_ends_the_wait_with_exit_1_and_the_last_error():
    api = ScriptedApi([vm("a", "syncing"), vm("b", "syncing")],
                      [vm("a", "error", error="storage full"), vm("b", "synced")])
    with pytest.raises(CliError) as caught:
        run(api, [Watch("web-1", "a"), Watch("web-2", "b")])
    assert caught.value.exit_code == 1 and caught.value.message == "web-1: error: storage full"


def test_a_transient_last_error_is_shown_while_waiting():
    api = ScriptedApi([vm("a", "pending", 1, 0, error="VM is locked")], [vm("a", "synced")])
    out, _ = run(api, [Watch("web-1", "a")])
    assert out.splitlines() == ["web-1: pending (last error: VM is locked)",
                                "web-1: pending (last error: VM is locked) -> synced"]


def test_the_deadline_ends_the_wait_with_exit_4_and_every_request_is_bounded_by_it():
    api = ScriptedApi([vm("a", "syncing", 1, 0), vm("b", "synced")])
    with pytest.raises(CliError) as caught:
        run(api, [Watch("web-1", "a"), Watch("web-2", "b")], timeout=3)
    assert caught.value.exit_code == 4
    assert caught.value.message == "timed out after 3s waiting for web-1 (syncing)"
    assert all(0 < call["timeout"] <= 3 for call in api.calls)
    assert len(api.calls) == 7  # t=0, 0.5, ..., 3.0: never past the deadline


def test_deletions_are_done_when_the_vm_is_gone_and_a_vanished_vm_fails_a_create():
    api = ScriptedApi([vm("a", "deleting")], [])
    out, _ = run(api, [Watch("old-1", "a", delete=True)])
    assert out.splitlines() == ["old-1: deleting", "old-1: deleting -> deleted"]
    with pytest.raises(CliError, match="web-1: deleted while waiting"):
        run(ScriptedApi([]), [Watch("web-1", "a")])


def test_an_unreachable_server_is_retried_until_the_deadline_but_401_is_not():
    down = ApiError("cannot reach http://h: Connection refused", None)
    out, _ = run(ScriptedApi(down, [vm("a", "synced")]), [Watch("web-1", "a")])
    assert out == "web-1: synced\n"
    with pytest.raises(CliError) as caught:
        run(ScriptedApi(down), [Watch("web-1", "a")], timeout=1)
    assert caught.value.exit_code == 4 and "last request failed: cannot reach" in caught.value.message
    with pytest.raises(ApiError) as rejected:
        run(ScriptedApi(ApiError("token expired", 401)), [Watch("web-1", "a")])
    assert rejected.value.exit_code == 3


def test_on_a_terminal_the_table_is_redrawn_in_place():
    api = ScriptedApi([vm("a", "syncing", 1, 0)], [vm("a", "synced")])
    out, _ = run(api, [Watch("web-1", "a")], tty=True)
    first, _, second = out.partition("\033[3F\033[J")
    assert first.splitlines()[:2] == ["NAME    STATUS", "web-1   syncing"]
    assert second.splitlines()[:2] == ["NAME    STATUS", "web-1   synced"]


def test_nothing_to_wait_for_returns_at_once():
    api = ScriptedApi([])
    out, clock = run(api, [])
    assert out == "" and api.calls == [] and clock.sleeps == []
