"""`/api/webhooks[/{id}[/deliveries]]`: webhook subscriptions and their delivery records.

The secret is write-only: accepted on create, never answered.
"""

from __future__ import annotations

from typing import Any

import falcon
from pydantic import BaseModel, Field

from api.resources import Op
from api.schemas import DeletedOut, Envelope, envelope, timestamp
from api.validation import int_param, parse_body
from controller.config import WebhookSettings
from controller.store import Store
from controller.store.models import Webhook, WebhookDelivery
from controller.webhooks import subscriptions, targets
from controller.webhooks.subscriptions import WebhookCreate


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[str]
    owner_id: str
    created_at: str


class DeliveryOut(BaseModel):
    id: str = Field(description="Also the `id` in the delivered body (receivers de-duplicate on it).")
    webhook_id: str
    event: str
    status: str = Field(description="pending, delivered or failed (gave up after webhooks.max_attempts).")
    attempts: int
    response_status: int | None
    last_error: str | None
    created_at: str
    last_attempt_at: str | None
    next_attempt_at: str | None
    delivered_at: str | None


def webhook_dict(hook: Webhook) -> dict[str, Any]:
    return {"id": hook.id, "url": hook.url, "events": list(hook.events), "owner_id": hook.owner_id,
            "created_at": timestamp(hook.created_at)}


def delivery_dict(delivery: WebhookDelivery) -> dict[str, Any]:
    return {"id": delivery.id, "webhook_id": delivery.webhook_id, "event": delivery.event,
            "status": delivery.status, "attempts": delivery.attempts, "response_status": delivery.response_status,
            "last_error": delivery.last_error, "created_at": timestamp(delivery.created_at),
            "last_attempt_at": timestamp(delivery.last_attempt_at),
            "next_attempt_at": timestamp(delivery.next_attempt_at) if delivery.status == "pending" else None,
            "delivered_at": timestamp(delivery.delivered_at)}


class WebhookCollection:
    docs = {
        "GET": Op("The caller's webhooks (admins: all)", Envelope[list[WebhookOut]]),
        "POST": Op("Subscribe a URL to events (users: their VMs; admins: all VMs)", Envelope[WebhookOut],
                   WebhookCreate, status=201, errors=(400, 401)),
    }

    def __init__(self, store: Store, settings: WebhookSettings) -> None:
        self.store = store
        self.allowed = targets.networks(settings.allowed_networks)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.store.read() as session:
            resp.media = envelope([webhook_dict(hook)
                                   for hook in subscriptions.list_webhooks(session, req.context.actor)])

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        spec = parse_body(req, WebhookCreate)
        with self.store.write() as session:
            hook = subscriptions.create_webhook(session, req.context.actor, spec, self.allowed)
            resp.media = envelope(webhook_dict(hook), "Webhook created successfully")
        resp.status = falcon.HTTP_201


class WebhookItem:
    docs = {
        "GET": Op("One webhook", Envelope[WebhookOut]),
        "DELETE": Op("Delete a webhook (pending deliveries go with it)", Envelope[DeletedOut]),
    }

    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response, webhook_id: str) -> None:
        with self.store.read() as session:
            resp.media = envelope(webhook_dict(subscriptions.get_webhook(session, req.context.actor, webhook_id)))

    def on_delete(self, req: falcon.Request, resp: falcon.Response, webhook_id: str) -> None:
        with self.store.write() as session:
            subscriptions.delete_webhook(session, req.context.actor, webhook_id)
        resp.media = envelope({"deleted": True}, "Webhook deleted successfully")


class WebhookDeliveries:
    docs = {"GET": Op("A webhook's deliveries, newest first", Envelope[list[DeliveryOut]],
                      query={"limit": f"At most this many (1..{subscriptions.MAX_DELIVERIES}, default 100)."})}

    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response, webhook_id: str) -> None:
        limit = int_param(req, "limit", 100, 1, subscriptions.MAX_DELIVERIES)
        with self.store.read() as session:
            found = subscriptions.list_deliveries(session, req.context.actor, webhook_id, limit)
            resp.media = envelope([delivery_dict(item) for item in found])
