"""Prometheus metrics: the one place the metric objects live (prometheus-client's default registry).

Anything may record into these: the API middleware (HTTP), the Proxmox connection (every Proxmox
request), the reconciler (pass durations, errors, queue depth). Labels are bounded vocabularies only:
route templates, HTTP methods, status codes, sync statuses and power states, never names or ids.

`pvem_vms` is not kept in memory: `vm_counts(session)` computes it with one GROUP BY at scrape time,
so it is right in every replica and costs nothing between scrapes. `render(extra)` is the text
exposition of the registry plus such scrape-time families.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controller.store.models import VirtualMachine

__all__ = [
    "CONTENT_TYPE_LATEST", "HTTP_DURATION", "HTTP_REQUESTS", "PROXMOX_DURATION", "PROXMOX_REQUESTS",
    "QUEUE_DEPTH", "RECONCILE_DURATION", "RECONCILE_ERRORS", "observe_http", "observe_proxmox", "render",
    "track_leadership", "vm_counts",
]

# Fast API calls sit in the low milliseconds; Proxmox calls and passes reach seconds.
_HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_PROXMOX_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUESTS = Counter("pvem_http_requests_total", "HTTP requests answered by the API",
                        ["method", "route", "status"])
HTTP_DURATION = Histogram("pvem_http_request_duration_seconds", "Time to answer an API request",
                          ["method", "route", "status"], buckets=_HTTP_BUCKETS)
PROXMOX_REQUESTS = Counter("pvem_proxmox_requests_total", "Requests sent to the Proxmox API",
                           ["method", "status"])
PROXMOX_DURATION = Histogram("pvem_proxmox_request_duration_seconds", "Time of one Proxmox API request",
                             ["method", "status"], buckets=_PROXMOX_BUCKETS)
RECONCILE_DURATION = Histogram("pvem_reconcile_duration_seconds", "Time of one reconcile pass",
                               buckets=_PROXMOX_BUCKETS)
RECONCILE_ERRORS = Counter("pvem_reconcile_errors_total", "Reconcile attempts that ended in an error")
QUEUE_DEPTH = Gauge("pvem_queue_depth", "VMs waiting in the reconciler's work queue")
_LEADER: Gauge | None = None  # registered by the first controller in the process; API-only replicas lack it


def track_leadership(is_leader: Callable[[], bool]) -> None:
    """`pvem_controller_leader`: 1 while this process's controller holds the lease, 0 on a standby.

    Read at scrape time from the lease (no database access), so it is exact whenever it is scraped.
    Only processes that run a controller have it: an API-only replica is neither leader nor standby.
    """
    global _LEADER
    if _LEADER is None:
        _LEADER = Gauge("pvem_controller_leader", "1 when this process's controller holds the lease, "
                        "0 when it is a standby")
    _LEADER.set_function(lambda: 1.0 if is_leader() else 0.0)


def observe_http(method: str, route: str, status: int, seconds: float) -> None:
    labels = (method, route, str(status))
    HTTP_REQUESTS.labels(*labels).inc()
    HTTP_DURATION.labels(*labels).observe(seconds)


def observe_proxmox(method: str, status: int | str, seconds: float) -> None:
    """`status`: the HTTP status, or `error` when no answer came (connection refused, timeout)."""
    labels = (method.upper(), str(status))
    PROXMOX_REQUESTS.labels(*labels).inc()
    PROXMOX_DURATION.labels(*labels).observe(seconds)


def vm_counts(session: Session) -> list[tuple[str, str, int]]:
    """(sync_status, power_state, count) for every VM in the store: one GROUP BY."""
    query = select(VirtualMachine.sync_status, VirtualMachine.power_state, func.count()).group_by(
        VirtualMachine.sync_status, VirtualMachine.power_state)
    return [(str(sync), str(power), int(count)) for sync, power, count in session.execute(query)]


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def vms_family(counts: Iterable[tuple[str, str, int]]) -> Metric:
    family = GaugeMetricFamily("pvem_vms", "VMs in the store, by sync status and desired power state",
                               labels=["sync_status", "power_state"])
    for sync_status, power_state, count in counts:
        family.add_metric([sync_status, power_state], count)
    return family


def render(extra: Iterable[Metric] = ()) -> bytes:
    """The text exposition of the process's metrics followed by scrape-time families."""
    scrape_time = CollectorRegistry(auto_describe=False)
    scrape_time.register(_Families(extra))
    return generate_latest(REGISTRY) + generate_latest(scrape_time)
