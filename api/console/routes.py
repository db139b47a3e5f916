"""The console's URL map: pages, the form posts behind their buttons, static files."""

from __future__ import annotations

import falcon

from api.console import pages_auth, pages_misc, pages_vms
from api.console.base import Refused, make_env, refused_handler
from api.console.internal import InternalApi
from controller.config import Settings


def add_routes(app: falcon.App, settings: Settings) -> None:
    api, env = InternalApi(app), make_env()
    context = {"allow_registration": settings.auth.allow_registration,
               "session_max_age": settings.auth.token_ttl_minutes * 60,
               "default_node": settings.proxmox.default_node or ""}
    args = (api, env, context)
    pages: list[tuple[str, object]] = [
        ("/", pages_misc.Dashboard(*args)),
        ("/login", pages_auth.LoginPage(*args)),
        ("/register", pages_auth.RegisterPage(*args)),
        ("/logout", pages_auth.Logout(*args)),
        ("/vms", pages_vms.VmsPage(*args)),
        ("/vms/new", pages_vms.NewVmPage(*args)),
        ("/vms/{vm_id}", pages_vms.VmPage(*args)),
        ("/vms/{vm_id}/action", pages_vms.VmAction(*args)),
        ("/vms/{vm_id}/delete", pages_vms.VmDelete(*args)),
        ("/vms/{vm_id}/snapshots", pages_vms.SnapshotCreate(*args)),
        ("/vms/{vm_id}/snapshots/{snapshot_id}/delete", pages_vms.ButtonPost(
            *args, method="DELETE", api_path="/api/vms/{vm_id}/snapshots/{snapshot_id}", anchor="snapshots",
            notice="Snapshot deletion requested")),
        ("/vms/{vm_id}/snapshots/{snapshot_id}/rollback", pages_vms.ButtonPost(
            *args, method="POST", api_path="/api/vms/{vm_id}/snapshots/{snapshot_id}/rollback", anchor="snapshots",
            notice="Rollback requested")),
        ("/vms/{vm_id}/firewall", pages_vms.RuleCreate(*args)),
        ("/vms/{vm_id}/firewall/{rule_id}", pages_vms.RuleEdit(*args)),
        ("/vms/{vm_id}/firewall/{rule_id}/delete", pages_vms.ButtonPost(
            *args, method="DELETE", api_path="/api/firewall/{rule_id}", anchor="firewall",
            notice="Firewall rule deleted")),
        ("/vms/{vm_id}/firewall/{rule_id}/move", pages_vms.RuleMove(*args)),
        ("/audit", pages_misc.AuditPage(*args)),
        ("/manifests", pages_misc.ManifestsPage(*args)),
        ("/users", pages_misc.UsersPage(*args)),
        ("/static/{name}", pages_misc.Static()),
    ]
    for path, resource in pages:
        app.add_route(path, resource)
    app.add_error_handler(Refused, refused_handler(env))
