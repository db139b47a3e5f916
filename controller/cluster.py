"""What the API knows about the Proxmox cluster without asking it: the node list the controller last saw.

The controller writes `cluster_nodes` each time it lists the nodes (stats sampling, imports); the API
reads it to refuse a VM on a node the cluster does not have. An empty table (no Proxmox configured,
or not listed yet) accepts every node: the reconciler reports the error later.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from controller.errors import Invalid
from controller.store.models import ClusterNode, utcnow

_NODES = select(ClusterNode.name).order_by(ClusterNode.name)


def known_nodes(session: Session) -> list[str]:
    return list(session.connection().scalars(_NODES))  # Core: the node list is never pending in a session


def check_node(session: Session, node: str, field: str = "node", known: list[str] | None = None) -> None:
    """Invalid (400) naming the known nodes when the cluster is known and lacks `node`."""
    names = known_nodes(session) if known is None else known
    if names and node not in names:
        raise Invalid(f"node {node!r} is not in the Proxmox cluster (nodes: {', '.join(names)})", field=field)


def record_nodes(session: Session, nodes: Iterable[dict[str, Any]]) -> None:
    """Replace the stored node list with this listing (items with `node` and `status`)."""
    listed = {str(item["node"]): item.get("status") for item in nodes if item.get("node")}
    if not listed:
        return  # an empty answer is not "the cluster has no nodes"
    now = utcnow()
    session.execute(delete(ClusterNode).where(ClusterNode.name.not_in(list(listed))))
    for name, status in listed.items():
        row = session.get(ClusterNode, name)
        if row is None:
            session.add(ClusterNode(name=name, status=str(status) if status else None, seen_at=now))
        else:
            row.status, row.seen_at = (str(status) if status else None), now
