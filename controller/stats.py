"""System stats: sampling (this host with psutil), storage with a retention window, and reads.

Samples carry raw network byte counters so each rate is computed from the previous sample of the same
source. The reconciler adds `cluster` samples from Proxmox; until one exists, reads fall back to the
host's own figures.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psutil
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from controller import events, pages
from controller.store.models import StatsSample, utcnow

HOST = "host"
CLUSTER = "cluster"


def _rate_kb(current: int, previous: int, seconds: float) -> float:
    if seconds <= 0 or current < previous:  # counters reset (reboot, wrap): no rate this time
        return 0.0
    return round((current - previous) / 1024.0 / seconds, 2)


def latest(session: Session, source: str | None = None) -> StatsSample | None:
    query = select(StatsSample).order_by(StatsSample.taken_at.desc(), StatsSample.id.desc()).limit(1)
    if source:
        query = query.where(StatsSample.source == source)
    return session.scalar(query)


def history_page(session: Session, source: str, since: datetime,
                 page: pages.PageRequest) -> tuple[list[StatsSample], str | None]:
    """One keyset page of history (same order) and the next cursor."""
    query = select(StatsSample).where(StatsSample.source == source, StatsSample.taken_at >= since)
    rows, token = pages.fetch(session, query, (StatsSample.taken_at, StatsSample.id), page, "stats")
    return [row[0] for row in rows], token


def history(session: Session, source: str, since: datetime) -> list[StatsSample]:
    query = select(StatsSample).where(StatsSample.source == source, StatsSample.taken_at >= since)
    return list(session.scalars(query.order_by(StatsSample.taken_at, StatsSample.id)))


def preferred_source(session: Session) -> str:
    """`cluster` once the controller has collected Proxmox figures, `host` until then."""
    return CLUSTER if latest(session, CLUSTER) is not None else HOST


def store_sample(
    session: Session, source: str, cpu: float, memory: float, disk: float, rx_bytes: int, tx_bytes: int,
    details: dict[str, Any] | None = None, retention_minutes: int = 1440,
) -> StatsSample:
    now = utcnow()
    previous = latest(session, source)
    rx = tx = 0.0
    if previous is not None:
        seconds = (now - previous.taken_at).total_seconds()
        rx = _rate_kb(rx_bytes, previous.rx_bytes, seconds)
        tx = _rate_kb(tx_bytes, previous.tx_bytes, seconds)
    sample = StatsSample(
        source=source, taken_at=now, cpu_usage=_pct(cpu), memory_usage=_pct(memory), disk_usage=_pct(disk),
        network_rx=rx, network_tx=tx, rx_bytes=rx_bytes, tx_bytes=tx_bytes, details=details or {},
    )
    session.add(sample)
    events.emit(session, events.STATS, payload={"source": source})
    session.execute(delete(StatsSample).where(StatsSample.taken_at < now - timedelta(minutes=retention_minutes)))
    return sample


def _pct(value: float) -> float:
    return round(min(100.0, max(0.0, float(value))), 2)


class HostSampler:
    """Reads this host's CPU, memory, root-disk and network counters."""

    def __init__(self, disk_path: str = "/") -> None:
        self.disk_path = disk_path
        self._primed = False

    def read(self) -> dict[str, Any]:
        # psutil measures CPU since its previous call; the very first reading measures a short window.
        cpu = psutil.cpu_percent(interval=None if self._primed else 0.1)
        self._primed = True
        net = psutil.net_io_counters()
        return {
            "cpu": cpu,
            "memory": psutil.virtual_memory().percent,
            "disk": psutil.disk_usage(self.disk_path).percent,
            "rx_bytes": int(net.bytes_recv) if net else 0,
            "tx_bytes": int(net.bytes_sent) if net else 0,
        }

    def sample(self, session: Session, retention_minutes: int) -> StatsSample:
        figures = self.read()
        return store_sample(session, HOST, figures["cpu"], figures["memory"], figures["disk"],
                            figures["rx_bytes"], figures["tx_bytes"], retention_minutes=retention_minutes)


def cluster_figures(nodes: list[dict[str, Any]], vms: list[Any]) -> dict[str, Any]:
    """Cluster-wide percentages from /cluster/resources node items, byte counters from the VMs'."""
    online = [node for node in nodes if node.get("status") == "online"]
    cores = sum(float(node.get("maxcpu") or 0) for node in online)
    cpu = sum(float(node.get("cpu") or 0) * float(node.get("maxcpu") or 0) for node in online)
    mem, maxmem = (sum(float(node.get(key) or 0) for node in online) for key in ("mem", "maxmem"))
    disk, maxdisk = (sum(float(node.get(key) or 0) for node in online) for key in ("disk", "maxdisk"))
    return {
        "cpu": 100.0 * cpu / cores if cores else 0.0,
        "memory": 100.0 * mem / maxmem if maxmem else 0.0,
        "disk": 100.0 * disk / maxdisk if maxdisk else 0.0,
        "rx_bytes": sum(int(vm.netin) for vm in vms),
        "tx_bytes": sum(int(vm.netout) for vm in vms),
        "nodes": [{
            "node": node.get("node"), "status": node.get("status"),
            "cpu_usage": _pct(100.0 * float(node.get("cpu") or 0)),
            "memory_usage": _pct(100.0 * float(node.get("mem") or 0) / float(node.get("maxmem") or 1)),
            "disk_usage": _pct(100.0 * float(node.get("disk") or 0) / float(node.get("maxdisk") or 1)),
        } for node in nodes],
    }


def store_cluster_sample(session: Session, figures: dict[str, Any], host: dict[str, Any],
                         retention_minutes: int) -> StatsSample:
    controller = {"cpu_usage": _pct(host["cpu"]), "memory_usage": _pct(host["memory"]),
                  "disk_usage": _pct(host["disk"])}
    return store_sample(session, CLUSTER, figures["cpu"], figures["memory"], figures["disk"], figures["rx_bytes"],
                        figures["tx_bytes"], details={"nodes": figures["nodes"], "controller": controller},
                        retention_minutes=retention_minutes)
