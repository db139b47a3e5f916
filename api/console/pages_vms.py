"""The VMs table, the New VM form, a VM's page and the form posts behind their buttons."""

from __future__ import annotations

from typing import Any

import falcon

from api.console.base import Page, local_path, with_message

NUMBER_FIELDS = {"cpu_cores": "CPU cores", "memory_mb": "Memory (MB)", "disk_gb": "Disk (GB)"}


def vm_create_body(form: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The POST /api/vms body from the form; optional fields (template, cloud-init) only when filled."""
    body: dict[str, Any] = {"name": str(form.get("name") or "").strip()}
    errors: dict[str, str] = {}
    node = str(form.get("node") or "").strip()
    if node:
        body["node"] = node
    for key in NUMBER_FIELDS:
        raw = str(form.get(key) or "").strip()
        if not raw:
            continue
        try:
            body[key] = int(raw)
        except ValueError:
            errors[key] = "must be a whole number"
    if form.get("start") in ("on", "true", "1"):
        body["power_state"] = "running"
    template = str(form.get("template") or "").strip()
    if template:
        body["template"] = int(template) if template.isdigit() else template  # a vmid, or a name
    cloud_init: dict[str, Any] = {}
    ci_user = str(form.get("ci_user") or "").strip()
    if ci_user:
        cloud_init["user"] = ci_user
    keys = [line.strip() for line in str(form.get("ssh_keys") or "").splitlines() if line.strip()]
    if keys:
        cloud_init["ssh_keys"] = keys
    if cloud_init:
        body["cloud_init"] = cloud_init
    return body, errors


def field_errors(answer_details: list[dict[str, Any]], field: str | None, message: str) -> dict[str, str]:
    """{form field: message}, nested API fields (cloud_init.user) mapped to their top-level input."""
    errors: dict[str, str] = {}
    for problem in answer_details or [{"field": field or "form", "message": message}]:
        name = str(problem.get("field") or "form")
        key = name.split(".")[0]
        if key == "cloud_init":
            key = "ssh_keys" if name.startswith("cloud_init.ssh_keys") else "ci_user"
        errors.setdefault(key, str(problem.get("message") or message))
    return errors


def create_choices(page: Page, req: falcon.Request, sess: Any) -> dict[str, Any]:
    """Suggestions for the New VM form: the cluster's nodes (from the stats sample) and its templates
    (GET /api/templates, when this server has it)."""
    stats = page.call(req, sess, "GET", "/api/stats/system")
    nodes = [str(node.get("node")) for node in ((stats.data or {}).get("nodes") or []) if node.get("node")] \
        if stats.ok else []
    templates = page.call(req, sess, "GET", "/api/templates")
    names = [str(item.get("name") or item.get("vmid")) for item in templates.data or [] if isinstance(item, dict)] \
        if templates.ok and isinstance(templates.data, list) else []
    return {"nodes": nodes, "templates": names}


class VmsPage(Page):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        sess = self.require(req)
        answer = self.call(req, sess, "GET", "/api/vms")
        self.render(req, resp, "vms.html", sess, vms=answer.data or [], load_error=None if answer.ok else answer.error)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        sess, form = self.require_write(req)
        body, errors = vm_create_body(form)
        if not errors:
            answer = self.call(req, sess, "POST", "/api/vms", body=body)
            if answer.ok:
                self.redirect(resp, with_message("/vms", notice=f"Virtual machine {body['name']} created"))
                return
            errors = field_errors(answer.details, answer.field, answer.error)
            if answer.status != 400:
                errors = {"name" if answer.status == 409 else "form": answer.error}
        self.render(req, resp, "vm_new.html", sess, status=400, values=form, errors=errors,
                    **create_choices(self, req, sess))


class NewVmPage(Page):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        sess = self.require(req)
        defaults = {"cpu_cores": 1, "memory_mb": 512, "disk_gb": 10, "start": "on"}
        self.render(req, resp, "vm_new.html", sess, values=defaults, errors={}, **create_choices(self, req, sess))


class VmPage(Page):
    def on_get(self, req: falcon.Request, resp: falcon.Response, vm_id: str) -> None:
        sess = self.require(req)
        vm = self.call(req, sess, "GET", f"/api/vms/{vm_id}")
        if not vm.ok:
            self.render(req, resp, "error.html", sess, status=vm.status, message=vm.error)
            return
        snapshots = self.call(req, sess, "GET", f"/api/vms/{vm_id}/snapshots")
        rules = self.call(req, sess, "GET", f"/api/vms/{vm_id}/firewall")
        audit = self.call(req, sess, "GET", "/api/audit-logs", query={"resource_id": vm_id, "limit": 50})
        snapshot_ids = [item["id"] for item in snapshots.data or []]
        rule_ids = [item["id"] for item in rules.data or []]
        related: list[dict[str, Any]] = []
        for child in snapshot_ids + rule_ids:  # records about the VM's snapshots and rules too
            found = self.call(req, sess, "GET", "/api/audit-logs", query={"resource_id": child, "limit": 20})
            related.extend(found.data or [])
        records = sorted((audit.data or []) + related, key=lambda r: r.get("created_at") or "", reverse=True)
        self.render(req, resp, "vm.html", sess, vm=vm.data, snapshots=snapshots.data or [],
                    rules=rules.data or [], records=records[:100])


class VmAction(Page):
    def on_post(self, req: falcon.Request, resp: falcon.Response, vm_id: str) -> None:
        sess, form = self.require_write(req)
        action = str(form.get("action") or "")
        answer = self.call(req, sess, "POST", f"/api/vms/{vm_id}/action", body={"action": action})
        self.back(req, resp, form, answer, "/vms", f"Action {action} accepted")


class VmDelete(Page):
    def on_get(self, req: falcon.Request, resp: falcon.Response, vm_id: str) -> None:
        sess = self.require(req)
        vm = self.call(req, sess, "GET", f"/api/vms/{vm_id}")
        if not vm.ok:
            self.render(req, resp, "error.html", sess, status=vm.status, message=vm.error)
            return
        self.render(req, resp, "confirm_delete.html", sess, vm=vm.data, next=local_path(req.get_param("next"), "/vms"))

    def on_post(self, req: falcon.Request, resp: falcon.Response, vm_id: str) -> None:
        sess, form = self.require_write(req)
        if form.get("confirm") != "yes":  # without JavaScript's confirm(), ask on a page of its own
            self.redirect(resp, f"/vms/{vm_id}/delete?next={local_path(form.get('next'), '/vms')}")
            return
        answer = self.call(req, sess, "DELETE", f"/api/vms/{vm_id}")
        target = local_path(form.get("next"), "/vms")
        if target.startswith(f"/vms/{vm_id}"):
            target = "/vms"
        self.back(req, resp, {"next": target}, answer, "/vms", "Deletion requested")


class SnapshotCreate(Page):
    def on_post(self, req: falcon.Request, resp: falcon.Response, vm_id: str) -> None:
        sess, form = self.require_write(req)
        body = {"name": str(form.get("name") or "").strip()}
        if str(form.get("description") or "").strip():
            body["description"] = str(form["description"]).strip()
        answer = self.call(req, sess, "POST", f"/api/vms/{vm_id}/snapshots", body=body)
        self.back(req, resp, {"next": f"/vms/{vm_id}#snapshots"}, answer, "/vms", "Snapshot requested")


def rule_body(form: dict[str, Any], partial: bool) -> dict[str, Any]:
    """A rule's JSON from the form: empty optional fields are null on edit, left out on create."""
    body: dict[str, Any] = {}
    for key in ("direction", "action"):
        if form.get(key):
            body[key] = str(form[key])
    for key in ("protocol", "source", "destination", "comment"):
        value = str(form.get(key) or "").strip()
        if value:
            body[key] = value
        elif partial:
            body[key] = None
    port = str(form.get("port") or "").strip()
    if port:
        body["port"] = int(port) if port.isdigit() else port
    elif partial:
        body["port"] = None
    body["enabled"] = form.get("enabled") in ("on", "true", "1", "yes")
    return body


class RuleCreate(Page):
    def on_post(self, req: falcon.Request, resp: falcon.Response, vm_id: str) -> None:
        sess, form = self.require_write(req)
        answer = self.call(req, sess, "POST", f"/api/vms/{vm_id}/firewall", body=rule_body(form, partial=False))
        self.back(req, resp, {"next": f"/vms/{vm_id}#firewall"}, answer, "/vms", "Firewall rule added")


class RuleEdit(Page):
    def on_post(self, req: falcon.Request, resp: falcon.Response, vm_id: str, rule_id: str) -> None:
        sess, form = self.require_write(req)
        answer = self.call(req, sess, "PUT", f"/api/firewall/{rule_id}", body=rule_body(form, partial=True))
        self.back(req, resp, {"next": f"/vms/{vm_id}#firewall"}, answer, "/vms", "Firewall rule saved")


class RuleMove(Page):
    def on_post(self, req: falcon.Request, resp: falcon.Response, vm_id: str, rule_id: str) -> None:
        sess, form = self.require_write(req)
        try:
            position = max(0, int(str(form.get("position"))))
        except ValueError:
            position = 0
        answer = self.call(req, sess, "PUT", f"/api/firewall/{rule_id}", body={"position": position})
        self.back(req, resp, {"next": f"/vms/{vm_id}#firewall"}, answer, "/vms", "Firewall rule moved")


class ButtonPost(Page):
    """A button with no fields (delete a snapshot or rule, roll back): one API call, then back to the
    VM's page at `anchor` with `notice`. `api_path` is formatted with the route's parameters."""

    def __init__(self, *args: Any, method: str, api_path: str, anchor: str, notice: str) -> None:
        super().__init__(*args)
        self.method, self.api_path, self.anchor, self.notice = method, api_path, anchor, notice

    def on_post(self, req: falcon.Request, resp: falcon.Response, vm_id: str, **params: str) -> None:
        sess, _form = self.require_write(req)
        answer = self.call(req, sess, self.method, self.api_path.format(vm_id=vm_id, **params))
        self.back(req, resp, {"next": f"/vms/{vm_id}#{self.anchor}"}, answer, "/vms", self.notice)
