"""Delivering webhooks (the controller process runs this as a scheduled job).

Fan-out: feed rows after the `webhooks` cursor become one `webhook_deliveries` row per matching
webhook, with the exact body to send, in the same transaction that moves the cursor: a crash or a
restart loses nothing and sends nothing twice from the fan-out. Sending: due deliveries are claimed
(their next attempt pushed past the send's timeout, so another worker leaves them alone), POSTed with
`X-Pvem-Event`, `X-Pvem-Delivery` and `X-Pvem-Signature: sha256=<HMAC-SHA256 of the body>`, and marked
delivered on a 2xx; anything else is retried with exponential backoff up to `webhooks.max_attempts`.
At least once: receivers de-duplicate on the body's `id`. Redirects are not followed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.config import WebhookSettings
from controller.errors import Invalid
from controller.events import kinds
from controller.events.feed import latest_seq, read_after
from controller.log import get_logger
from controller.store import Store
from controller.store.models import (
    FeedCursor,
    User,
    VirtualMachine,
    VmSnapshot,
    Webhook,
    WebhookDelivery,
    new_id,
    utcnow,
)
from controller.webhooks import targets

log = get_logger("pvem.webhooks")

CURSOR = "webhooks"
FAN_OUT_BATCH = 500
SEND_BATCH = 50
SENDERS = 4
USER_AGENT = "pvem-webhooks"


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _basic_vm(vm: VirtualMachine) -> dict[str, Any]:
    return {"id": vm.id, "vmid": vm.vmid, "name": vm.name, "node": vm.node, "owner_id": vm.owner_id,
            "status": vm.status, "power_state": vm.power_state, "sync_status": vm.sync_status,
            "last_error": vm.last_error, "generation": vm.generation, "observed_generation": vm.observed_generation}


def _basic_snapshot(snapshot: VmSnapshot) -> dict[str, Any]:
    return {"id": snapshot.id, "vm_id": snapshot.vm_id, "name": snapshot.name, "sync_status": snapshot.sync_status}


@dataclass(frozen=True)
class Render:
    """How VMs and snapshots appear in `data`; `pvem serve`/`pvem controller` pass the API's own objects."""

    vm: Callable[[VirtualMachine], dict[str, Any]] = _basic_vm
    snapshot: Callable[[VmSnapshot], dict[str, Any]] = _basic_snapshot


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff(settings: WebhookSettings, attempts: int) -> float:
    """Seconds before the next try after `attempts` failures: base, 2x base, 4x base... capped."""
    return float(min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** max(0, attempts - 1)))


def _data(session: Session, row: Any, render: Render) -> dict[str, Any]:
    payload = row.payload or {}
    vm = session.get(VirtualMachine, row.vm_id) if row.vm_id else None
    vm_data = render.vm(vm) if vm is not None else {
        "id": row.vm_id, "name": payload.get("vm_name", payload.get("name")), "vmid": payload.get("vmid"),
        "owner_id": row.owner_id}
    if row.kind == kinds.VM_DELETED:
        return {"vm": {"id": row.vm_id, "name": payload.get("name"), "vmid": payload.get("vmid"),
                       "owner_id": row.owner_id}}
    if row.kind in (kinds.SNAPSHOT_CREATED, kinds.SNAPSHOT_DELETED):
        snapshot = session.get(VmSnapshot, payload.get("snapshot_id")) if payload.get("snapshot_id") else None
        snapshot_data = render.snapshot(snapshot) if snapshot is not None and row.kind == kinds.SNAPSHOT_CREATED \
            else {"id": payload.get("snapshot_id"), "vm_id": row.vm_id, "name": payload.get("name")}
        return {"vm": vm_data, "snapshot": snapshot_data}
    data: dict[str, Any] = {"vm": vm_data}
    if row.kind == kinds.VM_DRIFT:
        data["drift"] = {"fields": payload.get("fields", {}), "actions": payload.get("actions", [])}
    return data


def fan_out(session: Session, render: Render, batch: int = FAN_OUT_BATCH) -> int:
    """Turn feed rows after the cursor into deliveries; returns how many deliveries were queued."""
    position = session.get(FeedCursor, CURSOR, with_for_update=True)
    if position is None:
        position = FeedCursor(name=CURSOR, seq=0)
        session.add(position)
    hooks = list(session.scalars(select(Webhook)))
    if not hooks:
        position.seq = max(position.seq, latest_seq(session))
        return 0
    admins = set(session.scalars(select(User.id).where(User.role == "admin")))
    rows = read_after(session, position.seq, batch)
    queued = 0
    for row in rows:
        if row.kind not in kinds.WEBHOOK_EVENTS:
            continue
        matching = [hook for hook in hooks if row.kind in hook.events and row.seq > hook.start_seq
                    and (hook.owner_id in admins or hook.owner_id == row.owner_id)]
        if not matching:
            continue
        data = _data(session, row, render)
        for hook in matching:
            delivery_id = new_id()
            body = json.dumps({"event": row.kind, "id": delivery_id, "time": _iso(row.created_at), "data": data},
                              separators=(",", ":"))
            session.add(WebhookDelivery(id=delivery_id, webhook_id=hook.id, event=row.kind, event_seq=row.seq,
                                        body=body, status="pending", attempts=0, next_attempt_at=utcnow(),
                                        created_at=utcnow()))
            queued += 1
    if rows:
        position.seq = rows[-1].seq
    return queued


@dataclass
class _Claimed:
    id: str
    url: str
    secret: str
    event: str
    body: str
    attempts: int


@dataclass
class _Result:
    ok: bool
    status: int | None
    error: str | None


class WebhookWorker:
    def __init__(self, store: Store, settings: WebhookSettings, render: Render | None = None) -> None:
        self.store = store
        self.settings = settings
        self.render = render or Render()
        self.allowed = targets.networks(settings.allowed_networks)
        self.http = requests.Session()
        self.http.headers["User-Agent"] = USER_AGENT
        self.http.trust_env = False  # no proxy from the environment: the checked address is the one used

    def run_once(self) -> int:
        """Fan out, then send what is due (each delivery at most once per run); returns how many were tried."""
        with self.store.write() as session:
            fan_out(session, self.render)
        attempted: set[str] = set()
        for _round in range(10):
            claimed = self._claim(attempted)
            if not claimed:
                break
            with ThreadPoolExecutor(max_workers=min(SENDERS, len(claimed))) as pool:
                results = list(pool.map(self._send, claimed))
            self._record(list(zip(claimed, results, strict=True)))
            attempted.update(item.id for item in claimed)
        return len(attempted)

    def close(self) -> None:
        self.http.close()

    # ---------------------------------------------------------------- internals

    def _claim(self, skip: set[str]) -> list[_Claimed]:
        now = utcnow()
        lease = timedelta(seconds=2 * self.settings.timeout_seconds + 10)
        with self.store.write() as session:
            query = (select(WebhookDelivery, Webhook).join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                     .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
                     .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.event_seq).limit(SEND_BATCH))
            if skip:
                query = query.where(WebhookDelivery.id.not_in(skip))
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True, of=WebhookDelivery)
            claimed = []
            for delivery, hook in session.execute(query):
                delivery.next_attempt_at = now + lease
                claimed.append(_Claimed(delivery.id, hook.url, hook.secret, delivery.event, delivery.body,
                                        delivery.attempts))
            return claimed

    def _send(self, item: _Claimed) -> _Result:
        try:
            target = targets.check(item.url, self.allowed)
        except Invalid as exc:
            return _Result(False, None, exc.message)
        url, headers = target.pinned()
        body = item.body.encode()
        headers.update({"Content-Type": "application/json", "X-Pvem-Event": item.event, "X-Pvem-Delivery": item.id,
                        "X-Pvem-Signature": sign(item.secret, body)})
        try:
            response = self.http.post(url, data=body, headers=headers, timeout=self.settings.timeout_seconds,
                                      allow_redirects=False)
        except requests.RequestException as exc:
            return _Result(False, None, f"{type(exc).__name__}: {exc}"[:500])
        response.close()
        if 200 <= response.status_code < 300:
            return _Result(True, response.status_code, None)
        return _Result(False, response.status_code, f"the receiver answered {response.status_code}")

    def _record(self, outcomes: list[tuple[_Claimed, _Result]]) -> None:
        now = utcnow()
        with self.store.write() as session:
            for item, result in outcomes:
                delivery = session.get(WebhookDelivery, item.id)
                if delivery is None:  # the webhook was deleted meanwhile
                    continue
                delivery.attempts += 1
                delivery.last_attempt_at = now
                delivery.response_status = result.status
                delivery.last_error = result.error
                if result.ok:
                    delivery.status, delivery.delivered_at = "delivered", now
                elif delivery.attempts >= self.settings.max_attempts:
                    delivery.status = "failed"
                    log.warning("webhook_failed", delivery_id=item.id, error=result.error, attempts=delivery.attempts)
                else:
                    delivery.next_attempt_at = now + timedelta(seconds=backoff(self.settings, delivery.attempts))
                    log.info("webhook_retry", delivery_id=item.id, error=result.error, attempts=delivery.attempts)
