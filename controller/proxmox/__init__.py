"""The Proxmox adapter: the only package that talks to Proxmox VE (and the only importer of proxmoxer).

client: ProxmoxClient, the reads and writes; errors: ProxmoxError and the retry classification;
marks: pvem's ownership marks; normalize: Proxmox's answers as comparable values.
"""

from controller.proxmox.client import ProxmoxClient
from controller.proxmox.errors import ProxmoxError, TaskFailed, classify
from controller.proxmox.normalize import ObservedVm, VmConfig

__all__ = ["ObservedVm", "ProxmoxClient", "ProxmoxError", "TaskFailed", "VmConfig", "classify"]
