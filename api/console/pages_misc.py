"""The dashboard, the audit timeline, the manifests page, the users page and the static files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import falcon

from api.console.base import Page, apply_security_headers

STATIC = Path(__file__).with_name("static")
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".svg": "image/svg+xml"}
SYNC_ORDER = ("synced", "pending", "syncing", "error", "deleting")
CHARTS = (("cpu_usage", "CPU %"), ("memory_usage", "Memory %"), ("disk_usage", "Disk %"),
          ("network_rx", "Network in KB/s"), ("network_tx", "Network out KB/s"))
CHART_W, CHART_H = 300, 80


def chart_points(values: list[float], fixed_max: float | None) -> str:
    """SVG polyline points for a series in a CHART_W x CHART_H box (the same maths as charts.js)."""
    if not values:
        return ""
    top = fixed_max if fixed_max is not None else max(max(values), 1.0)
    step = CHART_W / max(len(values) - 1, 1)
    return " ".join(f"{i * step:.1f},{CHART_H - min(v, top) / top * CHART_H:.1f}" for i, v in enumerate(values))


class Dashboard(Page):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        sess = self.require(req)
        now = self.call(req, sess, "GET", "/api/stats/system")
        history = self.call(req, sess, "GET", "/api/stats/system/history", query={"minutes": 60})
        vms = self.call(req, sess, "GET", "/api/vms").data or []
        samples = (history.data or [])[-120:]
        charts = []
        for key, label in CHARTS:
            values = [float(sample.get(key) or 0) for sample in samples]
            fixed = 100.0 if key.endswith("_usage") else None
            charts.append({"key": key, "label": label, "values": values, "points": chart_points(values, fixed),
                           "max": fixed, "width": CHART_W, "height": CHART_H})
        counts = Counter(vm.get("sync_status") for vm in vms)
        statuses = [(status, counts.get(status, 0)) for status in SYNC_ORDER] + \
            [(status, n) for status, n in counts.items() if status not in SYNC_ORDER]
        errors = sorted((vm for vm in vms if vm.get("last_error")), key=lambda vm: vm.get("updated_at") or "",
                        reverse=True)[:10]
        self.render(req, resp, "dashboard.html", sess, stats=now.data if now.ok else None, charts=charts,
                    statuses=statuses, errors=errors, vm_total=len(vms))


class AuditPage(Page):
    PAGE = 50

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        sess = self.require(req)
        action = (req.get_param("action") or "").strip()
        resource = (req.get_param("resource") or "").strip()
        try:
            offset = max(0, int(req.get_param("offset") or 0))
        except ValueError:
            offset = 0
        answer = self.call(req, sess, "GET", "/api/audit-logs", query={
            "action": action, "resource_id": resource, "limit": self.PAGE, "offset": offset})
        self.render(req, resp, "audit.html", sess, records=answer.data or [], action=action, resource=resource,
                    offset=offset, page=self.PAGE, load_error=None if answer.ok else answer.error)


class ManifestsPage(Page):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        sess = self.require(req)
        self.render(req, resp, "manifests.html", sess, text="", result=None, failure=None, applied=False,
                    apply_set="", prune=False)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        sess, form = self.require_write(req)
        text = str(form.get("manifest") or "")
        apply = form.get("mode") == "apply"
        apply_set = str(form.get("apply_set") or "").strip()
        prune = form.get("prune") in ("on", "true", "1")
        query: dict[str, Any] = {"dry_run": "false" if apply else "true", "apply_set": apply_set,
                                 "prune": "true" if prune else None}
        answer = self.call(req, sess, "POST", "/api/manifests", raw=text.encode(), query=query,
                           content_type="application/yaml")
        failure = None if answer.ok else answer.body if isinstance(answer.body, dict) else {"error": answer.error}
        self.render(req, resp, "manifests.html", sess, status=200 if answer.ok else answer.status, text=text,
                    result=answer.data if answer.ok else None, failure=failure, applied=apply and answer.ok,
                    apply_set=apply_set, prune=prune)


class UsersPage(Page):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        sess = self.require(req)
        if not sess.is_admin:
            self.render(req, resp, "error.html", sess, status=403, message="Only admins may see users.")
            return
        answer = self.call(req, sess, "GET", "/api/users")
        users = answer.data if answer.ok and isinstance(answer.data, list) else None
        columns: list[str] = []
        for user in users or []:
            columns += [key for key in user if key not in columns and not isinstance(user[key], dict | list)]
        self.render(req, resp, "users.html", sess, users=users, columns=columns,
                    unavailable=None if answer.ok else answer.status)


class Static:
    public = True

    def __init__(self) -> None:
        self.files = {path.name: path for path in STATIC.iterdir() if path.suffix in STATIC_TYPES}

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        path = self.files.get(name)
        if path is None:
            raise falcon.HTTPNotFound(description=f"no such file: {name}")
        resp.content_type = STATIC_TYPES[path.suffix]
        resp.data = path.read_bytes()
        resp.set_header("Cache-Control", "no-cache")
        apply_security_headers(resp)
