"""Everything the client prints: the apply plan, tables, `describe`, JSON/YAML, and when to use colour."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import yaml

SIGNS = {"create": "+", "update": "~", "delete": "-", "unchanged": "="}
COLOURS = {"create": "32", "update": "33", "delete": "31", "unchanged": "2"}  # green, yellow, red, dim
_PLAIN = re.compile(r"^[A-Za-z0-9_./:@+-]+$")


def colour_enabled(stream: TextIO, env: Mapping[str, str] | None = None) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set."""
    env = os.environ if env is None else env
    return "NO_COLOR" not in env and stream.isatty()


def paint(text: str, code: str | None, colour: bool) -> str:
    return f"\033[{code}m{text}\033[0m" if colour and code else text


def value(item: Any) -> str:
    """A compact, YAML-flow-like rendering: `2048`, `running`, `{port: 22, source: 10.0.0.0/8}`."""
    if item is None:
        return "null"
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, str):
        return item if _PLAIN.match(item) and item not in ("null", "true", "false") else json.dumps(item)
    if isinstance(item, Mapping):
        return "{" + ", ".join(f"{key}: {value(inner)}" for key, inner in item.items()) + "}"
    if isinstance(item, Sequence):
        return "[" + ", ".join(value(inner) for inner in item) + "]"
    return str(item)


# What each impact means for the guest, as shown beside a change and its object.
IMPACT_LABELS = {"none": "no guest impact", "live": "live", "reboot": "needs reboot", "stop": "stops the guest",
                 "destructive": "destroys data"}


def impact_note(impact: Any) -> str:
    label = IMPACT_LABELS.get(str(impact)) if impact else None
    return f"  ({label})" if label else ""


def change_line(change: Mapping[str, Any], action: str) -> str:
    field, old, new = change.get("field", "?"), change.get("old"), change.get("new")
    note = impact_note(change.get("impact")) if action != "create" else ""
    if action == "create" and old is None:
        return f"    {field}: {value(new)}"
    before = "(none)" if old is None else value(old)
    after = "(none)" if new is None else value(new)
    return f"    {field}: {before} -> {after}{note}"


def summary(plan: Mapping[str, Any]) -> dict[str, int]:
    counts = {"create": 0, "update": 0, "delete": 0, "unchanged": 0}
    given = plan.get("summary")
    if isinstance(given, Mapping):
        counts.update({key: int(given.get(key) or 0) for key in counts})
    else:
        for obj in plan.get("objects") or []:
            if obj.get("action") in counts:
                counts[obj["action"]] += 1
    return counts


def has_changes(plan: Mapping[str, Any]) -> bool:
    counts = summary(plan)
    return bool(counts["create"] or counts["update"] or counts["delete"])


def summary_line(plan: Mapping[str, Any]) -> str:
    counts = summary(plan)
    if not has_changes(plan):
        return f"No changes: {counts['unchanged']} unchanged"
    given = plan.get("summary") if isinstance(plan.get("summary"), Mapping) else {}
    impacts = ", ".join(f"{given[key]} {IMPACT_LABELS[key]}" for key in ("reboot", "stop", "destructive")
                        if isinstance(given, Mapping) and int(given.get(key) or 0))
    tail = f" ({impacts})" if impacts else ""
    if plan.get("dry_run"):
        return (f"Plan: {counts['create']} to create, {counts['update']} to update, {counts['delete']} to delete, "
                f"{counts['unchanged']} unchanged{tail}")
    return (f"Applied: {counts['create']} created, {counts['update']} updated, {counts['delete']} deleted, "
            f"{counts['unchanged']} unchanged{tail}")


def plan(result: Mapping[str, Any], *, verbose: bool = False, colour: bool = False) -> str:
    """One line per object (`+ create web-1`), its field diffs indented, then the summary line.
    Unchanged objects are only counted unless `verbose`."""
    lines: list[str] = []
    for obj in result.get("objects") or []:
        action = str(obj.get("action"))
        if action == "unchanged" and not verbose:
            continue
        kind = obj.get("kind")
        label = obj.get("name", "?") if kind in (None, "VirtualMachine") else f"{kind}/{obj.get('name', '?')}"
        note = impact_note(obj.get("impact")) if action in ("update", "delete") else ""
        lines.append(paint(f"{SIGNS.get(action, '?')} {action} {label}{note}", COLOURS.get(action), colour))
        lines.extend(change_line(change, action) for change in obj.get("changes") or [])
    lines.extend(f"Warning: {warning}" for warning in result.get("warnings") or [])
    lines.append(summary_line(result))
    return "\n".join(lines)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(cell) for cell in headers], *[["-" if cell is None else str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    return "\n".join("   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in cells)


VM_COLUMNS = ("NAME", "VMID", "NODE", "DESIRED", "STATUS", "SYNC", "CORES", "MEMORY", "DISK", "ADDRESSES")
WIDE_COLUMNS = (*VM_COLUMNS, "REBOOT", "MODE", "LABELS")


def vm_table(vms: Sequence[Mapping[str, Any]], wide: bool = False) -> str:
    rows: list[tuple[Any, ...]] = []
    for vm in sorted(vms, key=lambda vm: str(vm.get("name"))):
        row: tuple[Any, ...] = (
            vm.get("name"), vm.get("vmid"), vm.get("node"), vm.get("power_state"), vm.get("status"),
            vm.get("sync_status"), vm.get("cpu_cores"), _unit(vm.get("memory_mb"), "MB"),
            _unit(vm.get("disk_gb"), "GB"), ",".join(str(ip) for ip in vm.get("ip_addresses") or []) or None)
        if wide:
            labels = vm.get("labels") or {}
            row += (_yes(vm.get("reboot_required")), vm.get("management"),
                    ",".join(f"{key}={val}" for key, val in labels.items()) or None)
        rows.append(row)
    return table(WIDE_COLUMNS if wide else VM_COLUMNS, rows)


TEMPLATE_COLUMNS = ("NAME", "VMID", "NODE", "DISK", "CLOUD-INIT")


def template_table(templates: Sequence[Mapping[str, Any]]) -> str:
    rows = [(item.get("name"), item.get("vmid"), item.get("node"), _unit(item.get("disk_gb"), "GB"),
             "yes" if item.get("has_cloud_init") else "no")
            for item in sorted(templates, key=lambda item: (str(item.get("name")), item.get("vmid") or 0))]
    return table(TEMPLATE_COLUMNS, rows)


def _unit(amount: Any, unit: str) -> str | None:
    return None if amount is None else f"{amount} {unit}"


def as_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


def as_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False).rstrip("\n")


def describe(vm: Mapping[str, Any], snapshots: Sequence[Mapping[str, Any]], rules: Sequence[Mapping[str, Any]],
             audit: Sequence[Mapping[str, Any]]) -> str:
    labels = vm.get("labels") or {}
    generation = f"{vm.get('generation')} (observed {vm.get('observed_generation')})"
    lines = [
        *_pairs([("Name", vm.get("name")), ("ID", vm.get("id")), ("VMID", vm.get("vmid")),
                 ("Labels", ", ".join(f"{key}={val}" for key, val in labels.items()) or None),
                 ("Apply set", vm.get("apply_set")), ("Created", vm.get("created_at")),
                 ("Updated", vm.get("updated_at"))]),
        "Spec:",
        *_pairs([("Node", vm.get("node")), ("CPU cores", vm.get("cpu_cores")),
                 ("Memory", _unit(vm.get("memory_mb"), "MB")), ("Disk", _unit(vm.get("disk_gb"), "GB")),
                 ("Power state", vm.get("power_state")), ("Template", vm.get("template")),
                 ("Tags", ", ".join(vm.get("tags") or []) or None), ("Pool", vm.get("pool")),
                 ("Management", vm.get("management")), ("Reboots", vm.get("reboot_policy")),
                 ("Schedule", value(vm["snapshot_schedule"]) if vm.get("snapshot_schedule") else None)],
                indent=2),
        "Status:",
        *_pairs([("Power (observed)", vm.get("status")), ("Sync", vm.get("sync_status")),
                 ("Generation", generation), ("Last synced", vm.get("last_synced_at")),
                 ("Last error", vm.get("last_error")), ("Reboot required", _yes(vm.get("reboot_required"))),
                 ("Restart pending", _yes(vm.get("restart_pending"))),
                 ("Addresses", ", ".join(vm.get("ip_addresses") or []) or None)], indent=2),
        *(["Drift (observe mode):",
           _indent(table(("FIELD", "DESIRED", "OBSERVED"),
                         [(d.get("field"), value(d.get("desired")), value(d.get("observed")))
                          for d in vm.get("drift") or []]))] if vm.get("drift") else []),
        "Snapshots:",
        _indent(table(("NAME", "DESCRIPTION", "SYNC", "CREATED", "LAST ERROR"),
                      [(s.get("name"), s.get("description"), s.get("sync_status"), s.get("created_at"),
                        s.get("last_error")) for s in snapshots]) if snapshots else "(none)"),
        "Firewall rules:",
        _indent(table(("#", "DIRECTION", "ACTION", "PROTOCOL", "PORT", "SOURCE", "DESTINATION", "ENABLED", "SYNC"),
                      [(r.get("position", i), r.get("direction"), r.get("action"), r.get("protocol"), r.get("port"),
                        r.get("source"), r.get("destination"), _yes(r.get("enabled")), r.get("sync_status"))
                       for i, r in enumerate(rules)]) if rules else "(none)"),
        "Recent audit:",
        _indent(table(("TIME", "ACTOR", "ACTION", "DETAILS"),
                      [(a.get("created_at"), a.get("actor"), a.get("action"), _details(a.get("details")))
                       for a in audit]) if audit else "(none)"),
    ]
    return "\n".join(lines)


def _details(details: Any, width: int = 100) -> str:
    """An audit record's details without what the VM's own header already says, cut to `width`."""
    shown = {key: val for key, val in details.items() if key not in ("vm_name", "vmid")} \
        if isinstance(details, Mapping) else details
    text = value(shown) if shown else "-"
    return text if len(text) <= width else text[: width - 3] + "..."


def _pairs(items: Sequence[tuple[str, Any]], indent: int = 0) -> list[str]:
    width = max(len(key) for key, _ in items) + 1
    return [" " * indent + f"{key + ':':<{width}} {'-' if val is None else val}" for key, val in items]


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def _yes(flag: Any) -> str | None:
    return None if flag is None else ("yes" if flag else "no")
