"""`--wait`: poll the VM list until every watched object converged (or is gone, for deletions).

Bounded in time: the loop and every request in it end by the deadline. On a terminal the progress
is a status table redrawn in place; otherwise one line per status change ("web-1: syncing -> synced").
An object in sync_status "error" ends the wait (exit 1); the deadline passing ends it with exit 4.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from api.client.errors import CHANGES, TIMEOUT, CliError, one_line
from api.client.http import ApiClient, ApiError
from api.client.render import table

POLL_INTERVAL = 0.5


@dataclass(frozen=True)
class Watch:
    name: str
    id: str
    delete: bool = False  # wait until it is gone instead of until it converged


DONE, FAILED, PENDING = "done", "failed", "pending"


def assess(watch: Watch, vm: Mapping[str, Any] | None) -> tuple[str, str]:
    """(label shown to the user, outcome) for one object as the API answered it (None: not listed).
    An unfinished object's label carries its last error, if any ("pending (last error: ...)")."""
    if vm is None:
        return ("deleted", DONE) if watch.delete else ("gone", FAILED)
    sync = str(vm.get("sync_status") or "unknown")
    if sync == "error":
        return "error", FAILED
    if sync == "synced" and not watch.delete:
        if int(vm.get("observed_generation") or 0) >= int(vm.get("generation") or 0):
            return "synced", DONE
        sync = "pending"
    error = vm.get("last_error")
    return (f"{sync} (last error: {one_line(str(error))})" if error else sync), PENDING


class Progress:
    def __init__(self, out: TextIO, tty: bool) -> None:
        self.out, self.tty = out, tty
        self.labels: dict[str, str] = {}
        self.drawn = 0

    def update(self, watches: Sequence[Watch], labels: Mapping[str, str], elapsed: float) -> None:
        if self.tty:
            self._redraw(watches, labels, elapsed)
        else:
            for watch in watches:
                before, now = self.labels.get(watch.id), labels[watch.id]
                if before != now:
                    self.out.write(f"{watch.name}: {now}\n" if before is None else f"{watch.name}: {before} -> {now}\n")
        self.labels = dict(labels)
        self.out.flush()

    def _redraw(self, watches: Sequence[Watch], labels: Mapping[str, str], elapsed: float) -> None:
        text = table(("NAME", "STATUS"), [(watch.name, labels[watch.id]) for watch in watches])
        lines = [*text.splitlines(), f"waiting {elapsed:.0f}s"]
        if self.drawn:
            self.out.write(f"\033[{self.drawn}F\033[J")
        self.out.write("\n".join(lines) + "\n")
        self.drawn = len(lines)


def wait(client: ApiClient, watches: Sequence[Watch], timeout: float, out: TextIO, *, tty: bool,
         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
         interval: float = POLL_INTERVAL) -> None:
    """Return once every watch is done; raise CliError (exit 1 on an error, 4 on the deadline)."""
    if not watches:
        return
    start = clock()
    deadline = start + timeout
    progress = Progress(out, tty)
    last_problem: str | None = None
    labels: dict[str, str] = {watch.id: "pending" for watch in watches}
    outcomes: dict[str, str] = {watch.id: PENDING for watch in watches}
    while True:
        try:
            listed = client.call("GET", "vms", timeout=max(deadline - clock(), 0.1))
        except ApiError as exc:
            if exc.status is not None and exc.status < 500:
                raise
            last_problem = exc.message  # unreachable or 5xx for a moment: keep trying until the deadline
        else:
            last_problem = None
            by_id = {vm.get("id"): vm for vm in listed or [] if isinstance(vm, Mapping)}
            for watch in watches:
                labels[watch.id], outcomes[watch.id] = assess(watch, by_id.get(watch.id))
            progress.update(watches, labels, clock() - start)
            failed = [watch for watch in watches if outcomes[watch.id] == FAILED]
            if failed:
                raise CliError(_failure(failed, by_id), CHANGES)
            if all(outcome == DONE for outcome in outcomes.values()):
                return
        remaining = deadline - clock()
        if remaining <= 0:
            waiting = ", ".join(f"{watch.name} ({labels[watch.id]})" for watch in watches
                                if outcomes[watch.id] != DONE)
            detail = f"; last request failed: {last_problem}" if last_problem else ""
            raise CliError(f"timed out after {timeout:g}s waiting for {waiting}{detail}", TIMEOUT)
        sleep(min(interval, remaining))


def _failure(failed: Sequence[Watch], by_id: Mapping[Any, Mapping[str, Any]]) -> str:
    first = failed[0]
    vm = by_id.get(first.id)
    text = f"{first.name}: deleted while waiting" if vm is None else f"{first.name}: error: {vm.get('last_error')}"
    if len(failed) > 1:
        text += f" (and {len(failed) - 1} more failed)"
    return text
