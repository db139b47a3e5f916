"""ProxmoxClient: every Proxmox read and write pvem makes, as typed methods over the PVE HTTP API.

This module owns the request shapes (paths, parameter names, how booleans and deletions are sent) and the
task waits. It keeps no state besides the connection: each method is one request (wait_task polls), so
the reconciler can repeat any of them. Writes that fork a Proxmox task return its UPID; every failure is
raised as a ProxmoxError (TaskFailed for a task that ended badly).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

from proxmoxer.tools import Tasks

from controller.config import ProxmoxSettings
from controller.proxmox.connection import Connection
from controller.proxmox.errors import ProxmoxError, TaskFailed, classify
from controller.proxmox.marks import join_tags
from controller.proxmox.normalize import (
    ObservedVm,
    VmConfig,
    observed_vm_from_resource,
    to_int,
    vm_config_from_api,
)

NODE_KEYS = ("node", "status", "cpu", "maxcpu", "mem", "maxmem", "disk", "maxdisk")
RULE_KEYS = ("pos", "type", "action", "proto", "dport", "source", "dest", "enable", "comment")
# What POST/PUT .../firewall/rules accept; read-only fields (pos, digest, ipversion) never go back.
RULE_WRITE_KEYS = ("type", "action", "proto", "dport", "sport", "source", "dest", "enable", "comment",
                   "macro", "iface", "log", "icmp-type")
# A few failed status polls in a row are a network blip; more than this and the wait gives up early.
MAX_POLL_FAILURES = 5
MAX_POLL_INTERVAL = 2.0
FAILED_POLL_PAUSE = 0.5  # after a failed poll: five in a row span seconds, not a blip's fraction of one


def _wire(value: Any) -> Any:
    """A Python value as PVE's form encoding wants it: booleans as 1/0."""
    return int(value) if isinstance(value, bool) else value


def _form(values: Mapping[str, Any], deletable: bool = False) -> dict[str, Any]:
    """Form data; with `deletable`, None values become PVE's `delete=key1,key2` instead of being dropped."""
    data = {key: _wire(value) for key, value in values.items() if value is not None and key != "delete"}
    deletes = [key for key, value in values.items() if value is None and key != "delete"] if deletable else []
    if values.get("delete"):
        deletes = [*str(values["delete"]).split(","), *deletes]
    if deletes:
        data["delete"] = ",".join(dict.fromkeys(deletes))
    return data


def _upid(answer: object) -> str | None:
    return answer if isinstance(answer, str) and answer.startswith("UPID:") else None


def task_succeeded(exitstatus: object) -> bool:
    # PVE counts "WARNINGS: n" as success too (PVE::Tools::upid_status_is_error).
    text = str(exitstatus or "")
    return text == "OK" or text.startswith("WARNINGS:")


class ProxmoxClient:
    """A Proxmox VE cluster, built from ProxmoxSettings; connects on first use, shareable between threads."""

    def __init__(self, settings: ProxmoxSettings) -> None:
        self.settings = settings
        self._conn = Connection(settings)

    def close(self) -> None:
        self._conn.close()

    def _call(self, fn: Callable[[Any], Any]) -> Any:
        return self._conn.call(fn)

    def _get(self, path: str, fn: Callable[[Any], Any]) -> Any:
        """A hot read (deep observation, task polls): `path` on the fast GET path, `fn` the proxmoxer form."""
        return self._conn.get(path, fn)

    def _post(self, path: str, data: Mapping[str, Any]) -> Any:
        """A hot write (creates, power changes): POST `path` through the fast path, sent once."""
        return self._conn.post(path, data)

    @staticmethod
    def _vm(api: Any, node: str, vmid: int) -> Any:
        return api.nodes(node).qemu(vmid)

    # ------------------------------------------------------------------ reads

    def version(self) -> str:
        return str(self._call(lambda api: api.version.get()["version"]))

    def list_vms(self) -> list[ObservedVm]:
        """Every QEMU VM of the cluster from one GET /cluster/resources?type=vm (containers left out)."""
        return self._call(lambda api: [
            observed_vm_from_resource(item)
            for item in api.cluster.resources.get(type="vm")
            if item.get("type") == "qemu"
        ])

    def list_resources(self) -> tuple[list[ObservedVm], list[dict[str, Any]]]:
        """QEMU VMs and nodes from one GET /cluster/resources (no type filter): the reconciler's per-pass listing."""

        vms, nodes = [], []
        items = self._get("cluster/resources", lambda api: api.cluster.resources.get())  # the fast GET path
        try:
            for item in items:
                kind = item.get("type")
                if kind == "qemu":
                    vms.append(observed_vm_from_resource(item))
                elif kind == "node":
                    nodes.append({key: item.get(key) for key in NODE_KEYS})
        except Exception as exc:  # an answer we cannot make sense of, as call() would classify it
            raise classify(exc) from exc
        return vms, nodes

    def list_nodes(self) -> list[dict[str, Any]]:
        items = self._call(lambda api: api.cluster.resources.get(type="node"))
        return [{key: item.get(key) for key in NODE_KEYS} for item in items if item.get("type", "node") == "node"]

    def vm_config(self, node: str, vmid: int) -> VmConfig:
        return self._call(lambda api: vm_config_from_api(self._vm(api, node, vmid).config.get()))

    def vm_pending(self, node: str, vmid: int) -> list[dict[str, Any]]:
        """GET .../pending: {key, value?, pending?, delete?} per config key (see normalize.pending_changes)."""
        return list(self._get(f"nodes/{node}/qemu/{vmid}/pending", lambda api: self._vm(api, node, vmid).pending.get()))

    def vm_status(self, node: str, vmid: int) -> dict[str, Any]:
        """GET .../status/current, with `status`, `qmpstatus` (paused shows only here) and `lock` always present."""
        data = dict(self._get(f"nodes/{node}/qemu/{vmid}/status/current",
                              lambda api: self._vm(api, node, vmid).status.current.get()))
        data.setdefault("qmpstatus", data.get("status"))
        data.setdefault("lock", None)
        return data

    def snapshots(self, node: str, vmid: int) -> list[dict[str, Any]]:
        """The VM's snapshots (name, description, snaptime, parent), without Proxmox's "current" entry."""
        items = self._get(f"nodes/{node}/qemu/{vmid}/snapshot", lambda api: self._vm(api, node, vmid).snapshot.get())
        return [
            {"name": s["name"], "description": s.get("description"), "snaptime": to_int(s.get("snaptime")),
             "parent": s.get("parent")}
            for s in items if s.get("name") != "current"
        ]

    def firewall_rules(self, node: str, vmid: int) -> tuple[list[dict[str, Any]], str | None]:
        """The VM's firewall rules in position order, and the digest to pass back with a change (None: no rules)."""
        items = self._get(f"nodes/{node}/qemu/{vmid}/firewall/rules",
                          lambda api: self._vm(api, node, vmid).firewall.rules.get())
        digest = next((str(item["digest"]) for item in items if item.get("digest")), None)
        rules = []
        for item in items:
            rule = {key: item.get(key) for key in RULE_KEYS}
            rule.update({k: v for k, v in item.items() if k not in RULE_KEYS and k != "digest"})
            rule["pos"] = to_int(item.get("pos"))
            # No `enable` means disabled: PVE stores a rule created without one that way.
            rule["enable"] = to_int(item.get("enable")) or 0
            rules.append(rule)
        return sorted(rules, key=lambda r: r["pos"] if r["pos"] is not None else -1), digest

    def firewall_options(self, node: str, vmid: int) -> dict[str, Any]:
        return dict(self._call(lambda api: self._vm(api, node, vmid).firewall.options.get()))

    # ------------------------------------------------------------- VM writes

    def create_vm(self, node: str, vmid: int, *, name: str | None, cores: int, memory_mb: int, disk_gb: int,
                  storage: str, bridge: str, description: str | None, tags: str | Iterable[str] | None,
                  extra: Mapping[str, Any] | None = None) -> str:
        """POST /nodes/{node}/qemu: one virtio-scsi disk and one virtio NIC with the firewall on (plus `extra`
        config keys such as agent and onboot). Returns the UPID."""
        data = _form({
            "vmid": vmid, "name": name, "cores": cores, "memory": memory_mb, "scsihw": "virtio-scsi-single",
            "scsi0": f"{storage}:{disk_gb}", "net0": f"virtio,bridge={bridge},firewall=1", "ostype": "l26",
            "description": description, "tags": join_tags(tags), **(extra or {}),
        })
        upid = _upid(self._post(f"nodes/{node}/qemu", data))
        if upid is None:
            raise ProxmoxError(f"Proxmox answered the create of VM {vmid} without a task id", transient=False)
        return upid

    def update_config(self, node: str, vmid: int, changes: dict[str, Any], digest: str | None) -> str | None:
        """POST .../config (the asynchronous form). A None value deletes the key; booleans go as 1/0.

        The digest is checked inside the task: a stale one ends as TaskFailed("checksum mismatch ...").
        On a running VM most keys land in .../pending until the next start or reboot.
        """
        data = _form(changes, deletable=True)
        if data.get("tags"):
            data["tags"] = join_tags(data["tags"])
        if digest:
            data["digest"] = digest
        return _upid(self._call(lambda api: self._vm(api, node, vmid).config.post(**data)))

    def clone_vm(self, node: str, template_vmid: int, newid: int, *, name: str, full: bool, target: str | None,
                 storage: str | None, pool: str | None, description: str | None) -> str:
        """POST .../qemu/{template}/clone (issue 7). `description` carries pvem's mark, so a clone cut short by a
        crash is still recognised as pvem's; `storage` goes with full clones only. Returns the UPID."""
        data = _form({"newid": newid, "name": name, "full": full, "target": target if target != node else None,
                      "storage": storage if full else None, "pool": pool, "description": description})
        upid = _upid(self._call(lambda api: self._vm(api, node, template_vmid).clone.post(**data)))
        if upid is None:
            raise ProxmoxError(f"Proxmox answered the clone of template {template_vmid} without a task id",
                               transient=False)
        return upid

    def regenerate_cloudinit(self, node: str, vmid: int) -> None:
        """PUT .../cloudinit: rebuild the cloud-init drive from the current config (no task)."""
        self._call(lambda api: self._vm(api, node, vmid).cloudinit.put())

    def pool_ids(self) -> list[str]:
        """The cluster's resource pools (GET /pools)."""
        return sorted(str(item["poolid"]) for item in self._call(lambda api: api.pools.get()) if item.get("poolid"))

    def set_pool(self, vmid: int, pool: str) -> None:
        """Put the VM in `pool`, moving it out of another one (PUT /pools with allow-move)."""
        self._call(lambda api: api.pools.put(poolid=pool, vms=str(vmid), **{"allow-move": 1}))

    def agent_interfaces(self, node: str, vmid: int) -> list[dict[str, Any]]:
        """GET .../agent/network-get-interfaces: the guest's interfaces as qemu-guest-agent reports them."""
        answer = self._call(lambda api: self._vm(api, node, vmid).agent("network-get-interfaces").get())
        result = answer.get("result", answer) if isinstance(answer, dict) else answer
        return [item for item in result if isinstance(item, dict)] if isinstance(result, list) else []

    def resize_disk(self, node: str, vmid: int, disk_key: str, size_gb: int) -> str | None:
        return _upid(self._call(lambda api: self._vm(api, node, vmid).resize.put(disk=disk_key, size=f"{size_gb}G")))

    def _power(self, node: str, vmid: int, action: str, **params: Any) -> str | None:
        data = _form(params)
        return _upid(self._post(f"nodes/{node}/qemu/{vmid}/status/{action}", data))

    def start(self, node: str, vmid: int) -> str | None:
        return self._power(node, vmid, "start")

    def stop(self, node: str, vmid: int) -> str | None:
        return self._power(node, vmid, "stop")

    def shutdown(self, node: str, vmid: int, timeout: int, force_stop: bool) -> str | None:
        """ACPI shutdown; after `timeout` seconds the task fails ("got timeout") unless force_stop kills the VM."""
        return self._power(node, vmid, "shutdown", timeout=timeout, forceStop=force_stop)

    def reboot(self, node: str, vmid: int) -> str | None:
        return self._power(node, vmid, "reboot")

    def suspend(self, node: str, vmid: int) -> str | None:
        return self._power(node, vmid, "suspend")

    def resume(self, node: str, vmid: int) -> str | None:
        return self._power(node, vmid, "resume")

    def migrate(self, node: str, vmid: int, target: str, online: bool, *, with_local_disks: bool = False) -> str | None:
        data = _form({"target": target, "online": online, "with-local-disks": with_local_disks or None})
        return _upid(self._call(lambda api: self._vm(api, node, vmid).migrate.post(**data)))

    def destroy(self, node: str, vmid: int) -> str | None:
        """DELETE the VM with its disks and its entries in backup jobs, HA and replication."""
        params = {"purge": 1, "destroy-unreferenced-disks": 1}
        return _upid(self._call(lambda api: self._vm(api, node, vmid).delete(**params)))

    # -------------------------------------------------------------- snapshots

    def create_snapshot(self, node: str, vmid: int, name: str, description: str | None) -> str | None:
        data = _form({"snapname": name, "description": description})
        return _upid(self._call(lambda api: self._vm(api, node, vmid).snapshot.post(**data)))

    def set_snapshot_description(self, node: str, vmid: int, name: str, description: str) -> None:
        """PUT the snapshot's description (a config write, no task)."""
        self._call(lambda api: self._vm(api, node, vmid).snapshot(name).config.put(description=description))

    def delete_snapshot(self, node: str, vmid: int, name: str) -> str | None:
        return _upid(self._call(lambda api: self._vm(api, node, vmid).snapshot(name).delete()))

    def rollback_snapshot(self, node: str, vmid: int, name: str) -> str | None:
        return _upid(self._call(lambda api: self._vm(api, node, vmid).snapshot(name).rollback.post()))

    # --------------------------------------------------------------- firewall

    @staticmethod
    def _rule_form(rule: Mapping[str, Any], digest: str | None, deletable: bool) -> dict[str, Any]:
        data = _form({k: v for k, v in rule.items() if k in RULE_WRITE_KEYS}, deletable=deletable)
        if digest:
            data["digest"] = digest
        return data

    def add_rule(self, node: str, vmid: int, rule: dict[str, Any], digest: str | None) -> None:
        """POST a rule. As in PVE it lands at position 0 (move it after) and is disabled unless `enable` is set."""
        data = self._rule_form(rule, digest, deletable=False)
        self._call(lambda api: self._vm(api, node, vmid).firewall.rules.post(**data))

    def update_rule(self, node: str, vmid: int, pos: int, rule: dict[str, Any], digest: str | None) -> None:
        """PUT the rule at `pos`; keys given as None are cleared (PVE's `delete`), keys left out stay."""
        data = self._rule_form(rule, digest, deletable=True)
        self._call(lambda api: self._vm(api, node, vmid).firewall.rules(pos).put(**data))

    def move_rule(self, node: str, vmid: int, pos: int, moveto: int, digest: str | None) -> None:
        data = _form({"moveto": moveto, "digest": digest or None})
        self._call(lambda api: self._vm(api, node, vmid).firewall.rules(pos).put(**data))

    def delete_rule(self, node: str, vmid: int, pos: int, digest: str | None) -> None:
        params = _form({"digest": digest or None})
        self._call(lambda api: self._vm(api, node, vmid).firewall.rules(pos).delete(**params))

    def set_firewall_options(self, node: str, vmid: int, enable: bool) -> None:
        self._call(lambda api: self._vm(api, node, vmid).firewall.options.put(enable=int(enable)))

    # ------------------------------------------------------------------ tasks

    def task_status(self, upid: str) -> dict[str, Any]:
        """GET /nodes/{node}/tasks/{upid}/status: `status` running|stopped, `exitstatus` once stopped."""
        try:
            node = Tasks.decode_upid(upid)["node"]
        except (AssertionError, AttributeError, IndexError) as exc:
            raise ProxmoxError(f"not a Proxmox task id: {upid!r}", transient=False) from exc
        return dict(self._get(f"nodes/{node}/tasks/{quote(upid, safe=':@!')}/status",
                              lambda api: api.nodes(node).tasks(upid).status.get()))

    def wait_task(self, upid: str, timeout: float = 600, poll: float = 0.05,
                  should_stop: Callable[[], bool] | None = None, on_wait: Callable[[], None] | None = None) -> None:
        """Poll the task until it stops. TaskFailed if it ended badly; a transient ProxmoxError if it is still
        running after `timeout` seconds or `should_stop()` says to give up (the task itself keeps running).

        The first poll is sent at once (most tasks of a plain create or a power change are over by then);
        `on_wait()` is called once, before the first pause, when the task was not seen finished by it. The
        pauses start at `poll` and grow by half each time up to MAX_POLL_INTERVAL, so a task's end is
        noticed at most half its duration late (a 100 ms task after 125 ms), and a long one costs a poll
        every two seconds."""
        deadline = time.monotonic() + timeout
        interval = max(poll, 0.01)
        failures = 0
        while True:
            try:
                status: dict[str, Any] | None = self.task_status(upid)
                failures = 0
            except ProxmoxError as exc:
                failures += 1
                if not exc.transient or failures > MAX_POLL_FAILURES:
                    raise
                status = None
                interval = max(interval, FAILED_POLL_PAUSE)
            if status is not None and status.get("status") == "stopped":
                if task_succeeded(status.get("exitstatus")):
                    return
                raise TaskFailed(str(status.get("exitstatus") or ""), upid=upid)
            if on_wait is not None:
                on_wait()
                on_wait = None
            if should_stop is not None and should_stop():
                raise ProxmoxError(f"stopped waiting for task {upid}", transient=True)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProxmoxError(f"task {upid} still running after {timeout:g} s", transient=True)
            time.sleep(min(interval, remaining))
            # Long tasks (migrations, big disks) need not be polled often.
            interval = min(interval * 1.5, max(poll, MAX_POLL_INTERVAL))


__all__ = ["ProxmoxClient", "ProxmoxError", "TaskFailed", "classify", "task_succeeded"]
