"""The composition root: `create_app(settings, store, ...)` wires resources, middleware and errors.

The app holds no state of its own beyond what is injected, so API processes can be replicated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon

from api import auth as api_auth
from api import console, errors, media, openapi
from api.middleware import BodyLimit, RequestContext, SecurityHeaders
from api.resources import Op
from api.resources.audit import AuditLogs
from api.resources.auth import Login, Logout, Me, Password, Register
from api.resources.cluster import ClusterReader, ClusterVms, VmImport
from api.resources.events import EventStream
from api.resources.firewall import RuleItem, VmRules
from api.resources.health import Health, ReadinessCheck, Ready
from api.resources.manifests import ManifestApply, ManifestExport
from api.resources.metrics import Metrics
from api.resources.snapshots import SnapshotCollection, SnapshotItem, SnapshotRollback
from api.resources.stats import StatsHistory, SystemStats
from api.resources.templates import TemplateCollection
from api.resources.tokens import TokenCollection, TokenItem
from api.resources.users import UserCollection, UserItem, UserQuota
from api.resources.version import Version
from api.resources.vms import VmAction, VmCollection, VmItem
from api.resources.webhooks import WebhookCollection, WebhookDeliveries, WebhookItem
from api.version import pvem_version
from controller.config import Settings
from controller.create_queue import CreateQueue
from controller.events.feed import Feed
from controller.store import Store
from controller.users import Passwords

PREFIX = "/api"


class OpenApiDocument:
    public = True
    docs = {"GET": Op("This OpenAPI 3.1 document", None, enveloped=False, errors=())}

    def __init__(self, routes: list[tuple[str, object]]) -> None:
        self.routes = routes
        self._document: dict[str, object] | None = None

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._document is None:
            self._document = openapi.build(self.routes, pvem_version())
        resp.media = self._document


def create_app(
    settings: Settings,
    store: Store,
    nudge: Callable[[str], None] | None = None,
    readiness: dict[str, ReadinessCheck] | None = None,
    passwords: Passwords | None = None,
    importer: ClusterReader | None = None,
    feed: Feed | None = None,
) -> falcon.App:
    nudge = nudge or (lambda _vm_id: None)
    passwords = passwords or Passwords(settings.auth.argon2_time_cost, settings.auth.argon2_memory_kib)
    tokens, auth_middleware, throttle = api_auth.build(settings, store)

    middleware: list[Any] = [RequestContext(), SecurityHeaders(), BodyLimit(settings.server.max_body_bytes),
                             auth_middleware]
    app = falcon.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    errors.install(app)
    media.install(app)

    routes: list[tuple[str, object]] = [
        ("/auth/register", Register(store, tokens, passwords, settings.auth.allow_registration,
                                    settings.auth.default_quota.model_dump())),
        ("/auth/login", Login(store, tokens, passwords, throttle, settings.jwt_key())),
        ("/auth/me", Me(store)),
        ("/auth/logout", Logout(store)),
        ("/auth/password", Password(store, tokens, passwords)),
        ("/tokens", TokenCollection(store)),
        ("/tokens/{token_id}", TokenItem(store)),
        ("/users", UserCollection(store)),
        ("/users/{user_id}", UserItem(store)),
        ("/users/{user_id}/quota", UserQuota(store)),
        ("/vms", VmCollection(store, CreateQueue(store, (settings.proxmox.vmid_min, settings.proxmox.vmid_max),
                                                 settings.proxmox.default_node, settings.controller.reboot_policy),
                              nudge)),
        ("/vms/import", VmImport(store, importer, nudge)),
        ("/cluster/vms", ClusterVms(importer)),
        ("/version", Version()),
        ("/vms/{vm_id}", VmItem(store, nudge)),
        ("/vms/{vm_id}/action", VmAction(store, nudge)),
        ("/vms/{vm_id}/snapshots", SnapshotCollection(store, nudge)),
        ("/vms/{vm_id}/snapshots/{snapshot_id}", SnapshotItem(store, nudge)),
        ("/vms/{vm_id}/snapshots/{snapshot_id}/rollback", SnapshotRollback(store, nudge)),
        ("/vms/{vm_id}/firewall", VmRules(store, nudge)),
        ("/firewall/{rule_id}", RuleItem(store, nudge)),
        ("/manifests", ManifestApply(store, settings.proxmox, settings.manifests, nudge,
                                     settings.controller.reboot_policy)),
        ("/manifests/export", ManifestExport(store)),
        ("/templates", TemplateCollection(store)),
        ("/stats/system", SystemStats(store)),
        ("/stats/system/history", StatsHistory(store)),
        ("/audit-logs", AuditLogs(store)),
        ("/health", Health()),
        ("/health/ready", Ready(store, readiness)),
        ("/events", EventStream(store, feed or Feed(store, settings.events.poll_seconds), settings.events,
                                settings.server.threads)),
        ("/webhooks", WebhookCollection(store, settings.webhooks)),
        ("/webhooks/{webhook_id}", WebhookItem(store)),
        ("/webhooks/{webhook_id}/deliveries", WebhookDeliveries(store)),
    ]
    routes = [(PREFIX + path, resource) for path, resource in routes]
    routes.append(("/metrics", Metrics(store)))
    routes.append((PREFIX + "/openapi.json", OpenApiDocument(routes)))
    for path, resource in routes:
        app.add_route(path, resource)
    console.install(app, settings)  # the web console at `/` (outside /api, not in the OpenAPI document)
    return app


def create_status_app(settings: Settings, store: Store, readiness: dict[str, ReadinessCheck]) -> falcon.App:
    """What `pvem controller` serves on `controller.metrics_port`: `/metrics`, `/api/health` and
    `/api/health/ready` (its role among the checks; details for an admin's token), nothing else."""
    _tokens, auth_middleware, _throttle = api_auth.build(settings, store)
    middleware: list[Any] = [RequestContext(), SecurityHeaders(), auth_middleware]
    app = falcon.App(middleware=middleware)
    errors.install(app)
    media.install(app)
    app.add_route("/metrics", Metrics(store))
    app.add_route(PREFIX + "/health", Health())
    app.add_route(PREFIX + "/health/ready", Ready(store, readiness))
    return app
