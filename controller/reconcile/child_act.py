"""The executor's actions on a VM's children in Proxmox: snapshots and firewall rules.

A mixin of act.VmReconciler, as guest_act is (it uses its client, status writer and `_write`, which
audits each write's intent before sending it). Snapshots carry their pvem id in the description;
firewall rule writes send the rule list's digest, so a concurrent edit in Proxmox is refused, not lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from controller.proxmox.marks import snapshot_description
from controller.store.models import VmSnapshot

if TYPE_CHECKING:
    from controller.proxmox.client import ProxmoxClient
    from controller.reconcile.act import Context
    from controller.reconcile.state import StatusWriter


def _permanent(message: str) -> Exception:
    from controller.reconcile.act import Permanent  # act imports this module

    return Permanent(message)


class ChildActions:
    client: ProxmoxClient
    status: StatusWriter
    _write: Callable[..., None]

    def _do_snapshot_create(self, ctx: Context, snapshot_id: str, name: str, description: str | None) -> None:
        text = snapshot_description(snapshot_id, description)
        self._write(ctx, "snapshot_create", lambda: self.client.create_snapshot(ctx.node, ctx.desired.vmid, name,
                                                                                  text), snapshot=name)
        self.status.set_snapshot(snapshot_id, provisioned=True, sync_status="synced", last_error=None)

    def _do_snapshot_describe(self, ctx: Context, snapshot_id: str, name: str, description: str | None) -> None:
        text = snapshot_description(snapshot_id, description)
        self._write(ctx, "snapshot_update", lambda: self.client.set_snapshot_description(
            ctx.node, ctx.desired.vmid, name, text), snapshot=name)
        self.status.set_snapshot(snapshot_id, sync_status="synced", last_error=None)

    def _do_snapshot_delete(self, ctx: Context, snapshot_id: str | None, name: str) -> None:
        self._write(ctx, "snapshot_delete", lambda: self.client.delete_snapshot(ctx.node, ctx.desired.vmid, name),
                    snapshot=name)
        if snapshot_id:
            self.status.forget_snapshot(snapshot_id)

    def _do_snapshot_forget(self, ctx: Context, snapshot_id: str) -> None:
        self.status.forget_snapshot(snapshot_id)

    def _do_snapshot_rollback(self, ctx: Context, snapshot_id: str, name: str) -> None:
        self._write(ctx, "snapshot_rollback",
                    lambda: self.client.rollback_snapshot(ctx.node, ctx.desired.vmid, name), snapshot=name)
        self.status.set_snapshot(snapshot_id, rollbacks_done=VmSnapshot.rollback_requests)

    def _do_snapshot_conflict(self, ctx: Context, snapshot_id: str, message: str) -> None:
        self.status.set_snapshot(snapshot_id, sync_status="error", last_error=message)
        raise _permanent(message)

    def _rules_digest(self, ctx: Context) -> str | None:
        return self.client.firewall_rules(ctx.node, ctx.desired.vmid)[1]

    def _do_rule_add(self, ctx: Context, pos: int, rule: dict[str, Any], rule_id: str) -> None:
        vmid = ctx.desired.vmid
        self._write(ctx, "firewall_rule_add", lambda: self.client.add_rule(ctx.node, vmid, rule,
                                                                            self._rules_digest(ctx)),
                    rule_id=rule_id, pos=pos)
        if pos:  # Proxmox inserts at the top
            self.client.move_rule(ctx.node, vmid, 0, pos, self._rules_digest(ctx))

    def _do_rule_move(self, ctx: Context, pos: int, moveto: int, rule_id: str) -> None:
        self._write(ctx, "firewall_rule_move", lambda: self.client.move_rule(ctx.node, ctx.desired.vmid, pos, moveto,
                                                                              self._rules_digest(ctx)),
                    rule_id=rule_id, pos=pos, moveto=moveto)

    def _do_rule_update(self, ctx: Context, pos: int, rule: dict[str, Any], rule_id: str) -> None:
        self._write(ctx, "firewall_rule_update", lambda: self.client.update_rule(ctx.node, ctx.desired.vmid, pos,
                                                                                  rule, self._rules_digest(ctx)),
                    rule_id=rule_id, pos=pos)

    def _do_rule_delete(self, ctx: Context, pos: int) -> None:
        self._write(ctx, "firewall_rule_delete", lambda: self.client.delete_rule(ctx.node, ctx.desired.vmid, pos,
                                                                                  self._rules_digest(ctx)), pos=pos)

    def _do_firewall_enable(self, ctx: Context) -> None:
        self._write(ctx, "firewall_enable", lambda: self.client.set_firewall_options(ctx.node, ctx.desired.vmid,
                                                                                      True))
