"""The example manifests in manifests/ are valid, apply cleanly and are idempotent."""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "manifests").glob("*.yaml"))
YAML = {"Content-Type": "application/yaml"}


def test_the_examples_exist():
    assert {path.name for path in EXAMPLES} >= {"web-tier.yaml", "lab.yaml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_applies_then_is_unchanged(api, user_token, path):
    text = path.read_text()
    first = api.call("POST", "/api/manifests?apply_set=example", user_token, body=text, headers=YAML)
    assert first.status_code == 200, first.text
    assert first.json["data"]["summary"]["create"] == len(first.json["data"]["objects"]) > 0
    second = api.call("POST", "/api/manifests?apply_set=example", user_token, body=text, headers=YAML)
    assert second.json["data"]["changed"] is False


def test_web_tier_is_three_vms_with_firewalls(api, user_token):
    text = (Path(__file__).parent.parent / "manifests" / "web-tier.yaml").read_text()
    result = api.call("POST", "/api/manifests", user_token, body=text, headers=YAML)
    objects = result.json["data"]["objects"]
    assert len(objects) == 3
    for item in objects:
        rules = api.call("GET", f"/api/vms/{item['id']}/firewall", user_token).json["data"]
        assert rules and rules[-1]["action"] == "drop"


def test_cloud_vms_clones_the_demo_templates_with_cloud_init_and_reports_addresses(store, settings_factory, passwords):
    """The issue's 'done when' in one process: the example against the demo cluster's templates."""
    import time

    from controller import users
    from controller.actor import Actor
    from controller.agent import AgentRefresher
    from controller.demo import start_fake_cluster
    from controller.manifests.apply import ApplyOptions, apply_manifests
    from controller.manifests.export import export_documents, to_yaml
    from controller.manifests.loader import load_yaml
    from controller.manifests.model import validate_documents
    from controller.proxmox.client import ProxmoxClient
    from controller.reconcile.loop import LoopSettings, Reconciler
    from controller.reconcile.model import Policy
    from controller.store.models import VirtualMachine

    cluster = start_fake_cluster()
    settings = settings_factory(proxmox={"host": cluster.host, "port": cluster.port, "user": cluster.user,
                                         "password": cluster.password, "ca_file": cluster.ca_file,
                                         "default_node": "pve1"})
    client = ProxmoxClient(settings.proxmox)
    reconciler = Reconciler(store, client, Policy(shutdown_timeout=5), LoopSettings(), settings.proxmox.storage,
                            settings.proxmox.bridge, (settings.proxmox.vmid_min, settings.proxmox.vmid_max))
    try:
        with store.write() as session:
            admin = users.ensure_admin(session, passwords, "owner@example.com", "password123")
            actor = Actor(user_id=admin.id, role="admin")
        reconciler.full_pass()  # fills the template inventory

        def apply(text: str) -> bool:
            with store.write() as session:
                return apply_manifests(session, actor, validate_documents(load_yaml(text)),
                                       ApplyOptions(default_node="pve1", apply_set="cloud")).changed_vm_ids != []

        text = (Path(__file__).parent.parent / "manifests" / "cloud-vms.yaml").read_text()
        assert apply(text)
        with store.read() as session:
            ids = [vm.id for vm in session.query(VirtualMachine).order_by(VirtualMachine.name)]
        for vm_id in ids:
            reconciler._reconcile_one(vm_id)
        with store.read() as session:
            rows = session.query(VirtualMachine).order_by(VirtualMachine.name).all()
        assert [(row.name, row.sync_status, row.status) for row in rows] == [
            ("app-1", "synced", "running"), ("app-2", "synced", "running")], [row.last_error for row in rows]
        config = cluster.pve.vm(rows[0].vmid).config
        assert config["ciuser"] == "ops" and config["ipconfig0"] == "ip=192.0.2.21/24,gw=192.0.2.1"
        assert "tag=30" in config["net1"] and config["scsi1"] == "local-lvm:50"
        assert any("/qemu/9100/clone" in path for _method, path, _body in cluster.pve.requests)

        refresher = AgentRefresher(store, client, 30, reconciler.stopping)
        deadline = time.monotonic() + 10
        while any(cluster.pve.vm(row.vmid).agent is None for row in rows) and time.monotonic() < deadline:
            time.sleep(0.1)  # the demo gives running clones an agent answer within half a second
        refresher.run_once(spread=False)
        with store.read() as session:
            addresses = {vm.name: vm.ip_addresses for vm in session.query(VirtualMachine)}
        assert "192.0.2.21" in addresses["app-1"] and "192.0.2.22" in addresses["app-2"]

        assert not apply(text)  # re-applying changes nothing
        with store.read() as session:
            exported = to_yaml(export_documents(session, admin.id, apply_set="cloud"))
        assert not apply(exported)  # nor does applying the export
        mark = len(cluster.pve.requests)
        for vm_id in ids:
            reconciler._reconcile_one(vm_id)
        assert [m for m, _path, _body in cluster.pve.requests[mark:] if m != "GET"] == []
    finally:
        reconciler.stop(timeout=5)
        client.close()
        cluster.stop()
