"""Manifest documents (`apiVersion: pvem/v1`): their models and validation into `VmManifest`s.

The spec models are the REST API's own (`VmSettable`, `SnapshotCreate`, `RuleSpec`, `Labels`), so a
manifest accepts exactly what the API accepts. Validation looks at every document before failing
and reports each problem with its document index and field path (`spec.firewall[1].port`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from controller.errors import Invalid
from controller.firewall_specs import RuleSpec
from controller.manifests.loader import RawDocument
from controller.specs import (
    Labels,
    SnapshotCreate,
    Spec,
    VmName,
    VmSettable,
    check_vm_name,
    error_messages,
)

API_VERSION = "pvem/v1"
KINDS = ("VirtualMachine",)
MAX_SNAPSHOTS = 100
MAX_RULES = 500


class ManifestMetadata(Spec):
    name: VmName = Field(description="The VM's name: its key, unique per owner.")
    labels: Labels | None = Field(None, description="Free-form key/value labels; omitted: left as they are.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_vm_name(value)


class VmManifestSpec(VmSettable):
    """Omitted fields are not managed by the manifest: a new VM gets the API's defaults, an existing
    one keeps its value. `snapshots` and `firewall`, when present (even empty), are the full set."""

    snapshots: list[SnapshotCreate] | None = Field(None, max_length=MAX_SNAPSHOTS)
    firewall: list[RuleSpec] | None = Field(None, max_length=MAX_RULES)

    @field_validator("snapshots")
    @classmethod
    def _unique_snapshots(cls, value: list[SnapshotCreate] | None) -> list[SnapshotCreate] | None:
        seen: set[str] = set()
        for snapshot in value or ():
            if snapshot.name in seen:
                raise ValueError(f"snapshot {snapshot.name!r} is listed twice")
            seen.add(snapshot.name)
        return value


class VmManifestDocument(Spec):
    """One document of kind VirtualMachine."""

    apiVersion: Literal["pvem/v1"]  # the manifest's own key, camelCase as in Kubernetes
    kind: Literal["VirtualMachine"]
    metadata: ManifestMetadata
    spec: VmManifestSpec = Field(default_factory=VmManifestSpec)


@dataclass(frozen=True)
class VmManifest:
    document: int  # index of the document in the request
    name: str
    labels: dict[str, str] | None
    spec: VmManifestSpec


@dataclass(frozen=True)
class Problem:
    document: int
    field: str
    message: str
    name: str | None = None

    def describe(self) -> str:
        where = f"document {self.document}" + (f" ({self.name})" if self.name else "")
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"document": self.document, "field": self.field, "message": self.message}


class ManifestInvalid(Invalid):
    """400: names the first problem in the message, all of them in `details`."""

    def __init__(self, problems: list[Problem]) -> None:
        first = problems[0]
        super().__init__(first.describe())
        # `field` here is the path inside document `document` (the message already names both)
        self.extra = {"document": first.document, "field": first.field,
                      "details": [problem.as_dict() for problem in problems]}


def field_path(loc: tuple[str | int, ...]) -> str:
    """("spec", "firewall", 1, "port") -> "spec.firewall[1].port"."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _header_problem(index: int, data: dict[str, Any], name: str | None) -> Problem | None:
    version, kind = data.get("apiVersion"), data.get("kind")
    if version is None:
        return Problem(index, "apiVersion", f"field required (expected {API_VERSION})", name)
    if version != API_VERSION:
        return Problem(index, "apiVersion", f"unsupported apiVersion {version!r}; expected {API_VERSION}", name)
    if kind is None:
        return Problem(index, "kind", f"field required (one of: {', '.join(KINDS)})", name)
    if kind not in KINDS:
        return Problem(index, "kind", f"unknown kind {kind!r}; {API_VERSION} has {', '.join(KINDS)}", name)
    return None


def _name_of(data: dict[str, Any]) -> str | None:
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) else None


def validate_documents(documents: list[RawDocument]) -> list[VmManifest]:
    """Every document checked; raises ManifestInvalid listing all problems, or returns the manifests."""
    problems: list[Problem] = []
    manifests: list[VmManifest] = []
    if not documents:
        raise Invalid("the manifest has no documents")
    for raw in documents:
        if not isinstance(raw.data, dict):
            problems.append(Problem(raw.index, "", f"a document must be a mapping, not {_kind_of(raw.data)}"))
            continue
        name = _name_of(raw.data)
        header = _header_problem(raw.index, raw.data, name)
        if header is not None:
            problems.append(header)
            continue
        try:
            document = VmManifestDocument.model_validate(raw.data)
        except ValidationError as exc:
            problems += [Problem(raw.index, field_path(loc), message, name) for loc, message in error_messages(exc)]
            continue
        manifests.append(VmManifest(raw.index, document.metadata.name, document.metadata.labels, document.spec))
    first_seen: dict[str, int] = {}
    for manifest in manifests:
        if manifest.name in first_seen:
            problems.append(Problem(manifest.document, "metadata.name",
                                    f"duplicate name {manifest.name!r}: document {first_seen[manifest.name]} "
                                    "already declares it", manifest.name))
        first_seen.setdefault(manifest.name, manifest.document)
    if problems:
        raise ManifestInvalid(sorted(problems, key=lambda problem: problem.document))
    return manifests


def _kind_of(value: Any) -> str:
    kinds = {list: "a list", str: "a string", type(None): "null", bool: "a boolean", int: "a number", float: "a number"}
    return kinds.get(type(value), type(value).__name__)
