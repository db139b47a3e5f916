"""Periodic jobs on APScheduler: host stats sampling now, the reconcile safety net later.

Every job is `max_instances=1, coalesce=True`: a slow run is never overlapped by the next, and missed
runs collapse into one.
"""

from __future__ import annotations

from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler

from controller.log import get_logger

log = get_logger(__name__)


class Scheduler:
    def __init__(self) -> None:
        self._scheduler = BackgroundScheduler(timezone="UTC", job_defaults={
            "max_instances": 1, "coalesce": True, "misfire_grace_time": 30,
        })

    def every(self, seconds: float, job: Callable[[], object], name: str) -> None:
        def guarded() -> None:
            try:
                job()
            except Exception:  # one failed run must not kill the schedule
                log.exception("scheduled_job_failed", job=name)

        self._scheduler.add_job(guarded, "interval", seconds=seconds, id=name, name=name)

    def run_soon(self, job: Callable[[], object], name: str) -> None:
        """Run once, as soon as the scheduler starts (or now, if it runs); a second call while one is
        pending is dropped."""
        self._scheduler.add_job(job, id=name, name=name, replace_existing=True)

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self, wait: bool = True) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)
