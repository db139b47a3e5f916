"""The one mapping between a Proxmox config's guest keys and pvem's spec fields, both ways. Pure."""

from __future__ import annotations

import pytest

from controller.proxmox.guest_config import (
    agent_enabled,
    decode_sshkeys,
    encode_sshkeys,
    guest_from_config,
    ipconfig_string,
    nic_string,
    parse_ipconfig,
    parse_nic,
    spec_fields_from_config,
)

KEYS = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHb0 ops@example", "ssh-rsa AAAAB3Nza+/= second key"]


def test_ssh_keys_are_url_encoded_one_per_line_and_read_back():
    encoded = encode_sshkeys(KEYS)
    assert "\n" not in encoded and " " not in encoded and "+" not in encoded and "/" not in encoded
    assert "%0A" in encoded and "%20" in encoded and "%2B" in encoded
    assert decode_sshkeys(encoded) == tuple(KEYS)
    assert decode_sshkeys(None) == ()


@pytest.mark.parametrize(("text", "model", "mac", "bridge", "vlan", "firewall"), [
    ("virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1", "virtio", "BC:24:11:AA:BB:CC", "vmbr0", None, True),
    ("e1000=bc:24:11:aa:bb:cc,bridge=vmbr1,tag=30", "e1000", "BC:24:11:AA:BB:CC", "vmbr1", 30, False),
    ("model=vmxnet3,macaddr=BC:24:11:00:00:01,bridge=vmbr2,firewall=0", "vmxnet3", "BC:24:11:00:00:01", "vmbr2", None,
     False),
])
def test_nics_are_parsed_whatever_form_proxmox_used(text, model, mac, bridge, vlan, firewall):
    nic = parse_nic(text)
    assert (nic.model, nic.mac, nic.bridge, nic.vlan, nic.firewall) == (model, mac, bridge, vlan, firewall)


def test_nic_strings_keep_a_known_mac_and_leave_a_new_one_to_proxmox():
    assert nic_string("virtio", "BC:24:11:AA:BB:CC", "vmbr0", 30, True) == \
        "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,tag=30,firewall=1"
    assert nic_string("e1000", None, "vmbr1", None, False) == "e1000,bridge=vmbr1,firewall=0"


@pytest.mark.parametrize("entry", [{"ipv4": "dhcp"}, {"ipv4": "192.0.2.5/24", "gateway4": "192.0.2.1"},
                                   {"ipv6": "auto"}, {"ipv4": "dhcp", "ipv6": "2001:db8::5/64",
                                                      "gateway6": "2001:db8::1"}])
def test_ipconfig_round_trips(entry):
    assert parse_ipconfig(ipconfig_string(entry)) == entry


@pytest.mark.parametrize(("value", "enabled"), [("1", True), ("0", False), (None, False),
                                                ("enabled=1,fstrim_cloned_disks=1", True), ("enabled=0", False)])
def test_agent_option_forms(value, enabled):
    assert agent_enabled(value) is enabled


def test_a_config_maps_to_spec_fields_for_adoption_or_import():
    config = {"tags": "pvem;web;Prod", "description": "db server\n\npvem:id=abc", "onboot": 1, "agent": "1",
              "net0": "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1", "net1": "e1000=BC:24:11:AA:BB:CD,"
              "bridge=vmbr1,tag=20", "scsi0": "local-lvm:vm-100-disk-0,size=20G",
              "scsi1": "fast:vm-100-disk-1,size=50G", "ide2": "local-lvm:vm-100-cloudinit,media=cdrom",
              "ciuser": "ops", "cipassword": "$5$hash", "sshkeys": encode_sshkeys(KEYS[:1]),
              "ipconfig0": "ip=192.0.2.5/24,gw=192.0.2.1", "nameserver": "192.0.2.53 192.0.2.54",
              "searchdomain": "lab.example"}
    assert spec_fields_from_config(config) == {
        "tags": ["prod", "web"], "description": "db server", "start_on_boot": True, "agent": True,
        "networks": [{"bridge": "vmbr0", "model": "virtio", "vlan": None, "firewall": True, "mac": "BC:24:11:AA:BB:CC"},
                     {"bridge": "vmbr1", "model": "e1000", "vlan": 20, "firewall": False, "mac": "BC:24:11:AA:BB:CD"}],
        "disks": [{"size_gb": 50, "storage": "fast"}],
        "cloud_init": {"user": "ops", "ssh_keys": KEYS[:1], "ip_config": [{"ipv4": "192.0.2.5/24",
                                                                           "gateway4": "192.0.2.1"}],
                       "nameservers": ["192.0.2.53", "192.0.2.54"], "search_domain": "lab.example"},
    }
    guest = guest_from_config(config)
    assert guest.cloud_init_drive == "ide2" and guest.has_password and "scsi0" not in guest.extra_disks
