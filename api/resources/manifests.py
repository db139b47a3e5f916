"""`/api/manifests` (server-side apply, dry run, prune) and `/api/manifests/export`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon
from pydantic import BaseModel, Field, RootModel

from api.errors import ApiError
from api.resources import Op
from api.schemas import Envelope, envelope
from api.validation import label_selector_param
from controller.config import ManifestSettings, ProxmoxSettings
from controller.manifests import loader
from controller.manifests.apply import ApplyOptions, apply_manifests, check_apply_set
from controller.manifests.export import export_documents, to_yaml
from controller.manifests.model import VmManifestDocument, validate_documents
from controller.store import Store

Nudge = Callable[[str], None]
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
MEDIA_YAML = "application/yaml"


class ChangeOut(BaseModel):
    field: str = Field(description="Field path, e.g. spec.cpu_cores, spec.firewall[1].port, "
                                   "spec.snapshots[baseline], metadata.labels")
    old: Any
    new: Any
    impact: str = Field(description="none | live | reboot | stop | destructive: what the change does to the guest")


class PlannedOut(BaseModel):
    kind: str
    name: str
    action: str = Field(description="create | update | delete | unchanged")
    document: int | None = Field(description="Index of the document in the request (null for pruned VMs)")
    id: str | None = Field(description="The VM's id (null for a create in a dry run)")
    vmid: int | None
    impact: str = Field(description="The worst impact among the object's changes")
    changes: list[ChangeOut]


class ManifestItems(BaseModel):
    items: list[VmManifestDocument]


class ManifestBody(RootModel[VmManifestDocument | list[VmManifestDocument] | ManifestItems]):
    """A JSON body: one document, a list of documents, or {"items": [...]} (YAML: a stream of documents)."""


_FLAG = {"type": "boolean"}


class ApplyOut(BaseModel):
    dry_run: bool
    apply_set: str | None
    prune: bool
    adopt: bool
    warnings: list[str] = Field(description="e.g. VMs listed that exist outside the apply set (see adopt)")
    changed: bool = Field(description="Whether anything was (or, in a dry run, would be) changed")
    summary: dict[str, int] = Field(description="Objects per action (create, update, delete, unchanged) and per "
                                               "impact (none, live, reboot, stop, destructive)")
    objects: list[PlannedOut]


def _flag(req: falcon.Request, name: str) -> bool:
    raw = req.get_param(name)
    if raw is None or raw == "":
        return False
    value = raw.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise ApiError(400, f"{name}: must be true or false", field=name)


def _media(req: falcon.Request) -> str:
    media_type = (req.content_type or "").split(";", 1)[0].strip().lower()
    # No type, text/plain, or curl's default form type (`curl --data-binary @web.yaml`): read as YAML.
    if media_type in (*YAML_TYPES, "", "text/plain", "application/x-www-form-urlencoded") or \
            media_type.endswith("+yaml"):
        return "yaml"
    if media_type == falcon.MEDIA_JSON or media_type.endswith("+json"):
        return "json"
    raise ApiError(415, f"unsupported media type {req.content_type!r}; send application/yaml or application/json")


def _read_text(req: falcon.Request) -> str:
    if not req.content_length:
        raise ApiError(400, "request body is empty; expected manifest documents")
    raw = req.bounded_stream.read()
    try:
        return str(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ApiError(400, "request body is not UTF-8 text") from None


def limits_of(settings: ManifestSettings) -> loader.Limits:
    return loader.Limits(max_documents=settings.max_documents, max_depth=settings.max_depth,
                         max_aliases=settings.max_aliases, max_nodes=settings.max_nodes)


class ManifestApply:
    docs = {"POST": Op(
        "Server-side apply of manifest documents (application/yaml, or JSON: a document, a list of documents "
        "or {\"items\": [...]}). One transaction: any invalid document and nothing is applied.",
        Envelope[ApplyOut], ManifestBody, errors=(400, 401, 409, 413, 415),
        query={"dry_run": "true: write nothing, answer the plan",
               "apply_set": "name of the apply set: VMs created by this apply are recorded as its members",
               "prune": "true (needs apply_set): delete the set's VMs no longer in the manifest",
               "adopt": "true (needs apply_set): listed VMs outside the apply set become its members"},
        query_schemas={"dry_run": _FLAG, "prune": _FLAG, "adopt": _FLAG},
        request_types=(MEDIA_YAML, falcon.MEDIA_JSON))}

    def __init__(self, store: Store, proxmox: ProxmoxSettings, manifests: ManifestSettings, nudge: Nudge,
                 reboot_policy: str = "never") -> None:
        self.store, self.proxmox, self.nudge = store, proxmox, nudge
        self.reboot_policy = reboot_policy
        self.limits = limits_of(manifests)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        dry_run, prune, adopt = _flag(req, "dry_run"), _flag(req, "prune"), _flag(req, "adopt")
        apply_set = check_apply_set(req.get_param("apply_set") or None, prune)
        if adopt and apply_set is None:
            raise ApiError(400, "adopt: needs an apply_set (the set the VMs are to join)", field="adopt")
        media = _media(req)
        try:
            documents = loader.load(_read_text(req), media, self.limits)
        except loader.ManifestSyntaxError as exc:
            location: dict[str, Any] = {key: value for key, value in (
                ("document", exc.document), ("line", exc.line), ("column", exc.column)) if value is not None}
            raise ApiError(400, str(exc), None, **location) from None
        manifests = validate_documents(documents)
        options = ApplyOptions(apply_set=apply_set, prune=prune, dry_run=dry_run,
                               vmid_range=(self.proxmox.vmid_min, self.proxmox.vmid_max),
                               default_node=self.proxmox.default_node, adopt=adopt,
                               reboot_policy_default=self.reboot_policy)
        session_scope = self.store.read() if dry_run else self.store.write()
        with session_scope as session:
            result = apply_manifests(session, req.context.actor, manifests, options)
            resp.media = envelope(result.as_dict(), result.message())
        for vm_id in result.changed_vm_ids:
            self.nudge(vm_id)


class ManifestExport:
    docs = {"GET": Op(
        "The caller's VMs as manifest documents: YAML by default, JSON (an envelope around the list) with "
        "format=json or an Accept header preferring JSON. Applying the export changes nothing.",
        Envelope[list[VmManifestDocument]], errors=(400, 401),
        query={"format": "yaml (default) or json", "apply_set": "only VMs created by this apply set",
               "label_selector": "k=v[,k2=v2...]: only VMs carrying every one of these labels",
               "name": "only the VM with this name"},
        query_schemas={"format": {"type": "string", "enum": ["yaml", "json"]}},
        response_types=(falcon.MEDIA_JSON, MEDIA_YAML))}

    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        as_json = _wants_json(req)
        selector = label_selector_param(req)
        with self.store.read() as session:
            # An empty value (`?apply_set=`) filters nothing, as if it were absent.
            documents = export_documents(session, req.context.actor.user_id,
                                         apply_set=req.get_param("apply_set") or None,
                                         labels=selector, name=req.get_param("name") or None)
        if as_json:
            resp.media = envelope(documents, f"{len(documents)} manifest document(s)")
            return
        resp.content_type = MEDIA_YAML
        # Zero documents is an empty YAML stream; say so in a comment rather than answer an empty body.
        resp.text = to_yaml(documents) if documents else "# no virtual machines matched: no manifest documents\n"


def _wants_json(req: falcon.Request) -> bool:
    fmt = (req.get_param("format") or "").strip().lower()
    if fmt:
        if fmt not in ("yaml", "json"):
            raise ApiError(400, "format: must be yaml or json", field="format")
        return fmt == "json"
    accept = (req.get_header("Accept") or "").lower()
    return "json" in accept and "yaml" not in accept
