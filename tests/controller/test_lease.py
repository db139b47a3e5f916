"""Leader election and fencing on the real database (SQLite, and PostgreSQL when the suite runs there)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from controller.lease import Fenced, Lease, LeaseKeeper
from controller.reconcile.state import StatusWriter
from controller.store.models import AuditLog, ControllerLease


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_one_leader_per_database_and_the_standby_waits(store):
    first = Lease(store, lease_seconds=30, renew_seconds=10, holder="a")
    second = Lease(store, lease_seconds=30, renew_seconds=10, holder="b")
    assert first.renew() is True
    assert second.renew() is False
    assert (first.role(), second.role()) == ("leader", "standby")
    assert first.renew() is True and second.renew() is False  # renewing keeps it
    row = first.current()
    assert row is not None and (row.holder, row.epoch) == ("a", 1)


def test_a_standby_takes_over_after_the_lease_expires_with_a_new_epoch(store):
    first = Lease(store, lease_seconds=0.6, renew_seconds=0.2, holder="a")
    second = Lease(store, lease_seconds=0.6, renew_seconds=0.2, holder="b")
    assert first.renew() and not second.renew()
    assert 0.05 <= second.next_attempt_in() <= 0.2  # looks again just after the expiry it saw
    wait_until(second.renew)  # `first` stopped renewing (it "died")
    row = second.current()
    assert row is not None and (row.holder, row.epoch) == ("b", 2)
    assert first.renew() is False  # the old leader comes back as a standby


def test_a_paused_former_leader_cannot_write_status_or_audit(store):
    first = Lease(store, lease_seconds=0.5, renew_seconds=0.1, holder="a")
    second = Lease(store, lease_seconds=0.5, renew_seconds=0.1, holder="b")
    assert first.renew()
    writer = StatusWriter(store, fence=first.fence)
    writer.audit("pve_start", "vm-1", "owner", {"outcome": "started"})  # while it leads: accepted
    wait_until(second.renew)
    with pytest.raises(Fenced):
        writer.audit("pve_start", "vm-1", "owner", {"outcome": "ok"})
    assert first.is_leader() is False  # a refused write also ends its leadership at once
    with store.read() as session:
        outcomes = [row.details["outcome"] for row in session.scalars(select(AuditLog))]
    assert outcomes == ["started"]


def test_releasing_the_lease_lets_a_standby_take_over_at_once(store):
    first = Lease(store, lease_seconds=60, renew_seconds=20, holder="a")
    second = Lease(store, lease_seconds=60, renew_seconds=20, holder="b")
    assert first.renew() and not second.renew()
    first.release()
    assert second.renew() is True
    with store.read() as session:
        row = session.get(ControllerLease, "controller")
        assert row is not None and (row.holder, row.epoch) == ("b", 2)


def test_keepers_hand_over_leadership_when_the_leader_stops(store):
    changes: list[tuple[str, bool]] = []
    keepers = [LeaseKeeper(Lease(store, lease_seconds=1.0, renew_seconds=0.2, holder=name),
                           lambda leading, name=name: changes.append((name, leading))) for name in ("a", "b")]
    for keeper in keepers:
        keeper.start()
    try:
        assert changes == [("a", True)]
        keepers[0].stop()
        wait_until(lambda: ("b", True) in changes)
        assert keepers[1].lease.is_leader() and not keepers[0].lease.is_leader()
    finally:
        for keeper in keepers:
            keeper.stop()


def test_readiness_shows_each_controllers_role(store, settings, passwords):
    import falcon.testing

    from api.app import create_app
    from controller import users
    from controller.service import ControllerService

    with store.write() as session:
        users.ensure_admin(session, passwords, "lease-admin@example.com", "password123")
    services = [ControllerService(settings, store, passwords) for _ in range(2)]
    for service in services:
        service.lease_keeper.start()
    try:
        roles = []
        for service in services:
            client = falcon.testing.TestClient(create_app(settings, store, readiness=service.readiness_checks(),
                                                          passwords=passwords))
            token = client.simulate_post("/api/auth/login", json={"email": "lease-admin@example.com",
                                                                  "password": "password123"}).json["token"]
            # readiness details (the role among them) are shown to admins
            result = client.simulate_get("/api/health/ready", headers={"Authorization": f"Bearer {token}"})
            assert result.status_code == 200, result.text  # a standby is ready: it waits by design
            roles.append(result.json["checks"]["controller"]["role"])
        assert roles == ["leader", "standby"]
    finally:
        for service in services:
            service.lease_keeper.stop()


def test_a_lease_whose_holder_died_on_this_host_is_taken_over_at_once(store, tmp_path):
    import socket
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    first = Lease(store, lease_seconds=60, renew_seconds=20, holder=f"{socket.gethostname()}:{dead.stdout.strip()}:x")
    assert first.renew()
    elsewhere = Lease(store, lease_seconds=60, renew_seconds=20, holder="other-host:1:y")
    assert elsewhere.renew() is True  # the holder's process is gone: no need to wait 60 s
    assert Lease(store, lease_seconds=60, renew_seconds=20).renew() is False  # a live holder elsewhere: wait


def test_metrics_show_whether_this_controller_leads(store, settings, passwords):
    import falcon.testing

    from api.app import create_app
    from controller.service import ControllerService

    def leader_gauge(service: ControllerService) -> str:
        client = falcon.testing.TestClient(create_app(settings, store, readiness=service.readiness_checks(),
                                                      passwords=passwords))
        text = client.simulate_get("/metrics").text
        return next(line for line in text.splitlines() if line.startswith("pvem_controller_leader "))

    leader = ControllerService(settings, store, passwords)
    leader.lease_keeper.start()
    try:
        wait_until(leader.is_leader)
        assert leader_gauge(leader) == "pvem_controller_leader 1.0"
        standby = ControllerService(settings, store, passwords)  # the gauge now follows this process's standby
        standby.lease_keeper.start()
        try:
            time.sleep(0.2)
            assert not standby.is_leader()
            assert leader_gauge(standby) == "pvem_controller_leader 0.0"
        finally:
            standby.lease_keeper.stop()
    finally:
        leader.lease_keeper.stop()
