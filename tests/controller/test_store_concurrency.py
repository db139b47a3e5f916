"""The store under concurrent processes: migrations under a lock, constraint violations as conflicts,
and (PostgreSQL) nudges by LISTEN/NOTIFY."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from controller import errors
from controller.store import Store, notify
from controller.store.db import current_revision
from controller.store.models import User

PVEM = str(Path(sys.executable).with_name("pvem"))


def test_many_processes_may_upgrade_one_fresh_database_at_once(tmp_path, fresh_database_url):
    env = {key: value for key, value in os.environ.items() if not key.startswith("PVEM_")}
    env["PVEM_DATABASE__URL"] = fresh_database_url
    procs = [subprocess.Popen([PVEM, "db", "upgrade"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(3)]
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 3, outputs
    store = Store(fresh_database_url)
    try:
        head = current_revision(store.engine)
    finally:
        store.dispose()
    assert head is not None and all(output.strip().endswith(head) for output in outputs), outputs


def test_a_unique_violation_leaves_the_store_as_a_conflict(store):
    with store.write() as session:
        session.add(User(username="same", email="one@example.com", password_hash="x"))
    with pytest.raises(errors.Conflict, match="username"), store.write() as session:
        session.add(User(username="same", email="two@example.com", password_hash="x"))
    with store.read() as session:
        assert session.query(User).count() == 1


def test_postgresql_nudges_reach_a_listening_controller_at_once(store, backend):
    if backend != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite relies on the database poll")
    received: list[str] = []
    arrived = threading.Event()

    def on_nudge(vm_id: str) -> None:
        received.append(vm_id)
        arrived.set()

    listener = notify.Listener(store, on_nudge)
    listener.start()
    try:
        assert listener.listening.wait(10)
        notify.sender(store)("vm-42")
        assert arrived.wait(10)
    finally:
        listener.stop()
    assert received == ["vm-42"]


def test_nudges_also_go_to_the_local_controller(store):
    local: list[str] = []
    notify.sender(store, local.append)("vm-7")
    assert local == ["vm-7"]  # (on PostgreSQL the NOTIFY went out too; nothing listens here)
