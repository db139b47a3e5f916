"""What scenarios share: the result row, the run context (smoke or full, scratch space), and bench servers.

A bench server is a real process (`python -m bench.server`): pvem's own Falcon app on pvem's own
waitress set-up (api.server.create_server), API only, on a fresh SQLite database seeded here, with the
reference endpoints of bench/reference.py mounted beside the API (same middleware, same JSON encoder).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import insert

from api.auth import Tokens
from controller.store import Store
from controller.store.models import User, VirtualMachine
from controller.users import Passwords

BENCH_PASSWORD = "bench-password-1"  # a throwaway account on a throwaway database
START_TIMEOUT_SECONDS = 60


@dataclass
class Row:
    """One line of the table. `met` None: a figure without a target (informational)."""

    figure: str
    target: str
    measured: str
    ratio: str = ""
    met: bool | None = None


@dataclass
class BenchServer:
    host: str
    port: int
    token: str
    admin_id: str
    process: subprocess.Popen[bytes]
    store_url: str
    log_path: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def plan(self, requests: list[dict[str, Any]], clients: int, seconds: float, processes: int = 2,
             warmup: float = 0.5) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "clients": clients, "processes": min(processes, clients),
                "seconds": seconds, "warmup": warmup, "requests": requests, "timeout": 30}


@dataclass
class Context:
    smoke: bool
    workdir: Path
    notes: list[str] = field(default_factory=list)

    def scale(self, full: Any, smoke: Any) -> Any:
        return smoke if self.smoke else full

    @contextmanager
    def server(self, vms: int = 0, **config: dict[str, Any]) -> Iterator[BenchServer]:
        """A fresh database with an admin and `vms` VMs, and a bench server on it (stopped afterwards)."""
        run_dir = self.workdir / f"server-{uuid.uuid4().hex[:8]}"
        run_dir.mkdir(parents=True)
        url = f"sqlite:///{run_dir / 'pvem.db'}"
        sections: dict[str, dict[str, Any]] = {
            "server": {"host": "127.0.0.1", "port": 0, "threads": 8},
            "database": {"url": url},
            "auth": {"jwt_secret": secrets.token_urlsafe(48), "allow_registration": True,
                     # OWASP's smaller argon2id setting: 16 concurrent hashes at 64 MiB each would
                     # swap this shared machine; the time cost is the default.
                     "argon2_memory_kib": 19456},
            "proxmox": {"default_node": "pve1"},
            "logging": {"format": "json", "level": "INFO"},
        }
        for name, values in config.items():
            sections.setdefault(name, {}).update(values)
        config_path = run_dir / "config.yaml"
        config_path.write_text(yaml.safe_dump(sections))
        admin_id = seed(url, vms, sections["auth"])
        log_path = run_dir / "server.log"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen([sys.executable, "-m", "bench.server", str(config_path)],
                                       stdout=subprocess.PIPE, stderr=log_file, env={**os.environ})
        try:
            port = _wait_ready(process, log_path)
            tokens = Tokens(sections["auth"]["jwt_secret"].encode(), "pvem", 600)
            token = tokens.issue(User(id=admin_id, role="admin"))
            yield BenchServer("127.0.0.1", port, token, admin_id, process, url, log_path)
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def _wait_ready(process: subprocess.Popen[bytes], log_path: Path) -> int:
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    os.set_blocking(process.stdout.fileno(), False)
    buffer = b""
    while time.monotonic() < deadline:
        chunk = process.stdout.read() or b""
        buffer += chunk
        for line in buffer.decode(errors="replace").splitlines():
            if line.startswith("BENCH-READY "):
                return int(line.split()[1])
        if process.poll() is not None:
            raise RuntimeError(f"bench server exited: {log_path.read_text()[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError("bench server did not start in time")


def seed(url: str, vms: int, auth: dict[str, Any]) -> str:
    """Migrate, add an admin and `vms` VMs (owned by the admin, spread over time); the admin's id."""
    store = Store(url)
    try:
        store.upgrade()
        passwords = Passwords(3, int(auth.get("argon2_memory_kib", 19456)))
        admin = User(username="bench-admin", email="bench-admin@example.com",
                     password_hash=passwords.hash(BENCH_PASSWORD), role="admin")
        with store.write() as session:
            session.add(admin)
            session.flush()
            admin_id = admin.id
        base = datetime.now(UTC) - timedelta(days=1)
        rows = [vm_row(admin_id, index, base + timedelta(seconds=index)) for index in range(vms)]
        with store.engine.begin() as conn:
            for start in range(0, len(rows), 2000):
                conn.execute(insert(VirtualMachine), rows[start:start + 2000])
        return admin_id
    finally:
        store.dispose()


def vm_row(owner_id: str, index: int, created: datetime) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()), "owner_id": owner_id, "vmid": 1000 + index, "created_at": created,
        "updated_at": created, "name": f"bench-{index:05d}", "node": "pve1", "cpu_cores": 2, "memory_mb": 2048,
        "disk_gb": 20, "power_state": "running", "labels": {"tier": "web", "bench": "yes"}, "apply_set": None,
        "restart_requests": 0, "deletion_requested": False, "generation": 3, "status": "running",
        "observed_generation": 3, "sync_status": "synced", "last_error": None, "last_synced_at": created,
        "observed_node": "pve1", "restarts_done": 0, "last_upid": None, "provisioned": True,
        "reboot_required": False, "applied_disk_gb": 20, "migrated_generation": None, "error_generation": None,
        "observed": {"node": "pve1", "cores": 2, "memory": 2048, "disk_gb": 20},
        "last_observed_at": created,
    }


def fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}{unit}"


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
