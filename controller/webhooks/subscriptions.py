"""Webhook subscriptions: create (target checked), list, get, delete, and their deliveries; tenancy as
in REST (a user's webhooks hear about their own VMs, an admin's about all; admins see every webhook).
The secret is stored to sign deliveries and is never returned.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller import audit
from controller.actor import Actor
from controller.errors import NotFound
from controller.events.feed import latest_seq
from controller.specs import Spec
from controller.store.models import Webhook, WebhookDelivery
from controller.webhooks import targets

RESOURCE = "webhook"
EventName = Literal["vm.created", "vm.synced", "vm.error", "vm.drift", "vm.deleted", "snapshot.created",
                    "snapshot.deleted"]
MAX_DELIVERIES = 1000


class WebhookCreate(Spec):
    url: Annotated[str, StringConstraints(min_length=1, max_length=targets.MAX_URL_LENGTH)]
    events: list[EventName] = Field(min_length=1, description="The events to deliver.")
    secret: Annotated[str, StringConstraints(min_length=1, max_length=255)] = Field(
        description="Signs each delivery (X-Pvem-Signature: sha256=HMAC-SHA256(secret, body)); write-only.")


def create_webhook(session: Session, actor: Actor, spec: WebhookCreate,
                   allowed: list[targets.Network]) -> Webhook:
    targets.check(spec.url, allowed)
    assert actor.user_id is not None
    hook = Webhook(owner_id=actor.user_id, url=spec.url, events=list(dict.fromkeys(spec.events)),
                   secret=spec.secret, start_seq=latest_seq(session))
    session.add(hook)
    session.flush()
    audit.record(session, actor, "create_webhook", RESOURCE, hook.id, {"url": hook.url, "events": hook.events},
                 owner_id=hook.owner_id)
    return hook


def list_webhooks(session: Session, actor: Actor) -> list[Webhook]:
    query = select(Webhook).order_by(Webhook.created_at, Webhook.id)
    if not actor.is_admin:
        query = query.where(Webhook.owner_id == actor.user_id)
    return list(session.scalars(query))


def get_webhook(session: Session, actor: Actor, webhook_id: str) -> Webhook:
    hook = session.get(Webhook, webhook_id)
    if hook is None or not (actor.is_admin or hook.owner_id == actor.user_id):
        raise NotFound("webhook not found")
    return hook


def delete_webhook(session: Session, actor: Actor, webhook_id: str) -> None:
    hook = get_webhook(session, actor, webhook_id)
    audit.record(session, actor, "delete_webhook", RESOURCE, hook.id, {"url": hook.url}, owner_id=hook.owner_id)
    session.delete(hook)


def list_deliveries(session: Session, actor: Actor, webhook_id: str, limit: int = 100) -> list[WebhookDelivery]:
    """Newest first."""
    hook = get_webhook(session, actor, webhook_id)
    query = (select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id)
             .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.event_seq.desc()).limit(limit))
    return list(session.scalars(query))
