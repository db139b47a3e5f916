"""classify() and TaskFailed: Proxmox's failures split into retry-later and give-up, with Proxmox's own words."""

from __future__ import annotations

import pytest
import requests
from proxmoxer import AuthenticationError, ResourceException

from controller.proxmox.client import task_succeeded
from controller.proxmox.errors import ProxmoxError, TaskFailed, classify


def resource(status: int, content: str, errors: object = None) -> ResourceException:
    return ResourceException(status, "reason", content, errors=errors)


@pytest.mark.parametrize(("exc", "message", "transient", "status"), [
    (resource(500, "VM is locked (backup)\n"), "VM is locked (backup)", True, 500),
    (resource(500, "cluster not ready - no quorum?"), "cluster not ready - no quorum?", True, 500),
    (resource(500, "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout"),
     "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout", True, 500),
    (resource(500, "checksum mismatch (file change by other user?)"),
     "checksum mismatch (file change by other user?)", True, 500),
    (resource(500, "detected modified configuration - file changed by other user? Try again."),
     "detected modified configuration - file changed by other user? Try again.", True, 500),
    (resource(500, "boom"), "boom", True, 500),
    (resource(502, "Bad Gateway", {"errors": b"<html>Bad Gateway</html>"}), "Bad Gateway", True, 502),
    (resource(595, "No route to host"), "No route to host", True, 595),
    (resource(596, "Connection timed out"), "Connection timed out", True, 596),
    (resource(599, "Too many redirections"), "Too many redirections", True, 599),
    (resource(401, "permission denied - invalid PVE ticket"), "permission denied - invalid PVE ticket", True, 401),
    (resource(401, "authentication failure"), "authentication failure", False, 401),
    (resource(400, "Parameter verification failed.", {"cores": "value must have a minimum value of 1"}),
     "Parameter verification failed: cores: value must have a minimum value of 1", False, 400),
    (resource(400, "Parameter verification failed.",
              {"name": "invalid format - value does not look like a valid DNS name\n", "cores": "bad\n"}),
     "Parameter verification failed: cores: bad; name: invalid format - value does not look like a valid DNS name",
     False, 400),
    (resource(400, "invalid rule type 'forward' for rule_env 'vm'"), "invalid rule type 'forward' for rule_env 'vm'",
     False, 400),
    (resource(403, "Permission check failed (/vms/100, VM.PowerMgmt)"),
     "Permission check failed (/vms/100, VM.PowerMgmt)", False, 403),
    (resource(500, "unable to create VM 100 - VM 100 already exists on node 'pve1'"),
     "unable to create VM 100 - VM 100 already exists on node 'pve1'", False, 500),
    (resource(501, "Method 'POST /nodes/pve1/qemu/100/status/explode' not implemented"),
     "Method 'POST /nodes/pve1/qemu/100/status/explode' not implemented", False, 501),
    (resource(500, ""), "reason", True, 500),
])
def test_resource_exceptions(exc: ResourceException, message: str, transient: bool, status: int) -> None:
    error = classify(exc)
    assert (error.message, error.transient, error.status) == (message, transient, status)
    assert str(error) == message


@pytest.mark.parametrize(("exc", "prefix", "transient"), [
    (requests.exceptions.ConnectionError("RemoteDisconnected"), "cannot reach Proxmox", True),
    (requests.exceptions.ReadTimeout("read timed out"), "Proxmox did not answer in time", True),
    (requests.exceptions.ConnectTimeout("connect timed out"), "Proxmox did not answer in time", True),
    (requests.exceptions.SSLError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), "TLS error", False),
    (requests.exceptions.SSLError("EOF occurred in violation of protocol"), "TLS error", True),
    (requests.exceptions.InvalidURL("bad url"), "HTTP request to Proxmox failed", False),
    (AuthenticationError("Couldn't authenticate user: root@pam code: 401"), "Proxmox login failed", False),
    (TimeoutError("timed out"), "cannot reach Proxmox", True),
    (KeyError("version"), "unexpected Proxmox failure", False),
])
def test_other_exceptions(exc: BaseException, prefix: str, transient: bool) -> None:
    error = classify(exc)
    assert error.message.startswith(prefix)
    assert error.transient is transient
    assert error.status in (None, 401)


def test_a_proxmox_error_is_returned_as_is() -> None:
    error = ProxmoxError("already classified", True, 500)
    assert classify(error) is error


@pytest.mark.parametrize(("exitstatus", "message", "transient"), [
    ("VM quit/powerdown failed - got timeout", "VM quit/powerdown failed - got timeout", True),
    ("VM is locked (backup)", "VM is locked (backup)", True),
    ("can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout",
     "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout", True),
    ("checksum mismatch (file change by other user?)", "checksum mismatch (file change by other user?)", True),
    ("unable to create VM 100 - unable to write to storage 'local-lvm': No space left on device",
     "unable to create VM 100 - unable to write to storage 'local-lvm': No space left on device", False),
    ("QEMU exited with code 1", "QEMU exited with code 1", False),
    ("snapshot name 'pre' already used", "snapshot name 'pre' already used", False),
    ("", "task failed without an exit status", False),
])
def test_task_failed(exitstatus: str, message: str, transient: bool) -> None:
    error = TaskFailed(exitstatus, upid="UPID:pve1:1:2:3:qmstart:100:root@pam:")
    assert isinstance(error, ProxmoxError)
    assert (error.message, error.transient, error.status) == (message, transient, None)
    assert error.upid == "UPID:pve1:1:2:3:qmstart:100:root@pam:"


@pytest.mark.parametrize(("exitstatus", "expected"), [
    ("OK", True), ("WARNINGS: 2", True), ("QEMU exited with code 1", False), ("", False), (None, False),
    ("ok", False),
])
def test_task_succeeded(exitstatus: object, expected: bool) -> None:
    assert task_succeeded(exitstatus) is expected
